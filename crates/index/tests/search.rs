//! Hybrid search on real SQLite: BM25, vectors, fusion, filters inside
//! retrieval, and the recall of the vector cascade against exact search.

use futures::executor::block_on;
use ragspin_core::{Embedder, Sql, SqlValue};
use ragspin_index::search::{
    BINARY_CANDIDATES, FTS_STATE_ROWS, Filter, FtsState, RESCORED_CANDIDATES, SearchRequest,
    Weights, active_version, bm25_words, cascade, cosine, search, search_version, word_count_rows,
};
use ragspin_index::vectors::{BitIndex, Block};
use ragspin_index::{IndexService, IndexSettings, NewDocument};
use ragspin_testkit::{HashEmbedder, ManualClock, SqliteSql};
use serde_json::json;

/// A database with the `reviews` index of the fixture CSV, embedded by
/// the returned 64-dimension hash embedder.
fn reviews_index() -> (SqliteSql, HashEmbedder) {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let e = HashEmbedder::new(64);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    let mut settings = IndexSettings::default();
    settings.fields.text_fields = vec!["product_name".into(), "review_text".into()];
    settings.fields.metadata_fields = vec!["rating".into(), "price".into(), "category".into()];
    block_on(svc.put_index("reviews", settings)).unwrap();
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/docs/reviews.csv"
    ))
    .unwrap();
    let doc = NewDocument {
        filename: "reviews.csv".into(),
        content_type: Some("text/csv".into()),
        content: csv,
        ..Default::default()
    };
    block_on(svc.ingest("reviews", doc, Some(&e), u64::MAX)).unwrap();
    (sql, e)
}

fn request(query: &str, filter: serde_json::Value, vector: Option<Vec<f32>>) -> SearchRequest {
    SearchRequest {
        index: "reviews".into(),
        query: query.into(),
        top_k: 5,
        filter: Filter::parse(&filter).unwrap(),
        weights: Weights::default(),
        query_vector: vector,
    }
}

#[test]
fn budget_phone_with_long_battery_life_finds_matching_reviews_and_filters_on_rating_and_price() {
    let (sql, e) = reviews_index();
    let q = "a budget phone with long battery life";
    let qv = e.embed_one(q);
    let all = block_on(search(&sql, &request(q, json!(null), Some(qv.clone())))).unwrap();
    assert_eq!(all.mode, "hybrid");
    assert!(!all.hits.is_empty());
    assert!(
        all.hits[0].text.to_lowercase().contains("battery"),
        "{:?}",
        all.hits[0].text
    );
    assert!(
        all.hits
            .iter()
            .any(|h| h.scores.bm25.is_some() && h.scores.vector.is_some())
    );
    let filtered = block_on(search(
        &sql,
        &request(
            q,
            json!({"category": "phones", "rating": {"gte": 3}, "price": {"lt": 400}}),
            Some(qv),
        ),
    ))
    .unwrap();
    assert!(!filtered.hits.is_empty(), "no cheap well-rated phone found");
    for h in &filtered.hits {
        assert_eq!(h.metadata["category"], "phones");
        assert!(
            h.metadata["rating"].as_f64().unwrap() >= 3.0,
            "{:?}",
            h.metadata
        );
        assert!(
            h.metadata["price"].as_f64().unwrap() < 400.0,
            "{:?}",
            h.metadata
        );
        assert_eq!(h.filename, "reviews.csv");
    }
}

#[test]
fn filters_apply_before_the_top_k_cut() {
    let (sql, _) = reviews_index();
    // A rare category still fills top_k with only its rows, even when other
    // rows score higher on the text.
    let mut req = request("battery life", json!({"category": "laptops"}), None);
    req.top_k = 3;
    let res = block_on(search(&sql, &req)).unwrap();
    assert!(!res.hits.is_empty());
    assert!(res.hits.iter().all(|h| h.metadata["category"] == "laptops"));
    assert_eq!(res.mode, "bm25");
}

#[test]
fn bad_requests_name_the_problem() {
    let (sql, _) = reviews_index();
    let mut req = request("x", json!(null), None);
    req.top_k = 0;
    assert!(block_on(search(&sql, &req)).is_err());
    req.top_k = 51;
    assert!(block_on(search(&sql, &req)).is_err());
    let mut req = request("x", json!(null), None);
    req.index = "missing".into();
    assert!(matches!(
        block_on(search(&sql, &req)),
        Err(ragspin_core::Error::NotFound(_))
    ));
    let req = request("x", json!(null), Some(vec![1.0; 3]));
    assert!(matches!(
        block_on(search(&sql, &req)),
        Err(ragspin_core::Error::Conflict(_))
    ));
}

