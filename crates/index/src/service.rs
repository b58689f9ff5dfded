//! The index service: indexes, documents, the ingest pipeline and versions,
//! over the `Sql` and `Clock` ports (and an optional `Embedder`).

use std::collections::{HashMap, HashSet};

use ragspin_core::{Clock, Embedder, Error, Result, Sql, SqlValue};
use ragspin_docs::{ChunkDraft, Format};
use sha2_simd::{Digest, Sha256};

use crate::lists::{
    Lists, PARTITION_MIN, block_in, block_key, block_number, list_count, needs_partition, train,
};
use crate::model::*;
use crate::sqlval::{blob, int, text};
use crate::vectors::{BLOCK_CAPACITY, Block, decode_f16, decode_f32, encode_f16, needs_compaction};

/// Chunks per embedder call when the embedder has no plan of its own
/// ([`Embedder::plan`]; the Azure client plans one range per request).
pub const EMBED_BATCH: usize = ragspin_core::DEFAULT_EMBED_BATCH;
/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// Chunks per multi-row INSERT (15 parameters each; SQLite allows 32,766).
const CHUNK_ROWS: usize = 200;
/// Embedding-cache rows per multi-row INSERT (3 parameters each).
const CACHE_ROWS: usize = 500;
/// Longest an ingest holds finished embeddings before writing them to the
/// cache with its progress (it always writes them before it returns).
pub const CACHE_SAVE_MS: u64 = 1_000;

/// Where [`IndexService::save_embeddings`] writes, and the progress it records.
struct CacheWrite<'a> {
    index: &'a str,
    doc_id: &'a str,
    content_hash: &'a str,
    model: &'a str,
    dims: i64,
    total: i64,
}

fn t(s: impl Into<String>) -> SqlValue {
    SqlValue::Text(s.into())
}

fn i(n: impl Into<i64>) -> SqlValue {
    SqlValue::Integer(n.into())
}

fn json_object(s: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(s).unwrap_or_default()
}

/// `(?, ?), (?, ?), ...`: `rows` tuples of `columns` anonymous parameters
/// (SQLite numbers them in order) for a multi-row `INSERT ... VALUES`.
fn value_rows(rows: usize, columns: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(", "));
    vec![tuple; rows].join(", ")
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The embedding cache's key for a chunk hash (schema 7): the first 8 bytes
/// of the SHA-256 its 64 hex characters spell, as SQLite's
/// `unhex(substr(content_hash, 1, 16))` gives them; a hash that is not hex
/// keys by its first 8 bytes as they are.
fn cache_key(content_hash: &str) -> Vec<u8> {
    let hex = content_hash.as_bytes();
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    hex.get(..16)
        .and_then(|h| {
            h.chunks_exact(2)
                .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
                .collect()
        })
        .unwrap_or_else(|| hex[..hex.len().min(8)].to_vec())
}

/// The embedding model as the cache keys it: deployment and dimensions.
fn model_key<E: Embedder>(embedder: &E, settings: &IndexSettings) -> (String, i64) {
    let model = if settings.embedding_deployment.is_empty() {
        embedder.model().to_string()
    } else {
        settings.embedding_deployment.clone()
    };
    (model, settings.dimensions.map(i64::from).unwrap_or(0))
}

/// An `Embedder` type for callers without one (offline mode).
#[derive(Debug)]
pub enum NoEmbedder {}

impl Embedder for NoEmbedder {
    fn model(&self) -> &str {
        match *self {}
    }
    async fn embed(&self, _texts: &[String]) -> Result<Vec<ragspin_core::Embedding>> {
        match *self {}
    }
}

struct Source {
    doc_id: String,
    filename: String,
    content_type: String,
    content_hash: String,
    metadata: serde_json::Map<String, serde_json::Value>,
    content: Vec<u8>,
}

struct VersionRow {
    version: i64,
    settings: IndexSettings,
}

enum Indexed {
    Done,
    Pending,
}

#[derive(Default)]
struct CallStats {
    calls: u32,
    cached: u32,
}

/// The index service over one database.
pub struct IndexService<'a, S: Sql, C: Clock> {
    sql: &'a S,
    clock: &'a C,
    partition_min: usize,
}

impl<'a, S: Sql, C: Clock> IndexService<'a, S, C> {
    pub fn new(sql: &'a S, clock: &'a C) -> Self {
        Self {
            sql,
            clock,
            partition_min: PARTITION_MIN,
        }
    }

    /// Partitions versions into inverted lists from `vectors` vectors on
    /// (default [`PARTITION_MIN`]; tests lower it).
    pub fn partition_at(mut self, vectors: usize) -> Self {
        self.partition_min = vectors.max(1);
        self
    }

    fn now(&self) -> i64 {
        (self.clock.now_unix_ms() / 1000) as i64
    }

    /// Creates the tables when missing.
    pub async fn migrate(&self) -> Result<()> {
        crate::schema::migrate(self.sql).await
    }

    async fn begin(&self) -> Result<()> {
        self.sql.execute("BEGIN IMMEDIATE", &[]).await.map(|_| ())
    }

