//! Offline evaluation of ragspin's retrieval and answers (issue 8).
//!
//! The compiled `ingest`, `auth` and `query` components run in the test host
//! (`ragspin-host`) against the fake Azure OpenAI server, which replays
//! embeddings recorded from a real sentence-embedding model
//! (`tests/fixtures/eval/minilm.json`: all-MiniLM-L6-v2, 384 dimensions) and
//! answers chat with its deterministic extractive stand-in. The evaluation
//! set (`tests/fixtures/eval/`: documents from Debian's manual pages and
//! docs, questions with gold evidence) is ingested through the HTTP API, then
//! every question is asked:
//!
//! * `POST /v1/search` (top 10) three times — BM25 only (`weights
//!   {bm25: 1, vector: 0}`), vectors only (`{bm25: 0, vector: 1}`) and hybrid
//!   (the default weights) — scored by recall@1/5/10, MRR and nDCG@10
//!   ([`metrics`]);
//! * `POST /v1/query` (hybrid, the default top 5): citation precision (the
//!   cited source holds the supporting sentence, and so does the document),
//!   whether a relevant chunk was cited, expected keywords in the answer, and
//!   whether unanswerable questions are declined without a citation.
//!
//! Run it with `make eval` (the table) or `cargo test -p ragspin-eval` (the
//! thresholds, `tests/thresholds.rs`). How to change the set and re-record
//! the embeddings: `tests/fixtures/eval/README.md`; results: `EVALUATION.md`.

pub mod metrics;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use ragspin_docs::{ChunkSettings, FieldMapping, Format};
use ragspin_fake_azure::{FakeAzure, FakeOptions, OnMiss, Recording};
use ragspin_host::{HostOptions, RunningHost};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use metrics::{Gold, Ranked, Scores, Tally, normalise};

/// The repository root.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.join("../.."), Path::to_path_buf)
}

/// `tests/fixtures/eval`.
pub fn default_set_dir() -> PathBuf {
    repo_root().join("tests/fixtures/eval")
}

/// The committed recording, relative to the set's folder.
pub const DEFAULT_RECORDING: &str = "minilm.json";

/// The index the evaluation creates.
const INDEX: &str = "eval";

/// What a question tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Uses the document's own terms.
    Exact,
    /// Shares few words with the answer.
    Paraphrase,
    /// Answered by a table row.
    Table,
    /// Answered by a command or code example.
    Code,
    /// Not answered by the corpus.
    Unanswerable,
}

impl Kind {
    /// The kinds with an answer in the corpus.
    pub const ANSWERABLE: [Kind; 4] = [Kind::Exact, Kind::Paraphrase, Kind::Table, Kind::Code];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Exact => "exact",
            Kind::Paraphrase => "paraphrase",
            Kind::Table => "table",
            Kind::Code => "code",
            Kind::Unanswerable => "unanswerable",
        }
    }
}

/// One question of the set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub id: String,
    pub kind: Kind,
    pub question: String,
    /// The document (file name) that answers it; none when unanswerable.
    #[serde(default)]
    pub doc: Option<String>,
    /// Strings of that document that answer it, each on its own (a chunk
    /// holding one is relevant).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Words the answer must contain.
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    #[serde(default)]
    #[allow(dead_code)]
    about: String,
    index: Value,
    questions: Vec<Question>,
}

/// A document of the corpus with the chunks the ingest will make of it.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file name, also its document id.
    pub id: String,
    pub content: String,
    /// Chunk texts (the chunker run natively with the set's settings).
    pub chunks: Vec<String>,
}

/// The evaluation set: documents, questions and the index settings.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub dir: PathBuf,
    /// `PUT /v1/indexes/eval` body (without the embedding deployment).
    pub index_settings: Value,
    pub chunking: ChunkSettings,
    pub documents: Vec<Document>,
    pub questions: Vec<Question>,
    golds: HashMap<String, Gold>,
}

