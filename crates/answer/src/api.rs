//! The query component's HTTP API as pure functions: [`decode`] a request
//! into a [`Call`] (which names its index, for the access check), then
//! [`serve`] it. The component supplies the ports.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/search` | `{index, query, top_k?, filter?, weights?}` | [`crate::model::SearchResponse`] |
//! | `POST /v1/query` | `{index, question, top_k?, filter?, weights?, session_id?, stream?}` | [`crate::model::Answer`], or SSE ([`crate::sse`]) |
//! | `POST /v1/chat/completions` | OpenAI chat completions, `model` = index | see [`crate::openai`] |

use std::rc::Rc;

use futures::stream::{LocalBoxStream, StreamExt};
use ragspin_core::{Clock, Error, HttpRequest, HttpResponse, KvStore, Result, Sql, Timer};
use ragspin_index::search::Weights;
use serde::Deserialize;
use serde_json::Value;

use crate::models::Models;
use crate::openai::{self, ChunkEncoder};
use crate::service::{self, Caller, Ctx, QueryParams, SearchParams};
use crate::session::short_hash;
use crate::sse;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Search(SearchParams),
    Query { params: QueryParams, stream: bool },
    Chat(openai::ChatCall),
}

impl Call {
    /// The index the request reads (for the caller's access check).
    pub fn index(&self) -> &str {
        match self {
            Self::Search(p) => &p.index,
            Self::Query { params, .. } => &params.index,
            Self::Chat(c) => &c.params.index,
        }
    }
}

/// What the API answers: a whole response or SSE bytes.
pub enum Reply {
    Full(HttpResponse),
    Events(LocalBoxStream<'static, Vec<u8>>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(r) => f.debug_tuple("Full").field(r).finish(),
            Self::Events(_) => f.write_str("Events(..)"),
        }
    }
}

impl Reply {
    /// The whole response; `None` for a stream.
    pub fn full(self) -> Option<HttpResponse> {
        match self {
            Self::Full(r) => Some(r),
            Self::Events(_) => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    index: String,
    query: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    filter: Value,
    #[serde(default)]
    weights: Option<Weights>,
    /// The caller's own query embedding (skips embedding the query).
    #[serde(default)]
    vector: Option<Vec<f32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    index: String,
    question: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    filter: Value,
    #[serde(default)]
    weights: Option<Weights>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    stream: bool,
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
}

/// Decode `request`: route, method, body.
pub fn decode(request: &HttpRequest) -> Result<Call> {
    let path = request.path();
    if !matches!(path, "/v1/search" | "/v1/query" | "/v1/chat/completions") {
        return Err(Error::NotFound(format!("no route for {path}")));
    }
    if request.method != "POST" {
        return Err(Error::MethodNotAllowed {
            method: request.method.clone(),
            allow: vec!["POST".into()],
        });
    }
    Ok(match path {
        "/v1/search" => {
            let b: SearchBody = json(&request.body)?;
            Call::Search(SearchParams {
                index: b.index,
                query: b.query,
                top_k: b.top_k,
                filter: b.filter,
                weights: b.weights,
                vector: b.vector,
            })
        }
        "/v1/query" => {
            let b: QueryBody = json(&request.body)?;
            Call::Query {
                params: QueryParams {
                    index: b.index,
                    question: b.question,
                    top_k: b.top_k,
                    filter: b.filter,
                    weights: b.weights,
                    session_id: b.session_id,
                    ..QueryParams::default()
                },
                stream: b.stream,
            }
        }
        _ => Call::Chat(openai::decode(&request.body)?),
    })
}

/// Serve `call` for `caller`.
pub async fn serve<S, K, C, T, M>(ctx: Rc<Ctx<S, K, C, T, M>>, caller: &Caller, call: Call) -> Reply
where
    S: Sql + 'static,
    K: KvStore + 'static,
    C: Clock + 'static,
    T: Timer + 'static,
    M: Models + 'static,
    M::Events: 'static,
{
    match dispatch(ctx, caller, call).await {
        Ok(reply) => reply,
        Err(e) => Reply::Full(HttpResponse::error(&e)),
    }
}

async fn dispatch<S, K, C, T, M>(
    ctx: Rc<Ctx<S, K, C, T, M>>,
    caller: &Caller,
    call: Call,
) -> Result<Reply>
where
    S: Sql + 'static,
    K: KvStore + 'static,
    C: Clock + 'static,
    T: Timer + 'static,
    M: Models + 'static,
    M::Events: 'static,
{
    match call {
        Call::Search(params) => {
            let response = service::search_index(&ctx, params).await?;
            Ok(Reply::Full(HttpResponse::json(200, &response)))
        }
        Call::Query { params, stream } => {
            let prepared = service::prepare(&ctx, caller, params).await?;
            if stream {
                let events = service::answer_stream(ctx, prepared);
                Ok(Reply::Events(events.map(|e| sse::encode(&e)).boxed_local()))
            } else {
                let answer = service::answer(&ctx, prepared).await;
                Ok(Reply::Full(HttpResponse::json(200, &answer)))
            }
        }
        Call::Chat(chat) => {
            let now = ctx.clock.now_unix_ms();
            let id = format!(
                "chatcmpl-{}",
                short_hash(&format!(
                    "{now}:{}:{}",
                    caller.principal, chat.params.question
                ))
            );
            let created = now / 1000;
            let model = chat.params.index.clone();
            let prepared = service::prepare(&ctx, caller, chat.params).await?;
            if chat.stream {
                let encoder = ChunkEncoder {
                    id,
                    created,
                    model,
                    include_usage: chat.include_usage,
                };
                let events = service::answer_stream(ctx, prepared);
                Ok(Reply::Events(
                    events.map(move |e| encoder.encode(&e)).boxed_local(),
                ))
            } else {
                let answer = service::answer(&ctx, prepared).await;
                Ok(Reply::Full(HttpResponse::json(
                    200,
                    &openai::completion(&id, created, &answer),
                )))
            }
        }
    }
}
