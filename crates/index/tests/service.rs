//! The index service on real SQLite (testkit), with a counting embedder.

use std::cell::{Cell, RefCell};

use futures::executor::block_on;
use ragspin_core::{Clock, Embedder, Embedding, Error, Result, Rows, Sql, SqlValue};
use ragspin_index::{IndexService, IndexSettings, NewDocument, NoEmbedder};
use ragspin_testkit::{HashEmbedder, ManualClock, SqliteSql};

/// Counts calls and inputs; can fail on the n-th call.
struct CountingEmbedder {
    inner: HashEmbedder,
    calls: Cell<u32>,
    inputs: Cell<u32>,
    fail_on_call: Cell<Option<u32>>,
    texts: RefCell<Vec<String>>,
}

impl CountingEmbedder {
    fn new() -> Self {
        Self {
            inner: HashEmbedder::new(32),
            calls: Cell::new(0),
            inputs: Cell::new(0),
            fail_on_call: Cell::new(None),
            texts: RefCell::new(Vec::new()),
        }
    }
}

impl Embedder for CountingEmbedder {
    fn model(&self) -> &str {
        "test-embedding"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        if self.fail_on_call.get() == Some(n) {
            return Err(Error::Upstream("azure answered 500 three times".into()));
        }
        self.inputs.set(self.inputs.get() + texts.len() as u32);
        self.texts.borrow_mut().extend(texts.iter().cloned());
        self.inner.embed(texts).await
    }
}

/// A [`CountingEmbedder`] whose calls follow its own plan (as the Azure
/// client's follow its requests): ranges of `per_call`, or a broken plan.
struct PlanningEmbedder {
    counting: CountingEmbedder,
    per_call: usize,
    broken: bool,
    sizes: RefCell<Vec<usize>>,
}

impl Embedder for PlanningEmbedder {
    fn model(&self) -> &str {
        self.counting.model()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.sizes.borrow_mut().push(texts.len());
        self.counting.embed(texts).await
    }
    fn plan(&self, texts: &[String]) -> Result<Vec<std::ops::Range<usize>>> {
        if self.broken {
            let skips_the_first_text = 1..texts.len();
            return Ok(vec![skips_the_first_text]);
        }
        Ok((0..texts.len())
            .step_by(self.per_call)
            .map(|s| s..(s + self.per_call).min(texts.len()))
            .collect())
    }
}

/// Takes `step_ms` of the clock per call and notes, as each call starts,
/// how many vectors the cache holds and the progress the document shows.
struct SlowEmbedder<'a> {
    counting: CountingEmbedder,
    world: &'a World,
    doc_id: String,
    step_ms: u64,
    seen: RefCell<Vec<(i64, i64)>>,
}

impl Embedder for SlowEmbedder<'_> {
    fn model(&self) -> &str {
        self.counting.model()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let cached = match self
            .world
            .sql
            .query("SELECT count(*) FROM rs_embeddings", &[])
            .await?
            .rows[0]
            .0[0]
        {
            SqlValue::Integer(n) => n,
            ref other => panic!("{other:?}"),
        };
        let progress = match self.world.svc().get_document("slow", &self.doc_id).await {
            Ok(d) => d.status.embedded,
            Err(_) => -1,
        };
        self.seen.borrow_mut().push((cached, progress));
        self.world.clock.advance(self.step_ms);
        self.counting.embed(texts).await
    }
    fn plan(&self, texts: &[String]) -> Result<Vec<std::ops::Range<usize>>> {
        Ok((0..texts.len())
            .step_by(SLOW_BATCH)
            .map(|s| s..(s + SLOW_BATCH).min(texts.len()))
            .collect())
    }
}

impl<'a> SlowEmbedder<'a> {
    /// Taking `step_ms` per call, watching the document of `content`.
    fn new(world: &'a World, content: &str, step_ms: u64) -> Self {
        Self {
            counting: CountingEmbedder::new(),
            world,
            doc_id: doc_id_of(content),
            step_ms,
            seen: RefCell::new(Vec::new()),
        }
    }
}

/// Texts per call of a [`SlowEmbedder`].
const SLOW_BATCH: usize = 8;

/// Fails every statement from the n-th on that matches `pattern`.
struct FailingSql<'a> {
    inner: &'a SqliteSql,
    pattern: &'static str,
    armed: Cell<bool>,
}

