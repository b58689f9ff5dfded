//! The ingest component: indexes, documents and versions
//! (`/v1/indexes[/...]`). All behaviour lives in
//! [`ragspin_index::api::handle`] (tested natively); this file wires the Spin
//! adapters and the Azure OpenAI embeddings client to it.
#![cfg(target_arch = "wasm32")]

use ragspin_access::{Permission, RouteKind, authorize, guard};
use ragspin_azure::{AzureConfig, EmbeddingsClient};
use ragspin_core::log::{CallStats, Metered, Notes};
use ragspin_core::{Config, HttpRequest, HttpResponse};
use ragspin_index::IndexSettings;
use ragspin_index::api::{self, Access, Context};
use ragspin_spin::{SpinClock, SpinConfig, SpinHttp, SpinKv, SpinSql, SpinTimer};

ragspin_spin::http_component!(handle);

/// Default time one request may spend embedding before answering 202.
const DEFAULT_BUDGET_MS: u64 = 25_000;

async fn handle(request: HttpRequest) -> HttpResponse {
    let notes = Notes::default();
    let mut response = guard(&request, &SpinConfig, RouteKind::Api, || async {
        let (access, index) = api::required_access(&request.method, request.path())?;
        if let Some(index) = index {
            notes.index(index);
        }
        let permission = match access {
            Access::Read => Permission::Search,
            Access::Write => Permission::Ingest,
            Access::Admin => Permission::Admin,
        };
        let kv = SpinKv::open_default();
        let principal =
            authorize(&request, &kv, &SpinConfig, &SpinClock, permission, index).await?;
        notes.principal(&principal.username);
        let visible = |name: &str| principal.check(Permission::Search, Some(name)).is_ok();
        Ok(serve(&request, &visible, &notes.calls).await)
    })
    .await;
    response.headers.extend(notes.headers());
    response
}

async fn serve(
    request: &HttpRequest,
    visible: &dyn Fn(&str) -> bool,
    stats: &CallStats,
) -> HttpResponse {
    let azure = match AzureConfig::from_config(&SpinConfig).await {
        Ok(azure) => azure,
        Err(e) => return HttpResponse::error(&e),
    };
    let budget_ms = match SpinConfig.get("ingest_time_budget_ms").await {
        Ok(Some(v)) => v.parse().unwrap_or(DEFAULT_BUDGET_MS),
        _ => DEFAULT_BUDGET_MS,
    };
    let sql = SpinSql::open_default();
    // A document's transaction touches ≈ 3.5x its size in pages; with
    // SQLite's default 2 MB cache, dirty pages spill into the WAL mid-way
    // and are written again when touched after. Up to 64 MB (allocated as
    // used, freed with the connection at the end of the request): a 10 MB
    // Markdown ingest wrote 15 % fewer bytes (BENCHMARKS.md). Best effort.
    let _ = ragspin_core::Sql::execute(&sql, "PRAGMA cache_size = -65536", &[]).await;
    let ctx = Context {
        sql: &sql,
        clock: &SpinClock,
        budget_ms,
        visible: Some(visible),
        embedder: |settings: &IndexSettings| {
            azure.as_ref().map(|base| {
                let mut config = base.clone();
                if !settings.embedding_deployment.is_empty() {
                    config.embedding_deployment = settings.embedding_deployment.clone();
                    config.embedding_model = settings.embedding_deployment.clone();
                }
                if settings.dimensions.is_some() {
                    config.embedding_dimensions = settings.dimensions;
                }
                EmbeddingsClient::new(
                    &config,
                    Metered::new(SpinHttp, stats.clone()),
                    SpinClock,
                    SpinTimer,
                )
            })
        },
    };
    api::handle(request, &ctx).await
}