/// xorshift, for reproducible "random" vectors.
fn rng(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
}

fn recall_at_10(vectors: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let mut blocks: Vec<Block> = Vec::new();
    for (k, v) in vectors.iter().enumerate() {
        if blocks.last().is_none_or(|b| b.is_full()) {
            blocks.push(Block::new(v.len()));
        }
        blocks.last_mut().unwrap().push(k as i64 + 1, v);
    }
    let mut index = BitIndex::new(vectors[0].len());
    assert!(index.is_empty());
    for b in &blocks {
        index.push_block(b);
    }
    let mut found = 0;
    for q in queries {
        let mut exact: Vec<(usize, f64)> = vectors
            .iter()
            .enumerate()
            .map(|(k, v)| (k, cosine(q, v)))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let truth: Vec<i64> = exact.iter().take(10).map(|(k, _)| *k as i64 + 1).collect();
        let candidates = cascade(&index, q, None, BINARY_CANDIDATES, RESCORED_CANDIDATES);
        // Exact rescoring of the candidates, as the search does.
        let mut rescored: Vec<(i64, f64)> = candidates
            .iter()
            .map(|id| (*id, cosine(q, &vectors[*id as usize - 1])))
            .collect();
        rescored.sort_by(|a, b| b.1.total_cmp(&a.1));
        found += rescored
            .iter()
            .take(10)
            .filter(|(id, _)| truth.contains(id))
            .count();
    }
    found as f64 / (queries.len() * 10) as f64
}

/// Measured recall of the binary → asymmetric → f32 cascade against exact
/// search (numbers recorded in BENCHMARKS.md). Random vectors are the hard
/// case: 20,000 of them, so the 2,000 Hamming candidates are a tenth.
#[test]
fn vector_cascade_recall_against_exact_search() {
    let mut seed = 0x9E3779B97F4A7C15u64;
    let dims = 256;
    let random: Vec<Vec<f32>> = (0..20_000)
        .map(|_| (0..dims).map(|_| rng(&mut seed)).collect())
        .collect();
    let queries: Vec<Vec<f32>> = (0..50)
        .map(|_| (0..dims).map(|_| rng(&mut seed)).collect())
        .collect();
    let r_random = recall_at_10(&random, &queries);
    // Clustered data (what text embeddings look like): points near 100 centres.
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| (0..dims).map(|_| rng(&mut seed)).collect())
        .collect();
    let clustered: Vec<Vec<f32>> = (0..20_000)
        .map(|k| {
            centres[k % 100]
                .iter()
                .map(|c| c + 0.3 * rng(&mut seed))
                .collect()
        })
        .collect();
    let cq: Vec<Vec<f32>> = (0..50)
        .map(|k| {
            centres[(k * 7) % 100]
                .iter()
                .map(|c| c + 0.3 * rng(&mut seed))
                .collect()
        })
        .collect();
    let r_clustered = recall_at_10(&clustered, &cq);
    eprintln!("recall@10 random={r_random:.3} clustered={r_clustered:.3}");
    assert!(r_clustered >= 0.95, "clustered recall {r_clustered}");
    assert!(r_random >= 0.85, "random recall {r_random}");
}

#[test]
fn text_embeddings_from_the_index_round_trip_through_the_cascade() {
    let (sql, e) = reviews_index();
    let q = e.embed_one("noise cancelling headphones for travel");
    let vector_only = SearchRequest {
        weights: Weights {
            bm25: 0.0,
            vector: 1.0,
        },
        ..request(
            "noise cancelling headphones for travel",
            json!(null),
            Some(q),
        )
    };
    let res = block_on(search(&sql, &vector_only)).unwrap();
    assert_eq!(res.mode, "vector");
    assert!(res.hits.iter().all(|h| h.scores.vector.is_some()));
    let _ = e.model();
}

/// Records the statements a search runs.
struct Statements<'a> {
    inner: &'a SqliteSql,
    log: std::cell::RefCell<Vec<String>>,
}

impl<'a> Statements<'a> {
    fn new(inner: &'a SqliteSql) -> Self {
        Self {
            inner,
            log: Default::default(),
        }
    }

