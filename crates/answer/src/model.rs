//! What the query API returns: sources, verified citations, answers,
//! provenance, and the events of a streamed answer.

use ragspin_core::{ErrorBody, Usage};
use serde::{Deserialize, Serialize};

/// Per-method scores of a retrieved chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceScores {
    /// BM25 (negated FTS5 `bm25()`, higher is better), if BM25 found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f64>,
    /// Cosine similarity, if the vector search found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<f64>,
    /// Weighted reciprocal rank fusion.
    pub fused: f64,
}

/// A retrieved chunk as numbered for the model: `[id]` in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The number the model cites (`[1]`, `[2]`, ...).
    pub id: u32,
    pub chunk_id: i64,
    pub document_id: String,
    pub filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(default)]
    pub heading_path: Vec<String>,
    /// The text the model saw (whitespace collapsed, possibly shortened).
    pub text: String,
    pub scores: SourceScores,
}

/// A citation that was checked against the sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The source number as cited (`[n]`).
    pub source: u32,
    pub chunk_id: i64,
    pub document_id: String,
    pub filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(default)]
    pub heading_path: Vec<String>,
    /// The sentence of the source that supports the citing sentence.
    pub snippet: String,
}

/// A citation removed from the answer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedCitation {
    /// The number as the model wrote it.
    pub source: u32,
    /// `unknown_source` (no such number) or `unsupported` (the citing
    /// sentence shares no content word with the source).
    pub reason: String,
}

/// Token usage of the answer (chat only; zero for extractive answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageOut {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub index: String,
    pub index_version: i64,
    /// Bumped by every write to the version (part of the cache key).
    pub index_generation: i64,
    /// `None` when no chat model was used (offline, degraded, nothing found).
    pub chat_deployment: Option<String>,
    /// `None` when the question was not embedded.
    pub embedding_deployment: Option<String>,
    pub prompt_version: String,
}

/// How retrieval ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrieval {
    /// `hybrid`, `bm25` or `vector`.
    pub mode: String,
    /// Why vectors were not used, when they should have been
    /// (`offline`, `embeddings_unavailable`, `embeddings_timeout`,
    /// `embedding_dimensions_mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
}

/// A grounded answer (`POST /v1/query`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The answer, with unverifiable citation markers removed.
    pub answer: String,
    /// Verified citations, in order of first use.
    pub citations: Vec<Citation>,
    /// Citations the model made that were removed.
    pub dropped_citations: Vec<DroppedCitation>,
    /// False when nothing relevant was retrieved ("not in the documents").
    pub found: bool,
    /// True when the answer or retrieval fell back (see the reasons).
    pub degraded: bool,
    /// Why the answer is extractive: `offline`, `chat_timeout`,
    /// `chat_rate_limited`, `chat_unavailable`, `chat_error`,
    /// `chat_content_filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
    /// `stop`, `length`, `content_filter` or `error` (a stream cut short).
    pub finish_reason: String,
    pub index: String,
    pub index_version: i64,
    pub usage: UsageOut,
    pub provenance: Provenance,
    pub retrieval: Retrieval,
    /// True when served from the answer cache.
    pub cached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The follow-up rewritten as a standalone question (sessions only,
    /// when it differs from the question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone_question: Option<String>,
    /// The numbered sources the model saw (empty in the final SSE event,
    /// which follows a `sources` event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

/// The first event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcesEvent {
    pub index: String,
    pub index_version: i64,
    pub sources: Vec<Source>,
    pub retrieval: Retrieval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone_question: Option<String>,
}

/// What a streamed answer says, in order: `Sources`, any `Delta`s (and
/// `Heartbeat`s while waiting), then `Done` (or `Error`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Sources(SourcesEvent),
    /// The next piece of the answer text, unverified.
    Delta(String),
    /// Nothing new yet; keeps the connection alive and notices a client
    /// that went away.
    Heartbeat,
    /// The verified answer (its `sources` empty).
    Done(Box<Answer>),
    /// The answer failed after the stream started.
    Error(ErrorBody),
}

/// One search hit (`POST /v1/search`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub chunk_id: i64,
    pub document_id: String,
    pub filename: String,
    pub ordinal: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    pub heading_path: Vec<String>,
    pub text: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub scores: SourceScores,
}

/// The answer of `POST /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    pub index: String,
    pub index_version: i64,
    pub retrieval: Retrieval,
    pub degraded: bool,
    pub hits: Vec<SearchHit>,
}