impl Sql for FailingSql<'_> {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64> {
        if self.armed.get() && sql.contains(self.pattern) {
            return Err(Error::Storage("disk I/O error".into()));
        }
        self.inner.execute(sql, params).await
    }
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Rows> {
        if self.armed.get() && sql.contains(self.pattern) {
            return Err(Error::Storage("disk I/O error".into()));
        }
        self.inner.query(sql, params).await
    }
}

fn markdown(sections: usize) -> String {
    (0..sections)
        .map(|k| {
            let body: String = (0..40)
                .map(|j| {
                    format!(
                        "Paragraph {k} sentence {j} talks about topic number {k} and battery life. "
                    )
                })
                .collect();
            format!("# Section {k}\n\n{body}\n\n")
        })
        .collect()
}

fn doc(name: &str, content: &str) -> NewDocument {
    NewDocument {
        filename: name.into(),
        content_type: Some("text/markdown".into()),
        content: content.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn count(sql: &SqliteSql, q: &str) -> i64 {
    match block_on(sql.query(q, &[])).unwrap().rows[0].0[0] {
        SqlValue::Integer(n) => n,
        ref other => panic!("{other:?}"),
    }
}

fn text_of(sql: &SqliteSql, q: &str) -> String {
    match &block_on(sql.query(q, &[])).unwrap().rows[0].0[0] {
        SqlValue::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    }
}

struct World {
    sql: SqliteSql,
    clock: ManualClock,
}

impl World {
    fn new() -> Self {
        let w = Self {
            sql: SqliteSql::new().unwrap(),
            clock: ManualClock::new(1_700_000_000_000),
        };
        block_on(async {
            let s = w.svc();
            s.migrate().await.unwrap();
            s.migrate().await.unwrap(); // idempotent
            s.put_index("docs", IndexSettings::default()).await.unwrap();
        });
        w
    }
    fn svc(&self) -> IndexService<'_, SqliteSql, ManualClock> {
        IndexService::new(&self.sql, &self.clock)
    }
}

const FAR: u64 = u64::MAX;

/// Settings with 64-token chunks (8 overlapping): many chunks from a short text.
fn small_chunks() -> IndexSettings {
    let mut settings = IndexSettings::default();
    settings.chunking.max_tokens = 64;
    settings.chunking.overlap_tokens = 8;
    settings
}

/// The id the service gives a document of `content` posted without one.
fn doc_id_of(content: &str) -> String {
    format!(
        "doc-{}",
        &ragspin_index::sha256_hex(content.as_bytes())[..16]
    )
}

#[test]
fn ingest_writes_chunks_fts_rows_and_vectors() {
    let w = World::new();
    let e = CountingEmbedder::new();
    let out = block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(3)), Some(&e), FAR),
    )
    .unwrap();
    assert!(out.created && !out.pending);
    assert_eq!(out.document.status.stage, "indexed");
    let chunks = out.document.chunks;
    assert!(chunks >= 3, "{chunks}");
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunk_vectors v JOIN rs_chunks c ON c.id = v.id"
        ),
        chunks
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks_fts WHERE rs_chunks_fts MATCH 'battery'"
        ),
        chunks
    );
    let blocks = block_on(w.svc().load_blocks("docs", 1)).unwrap();
    let live: usize = blocks.iter().map(|(_, b)| b.live()).sum();
    assert_eq!(live as i64, chunks);
    assert_eq!(out.document.content_hash.len(), 64);
}

#[test]
fn same_content_again_is_the_same_document_with_zero_embedding_calls() {
    let w = World::new();
    let e = CountingEmbedder::new();
    let first = block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(2)), Some(&e), FAR),
    )
    .unwrap();
    let calls = e.calls.get();
    let again = block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(2)), Some(&e), FAR),
    )
    .unwrap();
    assert!(!again.created);
    assert_eq!(again.document.id, first.document.id);
    assert_eq!(again.document.content_hash, first.document.content_hash);
    assert_eq!(
        e.calls.get(),
        calls,
        "re-ingesting unchanged content called the embedder"
    );
    assert_eq!(count(&w.sql, "SELECT count(*) FROM rs_sources"), 1);
}

