//! The auth component (`/auth/...`): login, refresh, logout, whoami, and the
//! admin routes for users, index grants and API keys.
//!
//! All behaviour lives in [`ragspin_access::Auth`] (tested natively); this
//! file only wires the Spin adapters to it. The `auth_` tables are created
//! on the first request an instance serves.
#![cfg(target_arch = "wasm32")]

use std::sync::atomic::AtomicBool;

use ragspin_access::{Auth, OsRandom};
use ragspin_core::{HttpRequest, HttpResponse};
use ragspin_spin::{SpinClock, SpinConfig, SpinKv, SpinSql};

/// Whether this instance already ran the idempotent migrations.
static SCHEMA_READY: AtomicBool = AtomicBool::new(false);

ragspin_spin::http_component!(handle);

async fn handle(request: HttpRequest) -> HttpResponse {
    let kv = SpinKv::open_default();
    let sql = SpinSql::open_default();
    Auth {
        kv: &kv,
        sql: &sql,
        config: &SpinConfig,
        clock: &SpinClock,
        random: &OsRandom,
        schema_ready: &SCHEMA_READY,
    }
    .handle(&request)
    .await
}
