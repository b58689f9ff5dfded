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
//! * Response helpers ([`json_response`], [`error_response`],
//!   [`text_response`], [`not_implemented`]) are plain functions over core
//!   types and build natively too.
//!
//! Natively this crate contains only the helpers, so `cargo clippy
//! --workspace` works on the host.

use ragspin_core::{Error, HttpRequest, HttpResponse};
use serde::Serialize;

#[cfg(target_arch = "wasm32")]
mod adapters;
#[cfg(target_arch = "wasm32")]
mod glue;

#[cfg(target_arch = "wasm32")]
pub use adapters::{SpinClock, SpinConfig, SpinHttp, SpinKv, SpinSql, SpinTimer};
/// The Spin SDK, for components that need more than the adapters.
#[cfg(target_arch = "wasm32")]
pub use spin_sdk;

/// Used by [`http_component!`]; not a public API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::serve;
    pub use spin_sdk::wasip3::http::types::{
        ErrorCode, Request as WasiRequest, Response as WasiResponse,
    };
}

/// Largest request body a component reads; a larger one is answered 413.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024 * 1024;

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
                    $crate::__private::serve(request, $handler).await
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
}