    fn count(&self, containing: &str) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|s| s.contains(containing))
            .count()
    }
}

impl Sql for Statements<'_> {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> ragspin_core::Result<u64> {
        self.log.borrow_mut().push(sql.to_owned());
        self.inner.execute(sql, params).await
    }
    async fn query(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> ragspin_core::Result<ragspin_core::Rows> {
        self.log.borrow_mut().push(sql.to_owned());
        self.inner.query(sql, params).await
    }
}

#[test]
fn rescored_vectors_are_read_once_per_generation() {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let e = HashEmbedder::new(64);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    // A name no other test uses: the instance caches are per process.
    block_on(svc.put_index("rescoring-cache", IndexSettings::default())).unwrap();
    let doc = |name: &str, text: String| NewDocument {
        filename: name.into(),
        content_type: Some("text/plain".into()),
        content: text.into_bytes(),
        ..Default::default()
    };
    let paragraphs: Vec<String> = (0..40)
        .map(|k| {
            format!(
                "Paragraph {k} is about topic{} and word{}.",
                k % 7,
                k * 13 % 17
            )
        })
        .collect();
    block_on(svc.ingest(
        "rescoring-cache",
        doc("a.txt", paragraphs.join("\n\n")),
        Some(&e),
        u64::MAX,
    ))
    .unwrap();
    let counting = Statements::new(&sql);
    let reads = || counting.count("group_concat(vector");
    let vector_only = |q: &str| SearchRequest {
        index: "rescoring-cache".into(),
        weights: Weights {
            bm25: 0.0,
            vector: 1.0,
        },
        ..request(q, json!(null), Some(e.embed_one(q)))
    };
    let ids = |r: ragspin_index::search::SearchResult| -> Vec<(i64, Option<f64>)> {
        r.hits
            .iter()
            .map(|h| (h.chunk_id, h.scores.vector))
            .collect()
    };
    let first = ids(block_on(search(&counting, &vector_only("topic3 word5"))).unwrap());
    assert!(!first.is_empty());
    assert_eq!(reads(), 1);
    // The same candidates again: scored from the instance, same result.
    let again = ids(block_on(search(&counting, &vector_only("topic3 word5"))).unwrap());
    assert_eq!(reads(), 1, "cached vectors were read again");
    assert_eq!(again, first);
    // A write bumps the generation: the vectors are read again.
    block_on(svc.ingest(
        "rescoring-cache",
        doc("b.txt", "topic3 word5 again".into()),
        Some(&e),
        u64::MAX,
    ))
    .unwrap();
    let after = ids(block_on(search(&counting, &vector_only("topic3 word5"))).unwrap());
    assert_eq!(reads(), 2);
    assert!(after.len() >= first.len());
}

/// [`search_version`] of `req` given `known` (or reading the FTS state
/// itself), with the statements it ran.
fn search_logged<'a>(
    sql: &'a SqliteSql,
    req: &SearchRequest,
    (version, generation): (i64, i64),
    known: Option<&FtsState>,
) -> (ragspin_index::search::SearchResult, Statements<'a>) {
    let log = Statements::new(sql);
    let result = block_on(search_version(&log, req, version, generation, known)).unwrap();
    (result, log)
}

#[test]
fn a_search_given_the_fts_state_reads_it_no_more_and_ranks_the_same() {
    let (sql, e) = reviews_index();
    let state = |sql: &SqliteSql| {
        let rows = block_on(sql.query(FTS_STATE_ROWS, &[])).unwrap();
        FtsState::from_rows(rows.rows.iter().map(|r| r.0.as_slice()))
    };
    let version = block_on(active_version(&sql, "reviews")).unwrap();
    for (q, filter) in [
        ("budget phone battery", json!(null)),
        ("wireless headphones", json!({"rating": {"gte": 4}})),
    ] {
        let req = request(q, filter, Some(e.embed_one(q)));
        let (expected, plain) = search_logged(&sql, &req, version, None);
        let known = state(&sql);
        let (got, given) = search_logged(&sql, &req, version, Some(&known));
        assert_eq!(got.hits, expected.hits, "{q}");
        assert!(!got.hits.is_empty());
        // The state's own read (word counts may still be read with it
        // when another test's database took the per-process term cache).
        let own = |s: &Statements| {
            s.log
                .borrow()
                .iter()
                .filter(|x| *x == FTS_STATE_ROWS)
                .count()
        };
        assert_eq!(own(&plain), 1, "{q}");
        assert_eq!(own(&given), 0, "{q}");
    }
}