#[test]
fn editing_one_section_re_embeds_only_the_changed_chunks() {
    let w = World::new();
    let e = CountingEmbedder::new();
    let original = markdown(4);
    let mut d = doc("a.md", &original);
    d.id = Some("guide".into());
    let first = block_on(w.svc().ingest("docs", d.clone(), Some(&e), FAR)).unwrap();
    let before = e.inputs.get();
    let edited = original.replacen(
        "Paragraph 2 sentence 5 talks",
        "Paragraph 2 sentence 5 now discusses",
        1,
    );
    d.content = edited.into_bytes();
    let second = block_on(w.svc().ingest("docs", d, Some(&e), FAR)).unwrap();
    let re_embedded = e.inputs.get() - before;
    assert!(re_embedded >= 1, "nothing re-embedded");
    assert!(
        (re_embedded as i64) < first.document.chunks,
        "re-embedded {re_embedded} of {} chunks",
        first.document.chunks
    );
    assert!(second.cached_embeddings > 0);
    assert_eq!(second.document.chunks, first.document.chunks);
    // The replaced chunks are gone from FTS and blocks.
    assert_eq!(
        count(&w.sql, "SELECT count(*) FROM rs_chunks"),
        second.document.chunks
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks_fts WHERE rs_chunks_fts MATCH 'discusses'"
        ),
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE text LIKE '%discusses%'"
        )
    );
    let blocks = block_on(w.svc().load_blocks("docs", 1)).unwrap();
    let live: usize = blocks.iter().map(|(_, b)| b.live()).sum();
    assert_eq!(live as i64, second.document.chunks);
}

#[test]
fn an_embedding_failure_leaves_no_partial_document_and_a_retry_reuses_finished_batches() {
    let w = World::new();
    let e = CountingEmbedder::new();
    // Enough chunks for several batches of EMBED_BATCH.
    block_on(w.svc().put_index("small", small_chunks())).unwrap();
    let content = markdown(30);
    e.fail_on_call.set(Some(2));
    let err = block_on(
        w.svc()
            .ingest("small", doc("big.md", &content), Some(&e), FAR),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Upstream(_)), "{err:?}");
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE index_name = 'small'"
        ),
        0
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_sources WHERE index_name = 'small'"
        ),
        0
    );
    let id = doc_id_of(&content);
    let status = block_on(w.svc().get_document("small", &id)).unwrap().status;
    assert_eq!(status.stage, "failed");
    assert!(status.error.unwrap().contains("500"));
    let first_batch = e.inputs.get();
    assert_eq!(first_batch as usize, ragspin_index::EMBED_BATCH);
    e.fail_on_call.set(None);
    let texts_before = e.texts.borrow().len();
    let ok = block_on(
        w.svc()
            .ingest("small", doc("big.md", &content), Some(&e), FAR),
    )
    .unwrap();
    assert_eq!(ok.document.status.stage, "indexed");
    assert_eq!(ok.cached_embeddings as usize, ragspin_index::EMBED_BATCH);
    let again: Vec<String> = e.texts.borrow()[texts_before..].to_vec();
    let first: Vec<String> = e.texts.borrow()[..first_batch as usize].to_vec();
    assert!(
        first.iter().all(|t| !again.contains(t)),
        "a finished batch was embedded again"
    );
}

#[test]
fn finished_embeddings_are_saved_with_their_progress_every_cache_save_interval_not_every_call() {
    let w = World::new();
    block_on(w.svc().put_index("slow", small_chunks())).unwrap();
    let content = markdown(30);
    // Two calls take longer than the interval, one does not.
    let e = SlowEmbedder::new(&w, &content, ragspin_index::service::CACHE_SAVE_MS * 3 / 5);
    let out = block_on(
        w.svc()
            .ingest("slow", doc("big.md", &content), Some(&e), FAR),
    )
    .unwrap();
    let batch = SLOW_BATCH as i64;
    let seen = e.seen.borrow().clone();
    assert!(seen.len() >= 5, "{seen:?}");
    // Nothing saved after the first call; the first two batches (and their
    // progress) after the second; two more after the fourth.
    assert_eq!(seen[0].0, 0, "{seen:?}");
    assert_eq!(seen[1].0, 0, "{seen:?}");
    assert_eq!(seen[2], (2 * batch, 2 * batch), "{seen:?}");
    assert_eq!(seen[3], (2 * batch, 2 * batch), "{seen:?}");
    assert_eq!(seen[4], (4 * batch, 4 * batch), "{seen:?}");
    // Everything is saved in the end, and a second ingest of a copy embeds nothing.
    let chunks = out.document.chunks;
    assert_eq!(count(&w.sql, "SELECT count(*) FROM rs_embeddings"), chunks);
    assert_eq!(out.document.status.embedded, chunks);
    let calls = e.counting.calls.get();
    let mut copy = doc("copy.md", &markdown(30));
    copy.id = Some("copy".into());
    let again = block_on(w.svc().ingest("slow", copy, Some(&e), FAR)).unwrap();
    assert_eq!(e.counting.calls.get(), calls);
    assert_eq!(again.cached_embeddings as i64, chunks);
}

