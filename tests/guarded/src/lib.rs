//! Test-only component (never deployed): routes protected exactly as the
//! real components protect theirs, so host tests can check enforcement
//! (a reader trying to ingest, access to another index) over real HTTP.
//!
//! * `POST /guarded/{index}/search` — `Permission::Search` on `index`
//! * `POST /guarded/{index}/query` — `Permission::Query` on `index`
//! * `POST /guarded/{index}/ingest` — `Permission::Ingest` on `index`
//! * `GET /guarded/admin` — `Permission::Admin`
//!
//! 200 `{"username","role","credential"}` when allowed.
#![cfg(target_arch = "wasm32")]

use ragspin_access::{Permission, RouteKind, authorize, guard};
use ragspin_core::{Error, HttpRequest, HttpResponse};
use ragspin_spin::{SpinClock, SpinConfig, SpinKv};

ragspin_spin::http_component!(handle);

async fn handle(request: HttpRequest) -> HttpResponse {
    let (kv, config, clock) = (SpinKv::open_default(), SpinConfig, SpinClock);
    guard(&request, &config, RouteKind::Api, || async {
        let segments: Vec<&str> = request.path().split('/').skip(2).collect();
        let (permission, index, method) = match segments.as_slice() {
            ["admin"] => (Permission::Admin, None, "GET"),
            [index, "search"] => (Permission::Search, Some(*index), "POST"),
            [index, "query"] => (Permission::Query, Some(*index), "POST"),
            [index, "ingest"] => (Permission::Ingest, Some(*index), "POST"),
            _ => return Err(Error::NotFound("no such guarded route".into())),
        };
        if request.method != method {
            return Err(Error::MethodNotAllowed {
                method: request.method.clone(),
                allow: vec![method.to_owned()],
            });
        }
        let principal = authorize(&request, &kv, &config, &clock, permission, index).await?;
        Ok(HttpResponse::json(200, &principal))
    })
    .await
}