#[test]
fn word_counts_read_with_the_fts_state_spare_the_search_its_count_statement() {
    let (sql, e) = reviews_index();
    let version = block_on(active_version(&sql, "reviews")).unwrap();
    for (q, filter) in [
        ("budget phone battery", json!(null)),
        ("wireless headphones", json!({"rating": {"gte": 4}})),
        ("no such words anywhere", json!(null)),
    ] {
        let req = request(q, filter, Some(e.embed_one(q)));
        // The search given the counts runs first: the per-process term
        // cache cannot have them from the plain search.
        let words = bm25_words(q);
        let rows = block_on(
            sql.query(
                &format!("{}{FTS_STATE_ROWS}", word_count_rows(words.len(), 1)),
                &words
                    .iter()
                    .map(|w| SqlValue::Text(w.clone()))
                    .collect::<Vec<_>>(),
            ),
        )
        .unwrap();
        let known = FtsState::from_rows(rows.rows.iter().map(|r| r.0.as_slice())).counting(&words);
        let (got, given) = search_logged(&sql, &req, version, Some(&known));
        let (expected, _) = search_logged(&sql, &req, version, None);
        assert_eq!(got.hits, expected.hits, "{q}");
        assert_eq!(given.count("rs_chunks_vocab"), 0, "{q}: {:?}", given.log);
        assert_eq!(given.count("rs_chunks_fts_data"), 0, "{q}");
    }
}

/// An index of `rows` one-line documents `text(k)`, as one CSV upload.
fn csv_index(
    svc: &IndexService<'_, SqliteSql, ManualClock>,
    name: &str,
    rows: usize,
    text: impl Fn(usize) -> String,
) {
    let mut settings = IndexSettings::default();
    settings.fields.text_fields = vec!["text".into()];
    block_on(svc.put_index(name, settings)).unwrap();
    let mut csv = String::from("text\n");
    for k in 0..rows {
        csv.push_str(&text(k));
        csv.push('\n');
    }
    let doc = NewDocument {
        filename: format!("{name}.csv"),
        content_type: Some("text/csv".into()),
        content: csv.into_bytes(),
        ..Default::default()
    };
    block_on(svc.ingest(name, doc, None::<&HashEmbedder>, u64::MAX)).unwrap();
}

fn bm25_ids(sql: &SqliteSql, index: &str, query: &str, top_k: usize) -> Vec<String> {
    let req = SearchRequest {
        index: index.into(),
        query: query.into(),
        top_k,
        filter: Filter::parse(&json!(null)).unwrap(),
        weights: Weights::default(),
        query_vector: None,
    };
    block_on(search(sql, &req))
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.text)
        .collect()
}

#[test]
fn words_no_row_holds_leave_the_match_and_words_with_diacritics_still_match() {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    // "widget" is in every row, "café" in two.
    csv_index(&svc, "shop", 40, |k| {
        let extra = if k % 20 == 3 { "café" } else { "plain" };
        format!("widget {k} {extra}")
    });
    // Only the common word can match: it is searched alone (before, the
    // absent word was kept as the rarest and nothing was found).
    let hits = bm25_ids(&sql, "shop", "widget zzyzx", 5);
    assert_eq!(hits.len(), 5, "{hits:?}");
    assert!(hits.iter().all(|h| h.contains("widget")), "{hits:?}");
    // An absent word beside a matching one changes nothing.
    assert_eq!(
        bm25_ids(&sql, "shop", "plain zzyzx widget", 10),
        bm25_ids(&sql, "shop", "plain widget", 10)
    );
    // FTS5 folds diacritics: "café" and "cafe" find the same two rows,
    // though the vocabulary counts only "cafe".
    for query in ["café", "cafe", "CAFÉ zzyzx"] {
        let hits = bm25_ids(&sql, "shop", query, 5);
        assert_eq!(hits.len(), 2, "{query}: {hits:?}");
        assert!(hits.iter().all(|h| h.contains("café")), "{query}: {hits:?}");
    }
    assert!(bm25_ids(&sql, "shop", "zzyzx qqq", 5).is_empty());
}