#[test]
fn a_deadline_between_cache_saves_still_keeps_every_finished_batch() {
    let w = World::new();
    block_on(w.svc().put_index("slow", small_chunks())).unwrap();
    let content = markdown(30);
    let step_ms = ragspin_index::service::CACHE_SAVE_MS * 3 / 5;
    let e = SlowEmbedder::new(&w, &content, step_ms);
    // Calls at 0, 1 and 2 steps start before the deadline; the third ends
    // after it, one step after the save that followed the second.
    let deadline = w.clock.now_unix_ms() + step_ms * 5 / 2;
    let out = block_on(
        w.svc()
            .ingest("slow", doc("big.md", &content), Some(&e), deadline),
    )
    .unwrap();
    assert!(out.pending);
    assert_eq!(e.counting.calls.get(), 3);
    let batch = SLOW_BATCH as i64;
    assert_eq!(
        count(&w.sql, "SELECT count(*) FROM rs_embeddings"),
        3 * batch
    );
    assert_eq!(out.document.status.embedded, 3 * batch);
    let first: Vec<String> = e.counting.texts.borrow().clone();
    let done = block_on(
        w.svc()
            .ingest("slow", doc("big.md", &content), Some(&e), FAR),
    )
    .unwrap();
    assert_eq!(done.document.status.stage, "indexed");
    assert_eq!(done.cached_embeddings as i64, 3 * batch);
    let again = e.counting.texts.borrow()[first.len()..].to_vec();
    assert!(
        first.iter().all(|t| !again.contains(t)),
        "a finished batch was embedded again"
    );
}

#[test]
fn a_storage_error_while_committing_keeps_the_previous_version_of_the_document() {
    let w = World::new();
    let e = CountingEmbedder::new();
    let mut d = doc("a.md", &markdown(2));
    d.id = Some("stable".into());
    let first = block_on(w.svc().ingest("docs", d.clone(), Some(&e), FAR)).unwrap();
    let failing = FailingSql {
        inner: &w.sql,
        pattern: "INSERT INTO rs_sources",
        armed: Cell::new(true),
    };
    d.content = markdown(3).into_bytes();
    let svc = IndexService::new(&failing, &w.clock);
    let err = block_on(svc.ingest("docs", d, Some(&e), FAR)).unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    let after = block_on(w.svc().get_document("docs", "stable")).unwrap();
    assert_eq!(after.content_hash, first.document.content_hash);
    assert_eq!(after.chunks, first.document.chunks);
    assert_eq!(
        count(&w.sql, "SELECT count(*) FROM rs_chunks"),
        first.document.chunks
    );
}

#[test]
fn a_passed_deadline_leaves_the_document_pending_and_posting_again_resumes() {
    let w = World::new();
    let e = CountingEmbedder::new();
    block_on(w.svc().put_index("slow", small_chunks())).unwrap();
    let content = markdown(30);
    let now = 1_700_000_000_000;
    let out = block_on(
        w.svc()
            .ingest("slow", doc("big.md", &content), Some(&e), now),
    )
    .unwrap();
    assert!(out.pending);
    assert_eq!(out.document.status.stage, "embedding");
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE index_name = 'slow'"
        ),
        0
    );
    let done = block_on(
        w.svc()
            .ingest("slow", doc("big.md", &content), Some(&e), FAR),
    )
    .unwrap();
    assert!(!done.pending);
    assert_eq!(done.document.status.stage, "indexed");
    assert_eq!(done.document.status.embedded, done.document.status.total);
}

