//! The query component: `POST /v1/search`, `POST /v1/query` (SSE with
//! `stream: true`) and `POST /v1/chat/completions`. All behaviour lives in
//! [`ragspin_answer`] (tested natively); this file wires the Spin adapters
//! and Azure OpenAI to it: decode → (authorize) → service → encode.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use ragspin_answer::config::tune_for_queries;
use ragspin_answer::{AzureModels, Caller, Ctx, Settings, api};
use ragspin_azure::AzureConfig;
use ragspin_core::{HttpRequest, HttpResponse, Result};
use ragspin_spin::{Reply, SpinClock, SpinConfig, SpinHttp, SpinKv, SpinSql, SpinTimer};

ragspin_spin::http_streaming_component!(handle);

type Models = Option<AzureModels<SpinHttp, SpinClock, SpinTimer>>;
type QueryCtx = Ctx<SpinSql, SpinKv, SpinClock, SpinTimer, Models>;

async fn handle(request: HttpRequest) -> Reply {
    let call = match api::decode(&request) {
        Ok(call) => call,
        Err(e) => return Reply::Full(HttpResponse::error(&e)),
    };
    // Access control plugs in here: authenticate the request, then
    // `principal.check(Permission::Query, Some(call.index()))`, and build
    // the caller from the principal (sessions are per principal, cached
    // answers per scope).
    let caller = Caller::anonymous();
    let ctx = match context().await {
        Ok(ctx) => Rc::new(ctx),
        Err(e) => return Reply::Full(HttpResponse::error(&e)),
    };
    match api::serve(ctx, &caller, call).await {
        api::Reply::Full(response) => Reply::Full(response),
        api::Reply::Events(events) => Reply::event_stream(events),
    }
}

/// The ports, settings and models of one request (offline when the Azure
/// variables are empty).
async fn context() -> Result<QueryCtx> {
    let settings = Settings::from_config(&SpinConfig).await?;
    let models = AzureConfig::from_config(&SpinConfig).await?.map(|config| {
        AzureModels::new(
            tune_for_queries(config, &settings),
            SpinHttp,
            SpinClock,
            SpinTimer,
        )
    });
    Ok(Ctx {
        sql: SpinSql::open_default(),
        kv: SpinKv::open_default(),
        clock: SpinClock,
        timer: SpinTimer,
        models,
        settings,
    })
}