    async fn finish<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Ok(v) => match self.sql.execute("COMMIT", &[]).await {
                Ok(_) => Ok(v),
                Err(e) => {
                    _ = self.sql.execute("ROLLBACK", &[]).await;
                    Err(e)
                }
            },
            Err(e) => {
                _ = self.sql.execute("ROLLBACK", &[]).await;
                Err(e)
            }
        }
    }

    // ------------------------------------------------------------ indexes

    /// Creates the index (true) or updates its settings (false). New
    /// settings apply to documents added from now on only when they do not
    /// need a rebuild; otherwise they take effect in the next version
    /// (`build_version`), and the active version keeps serving.
    pub async fn put_index(
        &self,
        name: &str,
        settings: IndexSettings,
    ) -> Result<(IndexInfo, bool)> {
        validate_index_name(name)?;
        settings.validate()?;
        let json = serde_json::to_string(&settings).map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.now();
        self.begin().await?;
        let result = async {
            let exists = !self
                .sql
                .query("SELECT 1 FROM rs_indexes WHERE name = ?1", &[t(name)])
                .await?
                .rows
                .is_empty();
            if exists {
                self.sql
                    .execute(
                        "UPDATE rs_indexes SET settings = ?2, updated_at = ?3 WHERE name = ?1",
                        &[t(name), t(&json), i(now)],
                    )
                    .await?;
                // Settings that do not change chunks or vectors apply to the live version.
                let active = self.active_version_row(name).await?;
                if !active.settings.needs_rebuild(&settings) {
                    self.sql
                        .execute(
                            "UPDATE rs_versions SET settings = ?3 WHERE index_name = ?1 AND version = ?2",
                            &[t(name), i(active.version), t(&json)],
                        )
                        .await?;
                }
            } else {
                self.sql
                    .execute(
                        "INSERT INTO rs_indexes (name, settings, active_version, created_at, updated_at)
                         VALUES (?1, ?2, 1, ?3, ?3)",
                        &[t(name), t(&json), i(now)],
                    )
                    .await?;
                self.sql
                    .execute(
                        "INSERT INTO rs_versions (index_name, version, settings, state, created_at)
                         VALUES (?1, 1, ?2, 'active', ?3)",
                        &[t(name), t(&json), i(now)],
                    )
                    .await?;
            }
            Ok(!exists)
        }
        .await;
        let created = self.finish(result).await?;
        Ok((self.get_index(name).await?, created))
    }

    pub async fn get_index(&self, name: &str) -> Result<IndexInfo> {
        validate_index_name(name)?;
        let rows = self
            .sql
            .query(
                "SELECT settings, active_version, created_at, updated_at FROM rs_indexes WHERE name = ?1",
                &[t(name)],
            )
            .await?;
        let Some(row) = rows.rows.first() else {
            return Err(Error::NotFound(format!("index {name:?} does not exist")));
        };
        let settings: IndexSettings = serde_json::from_str(&text(row.0.first()))
            .map_err(|e| Error::Storage(format!("index settings: {e}")))?;
        let active = int(row.0.get(1));
        let (created_at, updated_at) = (int(row.0.get(2)), int(row.0.get(3)));
        let stats = self.stats(name, active).await?;
        let versions = self.versions(name).await?;
        Ok(IndexInfo {
            name: name.to_string(),
            settings,
            active_version: active,
            stats,
            versions,
            created_at,
            updated_at,
        })
    }

    async fn stats(&self, name: &str, version: i64) -> Result<IndexStats> {
        let q = |sql: &'static str| async move {
            let rows = self.sql.query(sql, &[t(name), i(version)]).await?;
            Ok::<_, Error>(rows.rows.first().map(|r| r.0.clone()).unwrap_or_default())
        };
        let docs =
            q("SELECT count(*) FROM rs_documents WHERE index_name = ?1 AND version = ?2").await?;
        let chunks = q(
            "SELECT count(*), COALESCE(SUM(NOT EXISTS (SELECT 1 FROM rs_chunk_vectors v WHERE v.id = c.id)), 0)
             FROM rs_chunks c WHERE c.index_name = ?1 AND c.version = ?2",
        )
        .await?;
        let bytes = self
            .sql
            .query(
                "SELECT COALESCE(SUM(bytes), 0) FROM rs_sources WHERE index_name = ?1",
                &[t(name)],
            )
            .await?;
        let jobs = self
            .sql
            .query(
                "SELECT count(*) FROM rs_jobs WHERE index_name = ?1 AND stage NOT IN ('indexed', 'failed')",
                &[t(name)],
            )
            .await?;
        Ok(IndexStats {
            documents: int(docs.first()),
            chunks: int(chunks.first()),
            vectors_pending: int(chunks.get(1)),
            bytes: int(bytes.rows.first().and_then(|r| r.0.first())),
            documents_in_progress: int(jobs.rows.first().and_then(|r| r.0.first())),
        })
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        let rows = self
            .sql
            .query(
                "SELECT v.version, v.state, v.settings, v.created_at,
                        (SELECT count(*) FROM rs_documents d WHERE d.index_name = v.index_name AND d.version = v.version)
                 FROM rs_versions v WHERE v.index_name = ?1 ORDER BY v.version",
                &[t(name)],
            )
            .await?;
        rows.rows
            .iter()
            .map(|r| {
                Ok(VersionInfo {
                    version: int(r.0.first()),
                    state: text(r.0.get(1)),
                    settings: serde_json::from_str(&text(r.0.get(2)))
                        .map_err(|e| Error::Storage(format!("version settings: {e}")))?,
                    created_at: int(r.0.get(3)),
                    documents: int(r.0.get(4)),
                })
            })
            .collect()
    }

    pub async fn list_indexes(&self) -> Result<Vec<IndexInfo>> {
        let rows = self
            .sql
            .query("SELECT name FROM rs_indexes ORDER BY name", &[])
            .await?;
        let mut out = Vec::new();
        for row in &rows.rows {
            out.push(self.get_index(&text(row.0.first())).await?);
        }
        Ok(out)
    }

    /// Deletes the index with all its versions, documents, chunks, vectors
    /// and FTS rows, in one transaction.
    pub async fn delete_index(&self, name: &str) -> Result<()> {
        self.get_index(name).await?;
        self.begin().await?;
        let result = async {
            for table in [
                "rs_chunks",
                "rs_documents",
                "rs_jobs",
                "rs_sources",
                "rs_vector_blocks",
                "rs_vector_lists",
                "rs_versions",
            ] {
                self.sql
                    .execute(
                        &format!("DELETE FROM {table} WHERE index_name = ?1"),
                        &[t(name)],
                    )
                    .await?;
            }
            self.sql
                .execute("DELETE FROM rs_indexes WHERE name = ?1", &[t(name)])
                .await?;
            Ok(())
        }
        .await;
        self.finish(result).await
    }

    async fn active_version_row(&self, name: &str) -> Result<VersionRow> {
        let rows = self
            .sql
            .query(
                "SELECT v.version, v.settings FROM rs_indexes x
                 JOIN rs_versions v ON v.index_name = x.name AND v.version = x.active_version
                 WHERE x.name = ?1",
                &[t(name)],
            )
            .await?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| Error::NotFound(format!("index {name:?} does not exist")))?;
        Ok(VersionRow {
            version: int(row.0.first()),
            settings: serde_json::from_str(&text(row.0.get(1)))
                .map_err(|e| Error::Storage(format!("version settings: {e}")))?,
        })
    }

    async fn building_versions(&self, name: &str) -> Result<Vec<VersionRow>> {
        let rows = self
            .sql
            .query(
                "SELECT version, settings FROM rs_versions WHERE index_name = ?1 AND state = 'building' ORDER BY version",
                &[t(name)],
            )
            .await?;
        rows.rows
            .iter()
            .map(|r| {
                Ok(VersionRow {
                    version: int(r.0.first()),
                    settings: serde_json::from_str(&text(r.0.get(1)))
                        .map_err(|e| Error::Storage(format!("version settings: {e}")))?,
                })
            })
            .collect()
    }

    // ------------------------------------------------------------ documents

    /// Ingests (or replaces) a document: parse, chunk, embed (with the
    /// cache), then write chunks, FTS rows, vectors and the source in one
    /// transaction per version — a failure leaves the previous state intact.
    /// `deadline_ms` (a [`Clock`] time) bounds the embedding work: past it
    /// the outcome is `pending` and posting the document again resumes.
    pub async fn ingest<E: Embedder>(
        &self,
        index: &str,
        doc: NewDocument,
        embedder: Option<&E>,
        deadline_ms: u64,
    ) -> Result<IngestOutcome> {
        validate_index_name(index)?;
        if doc.content.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::PayloadTooLarge(format!(
                "document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                doc.content.len()
            )));
        }
        if doc.filename.trim().is_empty() || doc.filename.len() > 255 {
            return Err(Error::validation(
                "filename",
                "a file name of 1-255 bytes is required",
            ));
        }
        let format = Format::detect(doc.content_type.as_deref(), &doc.filename)?;
        let content_hash = sha256_hex(&doc.content);
        let doc_id = match doc.id {
            Some(id) => {
                validate_document_id(&id)?;
                id
            }
            None => format!("doc-{}", &content_hash[..16]),
        };
        let active = self.active_version_row(index).await?;
        // Validate the content before recording anything.
        let parsed = ragspin_docs::parse(&doc.content, format, &active.settings.fields)?;
        let source = Source {
            doc_id: doc_id.clone(),
            filename: doc.filename.clone(),
            content_type: format.content_type().to_string(),
            content_hash: content_hash.clone(),
            metadata: doc.metadata.clone(),
            content: doc.content,
        };
        let existed = self.source_hash(index, &doc_id).await?;
        if existed.as_deref() == Some(content_hash.as_str())
            && self
                .indexed_hash(index, active.version, &doc_id)
                .await?
                .as_deref()
                == Some(content_hash.as_str())
            && self.building_versions(index).await?.is_empty()
        {
            return Ok(IngestOutcome {
                document: self.get_document(index, &doc_id).await?,
                created: false,
                pending: false,
                embedding_calls: 0,
                cached_embeddings: 0,
            });
        }
        self.set_job(index, &doc_id, &content_hash, "received", 0, 0, None)
            .await?;
        let mut stats = CallStats::default();
        let mut versions = vec![active];
        versions.extend(self.building_versions(index).await?);
        let mut pending = false;
        for version in &versions {
            let parsed_here = if version.settings.fields == versions[0].settings.fields {
                None
            } else {
                Some(ragspin_docs::parse(
                    &source.content,
                    format,
                    &version.settings.fields,
                )?)
            };
            let doc_for_version = parsed_here.as_ref().unwrap_or(&parsed);
            match self
                .index_into_version(
                    index,
                    version,
                    &source,
                    doc_for_version,
                    embedder,
                    deadline_ms,
                    &mut stats,
                )
                .await
            {
                Ok(Indexed::Done) => {}
                Ok(Indexed::Pending) => {
                    pending = true;
                    break;
                }
                Err(e) => {
                    let reason = e.public_message();
                    _ = self
                        .update_job_stage(index, &doc_id, "failed", Some(&reason))
                        .await;
                    return Err(e);
                }
            }
        }
        if !pending {
            self.update_job_stage(index, &doc_id, "indexed", None)
                .await?;
        }
        Ok(IngestOutcome {
            document: self.document_info(index, &doc_id, Some(&source)).await?,
            created: existed.is_none(),
            pending,
            embedding_calls: stats.calls,
            cached_embeddings: stats.cached,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn index_into_version<E: Embedder>(
        &self,
        index: &str,
        version: &VersionRow,
        source: &Source,
        parsed: &ragspin_docs::ParsedDocument,
        embedder: Option<&E>,
        deadline_ms: u64,
        stats: &mut CallStats,
    ) -> Result<Indexed> {
        let doc_id = &source.doc_id;
        self.update_job_stage(index, doc_id, "parsed", None).await?;
        let mut drafts = ragspin_docs::chunk(parsed, &version.settings.chunking);
        if drafts.is_empty() {
            return Err(Error::validation(
                "content",
                "document has no text to index",
            ));
        }
        let total = drafts.len() as i64;
        self.set_job(
            index,
            doc_id,
            &source.content_hash,
            "chunked",
            0,
            total,
            None,
        )
        .await?;
        let vectors = match embedder {
            Some(embedder) => {
                match self
                    .embed_drafts(
                        index,
                        doc_id,
                        &source.content_hash,
                        &mut drafts,
                        embedder,
                        &version.settings,
                        deadline_ms,
                        stats,
                    )
                    .await?
                {
                    Some(v) => v,
                    None => return Ok(Indexed::Pending),
                }
            }
            None => vec![None; drafts.len()],
        };
        self.begin().await?;
        let result = self
            .commit_document(index, version.version, source, &drafts, &vectors)
            .await;
        self.finish(result).await?;
        Ok(Indexed::Done)
    }

    /// Vectors for every draft as stored (`f16` bytes, see
    /// [`crate::vectors`]), from the cache or the embedder; `None` when the
    /// deadline passed first (progress is kept in the cache).
    #[allow(clippy::too_many_arguments)]
    async fn embed_drafts<E: Embedder>(
        &self,
        index: &str,
        doc_id: &str,
        content_hash: &str,
        drafts: &mut [ChunkDraft],
        embedder: &E,
        settings: &IndexSettings,
        deadline_ms: u64,
        stats: &mut CallStats,
    ) -> Result<Option<Vec<Option<Vec<u8>>>>> {
        let (model, dims) = model_key(embedder, settings);
        let mut known: HashMap<String, Vec<u8>> = HashMap::new();
        let hashes: Vec<&str> = drafts.iter().map(|d| d.content_hash.as_str()).collect();
        for group in hashes.chunks(500) {
            let placeholders: Vec<String> =
                (0..group.len()).map(|k| format!("?{}", k + 3)).collect();
            let mut params = vec![t(&model), i(dims)];
            params.extend(group.iter().map(|h| SqlValue::Blob(cache_key(h))));
            let rows = self
                .sql
                .query(
                    &format!(
                        "SELECT content_hash, vector, format FROM rs_embeddings
                         WHERE hash8 IN ({}) AND model = ?1 AND dimensions = ?2",
                        placeholders.join(", ")
                    ),
                    &params,
                )
                .await?;
            for row in rows.rows {
                // Rows from before schema 7 hold `f32`; re-encoded once here.
                let v = match (int(row.0.get(2)), blob(row.0.get(1))) {
                    (1, Some(b)) if b.len().is_multiple_of(2) => Some(b),
                    (1, _) => None,
                    (_, b) => b.and_then(|b| decode_f32(&b)).map(|v| encode_f16(&v)),
                };
                // Keyed by the whole hash: a row sharing only the 8-byte
                // key with a wanted one is never asked for.
                if let Some(v) = v {
                    known.insert(text(row.0.first()), v);
                }
            }
        }
        let mut wanted: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for (k, d) in drafts.iter().enumerate() {
            if !known.contains_key(&d.content_hash) && seen.insert(d.content_hash.as_str()) {
                wanted.push(k);
            }
        }
        stats.cached += (drafts.len() - wanted.len()) as u32;
        let total = drafts.len() as i64;
        let mut done = total - wanted.len() as i64;
        self.set_job(index, doc_id, content_hash, "embedding", done, total, None)
            .await?;
        // The texts to embed are lent to the embedder, not copied (a 10 MB
        // document's text), and go back to their drafts at the end. When
        // this returns early (the deadline, an error) the drafts are
        // discarded by the caller, texts or not.
        let texts: Vec<String> = wanted
            .iter()
            .map(|&k| std::mem::take(&mut drafts[k].text))
            .collect();
        let missing: Vec<&ChunkDraft> = wanted.iter().map(|&k| &drafts[k]).collect();
        let plan = embedder.plan(&texts)?;
        let covers = plan.first().is_none_or(|r| r.start == 0)
            && plan.windows(2).all(|w| w[0].end == w[1].start)
            && plan
                .last()
                .map_or(texts.is_empty(), |r| r.end == texts.len())
            && plan.iter().all(|r| r.start < r.end);
        if !covers {
            return Err(Error::Internal(format!(
                "embedder {:?} planned {plan:?} for {} texts",
                embedder.model(),
                texts.len()
            )));
        }
        // One upstream call per planned range. Finished vectors go to the
        // cache (with the progress they make) at least every
        // `CACHE_SAVE_MS` and before returning for any reason — the
        // deadline, an embedder error, the end — so a retry never embeds
        // a finished batch again, without a commit per call when calls
        // are quick.
        let mut unsaved: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut saved_at = self.clock.now_unix_ms();
        let cache = CacheWrite {
            index,
            doc_id,
            content_hash,
            model: &model,
            dims,
            total,
        };
        for range in plan {
            if self.clock.now_unix_ms() >= deadline_ms {
                self.save_embeddings(&cache, &unsaved, done).await?;
                return Ok(None);
            }
            let batch = &missing[range.clone()];
            stats.calls += 1;
            let vectors = match embedder.embed(&texts[range]).await {
                Ok(v) if v.len() == batch.len() => v,
                answer => {
                    let e = match answer {
                        Err(e) => e,
                        Ok(v) => Error::Upstream(format!(
                            "embedder returned {} vectors for {} inputs",
                            v.len(),
                            batch.len()
                        )),
                    };
                    // The finished batches are kept even so; the caller
                    // hears of the embedder's failure, not of this save's.
                    _ = self.save_embeddings(&cache, &unsaved, done).await;
                    return Err(e);
                }
            };
            done += batch.len() as i64;
            unsaved.extend(
                batch
                    .iter()
                    .zip(&vectors)
                    .map(|(d, v)| (d.content_hash.as_str(), encode_f16(v))),
            );
            let now = self.clock.now_unix_ms();
            if now.saturating_sub(saved_at) >= CACHE_SAVE_MS {
                self.save_embeddings(&cache, &unsaved, done).await?;
                known.extend(unsaved.drain(..).map(|(h, v)| (h.to_owned(), v)));
                saved_at = now;
            }
        }
        self.save_embeddings(&cache, &unsaved, done).await?;
        known.extend(unsaved.drain(..).map(|(h, v)| (h.to_owned(), v)));
        for (&k, text) in wanted.iter().zip(texts) {
            drafts[k].text = text;
        }
        // Each vector moves out of `known` to its first chunk; a chunk
        // repeating an earlier one's text gets a copy.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(drafts.len());
        for (k, d) in drafts.iter().enumerate() {
            let v = match first.get(d.content_hash.as_str()) {
                Some(at) => out[*at].clone(),
                None => {
                    first.insert(&d.content_hash, k);
                    known.remove(&d.content_hash)
                }
            };
            out.push(v);
        }
        Ok(Some(out))
    }

    /// Writes `rows` (chunk hash, `f16` vector) to the embedding cache with
    /// the progress `done` in one transaction. Only vectors the lookup
    /// missed get here; a row a concurrent ingest cached meanwhile is a
    /// harmless twin.
    async fn save_embeddings(
        &self,
        cache: &CacheWrite<'_>,
        rows: &[(&str, Vec<u8>)],
        done: i64,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.begin().await?;
        let result = async {
            for group in rows.chunks(CACHE_ROWS) {
                let mut params = vec![t(cache.model), i(cache.dims), i(self.now())];
                let mut tuples = Vec::with_capacity(group.len());
                for (hash, v) in group {
                    let k = params.len();
                    tuples.push(format!(
                        "(?1, ?2, ?{}, ?{}, 1, ?{}, ?3)",
                        k + 1,
                        k + 2,
                        k + 3
                    ));
                    params.push(t(*hash));
                    params.push(SqlValue::Blob(cache_key(hash)));
                    params.push(SqlValue::Blob(v.clone()));
                }
                self.sql
                    .execute(
                        &format!(
                            "INSERT INTO rs_embeddings (model, dimensions, content_hash, hash8, format, vector, created_at)
                             VALUES {}",
                            tuples.join(", ")
                        ),
                        &params,
                    )
                    .await?;
            }
            self.set_job(
                cache.index,
                cache.doc_id,
                cache.content_hash,
                "embedding",
                done.min(cache.total),
                cache.total,
                None,
            )
            .await
        }
        .await;
        self.finish(result).await
    }

    /// Inside a transaction: replace the document's chunks in `version`.
    async fn commit_document(
        &self,
        index: &str,
        version: i64,
        source: &Source,
        drafts: &[ChunkDraft],
        vectors: &[Option<Vec<u8>>],
    ) -> Result<()> {
        let doc_id = &source.doc_id;
        let removed = self.remove_chunks(index, version, doc_id).await?;
        // The block maintenance takes each stored vector as its f16 bytes.
        let mut added: Vec<(i64, &[u8])> = Vec::new();
        let now = self.now();
        // Ids are assigned here (the transaction holds the write lock), so
        // chunks go in with multi-row INSERTs: one statement per
        // `CHUNK_ROWS` chunks instead of one per chunk — Spin charges per
        // statement and per row crossing the host boundary.
        let next = self
            .sql
            .query("SELECT COALESCE(MAX(id), 0) + 1 FROM rs_chunks", &[])
            .await?;
        let mut next_id = int(next.rows.first().and_then(|r| r.0.first()));
        let first_id = next_id;
        let rows: Vec<(&ChunkDraft, &Option<Vec<u8>>)> = drafts.iter().zip(vectors).collect();
        // Chunks of one heading (and, in most documents, all chunks) share
        // their heading columns and metadata: encoded once per run.
        let source_metadata = serde_json::Value::Object(source.metadata.clone()).to_string();
        let mut headings: Option<(&[String], String, String)> = None;
        for group in rows.chunks(CHUNK_ROWS) {
            let mut params = Vec::with_capacity(group.len() * 14);
            let mut vector_params = Vec::with_capacity(group.len() * 2);
            for (draft, vector) in group {
                let metadata = if draft.metadata.is_empty() {
                    source_metadata.clone()
                } else {
                    let mut metadata = source.metadata.clone();
                    metadata.extend(draft.metadata.clone());
                    serde_json::Value::Object(metadata).to_string()
                };
                let (heading, heading_path) = match &headings {
                    Some((path, heading, heading_path))
                        if *path == draft.heading_path.as_slice() =>
                    {
                        (heading.clone(), heading_path.clone())
                    }
                    _ => {
                        let heading = draft.heading_path.join(" > ");
                        let heading_path = serde_json::to_string(&draft.heading_path)
                            .unwrap_or_else(|_| "[]".into());
                        headings =
                            Some((&draft.heading_path, heading.clone(), heading_path.clone()));
                        (heading, heading_path)
                    }
                };
                params.extend([
                    i(next_id),
                    t(index),
                    i(version),
                    t(doc_id),
                    i(draft.ordinal),
                    t(&draft.text),
                    t(heading),
                    t(heading_path),
                    draft.page.map(i).unwrap_or(SqlValue::Null),
                    i(draft.start as i64),
                    i(draft.end as i64),
                    i(draft.token_count as i64),
                    t(&draft.content_hash),
                    t(metadata),
                ]);
                if let Some(v) = vector
                    && v.len().is_multiple_of(2)
                {
                    vector_params.extend([i(next_id), SqlValue::Blob(v.clone())]);
                    added.push((next_id, v));
                }
                next_id += 1;
            }
            self.sql
                .execute_owned(
                    &format!(
                        "INSERT INTO rs_chunks (id, index_name, version, doc_id, ordinal, text, heading, heading_path,
                            page, start_char, end_char, token_count, content_hash, metadata)
                         VALUES {}",
                        value_rows(group.len(), 14)
                    ),
                    params,
                )
                .await?;
            if !vector_params.is_empty() {
                self.sql
                    .execute_owned(
                        &format!(
                            "INSERT INTO rs_chunk_vectors (id, vector) VALUES {}",
                            value_rows(vector_params.len() / 2, 2)
                        ),
                        vector_params,
                    )
                    .await?;
            }
        }
        // The document's FTS rows in one statement: FTS5 tokenizes them in
        // one pass (a trigger per chunk row cost twice as much).
        self.sql
            .execute(
                "INSERT INTO rs_chunks_fts (rowid, text, heading)
                 SELECT id, text, heading FROM rs_chunks WHERE id >= ?1 AND id < ?2",
                &[i(first_id), i(next_id)],
            )
            .await?;
        self.write_vectors(index, version, &removed, &added).await?;
        let embedded = vectors.iter().filter(|v| v.is_some()).count() as i64;
        self.sql
            .execute(
                "INSERT OR REPLACE INTO rs_documents (index_name, version, doc_id, content_hash, chunk_count, embedded, indexed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[t(index), i(version), t(doc_id), t(&source.content_hash), i(drafts.len() as i64), i(embedded), i(now)],
            )
            .await?;
        self.sql
            .execute_owned(
                "INSERT INTO rs_sources (index_name, doc_id, filename, content_type, content_hash, metadata, bytes, content, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                 ON CONFLICT (index_name, doc_id) DO UPDATE SET filename = excluded.filename,
                    content_type = excluded.content_type, content_hash = excluded.content_hash,
                    metadata = excluded.metadata, bytes = excluded.bytes, content = excluded.content,
                    updated_at = excluded.updated_at",
                vec![
                    t(index),
                    t(doc_id),
                    t(&source.filename),
                    t(&source.content_type),
                    t(&source.content_hash),
                    t(serde_json::Value::Object(source.metadata.clone()).to_string()),
                    i(source.content.len() as i64),
                    SqlValue::Blob(source.content.clone()),
                    i(now),
                ],
            )
            .await?;
        self.bump_generation(index, version).await
    }

    async fn bump_generation(&self, index: &str, version: i64) -> Result<()> {
        self.sql
            .execute(
                "UPDATE rs_versions SET generation = generation + 1 WHERE index_name = ?1 AND version = ?2",
                &[t(index), i(version)],
            )
            .await
            .map(|_| ())
    }

    /// Deletes a document's chunks in `version`; returns the ids that had vectors.
    async fn remove_chunks(&self, index: &str, version: i64, doc_id: &str) -> Result<HashSet<i64>> {
        let rows = self
            .sql
            .query(
                "SELECT c.id FROM rs_chunks c JOIN rs_chunk_vectors v ON v.id = c.id
                 WHERE c.index_name = ?1 AND c.version = ?2 AND c.doc_id = ?3",
                &[t(index), i(version), t(doc_id)],
            )
            .await?;
        let ids = rows.rows.iter().map(|r| int(r.0.first())).collect();
        self.sql
            .execute(
                "DELETE FROM rs_chunks WHERE index_name = ?1 AND version = ?2 AND doc_id = ?3",
                &[t(index), i(version), t(doc_id)],
            )
            .await?;
        Ok(ids)
    }

    /// Block maintenance: tombstone `removed`, append `added` to the last
    /// block of their list (of the flat sequence before partitioning), compact
    /// when tombstones pass a quarter, and partition the version when it has
    /// grown enough (see [`crate::lists`]).
    async fn write_vectors(
        &self,
        index: &str,
        version: i64,
        removed: &HashSet<i64>,
        added: &[(i64, &[u8])],
    ) -> Result<()> {
        if removed.is_empty() && added.is_empty() {
            return Ok(());
        }
        let lists = self.load_lists(index, version).await?;
        // Removals may touch any block; appends only the last of a list.
        let all_loaded = !removed.is_empty();
        let mut blocks = if all_loaded {
            self.load_blocks(index, version).await?
        } else {
            Vec::new()
        };
        let mut dirty: HashSet<i64> = HashSet::new();
        if !removed.is_empty() {
            for (no, block) in blocks.iter_mut() {
                if block.tombstone(removed) > 0 {
                    dirty.insert(*no);
                }
            }
        }
        let mut held = lists
            .as_ref()
            .map(|l| l.dimensions)
            .or_else(|| blocks.first().map(|(_, b)| b.dimensions));
        // Per list key, the position in `blocks` of its last block.
        let mut last: HashMap<i64, usize> = HashMap::new();
        for &(id, halves) in added {
            // `f16` bytes: the blocks need only their signs; the floats only
            // when a partitioned version assigns the vector to a list.
            let dims = halves.len() / 2;
            let key = match &lists {
                Some(l) if l.dimensions == dims => {
                    l.assign(&decode_f16(halves).unwrap_or_default()) as i64 + 1
                }
                _ => 0,
            };
            let pos = match last.get(&key) {
                Some(p) => Some(*p),
                None if all_loaded => blocks.iter().rposition(|(no, _)| block_key(*no) == key),
                None => match self.load_last_block(index, version, key).await? {
                    Some(b) => {
                        blocks.push(b);
                        Some(blocks.len() - 1)
                    }
                    None => None,
                },
            };
            if let Some(p) = pos {
                held.get_or_insert(blocks[p].1.dimensions);
            }
            if let Some(d) = held
                && d != dims
            {
                return Err(Error::Conflict(format!(
                    "index {index:?} version {version} holds {d}-dimensional vectors; got {dims}. \
                     Build a new version after changing the embedding model"
                )));
            }
            held = Some(dims);
            let pos = match pos {
                Some(p) if !blocks[p].1.is_full() => p,
                other => {
                    let no = other.map_or(block_in(key, 0), |p| blocks[p].0 + 1);
                    blocks.push((no, Block::new(dims)));
                    blocks.len() - 1
                }
            };
            last.insert(key, pos);
            blocks[pos].1.push_f16(id, halves);
            dirty.insert(blocks[pos].0);
        }
        let slots: usize = blocks.iter().map(|(_, b)| b.len()).sum();
        let live: usize = blocks.iter().map(|(_, b)| b.live()).sum();
        if all_loaded && needs_compaction(slots, live) {
            self.replace_blocks(index, version, &compact(&blocks))
                .await?;
        } else {
            for (no, block) in &blocks {
                if dirty.contains(no) {
                    self.save_block(index, version, *no, block).await?;
                }
            }
        }
        if !added.is_empty() {
            let slots = self.slot_count(index, version).await?;
            if needs_partition(slots, lists.as_ref().map(|l| l.trained), self.partition_min) {
                self.partition(index, version).await?;
            }
        }
        Ok(())
    }

    /// Partitions a version's vectors into inverted lists (see
    /// [`crate::lists`]): trains the centroids on the sign bits, assigns
    /// every vector by its floats (read back one block at a time, in one
    /// result row each), rewrites the blocks list by list and stores the
    /// centroids.
    async fn partition(&self, index: &str, version: i64) -> Result<()> {
        let blocks = self.load_blocks(index, version).await?;
        let Some(dims) = blocks.first().map(|(_, b)| b.dimensions) else {
            return Ok(());
        };
        let codes: Vec<&[u8]> = blocks
            .iter()
            .flat_map(|(_, b)| {
                b.ids
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| **id != 0)
                    .map(move |(slot, _)| b.code(slot))
            })
            .collect();
        let (lists, _) = train(&codes, dims, list_count(codes.len()));
        let mut grouped: Vec<Vec<Block>> = vec![Vec::new(); lists.len()];
        for (_, b) in &blocks {
            let ids: Vec<i64> = b.ids.iter().copied().filter(|id| *id != 0).collect();
            let floats: HashMap<i64, Vec<f32>> = crate::search::full_vectors(self.sql, &ids, dims)
                .await?
                .into_iter()
                .collect();
            for (slot, id) in b.ids.iter().enumerate() {
                if *id == 0 {
                    continue;
                }
                // A vector is always stored with its chunk; the bits are
                // the fallback should one be missing.
                let l = match floats.get(id) {
                    Some(v) => lists.assign(v),
                    None => lists.nearest(b.code(slot)),
                };
                let list = &mut grouped[l];
                if list.last().is_none_or(Block::is_full) {
                    list.push(Block::new(dims));
                }
                list.last_mut().expect("a block").push_slot(b, slot);
            }
        }
        let numbered: Vec<(i64, Block)> = grouped
            .into_iter()
            .enumerate()
            .flat_map(|(l, blocks)| {
                blocks
                    .into_iter()
                    .enumerate()
                    .map(move |(seq, b)| (block_number(l, seq as i64), b))
            })
            .collect();
        self.replace_blocks(index, version, &numbered).await?;
        self.sql
            .execute(
                "INSERT OR REPLACE INTO rs_vector_lists (index_name, version, dimensions, trained, centroids)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    t(index),
                    i(version),
                    i(dims as i64),
                    i(lists.trained as i64),
                    SqlValue::Blob(lists.encode()),
                ],
            )
            .await
            .map(|_| ())
    }

    /// Replaces every block of a version with `blocks`.
    async fn replace_blocks(
        &self,
        index: &str,
        version: i64,
        blocks: &[(i64, Block)],
    ) -> Result<()> {
        self.sql
            .execute(
                "DELETE FROM rs_vector_blocks WHERE index_name = ?1 AND version = ?2",
                &[t(index), i(version)],
            )
            .await?;
        for (no, block) in blocks {
            self.save_block(index, version, *no, block).await?;
        }
        Ok(())
    }

    /// Vector slots (tombstones included) in a version's blocks, from the
    /// stored lengths of the `ids` columns (SQLite reads no BLOB for `length`).
    async fn slot_count(&self, index: &str, version: i64) -> Result<usize> {
        let rows = self
            .sql
            .query(
                "SELECT coalesce(sum(length(ids)), 0) FROM rs_vector_blocks
                 WHERE index_name = ?1 AND version = ?2",
                &[t(index), i(version)],
            )
            .await?;
        Ok(int(rows.rows.first().and_then(|r| r.0.first())) as usize / 8)
    }

    /// A version's list centroids, when it has been partitioned.
    pub async fn load_lists(&self, index: &str, version: i64) -> Result<Option<Lists>> {
        crate::search::load_lists(self.sql, index, version).await
    }

    async fn save_block(&self, index: &str, version: i64, no: i64, block: &Block) -> Result<()> {
        let (ids, bits) = block.encode();
        self.sql
            .execute(
                "INSERT OR REPLACE INTO rs_vector_blocks (index_name, version, block, dimensions, ids, bits, codes, scales)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &[
                    t(index),
                    i(version),
                    i(no),
                    i(block.dimensions as i64),
                    SqlValue::Blob(ids),
                    SqlValue::Blob(bits),
                    // Unused since the int8 stage was dropped (see `vectors`).
                    SqlValue::Blob(Vec::new()),
                    SqlValue::Blob(Vec::new()),
                ],
            )
            .await
            .map(|_| ())
    }

    /// The last block of list key `key` (`0` = the flat sequence).
    async fn load_last_block(
        &self,
        index: &str,
        version: i64,
        key: i64,
    ) -> Result<Option<(i64, Block)>> {
        let rows = self
            .sql
            .query(
                "SELECT block, dimensions, ids, bits FROM rs_vector_blocks
                 WHERE index_name = ?1 AND version = ?2 AND block >= ?3 AND block < ?4
                 ORDER BY block DESC LIMIT 1",
                &[
                    t(index),
                    i(version),
                    i(block_in(key, 0)),
                    i(block_in(key + 1, 0)),
                ],
            )
            .await?;
        decode_block_rows(&rows).map(|mut v| v.pop())
    }

    /// Every block of a version, in order (one row per 1,024 vectors, or
    /// per list when partitioned).
    pub async fn load_blocks(&self, index: &str, version: i64) -> Result<Vec<(i64, Block)>> {
        let rows = self
            .sql
            .query(
                "SELECT block, dimensions, ids, bits FROM rs_vector_blocks
                 WHERE index_name = ?1 AND version = ?2 ORDER BY block",
                &[t(index), i(version)],
            )
            .await?;
        decode_block_rows(&rows)
    }

    async fn source_hash(&self, index: &str, doc_id: &str) -> Result<Option<String>> {
        let rows = self
            .sql
            .query(
                "SELECT content_hash FROM rs_sources WHERE index_name = ?1 AND doc_id = ?2",
                &[t(index), t(doc_id)],
            )
            .await?;
        Ok(rows.rows.first().map(|r| text(r.0.first())))
    }

    async fn indexed_hash(
        &self,
        index: &str,
        version: i64,
        doc_id: &str,
    ) -> Result<Option<String>> {
        let rows = self
            .sql
            .query(
                "SELECT content_hash FROM rs_documents WHERE index_name = ?1 AND version = ?2 AND doc_id = ?3",
                &[t(index), i(version), t(doc_id)],
            )
            .await?;
        Ok(rows.rows.first().map(|r| text(r.0.first())))
    }

    #[allow(clippy::too_many_arguments)]
    async fn set_job(
        &self,
        index: &str,
        doc_id: &str,
        content_hash: &str,
        stage: &str,
        embedded: i64,
        total: i64,
        error: Option<&str>,
    ) -> Result<()> {
        self.sql
            .execute(
                "INSERT OR REPLACE INTO rs_jobs (index_name, doc_id, content_hash, stage, embedded, total, error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &[
                    t(index),
                    t(doc_id),
                    t(content_hash),
                    t(stage),
                    i(embedded),
                    i(total),
                    error.map(t).unwrap_or(SqlValue::Null),
                    i(self.now()),
                ],
            )
            .await
            .map(|_| ())
    }

    async fn update_job_stage(
        &self,
        index: &str,
        doc_id: &str,
        stage: &str,
        error: Option<&str>,
    ) -> Result<()> {
        self.sql
            .execute(
                "UPDATE rs_jobs SET stage = ?3, error = ?4, updated_at = ?5,
                    embedded = CASE WHEN ?3 = 'indexed' THEN total ELSE embedded END
                 WHERE index_name = ?1 AND doc_id = ?2",
                &[
                    t(index),
                    t(doc_id),
                    t(stage),
                    error.map(t).unwrap_or(SqlValue::Null),
                    i(self.now()),
                ],
            )
            .await
            .map(|_| ())
    }

    pub async fn get_document(&self, index: &str, doc_id: &str) -> Result<DocumentInfo> {
        validate_index_name(index)?;
        validate_document_id(doc_id)?;
        self.document_info(index, doc_id, None).await
    }

    async fn document_info(
        &self,
        index: &str,
        doc_id: &str,
        pending: Option<&Source>,
    ) -> Result<DocumentInfo> {
        let active = self.active_version_row(index).await?;
        let rows = self
            .sql
            .query(
                "SELECT filename, content_type, content_hash, metadata, bytes, created_at, updated_at
                 FROM rs_sources WHERE index_name = ?1 AND doc_id = ?2",
                &[t(index), t(doc_id)],
            )
            .await?;
        let job = self
            .sql
            .query(
                "SELECT stage, embedded, total, error, content_hash, updated_at FROM rs_jobs WHERE index_name = ?1 AND doc_id = ?2",
                &[t(index), t(doc_id)],
            )
            .await?;
        let job = job.rows.first();
        let status = match job {
            Some(j) => DocumentStatus {
                stage: text(j.0.first()),
                embedded: int(j.0.get(1)),
                total: int(j.0.get(2)),
                error: match j.0.get(3) {
                    Some(SqlValue::Text(e)) => Some(e.clone()),
                    _ => None,
                },
            },
            None => DocumentStatus {
                stage: "indexed".into(),
                embedded: 0,
                total: 0,
                error: None,
            },
        };
        let doc_rows = self
            .sql
            .query(
                "SELECT chunk_count FROM rs_documents WHERE index_name = ?1 AND version = ?2 AND doc_id = ?3",
                &[t(index), i(active.version), t(doc_id)],
            )
            .await?;
        let chunks = int(doc_rows.rows.first().and_then(|r| r.0.first()));
        if let Some(r) = rows.rows.first() {
            return Ok(DocumentInfo {
                id: doc_id.to_string(),
                index: index.to_string(),
                filename: text(r.0.first()),
                content_type: text(r.0.get(1)),
                content_hash: text(r.0.get(2)),
                metadata: json_object(&text(r.0.get(3))),
                bytes: int(r.0.get(4)),
                status,
                chunks,
                version: active.version,
                created_at: int(r.0.get(5)),
                updated_at: int(r.0.get(6)),
            });
        }
        // Not indexed yet: describe what is being ingested.
        match (pending, job) {
            (Some(s), _) => Ok(DocumentInfo {
                id: doc_id.to_string(),
                index: index.to_string(),
                filename: s.filename.clone(),
                content_type: s.content_type.clone(),
                content_hash: s.content_hash.clone(),
                metadata: s.metadata.clone(),
                bytes: s.content.len() as i64,
                status,
                chunks: 0,
                version: active.version,
                created_at: self.now(),
                updated_at: self.now(),
            }),
            (None, Some(j)) => Ok(DocumentInfo {
                id: doc_id.to_string(),
                index: index.to_string(),
                filename: String::new(),
                content_type: String::new(),
                content_hash: text(j.0.get(4)),
                metadata: Default::default(),
                bytes: 0,
                status,
                chunks: 0,
                version: active.version,
                created_at: int(j.0.get(5)),
                updated_at: int(j.0.get(5)),
            }),
            (None, None) => Err(Error::NotFound(format!(
                "document {doc_id:?} does not exist in index {index:?}"
            ))),
        }
    }

    /// Documents ordered by id, `limit` (1–200) per page after `cursor`.
    pub async fn list_documents(
        &self,
        index: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DocumentPage> {
        self.active_version_row(index).await?;
        if !(1..=200).contains(&limit) {
            return Err(Error::validation("limit", "must be between 1 and 200"));
        }
        let rows = self
            .sql
            .query(
                "SELECT doc_id FROM (
                    SELECT doc_id FROM rs_sources WHERE index_name = ?1
                    UNION SELECT doc_id FROM rs_jobs WHERE index_name = ?1
                 ) WHERE doc_id > ?2 ORDER BY doc_id LIMIT ?3",
                &[t(index), t(cursor.unwrap_or("")), i(limit as i64 + 1)],
            )
            .await?;
        let mut ids: Vec<String> = rows.rows.iter().map(|r| text(r.0.first())).collect();
        let next_cursor = if ids.len() > limit {
            ids.truncate(limit);
            ids.last().cloned()
        } else {
            None
        };
        let mut documents = Vec::new();
        for id in ids {
            documents.push(self.document_info(index, &id, None).await?);
        }
        Ok(DocumentPage {
            documents,
            next_cursor,
        })
    }

    /// Removes the document, its chunks, vectors and FTS rows in every
    /// version, and its progress record, in one transaction.
    pub async fn delete_document(&self, index: &str, doc_id: &str) -> Result<()> {
        self.get_document(index, doc_id).await?;
        let versions = self.versions(index).await?;
        self.begin().await?;
        let result = async {
            for v in &versions {
                let removed = self.remove_chunks(index, v.version, doc_id).await?;
                self.write_vectors(index, v.version, &removed, &[]).await?;
                self.bump_generation(index, v.version).await?;
            }
            for table in ["rs_documents", "rs_sources", "rs_jobs"] {
                self.sql
                    .execute(
                        &format!("DELETE FROM {table} WHERE index_name = ?1 AND doc_id = ?2"),
                        &[t(index), t(doc_id)],
                    )
                    .await?;
            }
            Ok(())
        }
        .await;
        self.finish(result).await
    }

    // ------------------------------------------------------------ versions

    /// Starts (or continues) building a new version with the index's current
    /// settings, beside the active one, from the stored sources. Bounded by
    /// `deadline_ms`: call again to continue; `state` becomes `ready`.
    pub async fn build_version<E: Embedder>(
        &self,
        index: &str,
        embedder: Option<&E>,
        deadline_ms: u64,
    ) -> Result<BuildProgress> {
        let info = self.get_index(index).await?;
        let building = self.building_versions(index).await?;
        let version = match building.into_iter().next() {
            Some(v) => v,
            None => {
                let next = info.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                let json = serde_json::to_string(&info.settings)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                self.sql
                    .execute(
                        "INSERT INTO rs_versions (index_name, version, settings, state, created_at) VALUES (?1, ?2, ?3, 'building', ?4)",
                        &[t(index), i(next), t(json), i(self.now())],
                    )
                    .await?;
                VersionRow {
                    version: next,
                    settings: info.settings.clone(),
                }
            }
        };
        let todo = self
            .sql
            .query(
                "SELECT s.doc_id FROM rs_sources s WHERE s.index_name = ?1 AND NOT EXISTS (
                    SELECT 1 FROM rs_documents d WHERE d.index_name = s.index_name AND d.version = ?2
                      AND d.doc_id = s.doc_id AND d.content_hash = s.content_hash)
                 ORDER BY s.doc_id",
                &[t(index), i(version.version)],
            )
            .await?;
        let total_rows = self
            .sql
            .query(
                "SELECT count(*) FROM rs_sources WHERE index_name = ?1",
                &[t(index)],
            )
            .await?;
        let total = int(total_rows.rows.first().and_then(|r| r.0.first()));
        let mut stats = CallStats::default();
        let mut remaining = todo.rows.len() as i64;
        for row in &todo.rows {
            if self.clock.now_unix_ms() >= deadline_ms {
                break;
            }
            let source = self.load_source(index, &text(row.0.first())).await?;
            let format = Format::detect(Some(&source.content_type), &source.filename)?;
            let parsed = ragspin_docs::parse(&source.content, format, &version.settings.fields)?;
            match self
                .index_into_version(
                    index,
                    &version,
                    &source,
                    &parsed,
                    embedder,
                    deadline_ms,
                    &mut stats,
                )
                .await?
            {
                Indexed::Done => {
                    remaining -= 1;
                    self.update_job_stage(index, &source.doc_id, "indexed", None)
                        .await?;
                }
                Indexed::Pending => break,
            }
        }
        let state = if remaining == 0 {
            self.sql
                .execute(
                    "UPDATE rs_versions SET state = 'ready' WHERE index_name = ?1 AND version = ?2",
                    &[t(index), i(version.version)],
                )
                .await?;
            "ready"
        } else {
            "building"
        };
        Ok(BuildProgress {
            version: version.version,
            state: state.into(),
            documents_done: total - remaining,
            documents_total: total,
        })
    }

    async fn load_source(&self, index: &str, doc_id: &str) -> Result<Source> {
        let rows = self
            .sql
            .query(
                "SELECT filename, content_type, content_hash, metadata, content FROM rs_sources WHERE index_name = ?1 AND doc_id = ?2",
                &[t(index), t(doc_id)],
            )
            .await?;
        let r = rows
            .rows
            .first()
            .ok_or_else(|| Error::NotFound(format!("document {doc_id:?}")))?;
        Ok(Source {
            doc_id: doc_id.to_string(),
            filename: text(r.0.first()),
            content_type: text(r.0.get(1)),
            content_hash: text(r.0.get(2)),
            metadata: json_object(&text(r.0.get(3))),
            content: blob(r.0.get(4)).unwrap_or_default(),
        })
    }

    /// Makes `version` the one readers see, atomically (one row update);
    /// the previous active version stays `ready` for rolling back.
    pub async fn activate_version(&self, index: &str, version: i64) -> Result<IndexInfo> {
        let info = self.get_index(index).await?;
        let Some(v) = info.versions.iter().find(|v| v.version == version) else {
            return Err(Error::NotFound(format!(
                "index {index:?} has no version {version}"
            )));
        };
        if v.state == "building" {
            return Err(Error::Conflict(format!(
                "version {version} is still building; POST /v1/indexes/{index}/versions to continue it"
            )));
        }
        if v.state != "active" {
            self.begin().await?;
            let result = async {
                self.sql
                    .execute(
                        "UPDATE rs_versions SET state = 'ready' WHERE index_name = ?1 AND state = 'active'",
                        &[t(index)],
                    )
                    .await?;
                self.sql
                    .execute(
                        "UPDATE rs_versions SET state = 'active' WHERE index_name = ?1 AND version = ?2",
                        &[t(index), i(version)],
                    )
                    .await?;
                self.sql
                    .execute(
                        "UPDATE rs_indexes SET active_version = ?2, updated_at = ?3 WHERE name = ?1",
                        &[t(index), i(version), i(self.now())],
                    )
                    .await?;
                Ok(())
            }
            .await;
            self.finish(result).await?;
        }
        self.get_index(index).await
    }
}

