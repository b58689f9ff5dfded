//! Spin adapters for ragspin's ports, and the HTTP glue components share.
//!
//! * Adapters (wasm32 only): `SpinKv`, `SpinSql`, `SpinConfig`, `SpinClock`,
//!   `SpinTimer`, `SpinHttp` implement the `ragspin_core` ports over
//!   `spin-sdk` 6. They must pass the same `ragspin_testkit::contract` suites
//!   as the in-memory fakes.
//! * [`http_component!`] exports an `async fn(HttpRequest) -> HttpResponse`
//!   as the component's `wasi:http/handler` — what `#[spin_sdk::http_service]`
//!   does — decoding the request into [`ragspin_core::HttpRequest`] and
//!   encoding the [`ragspin_core::HttpResponse`]. A component's `lib.rs` is
//!   then decode → service → encode and depends only on `ragspin-core` and
//!   this crate. (The SDK's attribute macro expands to `::spin_sdk::...`
//!   paths, which a re-export cannot satisfy.)
//! * [`http_streaming_component!`] does the same for handlers returning a
//!   [`Reply`]: either a whole [`ragspin_core::HttpResponse`] or a
//!   [`StreamingReply`] whose body is a stream of byte pieces (Server-Sent
//!   Events). The stream is polled by the SDK's body writer as the client
//!   reads: when a write fails (the client went away) the writer stops and
//!   drops the stream, and with it whatever the stream was waiting on (an
//!   upstream model call). The core models streams as plain
//!   `futures::Stream`s of events; this crate only moves their bytes.
//! * Both macros write one structured JSON log line per request to stdout
//!   ([`ragspin_core::log`]) and answer with an `x-request-id` header.
//! * Response helpers ([`json_response`], [`error_response`],
//!   [`text_response`], [`not_implemented`]) are plain functions over core
//!   types and build natively too.
//!
//! Natively this crate contains only the helpers, so `cargo clippy
//! --workspace` works on the host.

use futures::stream::LocalBoxStream;
use ragspin_core::{Error, HttpRequest, HttpResponse};
use serde::Serialize;

#[cfg(target_arch = "wasm32")]
mod adapters;
#[cfg(target_arch = "wasm32")]
mod glue;
pub mod reuse;

#[cfg(target_arch = "wasm32")]
pub use adapters::{SpinBodyStream, SpinClock, SpinConfig, SpinHttp, SpinKv, SpinSql, SpinTimer};
/// The Spin SDK, for components that need more than the adapters.
#[cfg(target_arch = "wasm32")]
pub use spin_sdk;

/// Used by [`http_component!`]; not a public API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::{serve, serve_reply};
    pub use spin_sdk::wasip3::http::types::{
        ErrorCode, Request as WasiRequest, Response as WasiResponse,
    };
}

/// Largest request body a component reads; a larger one is answered 413.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What a streaming-capable handler returns.
pub enum Reply {
    /// A response whose body is complete.
    Full(HttpResponse),
    /// A response whose body is produced while it is sent.
    Stream(StreamingReply),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(r) => f.debug_tuple("Full").field(r).finish(),
            Self::Stream(s) => f
                .debug_struct("Stream")
                .field("status", &s.status)
                .field("headers", &s.headers)
                .finish_non_exhaustive(),
        }
    }
}

/// Status and headers now, the body as a stream of byte pieces (each piece
/// is written as it comes; an empty stream is an empty body).
pub struct StreamingReply {
    /// Status code.
    pub status: u16,
    /// Header (name, value) pairs, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body. Dropped, unfinished, when the client disconnects.
    pub body: LocalBoxStream<'static, Vec<u8>>,
    /// Log fields known only once the body has ended (outbound call
    /// counts), asked for when the stream is dropped; see
    /// [`ragspin_core::log`].
    pub late_log_fields: Option<LateLogFields>,
}

/// A source of late log fields (annotation name, value) for a streamed reply.
pub type LateLogFields = Box<dyn FnOnce() -> Vec<(String, String)>>;

impl Reply {
    /// A `text/event-stream` reply (with `cache-control: no-cache`) whose
    /// body is `events`, each already encoded as SSE bytes.
    pub fn event_stream(events: LocalBoxStream<'static, Vec<u8>>) -> Self {
        Self::Stream(StreamingReply {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
                ("x-accel-buffering".into(), "no".into()),
            ],
            body: events,
            late_log_fields: None,
        })
    }

    /// For a streaming reply, ask `fields` for log fields when its body
    /// ends (see [`ragspin_core::log`]); a whole reply ignores it, its
    /// annotations travel as headers.
    #[must_use]
    pub fn with_late_log_fields(self, fields: LateLogFields) -> Self {
        match self {
            Self::Stream(mut s) => {
                s.late_log_fields = Some(fields);
                Self::Stream(s)
            }
            full => full,
        }
    }

    /// Add a header (builder style), to a whole or a streaming reply.
    #[must_use]
    pub fn with_header(self, name: &str, value: impl Into<String>) -> Self {
        match self {
            Self::Full(r) => Self::Full(r.with_header(name, value)),
            Self::Stream(mut s) => {
                s.headers.push((name.to_ascii_lowercase(), value.into()));
                Self::Stream(s)
            }
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::Full(r) => r.status,
            Self::Stream(s) => s.status,
        }
    }
}

