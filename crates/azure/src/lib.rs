//! Azure OpenAI — and OpenAI-compatible servers — behind ragspin's ports.
//!
//! * [`EmbeddingsClient`] implements `ragspin_core::Embedder`: batching by
//!   count and estimated tokens, results matched by `data[i].index`.
//! * [`ChatClient`] implements `ragspin_core::ChatModel`, and streams with
//!   [`ChatClient::stream`] over the incremental [`SseParser`].
//! * [`AzureConfig`] comes from Spin variables
//!   ([`AzureConfig::from_config`]); empty endpoint or key means offline.
//!
//! # Why it is built this way
//!
//! The crate is pure: it reaches the network only through the
//! `HttpClient` port, time through `Clock` and waiting through `Timer`. So
//! it compiles for `wasm32-wasip2` (used by components over the Spin
//! adapters) and natively, where every retry path is tested with scripted
//! responses and a timer that does not wait, and end to end against
//! `ragspin-fake-azure` on loopback.
//!
//! Large ingests live or die by quota handling, so every call goes through
//! one retry loop: 408/429/5xx and transport failures are retried, waiting
//! what the server asks (`retry-after-ms`, then `Retry-After`) or a capped,
//! jittered exponential backoff, within a number of attempts and an overall
//! time budget ([`RetryPolicy`]). Giving up is `Error::Unavailable` (or
//! `Error::Timeout` when the last attempt timed out) with the reason;
//! non-retryable answers (400 incl. `content_filter`, 401, 404
//! `DeploymentNotFound`) are `Error::Upstream` carrying the server's code
//! and message. Error texts never contain the key: server texts are
//! scrubbed of it, and [`Provider`]'s `Debug` redacts it.

mod chat;
mod config;
mod embeddings;
mod retry;
mod sse;
mod transport;

pub use chat::{ChatAnswer, ChatClient};
pub use config::{
    AzureConfig, DEFAULT_API_VERSION, EmbeddingLimits, Provider, RetryPolicy, accepts_dimensions,
    vars,
};
pub use embeddings::{Embeddings, EmbeddingsClient, TokenEstimator, estimate_tokens};
pub use retry::{Jitter, backoff_delay_ms, is_retryable_status, server_delay_ms};
pub use sse::{FinishReason, SseDecoder, SseMessage, SseParser, StreamEvent};
pub use transport::CallStats;
