//! A loopback fake of the Azure OpenAI data plane, for tests and local
//! development (never deployed). It follows `/work/shared/AZURE-OPENAI.md`:
//! the paths, auth, status codes and error bodies of the real service, with
//! deterministic "models" so tests can assert on answers.
//!
//! # Routes
//!
//! | route | notes |
//! |---|---|
//! | `POST /openai/deployments/{d}/embeddings?api-version=V` | Azure deployments surface |
//! | `POST /openai/deployments/{d}/chat/completions?api-version=V` | `stream: true` → SSE |
//! | `POST /openai/v1/{embeddings,chat/completions}` | Azure v1 surface: `model` in the body |
//! | `POST /v1/{embeddings,chat/completions}` | OpenAI-compatible: `model` in the body, OpenAI error codes |
//! | `POST /_fake/faults` | add one fault or an array of faults ([`Fault`]) |
//! | `GET /_fake/faults` | the installed faults |
//! | `GET /_fake/stats` | [`Stats`]: `{"calls":{"embeddings":n,"chat":n},"embedded_inputs":n,"chat_streams":n,"faults_applied":n,"recording_misses":n}` |
//! | `POST /_fake/reset` | forget faults and counters |
//!
//! Checks, in order (the first failing one answers): route (404 `Resource
//! not found`); `api-version` present on the deployments surface (404);
//! the key, as `api-key: K` or `Authorization: Bearer K` (401 with Azure's
//! body, or OpenAI's `invalid_api_key` on `/v1`); `api-version` known
//! ([`api::API_VERSIONS`], else 400 `API version not supported`); a JSON
//! object body (400); the deployment exists (404 `DeploymentNotFound`, or
//! `model_not_found` on `/v1`) and serves the operation (400
//! `OperationNotSupported`); faults; the body's arguments (400, e.g.
//! `Unrecognized request argument supplied: foo`).
//!
//! # Embeddings
//!
//! `input`: a string or 1–2048 non-empty strings of ≤ 8192 tokens
//! (estimated as bytes / 4); `dimensions` only for `text-embedding-3-*`
//! deployments (else 400), 1 to the native length; `encoding_format`
//! `float` (arrays of numbers, the default) or `base64` (each vector's
//! little-endian `f32` bytes), anything else 400; `user`, `model` accepted. Vectors: [`model::embed`]
//! (hashed word unigrams + character trigrams, L2-normalised), so texts
//! sharing words are close. `usage.prompt_tokens` = the estimates summed.
//!
//! **Recorded embeddings** ([`recording`]): with
//! [`FakeOptions::with_recording`] (or `--embeddings-recording FILE`) the
//! recording's deployment (e.g. `all-minilm-l6-v2`, 384 dimensions) serves
//! vectors a real model produced, looked up by the SHA-256 of each input; a
//! text it lacks is counted in `recording_misses` and answered 400
//! `RecordingMiss` (or, with [`OnMiss::Hashed`] / `--recording-miss hashed`,
//! given the hashed embedding). Other deployments keep the hashed model.
//!
//! # Chat: the prompt format the fake understands
//!
//! Sources are lines `[n] text` in the system, developer or user messages;
//! the question is the last user message without such lines:
//!
//! ```text
//! system: Answer only from the sources and cite them as [n].
//!         [1] The café opens at 8. It closes at noon.
//!         [2] Parking is free.
//! user:   When does the café open?
//! ```
//!
//! The answer is made of the (at most two) source sentences sharing the
//! most content words with the question (lowercase, plural `s` dropped,
//! stopwords ignored), each cited before its final punctuation —
//! `The café opens at 8 [1].` — or `I don't know.` when none shares a
//! word. `max_tokens` cuts it (`finish_reason: "length"`), `stop`
//! sequences end it, `n` repeats it. A prompt containing
//! [`api::PROMPT_FILTER_MARKER`] is refused with 400 `content_filter`;
//! one containing [`api::COMPLETION_FILTER_MARKER`] ends with
//! `finish_reason: "content_filter"`. Arguments outside Azure's list are
//! 400; `stream_options` without `stream` is 400; the `developer` role
//! needs api-version ≥ 2024-12-01-preview.
//!
//! Streaming (`stream: true`) answers `text/event-stream`, one body frame
//! per event: on Azure surfaces first a chunk with `choices: []` and
//! `prompt_filter_results`, then a `delta.role` chunk, one chunk per word,
//! a chunk with `finish_reason`, a usage chunk when
//! `stream_options.include_usage`, then `data: [DONE]`.
//!
//! # Faults
//!
//! See [`Fault`] for the JSON. In process: `FakeAzure::inject(Fault::status(429)
//! .on(Route::Embeddings).retry_after_ms(50).times(2))`.
//!
//! # Use
//!
//! In tests: `let fake = FakeAzure::start()?;` then point a client at
//! `fake.endpoint()` with `fake.api_key()`; it stops when dropped. From a
//! shell: `cargo run -p ragspin-fake-azure -- --listen 127.0.0.1:8089`.

pub mod api;
pub mod faults;
pub mod model;
pub mod recording;
mod server;

pub use api::{DEFAULT_API_KEY, Deployment, DeploymentKind, FakeOptions, Stats};
pub use faults::{Fault, Route};
pub use recording::{OnMiss, Recording};
pub use server::{FakeAzure, ensure_loopback, serve};
