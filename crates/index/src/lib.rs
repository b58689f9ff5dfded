//! ragspin's index store: the SQLite schema, the document ingest pipeline
//! (parse → chunk → embed with a cache → one transaction), index versions,
//! and the vector block layout queries search.
//!
//! Everything is written against the core ports (`Sql`, `Clock`,
//! `Embedder`), so it is tested natively on real SQLite (testkit) and runs
//! unchanged in the ingest component over Spin's SQLite.
//!
//! # Storage layout (`default` database)
//! | table | holds |
//! |---|---|
//! | `rs_indexes` | name, settings (JSON), active version |
//! | `rs_versions` | each version's frozen settings, state (`building`/`ready`/`active`), generation (bumped on every write, so caches keyed by it are invalidated by construction) |
//! | `rs_sources` | each document's original bytes and metadata — what a new version is rebuilt from |
//! | `rs_documents` | a document as indexed in one version (content hash, chunk count) |
//! | `rs_jobs` | the latest ingest's progress: stage, embedded n/m, error |
//! | `rs_chunks` + `rs_chunks_fts` | chunk text, heading path, page, offsets, hash, metadata (its `vector` column is empty since schema 6); FTS5 (BM25): rows written per document, removed by a delete trigger |
//! | `rs_chunk_vectors` | each chunk's full vector, one row by chunk id: `f16` (see [`vectors`]); removed with its chunk by a trigger |
//! | `rs_embeddings` | the embedding cache: vectors keyed by (deployment, dimensions, chunk SHA-256), found through an index on the hash's first 8 bytes (`hash8`); `f16` since schema 7 (`format` 1), `f32` before (`format` 0) |
//! | `rs_vector_blocks` | sign bits, 1,024 vectors a row (see [`vectors`]); grouped by list once partitioned |
//! | `rs_vector_lists` | a partitioned version's list centroids (see [`lists`]) |
//!
//! A document's writes (chunks, FTS rows, vectors, blocks, source, document
//! row) happen in one transaction; embeddings are committed to the cache
//! before it (at least every `CACHE_SAVE_MS` while calls go on, and always
//! before the request returns, failed or not), which is what makes a failed
//! or timed-out ingest resumable without embedding finished chunks again.

pub mod api;
pub mod lists;
pub mod model;
pub mod multipart;
pub mod schema;
pub mod search;
pub mod service;
pub mod sqlval;
pub mod vectors;

pub use model::*;
pub use service::{EMBED_BATCH, IndexService, MAX_DOCUMENT_BYTES, NoEmbedder, sha256_hex};