#[test]
fn offline_ingest_indexes_text_and_counts_vectors_pending() {
    let w = World::new();
    let out = block_on(
        w.svc()
            .ingest::<NoEmbedder>("docs", doc("a.md", &markdown(2)), None, FAR),
    )
    .unwrap();
    assert_eq!(out.document.status.stage, "indexed");
    let info = block_on(w.svc().get_index("docs")).unwrap();
    assert_eq!(info.stats.vectors_pending, info.stats.chunks);
    assert_eq!(info.stats.documents, 1);
}

#[test]
fn deleting_a_document_removes_chunks_fts_rows_and_vectors() {
    let w = World::new();
    let e = CountingEmbedder::new();
    let a = block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(2)), Some(&e), FAR),
    )
    .unwrap();
    let b = block_on(w.svc().ingest(
        "docs",
        doc("b.md", "# Other\n\nCompletely unrelated words here."),
        Some(&e),
        FAR,
    ))
    .unwrap();
    block_on(w.svc().delete_document("docs", &a.document.id)).unwrap();
    assert_eq!(
        count(&w.sql, "SELECT count(*) FROM rs_chunks"),
        b.document.chunks
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks_fts WHERE rs_chunks_fts MATCH 'battery'"
        ),
        0
    );
    let blocks = block_on(w.svc().load_blocks("docs", 1)).unwrap();
    let live: usize = blocks.iter().map(|(_, b)| b.live()).sum();
    assert_eq!(live as i64, b.document.chunks);
    assert!(matches!(
        block_on(w.svc().get_document("docs", &a.document.id)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn a_new_version_is_built_beside_the_live_one_and_activation_swaps_and_rolls_back() {
    let w = World::new();
    let e = CountingEmbedder::new();
    block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(3)), Some(&e), FAR),
    )
    .unwrap();
    let v1_chunks = block_on(w.svc().get_index("docs")).unwrap().stats.chunks;
    let (info, created) = block_on(w.svc().put_index("docs", small_chunks())).unwrap();
    assert!(!created);
    assert_eq!(info.active_version, 1);
    assert_eq!(
        info.stats.chunks, v1_chunks,
        "a chunking change must not touch the live version"
    );
    let progress = block_on(w.svc().build_version("docs", Some(&e), FAR)).unwrap();
    assert_eq!((progress.version, progress.state.as_str()), (2, "ready"));
    assert_eq!(
        block_on(w.svc().get_index("docs")).unwrap().active_version,
        1
    );
    let info = block_on(w.svc().activate_version("docs", 2)).unwrap();
    assert_eq!(info.active_version, 2);
    assert!(info.stats.chunks > v1_chunks);
    let back = block_on(w.svc().activate_version("docs", 1)).unwrap();
    assert_eq!(back.active_version, 1);
    assert_eq!(back.stats.chunks, v1_chunks);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let w = World::new();
    let e = CountingEmbedder::new();
    let s = w.svc();
    assert!(matches!(
        block_on(s.put_index("Bad Name", IndexSettings::default())),
        Err(Error::BadRequest { .. })
    ));
    assert!(matches!(
        block_on(s.get_index("missing")),
        Err(Error::NotFound(_))
    ));
    let mut bad = IndexSettings::default();
    bad.chunking.overlap_tokens = bad.chunking.max_tokens;
    assert!(matches!(
        block_on(s.put_index("x", bad)),
        Err(Error::Validation { .. })
    ));
    let mut d = doc("a.exe", "MZ");
    d.content_type = Some("application/octet-stream".into());
    assert!(matches!(
        block_on(s.ingest("docs", d, Some(&e), FAR)),
        Err(Error::UnsupportedMediaType(_))
    ));
    assert!(matches!(
        block_on(s.ingest("docs", doc("a.md", "   \n"), Some(&e), FAR)),
        Err(Error::Validation { .. })
    ));
    assert!(matches!(
        block_on(s.ingest("missing", doc("a.md", "hi"), Some(&e), FAR)),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        block_on(s.list_documents("docs", None, 0)),
        Err(Error::Validation { .. })
    ));
    assert!(matches!(
        block_on(s.activate_version("docs", 9)),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        count(&w.sql, "SELECT count(*) FROM rs_jobs"),
        0,
        "a rejected document left a job behind"
    );
}

#[test]
fn documents_are_listed_in_pages() {
    let w = World::new();
    for k in 0..5 {
        let mut d = doc(
            &format!("{k}.md"),
            &format!("# Doc {k}\n\nText number {k}."),
        );
        d.id = Some(format!("d{k}"));
        block_on(w.svc().ingest::<NoEmbedder>("docs", d, None, FAR)).unwrap();
    }
    let p1 = block_on(w.svc().list_documents("docs", None, 2)).unwrap();
    assert_eq!(
        p1.documents
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["d0", "d1"]
    );
    let p3 = block_on(w.svc().list_documents("docs", Some("d3"), 2)).unwrap();
    assert_eq!(p3.documents.len(), 1);
    assert!(p3.next_cursor.is_none());
}

#[test]
fn deleting_an_index_removes_everything() {
    let w = World::new();
    let e = CountingEmbedder::new();
    block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(2)), Some(&e), FAR),
    )
    .unwrap();
    block_on(w.svc().delete_index("docs")).unwrap();
    for table in [
        "rs_indexes",
        "rs_versions",
        "rs_chunks",
        "rs_sources",
        "rs_documents",
        "rs_vector_blocks",
        "rs_jobs",
    ] {
        assert_eq!(
            count(&w.sql, &format!("SELECT count(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks_fts WHERE rs_chunks_fts MATCH 'battery'"
        ),
        0
    );
}

#[test]
fn schemas_3_and_7_move_and_rekey_the_embedding_cache_and_keep_every_cached_vector() {
    let w = World::new();
    let e = CountingEmbedder::new();
    block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(3)), Some(&e), FAR),
    )
    .unwrap();
    let cached = count(&w.sql, "SELECT count(*) FROM rs_embeddings");
    assert!(cached > 0);
    // Cached since schema 7: `f16` vectors under their 8-byte key.
    let dims = count(
        &w.sql,
        "SELECT length(vector) / 2 FROM rs_chunk_vectors LIMIT 1",
    );
    assert_eq!(
        count(
            &w.sql,
            &format!(
                "SELECT count(*) FROM rs_embeddings WHERE format = 1 AND length(vector) = {}
                 AND hash8 = unhex(substr(content_hash, 1, 16))",
                dims * 2
            )
        ),
        cached
    );
    // Back to schema 2: the cache in its old WITHOUT ROWID table, its
    // vectors `f32` as they were then.
    for statement in [
        "CREATE TABLE rs_embedding_cache (model TEXT NOT NULL, dimensions INTEGER NOT NULL,
            content_hash TEXT NOT NULL, vector BLOB NOT NULL, created_at INTEGER NOT NULL,
            PRIMARY KEY (model, dimensions, content_hash)) WITHOUT ROWID",
        "INSERT INTO rs_embedding_cache
            SELECT model, dimensions, content_hash, vector, created_at FROM rs_embeddings",
        "DROP TABLE rs_embeddings",
        "DROP TABLE rs_vector_lists",
        "DELETE FROM rs_schema WHERE version >= 3",
    ] {
        block_on(w.sql.execute(statement, &[])).unwrap();
    }
    cached_vectors_as_f32(
        &w.sql,
        "SELECT content_hash, vector FROM rs_embedding_cache",
        "UPDATE rs_embedding_cache SET vector = ?1 WHERE content_hash = ?2",
    );
    block_on(w.svc().migrate()).unwrap();
    block_on(w.svc().migrate()).unwrap();
    assert_eq!(count(&w.sql, "SELECT count(*) FROM rs_embeddings"), cached);
    assert_eq!(
        count(
            &w.sql,
            &format!(
                "SELECT count(*) FROM rs_embeddings WHERE format = 0 AND length(vector) = {}
                 AND length(hash8) = 8",
                dims * 4
            )
        ),
        cached
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM sqlite_master WHERE name = 'rs_embedding_cache'"
        ),
        0
    );
    assert_eq!(
        count(&w.sql, "SELECT max(version) FROM rs_schema"),
        ragspin_index::schema::SCHEMA_VERSION
    );
    // The moved cache still answers: the same text in another index
    // makes no embedding call.
    block_on(w.svc().put_index("copy", IndexSettings::default())).unwrap();
    let calls = e.calls.get();
    block_on(
        w.svc()
            .ingest("copy", doc("a.md", &markdown(3)), Some(&e), FAR),
    )
    .unwrap();
    assert_eq!(e.calls.get(), calls, "cached vectors were lost");
    // ... and the `f32` rows give the very vectors the first ingest stored.
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks a JOIN rs_chunk_vectors va ON va.id = a.id
             JOIN rs_chunks b ON b.content_hash = a.content_hash AND b.index_name = 'copy'
             JOIN rs_chunk_vectors vb ON vb.id = b.id
             WHERE a.index_name = 'docs' AND va.vector = vb.vector"
        ),
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE index_name = 'docs'"
        )
    );
}

