//! A test-only component for the host's integration tests (never deployed):
//! - `GET /probe/echo`: the method, URI and headers the component received;
//! - `GET /probe/outbound?port=N`: a GET to `http://127.0.0.1:N/`, reporting
//!   the status or the error code the host gave;
//! - `GET /probe/panic`: panics (the host must answer 500 and recover);
//! - `GET /probe/count`: a per-instance counter kept in a static, to observe
//!   instance reuse.
#![cfg(target_arch = "wasm32")]

use spin_sdk::http::Request;
use spin_sdk::http_service;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNT: AtomicU64 = AtomicU64::new(0);

fn json(status: u16, value: serde_json::Value) -> http::Response<String> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(value.to_string())
        .expect("valid response")
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<http::Response<String>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    Ok(match path.as_str() {
        "/probe/echo" => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            json(
                200,
                serde_json::json!({
                    "method": req.method().as_str(),
                    "uri": req.uri().to_string(),
                    "headers": headers,
                }),
            )
        }
        "/probe/outbound" => {
            let port = query.strip_prefix("port=").unwrap_or("0");
            match spin_sdk::http::get(format!("http://127.0.0.1:{port}/")).await {
                Ok(res) => json(200, serde_json::json!({ "status": res.status().as_u16() })),
                Err(code) => json(502, serde_json::json!({ "error": format!("{code:?}") })),
            }
        }
        "/probe/panic" => panic!("probe asked to panic"),
        "/probe/count" => {
            let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
            json(200, serde_json::json!({ "count": n }))
        }
        _ => json(404, serde_json::json!({ "error": "no such probe" })),
    })
}
