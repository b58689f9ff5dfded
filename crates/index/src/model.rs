//! What the index API reads and returns.

use ragspin_core::{Error, Result};
use ragspin_docs::{ChunkSettings, FieldMapping};
use serde::{Deserialize, Serialize};

/// Settings of an index (and, frozen, of each of its versions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexSettings {
    /// Azure OpenAI embedding deployment; empty = the app's default.
    pub embedding_deployment: String,
    /// Embedding dimensions (text-embedding-3-*); `None` = the model's.
    pub dimensions: Option<u32>,
    /// Chunk size and overlap, in tokens.
    pub chunking: ChunkSettings,
    /// CSV/JSON field mapping.
    pub fields: FieldMapping,
    /// Free text shown in listings.
    pub description: String,
}

impl IndexSettings {
    pub fn validate(&self) -> Result<()> {
        self.chunking.validate()?;
        if let Some(d) = self.dimensions
            && !(1..=8192).contains(&d)
        {
            return Err(Error::validation(
                "dimensions",
                "must be between 1 and 8192",
            ));
        }
        if self.embedding_deployment.len() > 128
            || !self
                .embedding_deployment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::validation(
                "embedding_deployment",
                "use at most 128 letters, digits, '-', '_' or '.'",
            ));
        }
        if self.description.len() > 1000 {
            return Err(Error::validation("description", "at most 1000 bytes"));
        }
        Ok(())
    }

    /// Whether documents must be re-chunked or re-embedded to move from `self` to `other`.
    pub fn needs_rebuild(&self, other: &Self) -> bool {
        self.embedding_deployment != other.embedding_deployment
            || self.dimensions != other.dimensions
            || self.chunking != other.chunking
            || self.fields != other.fields
    }
}

/// Index names: 1–64 of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn validate_index_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_field(
            "index",
            "index names are 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
        ))
    }
}

/// Document ids: 1–128 of `A-Z a-z 0-9 _ - .`.
pub fn validate_document_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_field(
            "id",
            "document ids are 1-128 characters of letters, digits, '_', '-' and '.'",
        ))
    }
}

/// One version of an index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfo {
    pub version: i64,
    /// `building`, `ready` or `active`.
    pub state: String,
    pub settings: IndexSettings,
    pub documents: i64,
    pub created_at: i64,
}

/// Counts over the active version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexStats {
    pub documents: i64,
    pub chunks: i64,
    pub bytes: i64,
    pub vectors_pending: i64,
    pub documents_in_progress: i64,
}

/// An index as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    pub name: String,
    pub settings: IndexSettings,
    pub active_version: i64,
    pub stats: IndexStats,
    pub versions: Vec<VersionInfo>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A document to ingest.
#[derive(Debug, Clone, Default)]
pub struct NewDocument {
    /// Caller-chosen id; default: derived from the content hash.
    pub id: Option<String>,
    pub filename: String,
    pub content_type: Option<String>,
    pub content: Vec<u8>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Progress of a document's latest ingest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentStatus {
    /// `received`, `parsed`, `chunked`, `embedding`, `indexed` or `failed`.
    pub stage: String,
    pub embedded: i64,
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A document as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentInfo {
    pub id: String,
    pub index: String,
    pub filename: String,
    pub content_type: String,
    pub content_hash: String,
    pub bytes: i64,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: DocumentStatus,
    /// Chunks in the active version (0 until indexed).
    pub chunks: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestOutcome {
    pub document: DocumentInfo,
    /// True when this call created the document (201), false when the same
    /// content was already indexed (200) or it replaced it.
    pub created: bool,
    /// True when the time budget ran out before indexing finished: post the
    /// same document again to resume (finished embeddings are kept) — 202.
    pub pending: bool,
    /// Embedding calls this request made, and chunks served from the cache.
    pub embedding_calls: u32,
    pub cached_embeddings: u32,
}

/// One page of documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentPage {
    pub documents: Vec<DocumentInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The state of a version build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildProgress {
    pub version: i64,
    pub state: String,
    pub documents_done: i64,
    pub documents_total: i64,
}
