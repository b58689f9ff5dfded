//! Inverted lists (`ragspin_index::lists`) through the index service on real
//! SQLite: a version is partitioned when it grows past the threshold
//! (lowered here), later writes land in their nearest list, deletes and
//! compaction keep every vector in its list, a version twice its trained
//! size is partitioned again, and search finds the vectors throughout.

use std::collections::HashMap;

use futures::executor::block_on;
use ragspin_core::{Embedder, Embedding, Result, Sql, SqlValue};
use ragspin_index::lists::{Lists, block_key, list_count};
use ragspin_index::search::{Filter, SearchRequest, Weights, search};
use ragspin_index::vectors::decode_stored;
use ragspin_index::{IndexService, IndexSettings, NewDocument};
use ragspin_testkit::{ManualClock, SqliteSql};
use serde_json::json;

const DIMS: usize = 64;
const TOPICS: usize = 12;

/// Deterministic pseudo-random numbers in [-1, 1) (xorshift).
fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Vectors clustered by topic: a row's text starts with `t<topic> ` and the
/// rest of the text seeds its noise, so the same text always embeds the same.
struct TopicEmbedder;

impl Embedder for TopicEmbedder {
    fn model(&self) -> &str {
        "topics"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        Ok(texts.iter().map(|t| topic_vector(t)).collect())
    }
}