/// Writes each cached `f16` vector that `select` reads as (content hash,
/// vector) back as `f32` through `update` (`?1` the bytes, `?2` the hash):
/// the vectors as caches and chunk rows held them before schema 7.
fn cached_vectors_as_f32(sql: &SqliteSql, select: &str, update: &str) {
    for row in block_on(sql.query(select, &[])).unwrap().rows {
        let SqlValue::Blob(bytes) = &row.0[1] else {
            panic!("{row:?}")
        };
        let v = ragspin_index::vectors::decode_f16(bytes).unwrap();
        let f32_bytes = SqlValue::Blob(ragspin_index::vectors::encode_f32(&v));
        block_on(sql.execute(update, &[f32_bytes, row.0[0].clone()])).unwrap();
    }
}

/// A vector-only search of "docs" for `vector`: (chunk id, vector score) per hit.
fn vector_hits(w: &World, vector: Vec<f32>) -> Vec<(i64, f64)> {
    use ragspin_index::search::{Filter, SearchRequest, Weights, search};
    let req = SearchRequest {
        index: "docs".into(),
        query: "battery".into(),
        top_k: 5,
        filter: Filter::default(),
        weights: Weights {
            bm25: 0.0,
            vector: 1.0,
        },
        query_vector: Some(vector),
    };
    block_on(search(&w.sql, &req))
        .unwrap()
        .hits
        .iter()
        .map(|h| (h.chunk_id, h.scores.vector.unwrap()))
        .collect()
}

