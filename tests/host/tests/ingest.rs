//! The compiled ingest component over real HTTP: indexes, uploads (JSON and
//! multipart), formats, status, idempotency, deletes and versions — offline
//! (no Azure configured), so vectors stay pending and BM25 rows are written.

mod common;

use common::{Api, app, read_http_message, root};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/docs").join(name)).unwrap()
}

#[test]
fn index_lifecycle_and_json_uploads() {
    let api = Api::start(app(&["ingest"]));
    let (status, body) = api.send(
        "PUT",
        "/v1/indexes/handbook",
        Some(json!({"description": "HR"})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["active_version"], 1);
    let (status, _) = api.send(
        "PUT",
        "/v1/indexes/handbook",
        Some(json!({"description": "HR v2"})),
    );
    assert_eq!(status, 200);

    let doc = json!({
        "filename": "guide.md",
        "content": String::from_utf8(fixture("guide.md")).unwrap(),
        "metadata": {"team": "people"}
    });
    let (status, first) = api.send("POST", "/v1/indexes/handbook/documents", Some(doc.clone()));
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["document"]["status"]["stage"], "indexed");
    // The component's SHA-256 (sha2's wasm SIMD backend) agrees with the
    // native one on the whole document.
    assert_eq!(
        first["document"]["content_hash"],
        ragspin_index::sha256_hex(&fixture("guide.md"))
    );
    assert!(first["document"]["chunks"].as_i64().unwrap() > 0);

    // The same content again: the same document, 200, not a duplicate.
    let (status, again) = api.send("POST", "/v1/indexes/handbook/documents", Some(doc));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["document"]["id"], first["document"]["id"]);
    assert_eq!(again["created"], false);

    let id = first["document"]["id"].as_str().unwrap().to_string();
    let (status, got) = api.send("GET", &format!("/v1/indexes/handbook/documents/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(got["metadata"]["team"], "people");

    let (status, index) = api.send("GET", "/v1/indexes/handbook", None);
    assert_eq!(status, 200);
    assert_eq!(index["stats"]["documents"], 1);
    assert_eq!(index["stats"]["chunks"], first["document"]["chunks"]);
    assert_eq!(
        index["stats"]["vectors_pending"], index["stats"]["chunks"],
        "offline: no vectors"
    );
    let (_, list) = api.send("GET", "/v1/indexes", None);
    assert_eq!(list["indexes"][0]["name"], "handbook");

    let (status, _) = api.send(
        "DELETE",
        &format!("/v1/indexes/handbook/documents/{id}"),
        None,
    );
    assert_eq!(status, 204);
    let (status, err) = api.send("GET", &format!("/v1/indexes/handbook/documents/{id}"), None);
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "not_found");
    let (status, _) = api.send("DELETE", "/v1/indexes/handbook", None);
    assert_eq!(status, 204);
    assert_eq!(api.send("GET", "/v1/indexes/handbook", None).0, 404);
}

