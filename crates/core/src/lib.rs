//! ragspin's pure core: ports, domain types, errors and services.
//!
//! # Ports and adapters
//!
//! The core never calls Spin. Everything it needs from the outside world is a
//! small trait in [`ports`] — [`KvStore`], [`Sql`], [`Config`], [`Clock`],
//! [`Timer`], [`HttpClient`], [`Embedder`], [`ChatModel`], [`Retriever`] — and the
//! services (e.g. [`health`]) are generic over them. Two families of adapters
//! implement the ports:
//!
//! * `ragspin-spin` (wasm32 only): over the Spin SDK, used by the components;
//! * `ragspin-testkit`: in memory (and SQLite via rusqlite), used by native
//!   tests and benchmarks.
//!
//! Why: Spin components cannot run natively, so logic written straight
//! against the SDK could only be tested inside a wasm host. Behind the ports,
//! almost all of ragspin is tested with `cargo test`, and the same contract
//! suites (`ragspin_testkit::contract`) pin down what both adapter families
//! must do, so the in-memory fakes cannot drift from Spin's behaviour
//! unnoticed.
//!
//! The traits use `async fn` without `Send` bounds because a Spin instance is
//! single-threaded and the SDK's futures are not `Send`.
//!
//! # Errors
//!
//! One [`Error`] enum for the whole core. Its HTTP status comes from one pure
//! function, [`status_for`], and its body is always [`ErrorBody`]:
//! `{"error":{"code":"...","message":"..."}}`.

pub mod bytescan;
pub mod domain;
pub mod error;
pub mod health;
pub mod http;
pub mod log;
pub mod metrics;
pub mod ports;

pub use domain::{
    ChatCompletion, ChatMessage, ChatRequest, Chunk, Embedding, Role, ScoredChunk, SearchQuery,
    Usage, decode_f32, encode_f32,
};
pub use error::{Error, ErrorBody, ErrorDetail, Result, sql_failure, status_for};
pub use http::{HttpRequest, HttpResponse};
pub use ports::{
    BodyStream, ChatModel, Clock, Config, DEFAULT_EMBED_BATCH, Embedder, HttpClient, KvStore,
    Retriever, Row, Rows, Sql, SqlValue, StreamingHttpClient, Timer, with_timeout,
};
