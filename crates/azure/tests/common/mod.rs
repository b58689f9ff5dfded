//! Helpers shared by the client tests: a config, scripted answers, and an
//! HTTP port that never answers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ragspin_azure::{AzureConfig, RetryPolicy};
use ragspin_core::{Clock, HttpClient, HttpRequest, HttpResponse, Result};
use ragspin_testkit::ScriptedHttp;

pub const KEY: &str = "azure-key-5f2b9c0e7d";
pub const NOW: u64 = 1_750_000_000_000;

/// An Azure config whose embedding deployment is a text-embedding-3 model.
pub fn config() -> AzureConfig {
    let mut config = AzureConfig::azure(
        "https://res.openai.azure.com",
        KEY,
        "gpt-4o-mini",
        "text-embedding-3-small",
    );
    config.retry = RetryPolicy {
        max_attempts: 5,
        budget_ms: 60_000,
        base_delay_ms: 100,
        max_delay_ms: 2_000,
    };
    config
}

pub fn json(status: u16, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::new(status, "application/json", body.to_string())
}

/// An embeddings answer for `n` inputs, `dims` long, vector i = [i, i, ...],
/// listed in the given index order.
pub fn embeddings_answer(order: &[usize], dims: usize, tokens: u32) -> HttpResponse {
    let data: Vec<serde_json::Value> = order
        .iter()
        .map(|&i| serde_json::json!({"object": "embedding", "index": i, "embedding": vec![i as f32; dims]}))
        .collect();
    json(
        200,
        &serde_json::json!({"object": "list", "data": data, "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

pub fn azure_error(status: u16, code: &str, message: &str) -> HttpResponse {
    json(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

pub fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i}")).collect()
}

/// The parsed JSON body of a request.
pub fn body(request: &HttpRequest) -> serde_json::Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// Never answers its first `stalls` requests (pending forever), then
/// delegates to a [`ScriptedHttp`].
#[derive(Default)]
pub struct StallingHttp {
    pub stalls: AtomicU32,
    pub then: ScriptedHttp,
}

impl HttpClient for StallingHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let stall = self
            .stalls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if stall {
            std::future::pending::<()>().await;
        }
        self.then.send(request).await
    }
}

/// A clock that moves `step_ms` forward every time it is read.
pub struct TickingClock {
    now: AtomicU64,
    step_ms: u64,
}

impl TickingClock {
    pub fn new(start: u64, step_ms: u64) -> Self {
        Self {
            now: AtomicU64::new(start),
            step_ms,
        }
    }
}

impl Clock for TickingClock {
    fn now_unix_ms(&self) -> u64 {
        self.now.fetch_add(self.step_ms, Ordering::SeqCst)
    }
}