fn topic_vector(text: &str) -> Vec<f32> {
    let topic: u64 = text
        .trim_start_matches('t')
        .split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let centre = noise(1000 + topic, DIMS);
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let v: Vec<f32> = centre
        .iter()
        .zip(noise(seed, DIMS))
        .map(|(c, n)| c + 0.5 * n)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// A CSV document of `rows` rows, one chunk each, spread over the topics.
fn rows_doc(name: &str, first: usize, rows: usize) -> NewDocument {
    let mut csv = String::from("text,topic\n");
    for k in first..first + rows {
        let topic = k % TOPICS;
        csv.push_str(&format!(
            "t{topic} item {k} about subject {topic},{topic}\n"
        ));
    }
    NewDocument {
        filename: name.into(),
        content_type: Some("text/csv".into()),
        content: csv.into_bytes(),
        ..Default::default()
    }
}

struct World {
    sql: SqliteSql,
    clock: ManualClock,
}

/// Partitioning starts at this many vectors in these tests.
const MIN: usize = 200;

impl World {
    fn new() -> Self {
        let w = Self {
            sql: SqliteSql::new().unwrap(),
            clock: ManualClock::new(1_700_000_000_000),
        };
        let mut settings = IndexSettings::default();
        settings.fields.text_fields = vec!["text".into()];
        settings.fields.metadata_fields = vec!["topic".into()];
        block_on(async {
            w.svc().migrate().await.unwrap();
            w.svc().put_index("docs", settings).await.unwrap();
        });
        w
    }
    fn svc(&self) -> IndexService<'_, SqliteSql, ManualClock> {
        IndexService::new(&self.sql, &self.clock).partition_at(MIN)
    }
    fn ingest(&self, doc: NewDocument) -> String {
        block_on(
            self.svc()
                .ingest("docs", doc, Some(&TopicEmbedder), u64::MAX),
        )
        .unwrap()
        .document
        .id
    }
    fn lists(&self) -> Option<Lists> {
        block_on(self.svc().load_lists("docs", 1)).unwrap()
    }
    /// Every stored chunk vector, by chunk id.
    fn vectors(&self) -> HashMap<i64, Vec<f32>> {
        let rows = block_on(
            self.sql
                .query("SELECT id, vector FROM rs_chunk_vectors", &[]),
        )
        .unwrap();
        rows.rows
            .iter()
            .map(|r| match (&r.0[0], &r.0[1]) {
                (SqlValue::Integer(id), SqlValue::Blob(b)) => {
                    (*id, decode_stored(b, b.len() / 2).expect("f16"))
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }
    /// Checks that every live vector sits in exactly one block, of the list
    /// its floats are assigned to (key 0 when not partitioned), and returns how
    /// many vectors and tombstones the blocks hold.
    fn check_blocks(&self) -> (usize, usize) {
        let lists = self.lists();
        let vectors = self.vectors();
        let blocks = block_on(self.svc().load_blocks("docs", 1)).unwrap();
        let mut seen = HashMap::new();
        let mut tombstones = 0;
        for (no, block) in &blocks {
            for id in &block.ids {
                if *id == 0 {
                    tombstones += 1;
                    continue;
                }
                let v = &vectors[id];
                let want = lists.as_ref().map_or(0, |l| l.assign(v) as i64 + 1);
                assert_eq!(block_key(*no), want, "chunk {id} in block {no}");
                assert!(seen.insert(*id, *no).is_none(), "chunk {id} twice");
            }
        }
        assert_eq!(seen.len(), vectors.len(), "every vector in a block");
        (seen.len(), tombstones)
    }
    /// Share of stored vectors that, searched for themselves (vector only,
    /// no filter), come back first.
    fn self_hits(&self) -> f64 {
        let vectors = self.vectors();
        let mut found = 0;
        for (id, v) in &vectors {
            let hits = self.search(v.clone(), json!(null));
            found += usize::from(hits.first() == Some(id));
        }
        found as f64 / vectors.len() as f64
    }
    fn search(&self, vector: Vec<f32>, filter: serde_json::Value) -> Vec<i64> {
        let req = SearchRequest {
            index: "docs".into(),
            query: "item".into(),
            top_k: 10,
            filter: Filter::parse(&filter).unwrap(),
            weights: Weights {
                bm25: 0.0,
                vector: 1.0,
            },
            query_vector: Some(vector),
        };
        block_on(search(&self.sql, &req))
            .unwrap()
            .hits
            .iter()
            .map(|h| h.chunk_id)
            .collect()
    }
}

#[test]
fn a_growing_version_is_partitioned_and_every_vector_stays_in_its_nearest_list() {
    let w = World::new();
    let first = w.ingest(rows_doc("a.csv", 0, 150));
    assert!(
        w.lists().is_none(),
        "below the threshold: one flat sequence"
    );
    assert_eq!(w.check_blocks(), (150, 0));

    // Past the threshold: partitioned, about √n lists.
    w.ingest(rows_doc("b.csv", 150, 100));
    let lists = w.lists().expect("partitioned");
    assert_eq!(lists.trained, 250);
    assert_eq!(lists.len(), list_count(250));
    assert_eq!(w.check_blocks(), (250, 0));
    assert!(w.self_hits() >= 0.9, "{}", w.self_hits());

    // Later writes go to their nearest list; no retraining below 2×.
    w.ingest(rows_doc("c.csv", 250, 100));
    assert_eq!(w.lists().unwrap(), lists);
    assert_eq!(w.check_blocks(), (350, 0));

    // A delete tombstones (too few slots to compact yet).
    block_on(w.svc().delete_document("docs", &first)).unwrap();
    assert_eq!(w.lists().unwrap(), lists);
    assert_eq!(w.check_blocks(), (200, 150));
    assert!(w.self_hits() >= 0.9, "{}", w.self_hits());

    // Twice the trained size in slots: partitioned again from the live
    // vectors only, with more lists.
    let fourth = w.ingest(rows_doc("d.csv", 350, 300));
    let again = w.lists().unwrap();
    assert_eq!(again.trained, 500);
    assert_eq!(again.len(), list_count(500));
    assert_eq!(w.check_blocks(), (500, 0));
    assert!(w.self_hits() >= 0.9, "{}", w.self_hits());

    // Past 1,024 slots, deleting more than a quarter compacts every list
    // in place.
    w.ingest(rows_doc("e.csv", 650, 600));
    let lists = w.lists().unwrap();
    assert_eq!(lists.trained, 1100);
    block_on(w.svc().delete_document("docs", &fourth)).unwrap();
    assert_eq!(w.lists().unwrap(), lists);
    assert_eq!(w.check_blocks(), (800, 0));
    assert!(w.self_hits() >= 0.9, "{}", w.self_hits());

    // Deleting the index removes its lists.
    block_on(w.svc().delete_index("docs")).unwrap();
    let left = block_on(w.sql.query("SELECT count(*) FROM rs_vector_lists", &[])).unwrap();
    assert_eq!(left.rows[0].0[0], SqlValue::Integer(0));
}

#[test]
fn a_filtered_search_reads_every_list() {
    let w = World::new();
    w.ingest(rows_doc("a.csv", 0, 300));
    assert!(w.lists().is_some());
    // A query from topic 3 filtered to topic 5: the probed lists hold
    // topic 3, so only reading every list finds the topic-5 rows.
    let query = topic_vector("t3 a question about subject 3");
    let hits = w.search(query, json!({"topic": 5}));
    assert_eq!(hits.len(), 10);
    let vectors = w.vectors();
    let rows = block_on(w.sql.query(
        "SELECT id FROM rs_chunks WHERE json_extract(metadata, '$.topic') = 5",
        &[],
    ))
    .unwrap();
    let topic5: Vec<i64> = rows
        .rows
        .iter()
        .map(|r| match r.0[0] {
            SqlValue::Integer(id) => id,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(topic5.len(), 25);
    assert!(hits.iter().all(|id| topic5.contains(id)), "{hits:?}");
    assert!(vectors.len() == 300);
}

#[test]
fn a_vector_of_other_dimensions_is_refused_once_partitioned() {
    let w = World::new();
    w.ingest(rows_doc("a.csv", 0, 250));
    assert!(w.lists().is_some());
    struct Wide;
    impl Embedder for Wide {
        fn model(&self) -> &str {
            "topics"
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
            Ok(texts.iter().map(|_| vec![0.5; DIMS * 2]).collect())
        }
    }
    let err =
        block_on(
            w.svc()
                .ingest("docs", rows_doc("wide.csv", 1000, 3), Some(&Wide), u64::MAX),
        )
        .unwrap_err();
    assert!(err.to_string().contains("dimensional"), "{err}");
    assert_eq!(w.check_blocks(), (250, 0));
}