impl From<HttpResponse> for Reply {
    fn from(response: HttpResponse) -> Self {
        Self::Full(response)
    }
}

/// A JSON response (`content-type: application/json`).
pub fn json_response(status: u16, value: &impl Serialize) -> HttpResponse {
    HttpResponse::json(status, value)
}

/// The JSON error response for `error`; the status comes from
/// [`ragspin_core::status_for`].
pub fn error_response(error: &Error) -> HttpResponse {
    HttpResponse::error(error)
}

/// A text response with an explicit `content-type`.
pub fn text_response(status: u16, content_type: &str, body: impl Into<String>) -> HttpResponse {
    HttpResponse::text(status, content_type, body)
}

/// The JSON 501 for `route` (e.g. `"POST /v1/query"`):
/// `{"error":{"code":"not_implemented","message":"POST /v1/query is not implemented yet"}}`.
pub fn not_implemented(route: &str) -> HttpResponse {
    ragspin_core::http::not_implemented(route)
}

/// A handler answering every request with [`not_implemented`] for its
/// method and path; for components whose routes are not built yet.
pub async fn not_implemented_handler(request: HttpRequest) -> HttpResponse {
    not_implemented(&format!("{} {}", request.method, request.path()))
}

/// Export `handler`, an `async fn(ragspin_core::HttpRequest) ->
/// ragspin_core::HttpResponse`, as this component's `wasi:http/handler`.
///
/// The request body is read whole (up to [`MAX_REQUEST_BODY_BYTES`]; more is
/// answered 413 without calling `handler`). Use once per component, wasm32
/// only.
///
/// ```ignore
/// ragspin_spin::http_component!(handle);
///
/// async fn handle(request: ragspin_core::HttpRequest) -> ragspin_core::HttpResponse {
///     ragspin_spin::not_implemented(request.path())
/// }
/// ```
#[macro_export]
macro_rules! http_component {
    ($handler:path) => {
        $crate::__export_handler!($crate::__private::serve, $handler);
    };
}

/// Export `handler`, an `async fn(ragspin_core::HttpRequest) ->`
/// [`Reply`], as this component's `wasi:http/handler`: like
/// [`http_component!`], but the handler may answer with a stream.
///
/// A streamed body is written piece by piece as the client reads it; if a
/// write fails (the client disconnected) the stream is dropped at once,
/// cancelling whatever it was awaiting.
#[macro_export]
macro_rules! http_streaming_component {
    ($handler:path) => {
        $crate::__export_handler!($crate::__private::serve_reply, $handler);
    };
}

/// The export both macros share; `$serve` is the glue function that runs
/// the handler. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_handler {
    ($serve:path, $handler:path) => {
        const _: () = {
            struct RagspinHttpComponent;

            $crate::spin_sdk::wasip3::http::service::export!(RagspinHttpComponent);

            impl $crate::spin_sdk::wasip3::exports::http::handler::Guest for RagspinHttpComponent {
                async fn handle(
                    request: $crate::__private::WasiRequest,
                ) -> ::core::result::Result<
                    $crate::__private::WasiResponse,
                    $crate::__private::ErrorCode,
                > {
                    $serve(env!("CARGO_PKG_NAME"), request, $handler).await
                }
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_implemented_handler_names_method_and_path() {
        let request = HttpRequest::new("POST", "http://127.0.0.1:3000/v1/query?stream=true");
        let response = futures::executor::block_on(not_implemented_handler(request));
        assert_eq!(response.status, 501);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_implemented", "message": "POST /v1/query is not implemented yet"}})
        );
    }

    #[test]
    fn adds_headers_to_streaming_replies_too() {
        let reply = Reply::event_stream(Box::pin(futures::stream::empty()))
            .with_header("X-Frame-Options", "DENY");
        let Reply::Stream(s) = reply else {
            panic!("not a stream")
        };
        assert_eq!(s.status, 200);
        assert!(
            s.headers
                .contains(&("content-type".into(), "text/event-stream".into()))
        );
        assert!(
            s.headers
                .contains(&("x-frame-options".into(), "DENY".into()))
        );
        let full = Reply::from(HttpResponse::text(200, "text/plain", "x")).with_header("a", "b");
        assert_eq!(full.status(), 200);
    }
}