impl EvalSet {
    /// Read `dir/questions.json` and `dir/docs/*`, chunk the documents and
    /// check every question's evidence lies inside one chunk of its document.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("questions.json");
        let file: SetFile = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let chunking: ChunkSettings = match file.index.get("chunking") {
            Some(v) => serde_json::from_value(v.clone()).context("index.chunking")?,
            None => ChunkSettings::default(),
        };
        chunking
            .validate()
            .map_err(|e| anyhow!("index.chunking: {e}"))?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("docs"))
            .with_context(|| format!("listing {}/docs", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        let mut documents = Vec::new();
        for path in names {
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .context("document file name")?
                .to_owned();
            let content = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let format = Format::detect(None, &id).map_err(|e| anyhow!("{id}: {e}"))?;
            let parsed = ragspin_docs::parse(content.as_bytes(), format, &FieldMapping::default())
                .map_err(|e| anyhow!("{id}: {e}"))?;
            let chunks = ragspin_docs::chunk(&parsed, &chunking)
                .into_iter()
                .map(|c| c.text)
                .collect();
            documents.push(Document {
                id,
                content,
                chunks,
            });
        }
        let mut golds = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for q in &file.questions {
            ensure!(!q.question.trim().is_empty(), "{}: empty question", q.id);
            ensure!(seen.insert(q.id.as_str()), "{}: duplicate id", q.id);
            if q.kind == Kind::Unanswerable {
                ensure!(
                    q.doc.is_none() && q.evidence.is_empty() && q.keywords.is_empty(),
                    "{}: an unanswerable question has no doc, evidence or keywords",
                    q.id
                );
                continue;
            }
            let doc_id = q
                .doc
                .as_deref()
                .with_context(|| format!("{}: no doc", q.id))?;
            let doc = documents
                .iter()
                .find(|d| d.id == doc_id)
                .with_context(|| format!("{}: no document {doc_id:?}", q.id))?;
            ensure!(!q.evidence.is_empty(), "{}: no evidence", q.id);
            let chunks: Vec<String> = doc.chunks.iter().map(|c| normalise(c)).collect();
            let evidence: Vec<String> = q.evidence.iter().map(|e| normalise(e)).collect();
            for e in &evidence {
                ensure!(
                    chunks.iter().any(|c| c.contains(e.as_str())),
                    "{}: evidence {e:?} is in no chunk of {doc_id} (split by the chunker, or a typo)",
                    q.id
                );
            }
            let relevant_chunks = chunks
                .iter()
                .filter(|c| evidence.iter().any(|e| c.contains(e.as_str())))
                .count();
            golds.insert(
                q.id.clone(),
                Gold {
                    document: doc_id.to_owned(),
                    evidence,
                    relevant_chunks,
                },
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index_settings: file.index,
            chunking,
            documents,
            questions: file.questions,
            golds,
        })
    }

    /// Chunks over all documents.
    pub fn chunk_count(&self) -> usize {
        self.documents.iter().map(|d| d.chunks.len()).sum()
    }

    /// What answers `question` (`None` when unanswerable).
    pub fn gold(&self, question: &Question) -> Option<&Gold> {
        self.golds.get(&question.id)
    }

    fn document(&self, id: &str) -> Option<&Document> {
        self.documents.iter().find(|d| d.id == id)
    }
}

/// Scores of one retrieval mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// `bm25`, `vector` or `hybrid`.
    pub mode: String,
    pub all: Scores,
    pub by_kind: BTreeMap<String, Scores>,
}

/// What `/v1/query` answered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnswerReport {
    /// Citations over all answers.
    pub citations: usize,
    /// Citations whose cited source (and document) contains the snippet.
    pub precise_citations: usize,
    pub answerable: usize,
    /// Answerable questions whose answer holds every expected keyword.
    pub keywords_present: usize,
    /// Answerable questions with a citation of a relevant chunk.
    pub cited_relevant: usize,
    /// Answerable questions declined (should be none).
    pub answerable_declined: usize,
    pub unanswerable: usize,
    /// Unanswerable questions declined with no citation.
    pub unanswerable_declined: usize,
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl AnswerReport {
    pub fn citation_precision(&self) -> f64 {
        ratio(self.precise_citations, self.citations)
    }
    pub fn keyword_rate(&self) -> f64 {
        ratio(self.keywords_present, self.answerable)
    }
    pub fn cited_relevant_rate(&self) -> f64 {
        ratio(self.cited_relevant, self.answerable)
    }
    pub fn unanswerable_declined_rate(&self) -> f64 {
        ratio(self.unanswerable_declined, self.unanswerable)
    }
}