#[test]
fn a_term_in_most_chunks_does_not_change_the_bm25_ranking() {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    // "widget" is in every row; "blue" in every 10th, "heavy" in every 7th.
    csv_index(&svc, "catalogue", 300, |k| {
        let colour = if k % 10 == 0 { "blue" } else { "grey" };
        let weight = if k % 7 == 0 { "heavy" } else { "light" };
        format!("widget {k} is {colour} and {weight}")
    });
    let with_common = bm25_ids(&sql, "catalogue", "widget blue heavy", 5);
    let without = bm25_ids(&sql, "catalogue", "blue heavy", 5);
    assert_eq!(with_common, without);
    assert!(with_common[0].contains("blue") && with_common[0].contains("heavy"));
    // A query of common words only still finds something.
    assert_eq!(bm25_ids(&sql, "catalogue", "widget", 3).len(), 3);
}

#[test]
fn bm25_finds_this_indexs_chunks_when_another_index_outranks_them() {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    // The shared FTS table's best "falcon" matches all belong to `loud`.
    csv_index(&svc, "loud", 200, |k| format!("falcon falcon falcon {k}"));
    csv_index(&svc, "quiet", 50, |k| {
        format!("a note {k} that mentions a falcon once among many other words")
    });
    let hits = bm25_ids(&sql, "quiet", "falcon", 10);
    assert_eq!(hits.len(), 10, "{hits:?}");
    assert!(hits.iter().all(|h| h.contains("note")), "{hits:?}");
}

#[test]
fn a_database_at_schema_1_is_upgraded_and_searches() {
    use ragspin_core::Sql;
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    csv_index(&svc, "old", 20, |k| format!("an old row {k} about otters"));
    // As a release with only migration 1 left it.
    for statement in [
        "DROP TABLE rs_chunks_vocab",
        "DROP TABLE rs_embeddings",
        "CREATE TABLE rs_embedding_cache (model TEXT NOT NULL, dimensions INTEGER NOT NULL,
            content_hash TEXT NOT NULL, vector BLOB NOT NULL, created_at INTEGER NOT NULL,
            PRIMARY KEY (model, dimensions, content_hash)) WITHOUT ROWID",
        "DELETE FROM rs_schema WHERE version > 1",
    ] {
        block_on(sql.execute(statement, &[])).unwrap();
    }
    assert!(
        block_on(search(
            &sql,
            &SearchRequest {
                index: "old".into(),
                query: "otters".into(),
                top_k: 3,
                filter: Filter::parse(&json!(null)).unwrap(),
                weights: Weights::default(),
                query_vector: None,
            }
        ))
        .is_err()
    );
    block_on(svc.migrate()).unwrap();
    assert_eq!(bm25_ids(&sql, "old", "otters row", 3).len(), 3);
}