#[test]
fn schema_6_moves_vectors_out_of_the_chunk_rows_and_search_reads_both_layouts() {
    let w = World::new();
    let e = CountingEmbedder::new();
    block_on(
        w.svc()
            .ingest("docs", doc("a.md", &markdown(6)), Some(&e), FAR),
    )
    .unwrap();
    let chunks = count(&w.sql, "SELECT count(*) FROM rs_chunks");
    // Written since schema 6: one f16 row per chunk, nothing in the chunk row.
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunk_vectors WHERE length(vector) = 64"
        ),
        chunks
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE vector IS NOT NULL"
        ),
        0
    );
    let query = block_on(e.embed(&["battery life of the phone".to_string()]))
        .unwrap()
        .remove(0);
    let f16_hits = vector_hits(&w, query.clone());
    assert_eq!(f16_hits.len(), 5);

    // Back to schema 5: f32 vectors in the chunk rows (the cache's, as f32).
    cached_vectors_as_f32(
        &w.sql,
        "SELECT content_hash, vector FROM rs_embeddings",
        "UPDATE rs_chunks SET vector = ?1 WHERE content_hash = ?2",
    );
    for statement in [
        "DROP TRIGGER rs_chunk_vectors_delete",
        "DROP TABLE rs_chunk_vectors",
        "DELETE FROM rs_schema WHERE version >= 6",
    ] {
        block_on(w.sql.execute(statement, &[])).unwrap();
    }
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE length(vector) = 128"
        ),
        chunks
    );
    // The query side reads a database not migrated yet from the chunk rows,
    // and f32 and f16 rank alike here, with scores within f16 rounding.
    let f32_hits = vector_hits(&w, query.clone());
    let ids = |h: &[(i64, f64)]| h.iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(ids(&f32_hits), ids(&f16_hits));
    for (a, b) in f32_hits.iter().zip(&f16_hits) {
        assert!((a.1 - b.1).abs() < 1e-3, "{a:?} vs {b:?}");
    }

    block_on(w.svc().migrate()).unwrap();
    // Moved as they were (f32), out of the chunk rows.
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunk_vectors WHERE length(vector) = 128"
        ),
        chunks
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM rs_chunks WHERE vector IS NOT NULL"
        ),
        0
    );
    assert_eq!(vector_hits(&w, query.clone()), f32_hits);
    let stats = block_on(w.svc().get_index("docs")).unwrap();
    assert_eq!(stats.stats.vectors_pending, 0);

    // Deleting the document takes its vector rows along (the trigger).
    let doc_id = text_of(&w.sql, "SELECT doc_id FROM rs_documents LIMIT 1");
    block_on(w.svc().delete_document("docs", &doc_id)).unwrap();
    assert_eq!(count(&w.sql, "SELECT count(*) FROM rs_chunk_vectors"), 0);
    assert!(vector_hits(&w, query).is_empty());
}