/// Range and mean of the best vector score, answerable vs unanswerable.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BestScores {
    pub answerable_min: f64,
    pub answerable_mean: f64,
    pub unanswerable_mean: f64,
    pub unanswerable_max: f64,
    /// Answerable questions whose best score is at most `unanswerable_max`.
    pub answerable_at_or_below_unanswerable_max: usize,
}

impl BestScores {
    fn of(scores: &[(bool, f64)]) -> Self {
        let pick = |answerable: bool| -> Vec<f64> {
            scores
                .iter()
                .filter(|(a, _)| *a == answerable)
                .map(|(_, s)| *s)
                .collect()
        };
        let (yes, no) = (pick(true), pick(false));
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let unanswerable_max = no.iter().copied().fold(f64::MIN, f64::max).max(0.0);
        Self {
            answerable_min: yes.iter().copied().fold(f64::MAX, f64::min).min(1.0),
            answerable_mean: mean(&yes),
            unanswerable_mean: mean(&no),
            unanswerable_max,
            answerable_at_or_below_unanswerable_max: yes
                .iter()
                .filter(|s| **s <= unanswerable_max)
                .count(),
        }
    }
}

/// Everything one evaluation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub documents: usize,
    pub chunks: usize,
    pub chunk_max_tokens: usize,
    pub chunk_overlap_tokens: usize,
    pub questions: usize,
    pub questions_by_kind: BTreeMap<String, usize>,
    pub embedding_model: String,
    pub embedding_deployment: String,
    pub dimensions: usize,
    pub recording: String,
    pub recorded_vectors: usize,
    /// Texts asked of the recording that it lacks (must be 0).
    pub recording_misses: u64,
    pub retrieval: Vec<ModeReport>,
    pub answers: AnswerReport,
    /// The best hit's cosine similarity per question (vector-only search):
    /// how far a score threshold could tell unanswerable questions apart.
    pub best_vector_score: BestScores,
    /// One line per question that missed something (for `--verbose`).
    pub details: Vec<String>,
}

impl Report {
    /// The scores of `mode` (`bm25`, `vector`, `hybrid`).
    pub fn mode(&self, mode: &str) -> &ModeReport {
        self.retrieval
            .iter()
            .find(|m| m.mode == mode)
            .unwrap_or_else(|| panic!("no mode {mode}"))
    }