fn decode_block_rows(rows: &ragspin_core::Rows) -> Result<Vec<(i64, Block)>> {
    rows.rows
        .iter()
        .map(|r| {
            let dims = int(r.0.get(1)) as usize;
            let b = |k| blob(r.0.get(k)).unwrap_or_default();
            Block::decode(dims, &b(2), &b(3))
                .map(|block| (int(r.0.first()), block))
                .ok_or_else(|| Error::Storage("corrupt vector block".into()))
        })
        .collect()
}

/// Rewrites blocks without tombstones, each list key's blocks renumbered
/// from its first block number (`blocks` in block order).
fn compact(blocks: &[(i64, Block)]) -> Vec<(i64, Block)> {
    let mut out: Vec<(i64, Block)> = Vec::new();
    for (no, b) in blocks {
        let key = block_key(*no);
        for (slot, id) in b.ids.iter().enumerate() {
            if *id == 0 {
                continue;
            }
            match out.last() {
                Some((last, o)) if block_key(*last) == key && o.len() < BLOCK_CAPACITY => {}
                Some((last, _)) if block_key(*last) == key => {
                    let next = last + 1;
                    out.push((next, Block::new(b.dimensions)));
                }
                _ => out.push((block_in(key, 0), Block::new(b.dimensions))),
            }
            out.last_mut().expect("a block").1.push_slot(b, slot);
        }
    }
    out
}