#[test]
fn a_new_database_gets_16_kb_pages_and_an_existing_one_keeps_its_own() {
    // `World::new` migrates a fresh database.
    let w = World::new();
    assert_eq!(count(&w.sql, "PRAGMA page_size"), 16384);
    // A database made before (4 KB pages, tables in it) keeps them.
    let old = SqliteSql::new().unwrap();
    block_on(old.execute("CREATE TABLE before_ragspin (x)", &[])).unwrap();
    block_on(IndexService::new(&old, &w.clock).migrate()).unwrap();
    assert_eq!(count(&old, "PRAGMA page_size"), 4096);
    assert_eq!(
        count(&old, "SELECT max(version) FROM rs_schema"),
        ragspin_index::schema::SCHEMA_VERSION
    );
}

#[test]
fn a_failed_migration_leaves_the_previous_schema_whole() {
    let w = World::new();
    block_on(async {
        w.sql
            .execute("DELETE FROM rs_schema WHERE version >= 3", &[])
            .await?;
        w.sql.execute("DROP TABLE rs_embeddings", &[]).await?;
        // The old table is missing too, so migration 3 fails at its copy,
        // after creating `rs_embeddings`.
        w.sql
            .execute("DROP TABLE IF EXISTS rs_embedding_cache", &[])
            .await
    })
    .unwrap();
    assert!(block_on(w.svc().migrate()).is_err());
    assert_eq!(count(&w.sql, "SELECT max(version) FROM rs_schema"), 2);
    // Rolled back: the table it created is gone again, and nothing is
    // left in a transaction.
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) FROM sqlite_master WHERE name = 'rs_embeddings'"
        ),
        0
    );
    block_on(w.sql.execute("BEGIN IMMEDIATE", &[])).unwrap();
    block_on(w.sql.execute("COMMIT", &[])).unwrap();
}

#[test]
fn embedding_follows_the_embedders_plan_and_a_failure_keeps_every_finished_call() {
    let w = World::new();
    let e = PlanningEmbedder {
        counting: CountingEmbedder::new(),
        per_call: 7,
        broken: false,
        sizes: RefCell::new(Vec::new()),
    };
    block_on(w.svc().put_index("small", small_chunks())).unwrap();
    let content = markdown(4);
    e.counting.fail_on_call.set(Some(3));
    assert!(
        block_on(
            w.svc()
                .ingest("small", doc("a.md", &content), Some(&e), FAR)
        )
        .is_err()
    );
    assert_eq!(*e.sizes.borrow(), vec![7, 7, 7]);
    // The two finished calls were cached: the retry starts at the third.
    e.counting.fail_on_call.set(None);
    let ok = block_on(
        w.svc()
            .ingest("small", doc("a.md", &content), Some(&e), FAR),
    )
    .unwrap();
    assert_eq!(ok.cached_embeddings, 14);
    let chunks = ok.document.chunks as usize;
    assert!(chunks > 21, "{chunks} chunks");
    let sizes = e.sizes.borrow()[3..].to_vec();
    assert_eq!(sizes.iter().sum::<usize>(), chunks - 14);
    assert!(sizes.iter().all(|n| *n <= 7), "{sizes:?}");

    // A plan that leaves texts out is refused before any call.
    let broken = PlanningEmbedder {
        counting: CountingEmbedder::new(),
        per_call: 7,
        broken: true,
        sizes: RefCell::new(Vec::new()),
    };
    block_on(w.svc().put_index("other", IndexSettings::default())).unwrap();
    let err = block_on(
        w.svc()
            .ingest("other", doc("b.md", &markdown(2)), Some(&broken), FAR),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert!(broken.sizes.borrow().is_empty());
}