    /// The printed table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let kinds: Vec<String> = self
            .questions_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        _ = writeln!(
            s,
            "corpus: {} documents, {} chunks (max {} tokens, overlap {}); {} questions ({})",
            self.documents,
            self.chunks,
            self.chunk_max_tokens,
            self.chunk_overlap_tokens,
            self.questions,
            kinds.join(", ")
        );
        _ = writeln!(
            s,
            "embeddings: {} ({} dimensions, deployment {}), {} vectors replayed from {}, {} misses",
            self.embedding_model,
            self.dimensions,
            self.embedding_deployment,
            self.recorded_vectors,
            self.recording,
            self.recording_misses
        );
        _ = writeln!(s, "chat: the fake's deterministic extractive stand-in");
        _ = writeln!(s);
        _ = writeln!(
            s,
            "retrieval: POST /v1/search, top 10, answerable questions"
        );
        _ = writeln!(
            s,
            "{:<8} {:>9} {:>9} {:>10} {:>7} {:>8}",
            "mode", "recall@1", "recall@5", "recall@10", "MRR", "nDCG@10"
        );
        for m in &self.retrieval {
            let a = &m.all;
            _ = writeln!(
                s,
                "{:<8} {:>9.3} {:>9.3} {:>10.3} {:>7.3} {:>8.3}",
                m.mode, a.recall_at_1, a.recall_at_5, a.recall_at_10, a.mrr, a.ndcg_at_10
            );
        }
        _ = writeln!(s);
        _ = writeln!(s, "recall@5 / MRR by kind");
        let header: Vec<String> = self
            .retrieval
            .iter()
            .map(|m| format!("{:>16}", m.mode))
            .collect();
        _ = writeln!(s, "{:<16}{}", "kind", header.join(""));
        for kind in Kind::ANSWERABLE {
            let n = self
                .questions_by_kind
                .get(kind.name())
                .copied()
                .unwrap_or(0);
            let cells: Vec<String> = self
                .retrieval
                .iter()
                .map(|m| {
                    let k = m.by_kind.get(kind.name()).copied().unwrap_or_default();
                    format!("{:>16}", format!("{:.3} / {:.3}", k.recall_at_5, k.mrr))
                })
                .collect();
            _ = writeln!(
                s,
                "{:<16}{}",
                format!("{} ({n})", kind.name()),
                cells.join("")
            );
        }
        let a = &self.answers;
        _ = writeln!(s);
        _ = writeln!(s, "answers: POST /v1/query, hybrid, top 5");
        let line = |s: &mut String, label: &str, n: usize, d: usize| {
            _ = writeln!(
                s,
                "{label:<58} {:>8} {:>6.3}",
                format!("{n}/{d}"),
                ratio(n, d)
            );
        };
        line(
            &mut s,
            "citation precision (source and document hold the snippet)",
            a.precise_citations,
            a.citations,
        );
        line(
            &mut s,
            "answerable: cited a relevant chunk",
            a.cited_relevant,
            a.answerable,
        );
        line(
            &mut s,
            "answerable: expected keywords in the answer",
            a.keywords_present,
            a.answerable,
        );
        line(
            &mut s,
            "answerable: declined (lower is better)",
            a.answerable_declined,
            a.answerable,
        );
        line(
            &mut s,
            "unanswerable: declined with no citation",
            a.unanswerable_declined,
            a.unanswerable,
        );
        let b = &self.best_vector_score;
        _ = writeln!(s);
        _ = writeln!(
            s,
            "best vector score per question: answerable min {:.3} / mean {:.3}; \
             unanswerable mean {:.3} / max {:.3} ({} answerable at or below that max)",
            b.answerable_min,
            b.answerable_mean,
            b.unanswerable_mean,
            b.unanswerable_max,
            b.answerable_at_or_below_unanswerable_max
        );
        s
    }
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct Run {
    pub report: Report,
    /// Every text the fake was asked to embed (chunks and questions).
    pub embedded_texts: Vec<String>,
}

/// How to run the evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// [`OnMiss::Error`] to evaluate, [`OnMiss::Hashed`] to list the texts
    /// a new recording needs.
    pub on_miss: OnMiss,
    /// `(bm25, vector)` fusion weights of the hybrid mode; `None` = the
    /// app's defaults (what `/v1/search` and `/v1/query` use unasked).
    pub hybrid_weights: Option<(f64, f64)>,
}

