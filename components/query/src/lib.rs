//! The query component: `POST /v1/search`, `POST /v1/query` (SSE with
//! `stream: true`) and `POST /v1/chat/completions`. All behaviour lives in
//! [`ragspin_answer`] (tested natively); this file wires the Spin adapters
//! and Azure OpenAI to it: authenticate → decode → authorize → service →
//! encode, inside [`ragspin_access::guard`] (CORS, security headers).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use futures::stream::LocalBoxStream;
use ragspin_access::{Permission, RouteKind, authenticate, guard};
use ragspin_answer::config::tune_for_queries;
use ragspin_answer::{AzureModels, Caller, Ctx, Settings, api};
use ragspin_azure::AzureConfig;
use ragspin_core::log::{CallStats, Metered, Notes};
use ragspin_core::{HttpRequest, HttpResponse, Result};
use ragspin_spin::{Reply, SpinClock, SpinConfig, SpinHttp, SpinKv, SpinSql, SpinTimer};

ragspin_spin::http_streaming_component!(handle);

type Models = Option<AzureModels<Metered<SpinHttp>, SpinClock, SpinTimer>>;
type QueryCtx = Ctx<SpinSql, SpinKv, SpinClock, SpinTimer, Models>;

async fn handle(request: HttpRequest) -> Reply {
    // A streamed answer cannot pass through `guard` (it wraps whole
    // responses): it is parked here, and the headers `guard` computed for
    // an empty 200 are copied onto it.
    let stream: RefCell<Option<LocalBoxStream<'static, Vec<u8>>>> = RefCell::new(None);
    let notes = Notes::default();
    let mut response = guard(&request, &SpinConfig, RouteKind::Api, || async {
        let kv = SpinKv::open_default();
        let principal = authenticate(&request, &kv, &SpinConfig, &SpinClock).await?;
        notes.principal(&principal.username);
        let call = api::decode(&request)?;
        notes.index(call.index());
        let permission = match call {
            api::Call::Search(_) => Permission::Search,
            _ => Permission::Query,
        };
        principal.check(permission, Some(call.index()))?;
        let caller = Caller {
            principal: principal.username.clone(),
            // Cached answers are shared only between callers who may read
            // the same indexes with the same role.
            scope: serde_json::to_string(&(&principal.role, &principal.indexes))
                .unwrap_or_default(),
        };
        let ctx = Rc::new(context(&notes.calls).await?);
        Ok(match api::serve(ctx, &caller, call).await {
            api::Reply::Full(response) => response,
            api::Reply::Events(events) => {
                *stream.borrow_mut() = Some(events);
                HttpResponse::new(200, "text/event-stream", Vec::new())
            }
        })
    })
    .await;
    response.headers.extend(notes.who());
    match stream.into_inner() {
        Some(events) => response
            .headers
            .into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "content-type" | "content-length"))
            .fold(Reply::event_stream(events), |reply, (name, value)| {
                reply.with_header(&name, value)
            })
            .with_late_log_fields(Box::new(move || notes.calls.fields())),
        None => {
            response.headers.extend(notes.calls.headers());
            Reply::Full(response)
        }
    }
}

/// The ports, settings and models of one request (offline when the Azure
/// variables are empty).
async fn context(stats: &CallStats) -> Result<QueryCtx> {
    let settings = Settings::from_config(&SpinConfig).await?;
    let models = AzureConfig::from_config(&SpinConfig).await?.map(|config| {
        AzureModels::new(
            tune_for_queries(config, &settings),
            Metered::new(SpinHttp, stats.clone()),
            SpinClock,
            SpinTimer,
        )
    });
    Ok(Ctx {
        sql: SpinSql::pooled("default"),
        kv: SpinKv::open_default(),
        clock: SpinClock,
        timer: SpinTimer,
        models,
        settings,
    })
}
