//! The web component: the chat and upload page at `GET /` and its assets,
//! all embedded in the component (see [`site`]).
//!
//! [`site::serve`] holds the behaviour (asset table, `ETag` /
//! `If-None-Match`, `HEAD`, JSON 404 and 405) and is tested natively; the
//! component wraps it in [`ragspin_access::guard`] with
//! [`ragspin_access::RouteKind::Page`], which adds the page's same-origin
//! content-security-policy and the other security headers, and turns an
//! `Err` into the JSON error body. The page is public: it holds no data,
//! and everything it shows comes from the authenticated APIs.

pub mod site;

#[cfg(target_arch = "wasm32")]
mod component {
    use ragspin_access::{RouteKind, guard};
    use ragspin_core::{HttpRequest, HttpResponse};
    use ragspin_spin::SpinConfig;

    ragspin_spin::http_component!(handle);

    async fn handle(request: HttpRequest) -> HttpResponse {
        guard(&request, &SpinConfig, RouteKind::Page, || async {
            crate::site::serve(&request)
        })
        .await
    }
}