/// Every match scored by FTS5, this index only: the reference MaxScore must equal.
fn bm25_reference(sql: &SqliteSql, index: &str, words: &[&str], limit: usize) -> Vec<(i64, f64)> {
    let q = words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" OR ");
    let rows = block_on(sql.query(
        "SELECT c.id, -bm25(rs_chunks_fts) AS score FROM rs_chunks_fts
         JOIN rs_chunks c ON c.id = rs_chunks_fts.rowid
         WHERE rs_chunks_fts MATCH ?1 AND c.index_name = ?2 AND c.version = 1
         ORDER BY score DESC, c.id LIMIT ?3",
        &[
            SqlValue::Text(q),
            SqlValue::Text(index.into()),
            SqlValue::Integer(limit as i64),
        ],
    ))
    .unwrap();
    rows.rows
        .iter()
        .map(|r| match (&r.0[0], &r.0[1]) {
            (SqlValue::Integer(id), SqlValue::Real(s)) => (*id, *s),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn bm25_max_score_equals_scoring_every_match_or_declines() {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    // Varied lengths and term frequencies: "alpha" in 40% of rows, "beta"
    // in 20%, "gamma" in 2%, "delta" in 2 rows.
    csv_index(&svc, "shop", 400, |k| {
        let mut words = vec![format!("item{k}")];
        if k % 5 < 2 {
            words.extend(std::iter::repeat_n("alpha".to_string(), 1 + k % 3));
        }
        if k % 5 == 2 {
            words.push("beta".into());
        }
        if k % 50 == 7 {
            words.extend(std::iter::repeat_n("gamma".to_string(), 1 + k % 4));
        }
        if k == 11 || k == 300 {
            words.push("delta".into());
        }
        words.extend(std::iter::repeat_n("filler".to_string(), k % 13));
        words.join(" ")
    });
    // Another index whose rows outrank this one's on "gamma".
    csv_index(&svc, "other", 10, |k| {
        format!("gamma gamma gamma alpha {k}")
    });
    let limit = 5;
    for query in [
        &["alpha", "gamma"][..],
        &["alpha", "beta", "gamma"],
        &["beta", "gamma", "item7"],
    ] {
        let words: Vec<String> = query.iter().map(|w| w.to_string()).collect();
        let (df, total) = block_on(ragspin_index::search::term_stats(&sql, &words)).unwrap();
        let filter = Filter::parse(&json!(null)).unwrap();
        let got = block_on(ragspin_index::search::bm25_max_score(
            &sql,
            "shop",
            1,
            &words,
            (&df, total),
            &filter,
            limit,
        ))
        .unwrap()
        .unwrap_or_else(|| panic!("{query:?}: MaxScore should prove this top {limit}"));
        let want = bm25_reference(&sql, "shop", query, limit);
        assert_eq!(got.len(), want.len(), "{query:?}");
        for ((gid, gs), (wid, ws)) in got.iter().zip(&want) {
            assert_eq!(gid, wid, "{query:?}: {got:?} vs {want:?}");
            assert!((gs - ws).abs() < 1e-9, "{query:?}");
        }
    }
    // With a metadata filter (its parameters follow the query's): the same
    // as scoring every match that passes it.
    let mut settings = IndexSettings::default();
    settings.fields.text_fields = vec!["text".into()];
    settings.fields.metadata_fields = vec!["group".into()];
    block_on(svc.put_index("grouped", settings)).unwrap();
    let mut csv = String::from("text,group\n");
    for k in 0..300 {
        let alpha = vec!["alpha"; 1 + k % 3].join(" ");
        let omega = if k % 50 < 3 { "omega" } else { "" };
        let filler = vec!["filler"; k % 11].join(" ");
        csv.push_str(&format!("item{k} {alpha} {omega} {filler},{}\n", k % 2));
    }
    let doc = NewDocument {
        filename: "grouped.csv".into(),
        content_type: Some("text/csv".into()),
        content: csv.into_bytes(),
        ..Default::default()
    };
    block_on(svc.ingest("grouped", doc, None::<&HashEmbedder>, u64::MAX)).unwrap();
    let words: Vec<String> = ["alpha", "omega"].iter().map(|w| w.to_string()).collect();
    let (df, total) = block_on(ragspin_index::search::term_stats(&sql, &words)).unwrap();
    let filter = Filter::parse(&json!({"group": 1})).unwrap();
    let got = block_on(ragspin_index::search::bm25_max_score(
        &sql,
        "grouped",
        1,
        &words,
        (&df, total),
        &filter,
        limit,
    ))
    .unwrap()
    .expect("MaxScore proves the filtered top 5");
    let rows = block_on(sql.query(
        "SELECT c.id, -bm25(rs_chunks_fts) AS score FROM rs_chunks_fts
         JOIN rs_chunks c ON c.id = rs_chunks_fts.rowid
         WHERE rs_chunks_fts MATCH '\"alpha\" OR \"omega\"' AND c.index_name = 'grouped'
           AND c.version = 1 AND json_extract(c.metadata, '$.group') = 1
         ORDER BY score DESC, c.id LIMIT 5",
        &[],
    ))
    .unwrap();
    let want: Vec<(i64, f64)> = rows
        .rows
        .iter()
        .map(|r| match (&r.0[0], &r.0[1]) {
            (SqlValue::Integer(id), SqlValue::Real(s)) => (*id, *s),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for ((gid, gs), (wid, ws)) in got.iter().zip(&want) {
        assert_eq!(gid, wid, "filtered: {got:?} vs {want:?}");
        assert!((gs - ws).abs() < 1e-9, "filtered: {got:?} vs {want:?}");
    }
    // Too few rows hold the rare word: not provable, so it declines.
    let words: Vec<String> = ["alpha", "delta"].iter().map(|w| w.to_string()).collect();
    let (df, total) = block_on(ragspin_index::search::term_stats(&sql, &words)).unwrap();
    let filter = Filter::parse(&json!(null)).unwrap();
    let declined = block_on(ragspin_index::search::bm25_max_score(
        &sql,
        "shop",
        1,
        &words,
        (&df, total),
        &filter,
        limit,
    ))
    .unwrap();
    assert!(declined.is_none(), "{declined:?}");
    // And search still answers it, the rows holding "delta" first.
    let hits = bm25_ids(&sql, "shop", "alpha delta", limit);
    assert!(
        hits[0].contains("delta") && hits[1].contains("delta"),
        "{hits:?}"
    );
}

#[test]
fn term_stats_count_fts_rows_from_the_averages_record() {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    let rows = |sql: &SqliteSql| match &block_on(
        sql.query("SELECT count(*) FROM rs_chunks_fts_docsize", &[]),
    )
    .unwrap()
    .rows[0]
        .0[0]
    {
        SqlValue::Integer(n) => *n,
        other => panic!("{other:?}"),
    };
    let words = vec!["otter".to_string(), "nothing".to_string()];
    assert_eq!(
        block_on(ragspin_index::search::term_stats(&sql, &words))
            .unwrap()
            .1,
        0
    );
    csv_index(&svc, "a", 300, |k| format!("otter {k}"));
    csv_index(&svc, "b", 40, |k| format!("badger {k}"));
    let (df, total) = block_on(ragspin_index::search::term_stats(&sql, &words)).unwrap();
    assert_eq!(total, 340);
    assert_eq!(total, rows(&sql));
    assert_eq!(df.get("otter"), Some(&300));
    assert_eq!(df.get("nothing"), None);
    block_on(svc.delete_index("a")).unwrap();
    let (_, total) = block_on(ragspin_index::search::term_stats(&sql, &words)).unwrap();
    assert_eq!(total, 40);
    assert_eq!(total, rows(&sql));
}

/// Word counts are cached per instance under the FTS structure record and
/// the database id (#4): every write must be seen, and two databases with
/// the same layout but different words must not share counts.
#[test]
fn cached_term_stats_follow_every_write_and_never_cross_databases() {
    let clock = ManualClock::new(1_700_000_000_000);
    let stats = |sql: &SqliteSql, words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        block_on(ragspin_index::search::term_stats(sql, &words)).unwrap()
    };
    let (one, two) = (SqliteSql::new().unwrap(), SqliteSql::new().unwrap());
    let (svc1, svc2) = (
        IndexService::new(&one, &clock),
        IndexService::new(&two, &clock),
    );
    block_on(svc1.migrate()).unwrap();
    block_on(svc2.migrate()).unwrap();
    // Same row count, same token counts, different words.
    csv_index(&svc1, "a", 50, |k| format!("otter {k}"));
    csv_index(&svc2, "a", 50, |k| format!("beaver {k}"));
    for _ in 0..2 {
        let (df, total) = stats(&one, &["otter", "beaver"]);
        assert_eq!(
            (df.get("otter"), df.get("beaver"), total),
            (Some(&50), None, 50)
        );
        let (df, total) = stats(&two, &["otter", "beaver"]);
        assert_eq!(
            (df.get("otter"), df.get("beaver"), total),
            (None, Some(&50), 50)
        );
    }
    // A write to the same database: new rows, then a document removed.
    csv_index(&svc1, "b", 20, |k| format!("otter beaver {k}"));
    let (df, total) = stats(&one, &["otter", "beaver"]);
    assert_eq!(
        (df.get("otter"), df.get("beaver"), total),
        (Some(&70), Some(&20), 70)
    );
    block_on(svc1.delete_index("a")).unwrap();
    let (df, total) = stats(&one, &["beaver", "otter"]);
    assert_eq!(
        (df.get("otter"), df.get("beaver"), total),
        (Some(&20), Some(&20), 20)
    );
    // A cached word and a new one together.
    let (df, _) = stats(&one, &["otter", "7"]);
    assert_eq!((df.get("otter"), df.get("7")), (Some(&20), Some(&1)));
    // A database the ingest side has not migrated to schema 5 yet (no
    // `rs_meta`) is counted without the cache.
    block_on(one.execute("DROP TABLE rs_meta", &[])).unwrap();
    let (df, total) = stats(&one, &["otter", "beaver"]);
    assert_eq!(
        (df.get("otter"), df.get("beaver"), total),
        (Some(&20), Some(&20), 20)
    );
}
