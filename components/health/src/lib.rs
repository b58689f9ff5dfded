//! The health component: `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! All behaviour lives in [`ragspin_core::health::handle`] (tested natively);
//! this file only wires the Spin adapters to it. The KV store and database are
//! opened lazily, so a broken store fails a readiness check instead of the
//! request, and `/healthz` answers 200 even when the store is down.
//!
//! `/healthz` and `/readyz` are public. `/metrics` is public unless the
//! variable `metrics_require_auth` is `true`; then it needs an admin token
//! or API key ([`ragspin_access::authorize`] with `Permission::Admin`).
//! Every response carries the CORS and security headers of
//! [`ragspin_access::guard`].
#![cfg(target_arch = "wasm32")]

use ragspin_access::{Permission, RouteKind, Settings, authorize, guard};
use ragspin_core::{HttpRequest, HttpResponse, health};
use ragspin_spin::{SpinClock, SpinConfig, SpinKv, SpinSql};

ragspin_spin::http_component!(handle);

async fn handle(request: HttpRequest) -> HttpResponse {
    let kv = SpinKv::open_default();
    let sql = SpinSql::open_default();
    let config = SpinConfig;
    guard(&request, &config, RouteKind::Public, || async {
        if request.path() == "/metrics" && Settings::load(&config).await?.metrics_require_auth {
            authorize(&request, &kv, &config, &SpinClock, Permission::Admin, None).await?;
        }
        Ok(health::handle(&request, &kv, &sql, &config).await)
    })
    .await
}