/// Serve the components against the fake replaying `recording`, ingest the
/// set, ask every question.
pub fn run(set: &EvalSet, recording: Recording, options: RunOptions) -> Result<Run> {
    let on_miss = options.on_miss;
    // Retrieval modes and the weights that select them.
    let modes: [(&str, Option<(f64, f64)>); 3] = [
        ("bm25", Some((1.0, 0.0))),
        ("vector", Some((0.0, 1.0))),
        ("hybrid", options.hybrid_weights),
    ];
    let model = recording.model.clone();
    let deployment = recording.deployment.clone();
    let dimensions = recording.dimensions;
    let root = repo_root().display().to_string() + "/";
    let origin = recording
        .origin
        .strip_prefix(&root)
        .unwrap_or(&recording.origin)
        .to_owned();
    let recorded_vectors = recording.len();
    let fake = FakeAzure::start_with(
        FakeOptions {
            keep_inputs: true,
            on_recording_miss: on_miss,
            ..FakeOptions::default()
        }
        .with_recording(recording),
    )?;
    let api = Api::start(&fake, &deployment)?;

    let mut settings = set.index_settings.clone();
    settings["embedding_deployment"] = json!(deployment);
    let (status, body) = api.send("PUT", &format!("/v1/indexes/{INDEX}"), &settings)?;
    ensure!(status == 201, "creating the index: {status} {body}");
    for doc in &set.documents {
        let (status, body) = api.send(
            "POST",
            &format!("/v1/indexes/{INDEX}/documents"),
            &json!({"id": doc.id, "filename": doc.id, "content": doc.content}),
        )?;
        ensure!(status == 201, "ingesting {}: {status} {body}", doc.id);
        let chunks = body["document"]["chunks"].as_u64().unwrap_or(0) as usize;
        ensure!(
            chunks == doc.chunks.len(),
            "{}: the ingest made {chunks} chunks, the native chunker {}",
            doc.id,
            doc.chunks.len()
        );
    }

    let mut details = Vec::new();
    let mut retrieval = Vec::new();
    let mut best_vector_scores: Vec<(bool, f64)> = Vec::new();
    for (mode, weights) in modes {
        let mut all = Tally::default();
        let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
        for q in &set.questions {
            let gold = set.gold(q);
            if gold.is_none() && mode != "vector" {
                continue;
            }
            let mut body = json!({"index": INDEX, "query": q.question, "top_k": 10});
            if let Some((bm25, vector)) = weights {
                body["weights"] = json!({"bm25": bm25, "vector": vector});
            }
            let (status, answer) = api.send("POST", "/v1/search", &body)?;
            ensure!(status == 200, "{} search ({mode}): {status} {answer}", q.id);
            ensure!(
                answer["retrieval"]["mode"] == mode && answer["degraded"] == false,
                "{} search ({mode}): ran {} (degraded: {})",
                q.id,
                answer["retrieval"]["mode"],
                answer["retrieval"]["degraded_reason"]
            );
            if mode == "vector" {
                let best = answer["hits"][0]["scores"]["vector"]
                    .as_f64()
                    .unwrap_or(0.0);
                best_vector_scores.push((gold.is_some(), best));
            }
            let Some(gold) = gold else { continue };
            let hits: Vec<Ranked> = answer["hits"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|h| {
                    Ranked::new(
                        h["document_id"].as_str().unwrap_or_default(),
                        h["text"].as_str().unwrap_or_default(),
                    )
                })
                .collect();
            all.add(gold, &hits);
            by_kind
                .entry(q.kind.name().to_owned())
                .or_default()
                .add(gold, &hits);
            if metrics::recall_at(gold, &hits, 5) < 1.0 {
                let rank = hits.iter().position(|h| gold.is_relevant(h));
                details.push(format!(
                    "{mode:<6} {} ({}): answer not in the top 5 (rank {})",
                    q.id,
                    q.kind.name(),
                    rank.map_or("> 10".to_owned(), |r| (r + 1).to_string())
                ));
            }
        }
        retrieval.push(ModeReport {
            mode: mode.to_owned(),
            all: all.scores(),
            by_kind: by_kind.into_iter().map(|(k, t)| (k, t.scores())).collect(),
        });
    }

    let mut answers = AnswerReport::default();
    for q in &set.questions {
        let mut body = json!({"index": INDEX, "question": q.question});
        if let Some((bm25, vector)) = options.hybrid_weights {
            body["weights"] = json!({"bm25": bm25, "vector": vector});
        }
        let (status, a) = api.send("POST", "/v1/query", &body)?;
        ensure!(status == 200, "{} query: {status} {a}", q.id);
        ensure!(
            a["degraded"] == false,
            "{} query degraded: {}",
            q.id,
            a["degraded_reason"]
        );
        let text = a["answer"].as_str().unwrap_or_default();
        let sources: HashMap<i64, String> = a["sources"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s["chunk_id"].as_i64().unwrap_or(-1),
                    normalise(s["text"].as_str().unwrap_or_default()),
                )
            })
            .collect();
        let citations = a["citations"].as_array().cloned().unwrap_or_default();
        for c in &citations {
            answers.citations += 1;
            // Long snippets are cut at 400 bytes and end with "…".
            let snippet = normalise(
                c["snippet"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('…'),
            );
            let in_source = sources
                .get(&c["chunk_id"].as_i64().unwrap_or(-2))
                .is_some_and(|s| !snippet.is_empty() && s.contains(&snippet));
            let in_document = set
                .document(c["document_id"].as_str().unwrap_or_default())
                .is_some_and(|d| d.chunks.iter().any(|t| normalise(t).contains(&snippet)));
            if in_source && in_document {
                answers.precise_citations += 1;
            } else {
                details.push(format!(
                    "answer {}: citation [{}] of {} not supported by its source: {snippet:?}",
                    q.id, c["source"], c["document_id"]
                ));
            }
        }
        let lower = text.to_lowercase();
        let declined = citations.is_empty()
            && (a["found"] == false
                || lower.contains("i don't know")
                || lower.contains("do not contain"));
        match set.gold(q) {
            None => {
                answers.unanswerable += 1;
                if declined {
                    answers.unanswerable_declined += 1;
                } else {
                    details.push(format!(
                        "answer {} (unanswerable) not declined: {text:?}",
                        q.id
                    ));
                }
            }
            Some(gold) => {
                answers.answerable += 1;
                if declined {
                    answers.answerable_declined += 1;
                }
                let missing: Vec<&String> = q
                    .keywords
                    .iter()
                    .filter(|k| !lower.contains(&normalise(k)))
                    .collect();
                if missing.is_empty() {
                    answers.keywords_present += 1;
                }
                let relevant = citations.iter().any(|c| {
                    let source = sources
                        .get(&c["chunk_id"].as_i64().unwrap_or(-2))
                        .cloned()
                        .unwrap_or_default();
                    gold.is_relevant(&Ranked {
                        document: c["document_id"].as_str().unwrap_or_default().to_owned(),
                        text: source,
                    })
                });
                if relevant {
                    answers.cited_relevant += 1;
                }
                if !missing.is_empty() || !relevant || declined {
                    details.push(format!(
                        "answer {} ({}): relevant citation {relevant}, missing keywords {missing:?}: {text:?}",
                        q.id,
                        q.kind.name()
                    ));
                }
            }
        }
    }

    let stats = fake.stats();
    let mut questions_by_kind = BTreeMap::new();
    for q in &set.questions {
        *questions_by_kind
            .entry(q.kind.name().to_owned())
            .or_insert(0) += 1;
    }
    let report = Report {
        documents: set.documents.len(),
        chunks: set.chunk_count(),
        chunk_max_tokens: set.chunking.max_tokens,
        chunk_overlap_tokens: set.chunking.overlap_tokens,
        questions: set.questions.len(),
        questions_by_kind,
        embedding_model: model,
        embedding_deployment: deployment,
        dimensions,
        recording: origin,
        recorded_vectors,
        recording_misses: stats.recording_misses,
        retrieval,
        answers,
        best_vector_score: BestScores::of(&best_vector_scores),
        details,
    };
    Ok(Run {
        report,
        embedded_texts: fake.embedded_texts(),
    })
}