#[test]
fn multipart_uploads_every_supported_format() {
    let api = Api::start(app(&["ingest"]));
    let settings = json!({"fields": {"text_fields": ["product_name", "review_text"], "metadata_fields": ["rating", "price", "category"]}});
    assert_eq!(api.send("PUT", "/v1/indexes/mixed", Some(settings)).0, 201);
    let files = [
        ("guide.md", "text/markdown"),
        ("notes.txt", "text/plain"),
        ("page.html", "text/html"),
        ("pages.pdf", "application/pdf"),
        ("reviews.csv", "text/csv"),
    ];
    let mut form =
        reqwest::blocking::multipart::Form::new().text("metadata", r#"{"source":"upload"}"#);
    for (name, ct) in files {
        let part = reqwest::blocking::multipart::Part::bytes(fixture(name))
            .file_name(name)
            .mime_str(ct)
            .unwrap();
        form = form.part("file", part);
    }
    let res = api
        .request("POST", "/v1/indexes/mixed/documents")
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let body: Value = res.json().unwrap();
    let docs = body["documents"].as_array().unwrap();
    assert_eq!(docs.len(), files.len());
    for d in docs {
        assert_eq!(d["document"]["status"]["stage"], "indexed", "{d}");
        assert_eq!(d["document"]["metadata"]["source"], "upload");
    }
    let (_, page) = api.send("GET", "/v1/indexes/mixed/documents?limit=2", None);
    assert_eq!(page["documents"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = api.send(
        "GET",
        &format!("/v1/indexes/mixed/documents?limit=10&cursor={cursor}"),
        None,
    );
    assert_eq!(next["documents"].as_array().unwrap().len(), files.len() - 2);
}

#[test]
fn bad_inputs_get_clear_json_errors() {
    let api = Api::start(app(&["ingest"]));
    assert_eq!(api.send("PUT", "/v1/indexes/docs", None).0, 201);
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        (
            "PUT",
            "/v1/indexes/Bad%20Name",
            Some(json!({})),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/v1/indexes/x",
            Some(json!({"chunking": {"max_tokens": 100, "overlap_tokens": 90}})),
            422,
            "validation_failed",
        ),
        (
            "PUT",
            "/v1/indexes/x",
            Some(json!({"nonsense": 1})),
            400,
            "bad_request",
        ),
        ("GET", "/v1/indexes/missing", None, 404, "not_found"),
        (
            "POST",
            "/v1/indexes/missing/documents",
            Some(json!({"filename": "a.md", "content": "x"})),
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/indexes/docs/documents",
            Some(
                json!({"filename": "a.exe", "content": "MZ", "content_type": "application/x-msdownload"}),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/indexes/docs/documents",
            Some(json!({"filename": "a.md"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/indexes/docs/documents",
            Some(json!({"filename": "a.md", "content": "   "})),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/indexes/docs/documents",
            Some(json!({"filename": "a.csv", "content": "a,b\n1,2,3\n"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/indexes/docs/documents",
            Some(json!({"filename": "a.pdf", "content_base64": "bm90IGEgcGRm"})),
            400,
            "bad_request",
        ),
        (
            "DELETE",
            "/v1/indexes/docs/documents/nope",
            None,
            404,
            "not_found",
        ),
        ("PATCH", "/v1/indexes/docs", None, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/indexes/docs/versions/9/activate",
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/indexes/docs/documents?limit=0",
            None,
            422,
            "validation_failed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, err) = api.send(method, path, body);
        assert_eq!(got, status, "{method} {path}: {err}");
        assert_eq!(err["error"]["code"], code, "{method} {path}: {err}");
    }
    let res = api
        .request("POST", "/v1/indexes/docs/documents")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let (status, unsupported) = api.send(
        "POST",
        "/v1/indexes/docs/documents",
        Some(json!({"filename": "a.bin", "content": "x", "content_type": "application/octet-stream"})),
    );
    assert_eq!(status, 415);
    assert!(
        unsupported["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/markdown"),
        "{unsupported}"
    );
    // Nothing half written behind the failures.
    let (_, index) = api.send("GET", "/v1/indexes/docs", None);
    assert_eq!(index["stats"]["documents"], 0, "{index}");
}

#[test]
fn versions_build_beside_the_live_one_then_swap_and_roll_back() {
    let api = Api::start(app(&["ingest"]));
    assert_eq!(api.send("PUT", "/v1/indexes/v", None).0, 201);
    let doc =
        json!({"filename": "guide.md", "content": String::from_utf8(fixture("guide.md")).unwrap()});
    assert_eq!(
        api.send("POST", "/v1/indexes/v/documents", Some(doc)).0,
        201
    );
    let (_, before) = api.send("GET", "/v1/indexes/v", None);
    let v1_chunks = before["stats"]["chunks"].as_i64().unwrap();
    let small = json!({"chunking": {"max_tokens": 40, "overlap_tokens": 4}});
    assert_eq!(api.send("PUT", "/v1/indexes/v", Some(small)).0, 200);
    let (status, progress) = api.send("POST", "/v1/indexes/v/versions", None);
    assert_eq!(status, 201, "{progress}");
    assert_eq!(progress["version"], 2);
    assert_eq!(progress["state"], "ready");
    let (_, still) = api.send("GET", "/v1/indexes/v", None);
    assert_eq!(still["active_version"], 1);
    assert_eq!(still["stats"]["chunks"].as_i64().unwrap(), v1_chunks);
    let (status, swapped) = api.send("POST", "/v1/indexes/v/versions/2/activate", None);
    assert_eq!(status, 200);
    assert_eq!(swapped["active_version"], 2);
    assert!(swapped["stats"]["chunks"].as_i64().unwrap() > v1_chunks);
    let (_, back) = api.send("POST", "/v1/indexes/v/versions/1/activate", None);
    assert_eq!(back["active_version"], 1);
    assert_eq!(back["stats"]["chunks"].as_i64().unwrap(), v1_chunks);
}

/// The request body as the component reads it (`ragspin_spin` glue):
/// whole whether or not the client declares its length, and a clear 413
/// past `MAX_REQUEST_BODY_BYTES` either way.
#[test]
fn bodies_are_read_whole_with_or_without_a_length_and_refused_past_the_limit() {
    let api = Api::start(app(&["ingest"]));
    assert_eq!(api.send("PUT", "/v1/indexes/docs", None).0, 201);
    let guide = String::from_utf8(fixture("guide.md")).unwrap();
    let body = serde_json::to_vec(&json!({"filename": "guide.md", "content": guide})).unwrap();
    // No `content-length`: a reader of unknown size goes out chunked, in
    // small pieces.
    let chunked = |bytes: Vec<u8>| {
        reqwest::blocking::Body::new(std::io::BufReader::with_capacity(
            1000,
            std::io::Cursor::new(bytes),
        ))
    };
    let res = api
        .request("POST", "/v1/indexes/docs/documents")
        .header("content-type", "application/json")
        .body(chunked(body))
        .send()
        .unwrap();
    let status = res.status().as_u16();
    let created: Value = res.json().unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["document"]["content_hash"],
        ragspin_index::sha256_hex(guide.as_bytes())
    );

    // `ragspin_spin::MAX_REQUEST_BODY_BYTES` (that crate builds for wasm only).
    let limit: usize = 16 * 1024 * 1024;
    // Raw HTTP/1.1, so that every byte sent is read before the answer (a
    // server that closes with part of an upload unread resets the
    // connection, which can cut the answer off at the client): a declared
    // length over the limit with no body at all, and one chunk one byte
    // over the limit without the chunk that would end the body.
    let head = |framing: &str| {
        format!(
            "POST /v1/indexes/docs/documents HTTP/1.1\r\nhost: localhost\r\n\
             authorization: Bearer {}\r\ncontent-type: application/json\r\n{framing}\r\n\r\n",
            api.token
        )
    };
    let declared = head(&format!("content-length: {}", limit + 1)).into_bytes();
    let mut chunked = head("transfer-encoding: chunked").into_bytes();
    chunked.extend_from_slice(format!("{:x}\r\n", limit + 1).as_bytes());
    chunked.resize(chunked.len() + limit + 1, b'a');
    for (name, request) in [("declared", declared), ("chunked", chunked)] {
        let (status, body) = raw_exchange(&api.url("/"), &request);
        assert_eq!(status, 413, "{name}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"]["code"], "payload_too_large", "{name}: {err}");
    }
    let (_, index) = api.send("GET", "/v1/indexes/docs", None);
    assert_eq!(index["stats"]["documents"], 1, "{index}");
}

/// Writes `request` to the host at `base_url` and reads its answer:
/// (status, body).
fn raw_exchange(base_url: &str, request: &[u8]) -> (u16, String) {
    use std::io::Write;
    let addr = base_url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let (line, body) = read_http_message(&mut std::io::BufReader::new(stream))
        .expect("an HTTP answer before the connection closes");
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, String::from_utf8(body).unwrap())
}
