//! One structured JSON log line per request, from the compiled components
//! (issue #6, "Logs"): time, request id, route, status, latency, principal,
//! index, model call counts — never secrets, tokens, questions or document
//! text.

mod common;

use std::time::{Duration, Instant};

use common::{Api, TEST_ADMIN_PASSWORD, TEST_JWT_SECRET, app, client};
use ragspin_fake_azure::FakeAzure;
use ragspin_host::captured_lines;
use serde_json::{Value, json};

const SECRET_TEXT: &str = "The vault combination is tangerine-4471.";
const QUESTION: &str = "What is the vault combination?";

fn lines(pipe: &wasmtime_wasi::p2::pipe::MemoryOutputPipe) -> Vec<Value> {
    captured_lines(pipe)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits (bounded) until a line for `request_id` appears: a streamed reply
/// logs when its body ends, after the client may have read it.
fn line_for(pipe: &wasmtime_wasi::p2::pipe::MemoryOutputPipe, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = lines(pipe)
            .into_iter()
            .find(|l| l["request_id"] == request_id)
        {
            return line;
        }
        assert!(Instant::now() < deadline, "no log line for {request_id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_component_writes_one_json_line_per_request_without_secrets() {
    let fake = FakeAzure::start().unwrap();
    let (options, pipe) = app(&["health", "ingest", "query"])
        .fake_azure(&fake)
        .capturing_stdout();
    let api = Api::start(options);

    // Health: no principal, a fresh request id echoed back.
    let res = client().get(api.url("/healthz?probe=1")).send().unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "16 random bytes in hex: {id}");
    let line = line_for(&pipe, &id);
    assert_eq!(line["component"], "ragspin-health");
    assert_eq!(
        (line["method"].as_str(), line["route"].as_str()),
        (Some("GET"), Some("/healthz"))
    );
    assert_eq!(line["status"], 200);
    assert_eq!(line["level"], "info");
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    assert!(line.get("principal").is_none());

    // Ingest: the caller's request id is kept; principal, index and the
    // embedding calls are logged.
    let (status, body) = api.send("PUT", "/v1/indexes/vault", Some(json!({"dimensions": 64})));
    assert_eq!(status, 201, "{body}");
    let res = api
        .request("POST", "/v1/indexes/vault/documents")
        .header("x-request-id", "upload-1")
        .json(&json!({"filename": "vault.md", "content": SECRET_TEXT}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["x-request-id"], "upload-1");
    let line = line_for(&pipe, "upload-1");
    assert_eq!(line["component"], "ragspin-ingest");
    assert_eq!(line["principal"], "admin");
    assert_eq!(line["index"], "vault");
    assert_eq!(line["embedding_calls"], 1);
    assert!(line.get("llm_calls").is_none());

    // Query: one embedding and one chat call.
    let res = api
        .request("POST", "/v1/query")
        .header("x-request-id", "query-1")
        .json(&json!({"index": "vault", "question": QUESTION}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let line = line_for(&pipe, "query-1");
    assert_eq!(line["component"], "ragspin-query");
    assert_eq!(
        (line["principal"].as_str(), line["index"].as_str()),
        (Some("admin"), Some("vault"))
    );
    assert_eq!(
        (line["llm_calls"].as_u64(), line["embedding_calls"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(line["llm_ms"].as_f64().unwrap() > 0.0);

    // A streamed answer is logged when its stream ends, with its calls.
    let res = api
        .request("POST", "/v1/query")
        .header("x-request-id", "stream-1")
        .json(&json!({"index": "vault", "question": "Which vault combination opens it?", "stream": true}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let _ = res.text().unwrap();
    let line = line_for(&pipe, "stream-1");
    assert_eq!(line["streamed"], true);
    assert_eq!(line["llm_calls"], 1);

    // An error is logged with its code and level; a forged id is replaced.
    let res = api
        .request("GET", "/v1/indexes/missing")
        .header("x-request-id", "bad id\"}")
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "bad id\"}");
    let line = line_for(&pipe, &id);
    assert_eq!(
        (line["level"].as_str(), line["error"].as_str()),
        (Some("warn"), Some("not_found"))
    );

    // Exactly one line per request id; nothing secret in any line.
    let all = lines(&pipe);
    for id in ["upload-1", "query-1", "stream-1"] {
        assert_eq!(
            all.iter().filter(|l| l["request_id"] == id).count(),
            1,
            "{id}"
        );
    }
    let text = captured_lines(&pipe).join("\n");
    for secret in [
        TEST_ADMIN_PASSWORD,
        TEST_JWT_SECRET,
        fake.api_key(),
        &api.token,
        "tangerine",
        "vault combination",
    ] {
        assert!(!text.contains(secret), "log output contains {secret:?}");
    }
}
