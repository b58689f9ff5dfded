//! Authentication and access control for ragspin, shared by every component
//! without a network hop.
//!
//! # What a component calls
//!
//! ```ignore
//! use ragspin_access::{Permission, RouteKind, authorize, guard};
//!
//! async fn handle(request: HttpRequest) -> HttpResponse {
//!     let (kv, config, clock) = (SpinKv::open_default(), SpinConfig, SpinClock);
//!     guard(&request, &config, RouteKind::Api, || async {
//!         let principal =
//!             authorize(&request, &kv, &config, &clock, Permission::Ingest, Some("docs")).await?;
//!         Ok(my_service(&request, &principal).await)
//!     })
//!     .await
//! }
//! ```
//!
//! * [`authorize`] / [`authenticate`] ([`guard`](mod@guard) module): verify the
//!   `Authorization: Bearer` access token (HS256 pinned, `exp`/`nbf`/`iat`
//!   with 30 s skew, `iss`/`aud`, session not revoked: one KV read) or API key
//!   (`Bearer rsk_...` or `X-API-Key`; one KV read), take one token from the
//!   caller's rate-limit bucket, check role and index.
//! * [`guard()`]: CORS preflight and allowlist, security headers, `Err` → JSON error.
//! * [`service::Auth`]: the auth component's `/auth/...` routes.
//!
//! # Why this shape
//!
//! Every component must enforce the same rules, and Spin components cannot
//! call each other cheaply, so verification is a library over the core's
//! ports (`KvStore`, `Sql`, `Config`, `Clock`) plus one of its own,
//! [`Random`]. It is tested natively with the testkit's fakes; the Spin
//! adapters plug in unchanged.
//!
//! Storage: SQLite holds users, grants and API keys (admins list and change
//! them); KV holds what the hot path reads — sessions and API-key records,
//! rewritten by the admin routes whenever a user or key changes — plus
//! rate-limit buckets and login-failure counters. All keys start with
//! `auth:`; all tables with `auth_`.
//!
//! Errors are the core's [`ragspin_core::Error`]; this crate has no error
//! enum of its own.

pub mod apikey;
pub mod body;
pub mod cors;
pub mod guard;
pub mod jwt;
pub mod password;
pub mod random;
pub mod ratelimit;
pub mod roles;
pub mod service;
pub mod session;
pub mod settings;
pub mod store;

pub use cors::{CorsPolicy, RouteKind, apply_security_headers};
pub use guard::{Credential, Principal, authenticate, authorize, guard};
pub use random::{OsRandom, Random, SeededRandom};
pub use roles::{IndexScope, Permission, Role};
pub use service::Auth;
pub use settings::Settings;
