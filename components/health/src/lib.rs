//! The health component: `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! All behaviour lives in [`ragspin_core::health::handle`] (tested natively);
//! this file only wires the Spin adapters to it. The KV store and database are
//! opened lazily, so a broken store fails a readiness check instead of the
//! request, and `/healthz` answers 200 even when the store is down.
#![cfg(target_arch = "wasm32")]

use ragspin_core::{HttpRequest, HttpResponse, health};
use ragspin_spin::{SpinConfig, SpinKv, SpinSql};

ragspin_spin::http_component!(handle);

async fn handle(request: HttpRequest) -> HttpResponse {
    let kv = SpinKv::open_default();
    let sql = SpinSql::open_default();
    health::handle(&request, &kv, &sql, &SpinConfig).await
}
