//! `multipart/form-data` uploads (RFC 7578) and the small decoders the API
//! needs. The parser works on the whole body, which the component already
//! holds in memory (bounded by [`crate::api::MAX_BODY_BYTES`]); streaming
//! parsers such as `multer` bring an async stream stack and an encoding
//! table the component would carry for nothing.
//!
//! Every part with a `filename` is a document; a part named `metadata`
//! holds a JSON object applied to every document of the request; a part
//! named `id` sets the document id when exactly one file is sent.

use base64::Engine as _;
use ragspin_core::{Error, HttpRequest, Result};

use crate::model::NewDocument;

struct Part<'a> {
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
    body: &'a [u8],
}

fn boundary(content_type: &str) -> Result<String> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| {
            Error::bad_field(
                "content-type",
                "multipart/form-data needs a boundary parameter",
            )
        })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The value of `key="..."` (or unquoted) in a header's parameters.
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>> {
    let bad = |m: &str| Error::bad_field("body", format!("malformed multipart body: {m}"));
    let delimiter = format!("--{boundary}");
    let mut pos = find(body, delimiter.as_bytes(), 0).ok_or_else(|| bad("no opening boundary"))?;
    let mut out = Vec::new();
    loop {
        pos += delimiter.len();
        if body[pos..].starts_with(b"--") {
            return Ok(out);
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err(bad("boundary not followed by CRLF"));
        }
        pos += 2;
        let head_end =
            find(body, b"\r\n\r\n", pos).ok_or_else(|| bad("part without headers end"))?;
        let head = std::str::from_utf8(&body[pos..head_end])
            .map_err(|_| bad("part headers are not UTF-8"))?;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), head_end + 4)
            .ok_or_else(|| bad("no closing boundary"))?;
        let mut part = Part {
            name: None,
            filename: None,
            content_type: None,
            body: &body[head_end + 4..next],
        };
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                part.name = param(v, "name");
                part.filename = param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_string());
            }
        }
        out.push(part);
        pos = next + 2;
        if out.len() > 1000 {
            return Err(bad("too many parts"));
        }
    }
}

/// The documents of a multipart upload.
pub fn documents(request: &HttpRequest) -> Result<Vec<NewDocument>> {
    let content_type = request.header("content-type").unwrap_or_default();
    let parts = parts(&request.body, &boundary(content_type)?)?;
    let mut metadata = serde_json::Map::new();
    let mut id = None;
    let mut docs = Vec::new();
    for part in parts {
        match (part.filename, part.name.as_deref()) {
            (Some(filename), _) => docs.push(NewDocument {
                id: None,
                filename,
                content_type: part
                    .content_type
                    .filter(|ct| ct != "application/octet-stream"),
                content: part.body.to_vec(),
                metadata: serde_json::Map::new(),
            }),
            (None, Some("metadata")) => {
                metadata = serde_json::from_slice(part.body).map_err(|e| {
                    Error::bad_field("metadata", format!("must be a JSON object: {e}"))
                })?;
            }
            (None, Some("id")) => {
                id = Some(
                    String::from_utf8(part.body.to_vec())
                        .map_err(|_| Error::bad_field("id", "must be UTF-8"))?,
                );
            }
            (None, name) => {
                return Err(Error::bad_field(
                    name.unwrap_or("part"),
                    "unknown form field; send files (with a filename), `metadata` or `id`",
                ));
            }
        }
    }
    if docs.is_empty() {
        return Err(Error::bad_field("file", "the upload contains no file part"));
    }
    if id.is_some() && docs.len() != 1 {
        return Err(Error::bad_field(
            "id",
            "an id can only be given with exactly one file",
        ));
    }
    for doc in &mut docs {
        doc.metadata = metadata.clone();
        doc.id = id.clone();
    }
    Ok(docs)
}

/// Standard base64 (padding optional); `None` if invalid.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .ok()
}

/// `%XX` and `+` decoding of a query component (invalid escapes kept as is).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut k = 0;
    while k < bytes.len() {
        match bytes[k] {
            b'+' => out.push(b' '),
            b'%' if k + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[k + 1..k + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        k += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        k += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(body: &str) -> HttpRequest {
        HttpRequest::new("POST", "http://x/v1/indexes/a/documents")
            .with_header("content-type", "multipart/form-data; boundary=XyZ")
            .with_body(body.replace('\n', "\r\n"))
    }

    #[test]
    fn files_and_metadata_become_documents() {
        let body = "--XyZ\nContent-Disposition: form-data; name=\"metadata\"\n\n{\"team\":\"a\"}\n--XyZ\nContent-Disposition: form-data; name=\"file\"; filename=\"a.md\"\nContent-Type: text/markdown\n\n# A\n\nhello\n--XyZ\nContent-Disposition: form-data; name=\"file\"; filename=\"b.txt\"\n\nplain\n--XyZ--\n";
        let docs = documents(&upload(body)).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].filename, "a.md");
        assert_eq!(docs[0].content, b"# A\r\n\r\nhello");
        assert_eq!(docs[0].content_type.as_deref(), Some("text/markdown"));
        assert_eq!(docs[1].metadata["team"], "a");
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for body in [
            "no boundary at all",
            "--XyZ\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\n\nunterminated",
            "--XyZ\nContent-Disposition: form-data; name=\"other\"\n\nx\n--XyZ--\n",
            "--XyZ--\n",
        ] {
            assert!(
                matches!(documents(&upload(body)), Err(Error::BadRequest { .. })),
                "{body}"
            );
        }
        let no_boundary = HttpRequest::new("POST", "http://x/")
            .with_header("content-type", "multipart/form-data")
            .with_body("x");
        assert!(documents(&no_boundary).is_err());
    }

    #[test]
    fn decoders() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert!(base64_decode("***").is_none());
        assert_eq!(percent_decode("a%20b+c%zz%"), "a b c%zz%");
    }
}