/// Load the set in `dir` and run it with `dir/minilm.json`; fails on a
/// recording miss.
pub fn evaluate_default() -> Result<Report> {
    let dir = default_set_dir();
    let set = EvalSet::load(&dir)?;
    let recording = Recording::load(dir.join(DEFAULT_RECORDING))?;
    Ok(run(&set, recording, RunOptions::default())?.report)
}

/// The app in the test host, logged in as the bootstrap admin.
struct Api {
    host: RunningHost,
    client: reqwest::blocking::Client,
    token: String,
}

const ADMIN_PASSWORD: &str = "eval-admin-password";

impl Api {
    fn start(fake: &FakeAzure, embedding_deployment: &str) -> Result<Self> {
        let root = repo_root();
        for component in ["ingest", "query", "auth"] {
            let wasm = root.join(format!("target/wasm32-wasip2/release/{component}.wasm"));
            if !wasm.exists() {
                bail!(
                    "{} is missing: build the components first (make wasm, or cargo build \
                     --target wasm32-wasip2 --release -p ragspin-query -p ragspin-ingest -p ragspin-auth)",
                    wasm.display()
                );
            }
        }
        let mut options = HostOptions::for_tests(root.join("spin.toml"))
            .admin(ADMIN_PASSWORD)?
            .fake_azure(fake)
            .variable("azure_openai_embedding_deployment", embedding_deployment)
            .variable("ingest_time_budget_ms", "600000")
            .variable("rate_limit_per_minute", "0")
            .variable("answer_cache_ttl_s", "0");
        options.only_components = vec!["ingest".into(), "auth".into(), "query".into()];
        let host = RunningHost::start(options, "127.0.0.1:0".parse()?)?;
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        let token = host.login(ADMIN_PASSWORD)?;
        Ok(Self {
            host,
            client,
            token,
        })
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
        let res = self
            .client
            .request(method.parse()?, self.host.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status().as_u16();
        let text = res.text()?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{method} {path}: not JSON: {text}"))?
        };
        Ok((status, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set folder under the system temp dir with one document.
    fn set(name: &str, questions: Value) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ragspin-eval-{name}-{}", std::process::id()));
        _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(
            dir.join("docs/cafe.md"),
            "# Café\n\nThe café opens at 8 and closes at noon.\n\n# Parking\n\nParking is free.\n",
        )
        .unwrap();
        let file = json!({"index": {"chunking": {"max_tokens": 64, "overlap_tokens": 8}},
            "questions": questions});
        std::fs::write(dir.join("questions.json"), file.to_string()).unwrap();
        dir
    }

    #[test]
    fn loads_a_set_and_finds_the_chunks_holding_the_evidence() {
        let dir = set(
            "ok",
            json!([
                {"id": "a", "kind": "exact", "question": "When does the café open?",
                 "doc": "cafe.md", "evidence": ["opens  at 8"], "keywords": ["8"]},
                {"id": "b", "kind": "unanswerable", "question": "Who won?"}
            ]),
        );
        let s = EvalSet::load(&dir).unwrap();
        _ = std::fs::remove_dir_all(&dir);
        assert_eq!(s.documents.len(), 1);
        assert_eq!(s.chunk_count(), 2);
        let gold = s.gold(&s.questions[0]).unwrap();
        assert_eq!(
            (gold.document.as_str(), gold.relevant_chunks),
            ("cafe.md", 1)
        );
        assert!(s.gold(&s.questions[1]).is_none());
    }

    #[test]
    fn rejects_evidence_no_chunk_holds_and_malformed_questions() {
        let cases = [
            (
                json!([{"id": "a", "kind": "exact", "question": "q", "doc": "cafe.md",
                        "evidence": ["closes at noon. Parking"]}]),
                "in no chunk",
            ),
            (
                json!([{"id": "a", "kind": "exact", "question": "q", "doc": "nope.md",
                        "evidence": ["x"]}]),
                "no document",
            ),
            (
                json!([{"id": "a", "kind": "exact", "question": "q", "doc": "cafe.md"}]),
                "no evidence",
            ),
            (
                json!([{"id": "a", "kind": "unanswerable", "question": "q", "doc": "cafe.md"}]),
                "unanswerable",
            ),
            (
                json!([{"id": "a", "kind": "unanswerable", "question": "q"},
                       {"id": "a", "kind": "unanswerable", "question": "r"}]),
                "duplicate",
            ),
        ];
        for (i, (questions, expected)) in cases.into_iter().enumerate() {
            let dir = set(&format!("bad{i}"), questions);
            let e = EvalSet::load(&dir).unwrap_err();
            _ = std::fs::remove_dir_all(&dir);
            assert!(format!("{e:#}").contains(expected), "{expected}: {e:#}");
        }
    }

    #[test]
    fn the_shipped_set_is_valid_and_large_enough() {
        let s = EvalSet::load(&default_set_dir()).unwrap();
        assert!(s.chunk_count() >= 300, "{}", s.chunk_count());
        assert!(s.questions.len() >= 50);
        for kind in [
            Kind::Exact,
            Kind::Paraphrase,
            Kind::Table,
            Kind::Code,
            Kind::Unanswerable,
        ] {
            assert!(
                s.questions.iter().filter(|q| q.kind == kind).count() >= 5,
                "{kind:?}"
            );
        }
        assert!(
            s.questions
                .iter()
                .all(|q| q.kind == Kind::Unanswerable || !q.keywords.is_empty())
        );
    }
}
