//! The query side of ragspin: hybrid search, grounded answers with verified
//! citations, streaming, sessions, the answer cache, graceful degradation
//! and the OpenAI-compatible endpoint — all pure, over the core ports, so
//! it is tested natively and runs unchanged in the query component.
//!
//! # Why it is built this way
//!
//! * **One pipeline, two outputs.** [`service::prepare`] does everything
//!   before the model (validation, index lookup, session, cache, embedding,
//!   retrieval, relevance, the token budget); [`service::answer`] and
//!   [`service::answer_stream`] share the answer logic. The stream is a
//!   plain `futures::Stream` of [`model::Event`]s, encoded to SSE by
//!   [`sse`] or to OpenAI chunks by [`openai`]; the component only moves
//!   bytes, so dropping the stream (a client that went away) drops the
//!   model call in flight.
//! * **Citations are checked, not trusted** ([`citations`]): a marker must
//!   name a source the model was given and the citing sentence must share a
//!   content word with it; failures are removed and reported.
//! * **Never a bare 500 for a model problem.** A chat timeout, rate limit,
//!   5xx or content filter becomes an extractive answer
//!   ([`extractive`]) with `degraded: true` and the reason; a failed
//!   question embedding becomes BM25-only retrieval, flagged. Offline mode
//!   (no Azure settings) is the same path.
//! * **Caches keyed by what makes them valid** ([`cache`]): the index
//!   version and its write generation are in the key, so nothing is ever
//!   invalidated by hand.
//!
//! # KV layout (`default` store)
//! | key | value |
//! |---|---|
//! | `query:session:<sha256(principal)[..16]>:<session_id>` | [`session::Session`]: index, last turns, expiry |
//! | `query:answer:<sha256(key parts)>` | cached [`model::Answer`] with its expiry |

pub mod api;
pub mod cache;
pub mod citations;
pub mod config;
pub mod extractive;
pub mod model;
pub mod models;
pub mod openai;
pub mod prompt;
pub mod service;
pub mod session;
pub mod sse;
pub mod text;

pub use api::{Call, Reply, decode, serve};
pub use models::{AzureModels, ChatEvents, Models, Offline};
pub use service::{Caller, Ctx, Settings};
