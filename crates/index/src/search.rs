//! Hybrid retrieval over one index version: BM25 (FTS5) and vector
//! similarity, fused by weighted reciprocal rank fusion, with metadata
//! filters applied inside each retriever (before any top-k cut).
//!
//! Vector search never reads one row per vector: it scans the version's
//! sign bits (read from the blocks, 1,024 vectors per row; in a large
//! version only the blocks of the inverted lists the query probes, see
//! [`crate::lists`]) by Hamming
//! distance → top [`BINARY_CANDIDATES`], rescores those with the query's own
//! floats against their bits (asymmetric, no extra data) → top
//! [`RESCORED_CANDIDATES`], then reads the full vectors of only those
//! (`f16`, see [`crate::vectors`]), in one result row, for cosine rescoring. The bits, and
//! the full vectors once read (up to [`RESCORING_CACHE_BYTES`]), are cached
//! in the instance, keyed by (index, version, generation); every write bumps
//! the generation, so a stale cache is impossible by construction.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ragspin_core::{Error, Result, Sql, SqlValue};
use serde::{Deserialize, Serialize};

use crate::lists::{LIST_SHIFT, Lists, block_key};
use crate::sqlval::{int, real, text};
use crate::vectors::{BitBlock, BitIndex, Stored, binary_code, decode_stored, f16_le, hamming};

/// Hamming-distance candidates kept per query (before asymmetric rescoring).
pub const BINARY_CANDIDATES: usize = 2000;
/// Asymmetric-score candidates kept per query (before exact rescoring).
pub const RESCORED_CANDIDATES: usize = 200;
/// Reciprocal rank fusion constant.
pub const RRF_K: f64 = 60.0;
/// Largest `top_k`.
pub const MAX_TOP_K: usize = 50;

/// One metadata condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Eq(serde_json::Value),
    In(Vec<serde_json::Value>),
    Range {
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    },
}

/// A filter: every condition must hold (AND), keyed by metadata field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter(pub Vec<(String, Condition)>);

impl Filter {
    /// Parses `{"field": value | {"eq"|"in"|"gt"|"gte"|"lt"|"lte": ...}}`.
    /// Errors name the offending field (`filter.<field>`).
    pub fn parse(value: &serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(map) = value else {
            if value.is_null() {
                return Ok(Self::default());
            }
            return Err(Error::bad_field(
                "filter",
                "must be an object of field conditions",
            ));
        };
        let mut out = Vec::new();
        for (field, cond) in map {
            let name = format!("filter.{field}");
            if field.is_empty()
                || field.len() > 64
                || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::bad_field(
                    name,
                    "field names are 1-64 letters, digits or '_'",
                ));
            }
            let condition = match cond {
                serde_json::Value::Object(ops) => {
                    if let Some(v) = ops.get("eq") {
                        if ops.len() != 1 {
                            return Err(Error::bad_field(name, "`eq` cannot be combined"));
                        }
                        Condition::Eq(scalar(&name, v)?)
                    } else if let Some(v) = ops.get("in") {
                        if ops.len() != 1 {
                            return Err(Error::bad_field(name, "`in` cannot be combined"));
                        }
                        let serde_json::Value::Array(items) = v else {
                            return Err(Error::bad_field(name, "`in` takes a list"));
                        };
                        if items.is_empty() || items.len() > 100 {
                            return Err(Error::bad_field(name, "`in` takes 1-100 values"));
                        }
                        Condition::In(
                            items
                                .iter()
                                .map(|i| scalar(&name, i))
                                .collect::<Result<_>>()?,
                        )
                    } else {
                        let mut range = (None, None, None, None);
                        for (op, v) in ops {
                            let n = v.as_f64().ok_or_else(|| {
                                Error::bad_field(&name, format!("`{op}` takes a number"))
                            })?;
                            match op.as_str() {
                                "gt" => range.0 = Some(n),
                                "gte" => range.1 = Some(n),
                                "lt" => range.2 = Some(n),
                                "lte" => range.3 = Some(n),
                                other => {
                                    return Err(Error::bad_field(
                                        &name,
                                        format!(
                                            "unknown operator `{other}`; use eq, in, gt, gte, lt, lte"
                                        ),
                                    ));
                                }
                            }
                        }
                        if ops.is_empty() {
                            return Err(Error::bad_field(name, "empty condition"));
                        }
                        Condition::Range {
                            gt: range.0,
                            gte: range.1,
                            lt: range.2,
                            lte: range.3,
                        }
                    }
                }
                v => Condition::Eq(scalar(&name, v)?),
            };
            out.push((field.clone(), condition));
        }
        Ok(Self(out))
    }

    /// SQL conditions on `c.metadata` with their parameters, numbered from `first`.
    fn sql(&self, first: usize) -> (String, Vec<SqlValue>) {
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        let mut n = first;
        let mut param = |v: SqlValue, params: &mut Vec<SqlValue>| {
            params.push(v);
            n += 1;
            format!("?{}", n - 1)
        };
        for (field, cond) in &self.0 {
            let path = param(SqlValue::Text(format!("$.{field}")), &mut params);
            let lhs = format!("json_extract(c.metadata, {path})");
            match cond {
                Condition::Eq(v) => {
                    let p = param(to_sql(v), &mut params);
                    clauses.push(format!("{lhs} = {p}"));
                }
                Condition::In(vs) => {
                    let ps: Vec<String> =
                        vs.iter().map(|v| param(to_sql(v), &mut params)).collect();
                    clauses.push(format!("{lhs} IN ({})", ps.join(", ")));
                }
                Condition::Range { gt, gte, lt, lte } => {
                    for (op, v) in [(">", gt), (">=", gte), ("<", lt), ("<=", lte)] {
                        if let Some(v) = v {
                            let p = param(SqlValue::Real(*v), &mut params);
                            clauses.push(format!("{lhs} {op} {p}"));
                        }
                    }
                }
            }
        }
        if clauses.is_empty() {
            (String::new(), params)
        } else {
            (format!(" AND {}", clauses.join(" AND ")), params)
        }
    }
}

fn scalar(name: &str, v: &serde_json::Value) -> Result<serde_json::Value> {
    match v {
        serde_json::Value::String(_)
        | serde_json::Value::Number(_)
        | serde_json::Value::Bool(_) => Ok(v.clone()),
        _ => Err(Error::bad_field(
            name,
            "values are strings, numbers or booleans",
        )),
    }
}

fn to_sql(v: &serde_json::Value) -> SqlValue {
    match v {
        serde_json::Value::String(s) => SqlValue::Text(s.clone()),
        serde_json::Value::Bool(b) => SqlValue::Integer(*b as i64),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        _ => SqlValue::Null,
    }
}

/// Weights of each retriever in the fusion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub bm25: f64,
    pub vector: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            bm25: 1.0,
            vector: 1.0,
        }
    }
}

/// What to search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub index: String,
    pub query: String,
    pub top_k: usize,
    pub filter: Filter,
    pub weights: Weights,
    /// The query's embedding; `None` = BM25 only.
    pub query_vector: Option<Vec<f32>>,
}

/// Per-method scores of a hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// FTS5 BM25 (higher is better here: the negated `bm25()`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f64>,
    /// Cosine similarity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<f64>,
    /// Weighted reciprocal rank fusion.
    pub fused: f64,
}

/// One retrieved chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub chunk_id: i64,
    pub document_id: String,
    pub filename: String,
    pub ordinal: i64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    pub heading_path: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub scores: Scores,
}

/// Search results with the version they came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub index: String,
    pub index_version: i64,
    pub hits: Vec<Hit>,
    /// Which retrievers ran: `hybrid`, `bm25` or `vector`.
    pub mode: String,
}

type CacheKey = (String, i64, i64);
type CachedBlocks = Arc<Mutex<VersionBits>>;

/// What an instance keeps of one version's vectors: its list centroids
/// (`None` = not partitioned) and the blocks read so far, by list key
/// ([`crate::lists::block_key`]). Immutable data of one (index, version,
/// generation), filled in as queries probe more lists.
#[derive(Debug, Default)]
struct VersionBits {
    lists: Option<Lists>,
    dimensions: usize,
    loaded: HashMap<i64, Vec<Arc<BitBlock>>>,
    complete: bool,
    /// Full vectors read for rescoring.
    rescoring: RescoringVectors,
}

/// Full vectors read for rescoring, as stored ([`Stored`]), by chunk id.
#[derive(Debug, Default)]
struct RescoringVectors {
    vectors: HashMap<i64, Box<[u8]>>,
    bytes: usize,
}

/// The most bytes of full vectors an instance keeps for rescoring, over
/// all cached versions (≈ 10,000 vectors of 1,536 dimensions as `f16`).
/// A vector rescored once is not read again while its version's generation
/// stands: the read (one result row of 200 × 3 KB) was the largest part of
/// a warm vector search. Past the budget, new vectors are read each time.
pub const RESCORING_CACHE_BYTES: usize = 32 << 20;

/// Bytes of full vectors kept in all [`RescoringVectors`] of this instance.
static RESCORING_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl RescoringVectors {
    fn get(&self, id: &i64) -> Option<&[u8]> {
        self.vectors.get(id).map(|v| &**v)
    }

    /// Keeps `read` while the instance's budget allows.
    fn keep(&mut self, read: &StoredVectors) {
        use std::sync::atomic::Ordering::Relaxed;
        for (id, bytes) in read.iter() {
            if RESCORING_BYTES.load(Relaxed) + bytes.len() > RESCORING_CACHE_BYTES {
                return;
            }
            if self.vectors.insert(id, bytes.into()).is_none() {
                self.bytes += bytes.len();
                RESCORING_BYTES.fetch_add(bytes.len(), Relaxed);
            }
        }
    }
}

impl Drop for RescoringVectors {
    fn drop(&mut self) {
        RESCORING_BYTES.fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The vectors of the most recently searched versions (per instance).
fn block_cache() -> &'static Mutex<Vec<(CacheKey, CachedBlocks)>> {
    static CACHE: std::sync::OnceLock<Mutex<Vec<(CacheKey, CachedBlocks)>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

const CACHED_VERSIONS: usize = 4;

/// An FTS5 query matching any of the query's words (each quoted, so no
/// user text is ever FTS syntax).
pub fn fts_query(query: &str) -> Option<String> {
    let words = bm25_words(query);
    (!words.is_empty()).then(|| quote_words(&words))
}

/// The query's words, lowercased, de-duplicated, at most 64: what a BM25
/// search for `query` looks up.
pub fn bm25_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
        if words.len() == 64 {
            break;
        }
    }
    words
}

fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The active version and its generation.
pub async fn active_version<S: Sql>(sql: &S, index: &str) -> Result<(i64, i64)> {
    let rows = sql
        .query(
            "SELECT x.active_version, v.generation FROM rs_indexes x
             JOIN rs_versions v ON v.index_name = x.name AND v.version = x.active_version
             WHERE x.name = ?1",
            &[SqlValue::Text(index.to_string())],
        )
        .await?;
    let row = rows
        .rows
        .first()
        .ok_or_else(|| Error::NotFound(format!("index {index:?} does not exist")))?;
    Ok((int(row.0.first()), int(row.0.get(1))))
}

/// Runs the search over the active version.
pub async fn search<S: Sql>(sql: &S, req: &SearchRequest) -> Result<SearchResult> {
    crate::model::validate_index_name(&req.index)?;
    let (version, generation) = active_version(sql, &req.index).await?;
    search_version(sql, req, version, generation, None).await
}

/// Runs the search over `version` (with its `generation`), for a caller
/// that has just read them (one statement fewer per request).
pub async fn search_version<S: Sql>(
    sql: &S,
    req: &SearchRequest,
    version: i64,
    generation: i64,
    fts: Option<&FtsState>,
) -> Result<SearchResult> {
    crate::model::validate_index_name(&req.index)?;
    if req.top_k == 0 || req.top_k > MAX_TOP_K {
        return Err(Error::validation(
            "top_k",
            format!("must be between 1 and {MAX_TOP_K}"),
        ));
    }
    let pool = (req.top_k * 4).max(20);
    let bm25 = if req.weights.bm25 > 0.0 || req.query_vector.is_none() {
        bm25_ranked(sql, &req.index, version, &req.query, &req.filter, pool, fts).await?
    } else {
        Vec::new()
    };
    let vector = match &req.query_vector {
        Some(q) => {
            Some(vector_ranked(sql, &req.index, version, generation, q, &req.filter, pool).await?)
        }
        None => None,
    };
    let mut fused: HashMap<i64, Scores> = HashMap::new();
    for (rank, (id, score)) in bm25.iter().enumerate() {
        let s = fused.entry(*id).or_insert(Scores {
            bm25: None,
            vector: None,
            fused: 0.0,
        });
        s.bm25 = Some(*score);
        s.fused += req.weights.bm25 / (RRF_K + rank as f64 + 1.0);
    }
    for (rank, (id, score)) in vector.iter().flatten().enumerate() {
        let s = fused.entry(*id).or_insert(Scores {
            bm25: None,
            vector: None,
            fused: 0.0,
        });
        s.vector = Some(*score);
        s.fused += req.weights.vector / (RRF_K + rank as f64 + 1.0);
    }
    let mut ranked: Vec<(i64, Scores)> = fused.into_iter().collect();
    ranked.sort_by(|a, b| b.1.fused.total_cmp(&a.1.fused).then(a.0.cmp(&b.0)));
    ranked.truncate(req.top_k);
    let hits = load_hits(sql, &ranked).await?;
    let mode = match (
        &req.query_vector,
        req.weights.bm25 > 0.0,
        req.weights.vector > 0.0,
    ) {
        (Some(_), true, true) => "hybrid",
        (Some(_), false, _) => "vector",
        _ => "bm25",
    };
    Ok(SearchResult {
        index: req.index.clone(),
        index_version: version,
        hits,
        mode: mode.into(),
    })
}

/// Terms found in more than this share of all FTS rows are left out of the
/// BM25 query: FTS5's `bm25()` clamps the IDF of such a term to 1e-6, so it
/// cannot change a ranking, but matching it makes FTS5 score every row that
/// holds it (all 10,000 rows for "product" in a product catalogue).
pub const COMMON_TERM_SHARE: f64 = 0.5;

/// How many FTS matches are ranked before the version and filter check, per
/// result wanted; if too few of them pass, the exact query runs instead.
const OVERFETCH: usize = 4;

async fn bm25_ranked<S: Sql>(
    sql: &S,
    index: &str,
    version: i64,
    query: &str,
    filter: &Filter,
    limit: usize,
    fts: Option<&FtsState>,
) -> Result<Vec<(i64, f64)>> {
    let words = bm25_words(query);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let (df, total) = term_stats_in(sql, &words, fts).await?;
    // An ASCII word in no FTS row matches nothing and adds nothing to any
    // row's `bm25()` (a phrase scores only in rows that hold it; the other
    // phrases' IDFs do not depend on it), so it is left out of the MATCH:
    // FTS5 would look it up in every segment, and count its rows, for
    // nothing (most of a question's words: "how", "does", …). A word with
    // other letters stays: `unicode61` may index it under another form
    // (diacritics folded) than the one counted.
    let words: Vec<String> = words
        .into_iter()
        .filter(|w| !w.is_ascii() || df.contains_key(w))
        .collect();
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let words = keep_rare_terms(words, &df, total);
    if let Some(ranked) =
        bm25_max_score(sql, index, version, &words, (&df, total), filter, limit).await?
    {
        return Ok(ranked);
    }
    let q = quote_words(&words);
    // Rank inside FTS5 first (no join per match), then keep the winners of
    // this index version that pass the filter. The FTS table is shared by
    // every index and version, so the best matches may belong elsewhere:
    // when fewer than `limit` pass and FTS5 had more to give, fall back to
    // the exact query that checks every match.
    let fetch = limit * OVERFETCH;
    let (clauses, mut params) = filter.sql(6);
    let mut all = vec![
        SqlValue::Text(q.clone()),
        SqlValue::Text(index.to_string()),
        SqlValue::Integer(version),
        SqlValue::Integer(limit as i64),
        SqlValue::Integer(fetch as i64),
    ];
    all.append(&mut params.clone());
    let rows = sql
        .query(
            &format!(
                "WITH f AS MATERIALIZED (
                    SELECT rowid AS id, -rank AS score FROM rs_chunks_fts
                    WHERE rs_chunks_fts MATCH ?1 ORDER BY rank LIMIT ?5)
                 SELECT * FROM (
                    SELECT c.id, f.score FROM f JOIN rs_chunks c ON c.id = f.id
                    WHERE c.index_name = ?2 AND c.version = ?3{clauses}
                    ORDER BY f.score DESC, c.id LIMIT ?4)
                 UNION ALL SELECT -1, count(*) FROM f"
            ),
            &all,
        )
        .await?;
    let mut ranked = Vec::new();
    let mut fetched = 0;
    for r in &rows.rows {
        match int(r.0.first()) {
            -1 => fetched = int(r.0.get(1)) as usize,
            id => ranked.push((id, real(r.0.get(1)))),
        }
    }
    if ranked.len() >= limit || fetched < fetch {
        return Ok(ranked);
    }
    let (clauses, _) = filter.sql(5);
    let mut all = vec![
        SqlValue::Text(q),
        SqlValue::Text(index.to_string()),
        SqlValue::Integer(version),
        SqlValue::Integer(limit as i64),
    ];
    all.append(&mut params);
    let rows = sql
        .query(
            &format!(
                "SELECT c.id, -bm25(rs_chunks_fts) AS score FROM rs_chunks_fts
                 JOIN rs_chunks c ON c.id = rs_chunks_fts.rowid
                 WHERE rs_chunks_fts MATCH ?1 AND c.index_name = ?2 AND c.version = ?3{clauses}
                 ORDER BY score DESC, c.id LIMIT ?4"
            ),
            &all,
        )
        .await?;
    Ok(rows
        .rows
        .iter()
        .map(|r| (int(r.0.first()), real(r.0.get(1))))
        .collect())
}

/// Each word's FTS row count (`fts5vocab`; words not indexed are absent)
/// and the number of FTS rows.
///
/// Counting a word's rows walks its whole doclist (0.5 ms for the few words
/// of a question over 10,000 rows, most of it the common words), so the
/// counts are kept in the instance ([`TermStatsCache`]) under the FTS5
/// structure record: FTS5 rewrites that record with every write that
/// reaches the index (a new segment, a merge), so a cached count is only
/// used while the index is exactly as it was counted. A question costs one
/// short read of the two records when its words are known, plus a count of
/// the new words (usually rare, so cheap) otherwise.
pub async fn term_stats<S: Sql>(sql: &S, words: &[String]) -> Result<(HashMap<String, i64>, i64)> {
    term_stats_in(sql, words, None).await
}

/// [`term_stats`], from `known` when the caller has read the FTS state
/// ([`FTS_STATE_ROWS`]) in a statement of its own.
async fn term_stats_in<S: Sql>(
    sql: &S,
    words: &[String],
    known: Option<&FtsState>,
) -> Result<(HashMap<String, i64>, i64)> {
    let fetched;
    let state = match known {
        Some(state) => Ok(state),
        None => {
            fetched = fts_state(sql, &[], true).await;
            fetched.as_ref()
        }
    };
    let (rows, df) = match state {
        Ok(state) => cached_counts(sql, words, state).await?,
        // A database before schema 5 (no `rs_meta` until the ingest side
        // migrates it): count without the cache.
        Err(Error::Storage(_)) => {
            let read = fts_state(sql, words, false).await?;
            let df = read.df_of(words);
            (read.rows, df)
        }
        Err(e) => return Err(e.clone()),
    };
    let total = match rows {
        Some(n) => n,
        None => {
            let rows = sql
                .query("SELECT count(*) FROM rs_chunks_fts_docsize", &[])
                .await?;
            int(rows.rows.first().and_then(|r| r.0.first()))
        }
    };
    Ok((df.into_iter().filter(|(_, n)| *n > 0).collect(), total))
}

/// The counts of `words` in `state` (read without words): from the cache
/// when all are there, else counting the missing ones.
async fn cached_counts<S: Sql>(
    sql: &S,
    words: &[String],
    state: &FtsState,
) -> Result<(Option<i64>, HashMap<String, i64>)> {
    let cache = term_stats_cache();
    // Counts read with the state (the caller's statement) are used as they
    // are and kept; only the other words are looked up.
    let (counted, rest): (Vec<String>, Vec<String>) =
        words.iter().cloned().partition(|w| state.asked.contains(w));
    if !counted.is_empty() {
        lock(cache).store(state);
    }
    let found = if rest.is_empty() {
        Some(HashMap::new())
    } else {
        lock(cache).lookup(&state.key, &rest)
    };
    if let Some(more) = found {
        let mut df = state.df_of(&counted);
        df.extend(more);
        return Ok((state.rows, df));
    }
    let missing = lock(cache).missing(&state.key, words);
    let mut read = fts_state(sql, &missing, true).await?;
    if read.key.is_empty() || read.key != state.key {
        // Nothing to cache under, or a write landed between the two reads:
        // count every word in one snapshot.
        read = fts_state(sql, words, true).await?;
    }
    let mut c = lock(cache);
    c.store(&read);
    let df = c
        .lookup(&read.key, words)
        .unwrap_or_else(|| read.df_of(words));
    Ok((read.rows, df))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The FTS index's state as rows `(id, NULL, value)`: the averages record
/// (id 1), the structure record (id 10) and the database id (id -1). A
/// caller that reads them in a statement it runs anyway (the query side's
/// index lookup) hands them to [`search_version`] as an [`FtsState`], and
/// a search costs one statement fewer.
pub const FTS_STATE_ROWS: &str =
    "SELECT id, NULL, block FROM rs_chunks_fts_data WHERE id IN (1, 10)
     UNION ALL SELECT -1, NULL, value FROM rs_meta WHERE key = 'database_id'";

/// What one read of the FTS index's state returns: the key its counts are
/// valid under (database id + structure record), the row count from the
/// averages record, and the row counts of the words asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FtsState {
    key: Vec<u8>,
    rows: Option<i64>,
    counts: Vec<(String, i64)>,
    asked: Vec<String>,
}

/// One statement, so one snapshot: the averages record (id 1), with `keyed`
/// the structure record (id 10) and the database id, and for `words` their
/// row counts.
async fn fts_state<S: Sql>(sql: &S, words: &[String], keyed: bool) -> Result<FtsState> {
    let state = if keyed {
        FTS_STATE_ROWS
    } else {
        "SELECT id, NULL, block FROM rs_chunks_fts_data WHERE id = 1"
    };
    let sql_text = format!("{}{state}", word_count_rows(words.len(), 1));
    let params: Vec<SqlValue> = words.iter().map(|w| SqlValue::Text(w.clone())).collect();
    let rows = sql.query(&sql_text, &params).await?;
    Ok(FtsState::from_rows(rows.rows.iter().map(|r| r.0.as_slice())).counting(words))
}

/// Rows `(0, term, row count)` for `n` words bound from `?{first}` on,
/// followed by `UNION ALL ` (nothing for no words): put before
/// [`FTS_STATE_ROWS`] to read the counts in the same snapshot.
pub fn word_count_rows(n: usize, first: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let marks = (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT 0, term, doc FROM rs_chunks_vocab WHERE term IN ({marks}) UNION ALL ")
}

/// Those of `words` whose row counts this instance does not hold: what a
/// caller reading the FTS state in a statement of its own should count in
/// it ([`word_count_rows`], [`FtsState::counting`]), so the search needs no
/// statement for them. (Held under the state the instance saw last; if
/// the index changed since, the search counts what it lacks itself.)
pub fn uncounted_words(words: &[String]) -> Vec<String> {
    let cache = lock(term_stats_cache());
    words
        .iter()
        .filter(|w| !cache.df.contains_key(*w))
        .cloned()
        .collect()
}

impl FtsState {
    /// The state from rows `(id, term, value)`: [`FTS_STATE_ROWS`], and
    /// `(0, term, row count)` for words counted.
    pub fn from_rows<'a>(rows: impl Iterator<Item = &'a [SqlValue]>) -> Self {
        let mut state = FtsState::default();
        let (mut database, mut structure) = (Vec::new(), Vec::new());
        for r in rows {
            match (int(r.first()), r.get(1), r.get(2)) {
                (0, Some(SqlValue::Text(term)), count) => {
                    state.counts.push((term.clone(), int(count)))
                }
                (1, _, Some(SqlValue::Blob(record))) => {
                    state.rows = sqlite_varint(record).and_then(|n| i64::try_from(n).ok());
                }
                (10, _, Some(SqlValue::Blob(record))) => structure = record.clone(),
                (-1, _, Some(SqlValue::Text(id))) => database = id.clone().into_bytes(),
                _ => {}
            }
        }
        // An empty database id (schema before 5) or structure (nothing
        // indexed yet) makes an empty key, which is never cached.
        if !database.is_empty() && !structure.is_empty() {
            state.key = database;
            state.key.push(0);
            state.key.extend(structure);
        }
        state
    }

    /// This state as read with the row counts of `words` (rows
    /// `(0, term, count)`; a word without a row is in none).
    #[must_use]
    pub fn counting(mut self, words: &[String]) -> Self {
        self.asked = words.to_vec();
        self
    }

    /// The counts of `words` read in this state (0 for a word not indexed).
    fn df_of(&self, words: &[String]) -> HashMap<String, i64> {
        let counts: HashMap<&str, i64> =
            self.counts.iter().map(|(w, n)| (w.as_str(), *n)).collect();
        words
            .iter()
            .map(|w| (w.clone(), counts.get(w.as_str()).copied().unwrap_or(0)))
            .collect()
    }
}

/// Word row counts of one state of the FTS index (per instance).
#[derive(Debug, Default)]
struct TermStatsCache {
    key: Vec<u8>,
    df: HashMap<String, i64>,
}

/// Words kept per state; past this the cache starts over.
const CACHED_TERMS: usize = 20_000;

impl TermStatsCache {
    /// Every word's count under `key`, when all are cached.
    fn lookup(&self, key: &[u8], words: &[String]) -> Option<HashMap<String, i64>> {
        if key.is_empty() || self.key != key {
            return None;
        }
        words
            .iter()
            .map(|w| self.df.get(w).map(|n| (w.clone(), *n)))
            .collect()
    }

    /// The words not cached under `key`.
    fn missing(&self, key: &[u8], words: &[String]) -> Vec<String> {
        words
            .iter()
            .filter(|w| key.is_empty() || self.key != key || !self.df.contains_key(*w))
            .cloned()
            .collect()
    }

    fn store(&mut self, state: &FtsState) {
        if state.key.is_empty() {
            return;
        }
        if self.key != state.key || self.df.len() + state.asked.len() > CACHED_TERMS {
            self.key = state.key.clone();
            self.df.clear();
        }
        self.df.extend(state.df_of(&state.asked));
    }
}

fn term_stats_cache() -> &'static Mutex<TermStatsCache> {
    static CACHE: std::sync::OnceLock<Mutex<TermStatsCache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(TermStatsCache::default()))
}

/// The varint at the start of `bytes` in SQLite's format (FTS5 uses the
/// same): big-endian 7-bit groups, the high bit saying more follow, the
/// ninth byte all 8 bits.
pub fn sqlite_varint(bytes: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().take(9).enumerate() {
        if i == 8 {
            return Some((v << 8) | *b as u64);
        }
        v = (v << 7) | (*b & 0x7f) as u64;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// FTS5's `bm25()` constant k1 (its default; we pass no parameters).
const BM25_K1: f64 = 1.2;

/// Words in more than this share of the FTS rows are "non-essential" for
/// [`bm25_max_score`]: rows holding only them are not scored.
pub const ESSENTIAL_SHARE: f64 = 0.05;

/// FTS5's IDF of a term in `df` of `total` rows (as `bm25()` computes it).
pub fn fts5_idf(df: i64, total: i64) -> f64 {
    let idf = ((total - df) as f64 + 0.5) / (df as f64 + 0.5);
    let idf = idf.ln();
    if idf <= 0.0 { 1e-6 } else { idf }
}

/// Splits `words` for MaxScore: `(essential, bound)` where `bound` is more
/// than any row holding none of the essential words can score —
/// `bm25()` gives each term less than `idf × (k1 + 1)`. `None` when every
/// word is rare or every word is common (nothing to skip). A word missing
/// from the vocabulary counts as in no row (the largest IDF: a safe bound).
pub fn split_essential(
    words: &[String],
    df: &HashMap<String, i64>,
    total: i64,
) -> Option<(Vec<String>, f64)> {
    let count = |w: &String| df.get(w).copied().unwrap_or(0);
    let (common, essential): (Vec<&String>, Vec<&String>) = words
        .iter()
        .partition(|w| count(w) as f64 > ESSENTIAL_SHARE * total as f64);
    if common.is_empty() || essential.is_empty() {
        return None;
    }
    let bound = common
        .iter()
        .map(|w| fts5_idf(count(w), total) * (BM25_K1 + 1.0))
        .sum();
    Some((essential.into_iter().cloned().collect(), bound))
}

/// BM25 top `limit` by MaxScore: score (with every word) only the rows of
/// this index version that hold an essential word, and keep the result
/// when the `limit`-th score beats what a row holding only common words
/// could reach — then it is exactly the top `limit` of scoring every match,
/// at a fraction of the cost (FTS5 spends ≈1.3 µs per scored row; "battery"
/// is in 2,349 of the bench's 10,000). `None` = not provable, rank all.
pub async fn bm25_max_score<S: Sql>(
    sql: &S,
    index: &str,
    version: i64,
    words: &[String],
    (df, total): (&HashMap<String, i64>, i64),
    filter: &Filter,
    limit: usize,
) -> Result<Option<Vec<(i64, f64)>>> {
    let Some((essential, bound)) = split_essential(words, df, total) else {
        return Ok(None);
    };
    let (clauses, params) = filter.sql(5);
    let (every, rare) = (quote_words(words), quote_words(&essential));
    let mut all = vec![
        SqlValue::Text(format!("({every}) AND ({rare})")),
        SqlValue::Text(index.to_string()),
        SqlValue::Integer(version),
        SqlValue::Integer(limit as i64),
    ];
    all.extend(params);
    all.push(SqlValue::Text(rare));
    let rare_at = all.len();
    // `bm25()` sums one term per phrase of the query, so the rows holding an
    // essential word are scored by `(every word) AND (essential words)` —
    // which FTS5 answers by seeking the common words' doclists to the rare
    // rows instead of walking them — minus the essential words' own
    // `bm25()` (their phrases appear twice in that query). The result is
    // the `bm25()` of every word to within rounding (the test holds it to
    // scoring every match), and the essential-word query also gives the
    // version and filter check its ids. `CROSS JOIN` keeps FTS5 the outer
    // loop (else SQLite may walk the version's chunks and ask FTS5 about
    // each id: 290 ms at 10k rows).
    let rows = sql
        .query(
            &format!(
                "WITH e AS MATERIALIZED (
                    SELECT c.id, bm25(rs_chunks_fts) AS rare FROM rs_chunks_fts
                    CROSS JOIN rs_chunks c ON c.id = rs_chunks_fts.rowid
                    WHERE rs_chunks_fts MATCH ?{rare_at} AND c.index_name = ?2 AND c.version = ?3{clauses}),
                 a AS MATERIALIZED (
                    SELECT rowid AS id, bm25(rs_chunks_fts) AS both FROM rs_chunks_fts
                    WHERE rs_chunks_fts MATCH ?1)
                 SELECT a.id, e.rare - a.both AS score FROM a JOIN e ON e.id = a.id
                 ORDER BY score DESC, a.id LIMIT ?4"
            ),
            &all,
        )
        .await?;
    let ranked: Vec<(i64, f64)> = rows
        .rows
        .iter()
        .map(|r| (int(r.0.first()), real(r.0.get(1))))
        .collect();
    Ok((ranked.len() >= limit && ranked.last().is_some_and(|(_, s)| *s > bound)).then_some(ranked))
}

/// `words` without those in more than [`COMMON_TERM_SHARE`] of the FTS
/// rows (when every word is that common, the rarest one alone): `df` is each term's row count,
/// `total` the number of rows.
pub fn keep_rare_terms(words: Vec<String>, df: &HashMap<String, i64>, total: i64) -> Vec<String> {
    let count = |w: &String| df.get(w).copied().unwrap_or(0);
    let common = |w: &String| count(w) as f64 > COMMON_TERM_SHARE * total as f64;
    if !words.iter().all(common) {
        return words.into_iter().filter(|w| !common(w)).collect();
    }
    words.into_iter().min_by_key(count).into_iter().collect()
}

/// A version's list centroids, when it has been partitioned.
pub async fn load_lists<S: Sql>(sql: &S, index: &str, version: i64) -> Result<Option<Lists>> {
    let rows = sql
        .query(
            "SELECT dimensions, trained, centroids FROM rs_vector_lists
             WHERE index_name = ?1 AND version = ?2",
            &[
                SqlValue::Text(index.to_string()),
                SqlValue::Integer(version),
            ],
        )
        .await?;
    rows.rows
        .first()
        .map(|r| {
            let bytes = match r.0.get(2) {
                Some(SqlValue::Blob(b)) => b.as_slice(),
                _ => &[],
            };
            Lists::decode(int(r.0.first()) as usize, int(r.0.get(1)) as usize, bytes)
                .ok_or_else(|| Error::Storage("corrupt vector lists".into()))
        })
        .transpose()
}

/// The sign bits a query scans: every block of a flat version; of a
/// partitioned one, the blocks of the lists the query probes (all of them
/// when `all`, for filtered queries). Blocks already read by this instance
/// for the same (index, version, generation) are not read again.
async fn blocks_for_query<S: Sql>(
    sql: &S,
    index: &str,
    version: i64,
    generation: i64,
    query: &[f32],
    all: bool,
) -> Result<(BitIndex, CachedBlocks)> {
    let key = (index.to_string(), version, generation);
    let found = block_cache()
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone());
    let entry = match found {
        Some(entry) => entry,
        None => {
            let lists = load_lists(sql, index, version).await?;
            let entry = Arc::new(Mutex::new(VersionBits {
                dimensions: lists.as_ref().map_or(0, |l| l.dimensions),
                lists,
                ..VersionBits::default()
            }));
            let mut cache = block_cache().lock().unwrap();
            cache.retain(|(k, _)| !(k.0 == key.0 && k.1 == key.1));
            cache.push((key, entry.clone()));
            if cache.len() > CACHED_VERSIONS {
                cache.remove(0);
            }
            entry
        }
    };
    // The list keys wanted (`None` = all), and those not read yet.
    let (wanted, missing) = {
        let e = entry.lock().unwrap();
        let wanted: Option<Vec<i64>> = match &e.lists {
            Some(lists) if !all && query.len() == lists.dimensions => {
                let mut keys: Vec<i64> = lists.probe(query).iter().map(|l| *l as i64 + 1).collect();
                keys.push(0);
                keys.sort_unstable();
                Some(keys)
            }
            _ => None,
        };
        let missing: Option<Vec<i64>> = match &wanted {
            _ if e.complete => Some(Vec::new()),
            None => None,
            Some(keys) => Some(
                keys.iter()
                    .copied()
                    .filter(|k| !e.loaded.contains_key(k))
                    .collect(),
            ),
        };
        (wanted, missing)
    };
    if missing.as_ref().is_none_or(|m| !m.is_empty()) {
        let mut params = vec![
            SqlValue::Text(index.to_string()),
            SqlValue::Integer(version),
        ];
        // Only the columns before `codes`: SQLite stops reading a row's
        // overflow pages at the last column asked for.
        let mut statement = "SELECT block, dimensions, ids, bits FROM rs_vector_blocks
             WHERE index_name = ?1 AND version = ?2"
            .to_string();
        if let Some(keys) = &missing {
            let marks: Vec<String> = (0..keys.len()).map(|k| format!("?{}", k + 3)).collect();
            statement.push_str(&format!(
                " AND (block >> {LIST_SHIFT}) IN ({})",
                marks.join(", ")
            ));
            params.extend(keys.iter().map(|k| SqlValue::Integer(*k)));
        }
        statement.push_str(" ORDER BY block");
        let rows = sql.query(&statement, &params).await?;
        let mut read: HashMap<i64, Vec<Arc<BitBlock>>> = HashMap::new();
        let mut dimensions = 0;
        for mut r in rows.rows {
            let dims = int(r.0.get(1)) as usize;
            let bits = match r.0.get_mut(3) {
                Some(SqlValue::Blob(b)) => std::mem::take(b),
                _ => return Err(Error::Storage("corrupt vector block".into())),
            };
            let Some(SqlValue::Blob(ids)) = r.0.get(2) else {
                return Err(Error::Storage("corrupt vector block".into()));
            };
            if dimensions != 0 && dims != dimensions {
                return Err(Error::Storage(
                    "vector blocks disagree on dimensions".into(),
                ));
            }
            dimensions = dims;
            let block = BitBlock::from_columns(ids, bits, dims.div_ceil(8))
                .ok_or_else(|| Error::Storage("corrupt vector block".into()))?;
            read.entry(block_key(int(r.0.first())))
                .or_default()
                .push(Arc::new(block));
        }
        let mut e = entry.lock().unwrap();
        if e.dimensions == 0 {
            e.dimensions = dimensions;
        } else if dimensions != 0 && dimensions != e.dimensions {
            return Err(Error::Storage(
                "vector blocks disagree on dimensions".into(),
            ));
        }
        match missing {
            None => {
                e.loaded = read;
                e.complete = true;
            }
            Some(keys) => {
                for k in keys {
                    let blocks = read.remove(&k).unwrap_or_default();
                    e.loaded.entry(k).or_insert(blocks);
                }
            }
        }
    }
    let e = entry.lock().unwrap();
    let mut view = BitIndex::new(e.dimensions);
    let mut keys: Vec<i64> = match wanted {
        Some(keys) => keys,
        None => e.loaded.keys().copied().collect(),
    };
    keys.sort_unstable();
    for k in keys {
        if let Some(blocks) = e.loaded.get(&k) {
            view.blocks.extend(blocks.iter().cloned());
        }
    }
    drop(e);
    Ok((view, entry))
}

/// Ids allowed by `filter` in the version (`None` = no filter).
async fn allowed_ids<S: Sql>(
    sql: &S,
    index: &str,
    version: i64,
    filter: &Filter,
) -> Result<Option<HashSet<i64>>> {
    if filter.0.is_empty() {
        return Ok(None);
    }
    let (clauses, mut params) = filter.sql(3);
    let mut all = vec![
        SqlValue::Text(index.to_string()),
        SqlValue::Integer(version),
    ];
    all.append(&mut params);
    let rows = sql
        .query(
            &format!(
                "SELECT c.id FROM rs_chunks c WHERE c.index_name = ?1 AND c.version = ?2{clauses}"
            ),
            &all,
        )
        .await?;
    Ok(Some(rows.rows.iter().map(|r| int(r.0.first())).collect()))
}

/// The binary → asymmetric → exact cosine cascade.
pub async fn vector_ranked<S: Sql>(
    sql: &S,
    index: &str,
    version: i64,
    generation: i64,
    query: &[f32],
    filter: &Filter,
    limit: usize,
) -> Result<Vec<(i64, f64)>> {
    let (bits, entry) =
        blocks_for_query(sql, index, version, generation, query, !filter.0.is_empty()).await?;
    if bits.is_empty() {
        return Ok(Vec::new());
    }
    let dims = bits.dimensions;
    if query.len() != dims {
        return Err(Error::Conflict(format!(
            "the query embedding has {} dimensions but index {index:?} holds {dims}",
            query.len()
        )));
    }
    let allowed = allowed_ids(sql, index, version, filter).await?;
    let candidates = cascade(
        &bits,
        query,
        allowed.as_ref(),
        BINARY_CANDIDATES.max(limit),
        RESCORED_CANDIDATES.max(limit),
    );
    // Vectors rescored before by this instance are not read again.
    let rescorer = Rescorer::new(query);
    let mut scored = Vec::with_capacity(candidates.len());
    let mut missing = Vec::new();
    {
        let e = lock(&entry);
        let mut kept = Vec::with_capacity(candidates.len());
        for id in candidates {
            match e.rescoring.get(&id) {
                Some(v) => kept.push((id, v)),
                None => missing.push(id),
            }
        }
        rescorer.cosines_stored(&kept, &mut scored);
    }
    let stored = vector_bytes(sql, &missing, dims).await?;
    scored.extend(stored.iter().map(|(id, v)| (id, rescorer.cosine_stored(v))));
    lock(&entry).rescoring.keep(&stored);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(limit);
    Ok(scored)
}

/// Full vectors as read by [`vector_bytes`]: ids in result order, each
/// with its stored bytes (`f16` or `f32`, see [`Stored`]).
#[derive(Debug, Default)]
pub struct StoredVectors {
    ids: Vec<i64>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl StoredVectors {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `(id, stored bytes)` per vector.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[u8])> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.ids
            .iter()
            .zip(starts.zip(&self.ends))
            .map(|(id, (a, b))| (*id, &self.bytes[a..*b]))
    }
}

/// The full vectors of `ids`, read as **one** result row: Spin returns rows
/// one at a time (≈15–22 µs each), so 200 candidates would cost 3–4 ms as
/// rows. `group_concat` appends each BLOB's bytes as they are (SQLite does
/// not check text encoding) and the `CAST` hands them back as a BLOB; the
/// aggregates see the rows in the same order, and the lengths split the
/// bytes. Only lengths of a `dims`-dimensional `f16` or `f32` vector are
/// read. A database the ingest side has not migrated to schema 6 yet (no
/// `rs_chunk_vectors`) is read from `rs_chunks.vector`, where the vectors
/// were before.
pub async fn vector_bytes<S: Sql>(sql: &S, ids: &[i64], dims: usize) -> Result<StoredVectors> {
    if ids.is_empty() || dims == 0 {
        return Ok(StoredVectors::default());
    }
    // The ids as one JSON array: the statement's text is the same for any
    // number of them, so the connection's statement cache keeps it
    // prepared (a list of placeholders was a new statement to parse and
    // plan for nearly every query: ≈ 50 µs of its ≈ 220).
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let params = vec![
        SqlValue::Integer(dims as i64 * 2),
        SqlValue::Integer(dims as i64 * 4),
        SqlValue::Text(format!("[{}]", list.join(","))),
    ];
    let read = |table: &'static str| {
        let statement = format!(
            "SELECT group_concat(id), group_concat(length(vector)), CAST(group_concat(vector, '') AS BLOB)
             FROM (SELECT id, vector FROM {table}
                   WHERE id IN (SELECT value FROM json_each(?3)) AND length(vector) IN (?1, ?2))"
        );
        let params = &params;
        async move { sql.query(&statement, params).await }
    };
    let mut rows = match read("rs_chunk_vectors").await {
        Ok(rows) => rows,
        Err(e @ Error::Storage(_)) => read("rs_chunks").await.map_err(|_| e)?,
        Err(e) => return Err(e),
    };
    let Some(mut row) = rows.rows.pop() else {
        return Ok(StoredVectors::default());
    };
    let list = |v: Option<&SqlValue>| -> Vec<i64> {
        match v {
            Some(SqlValue::Text(list)) => list.split(',').filter_map(|x| x.parse().ok()).collect(),
            Some(SqlValue::Integer(x)) => vec![*x],
            _ => Vec::new(),
        }
    };
    let found = list(row.0.first());
    let mut end = 0;
    let ends: Vec<usize> = list(row.0.get(1))
        .into_iter()
        .map(|len| {
            end += len as usize;
            end
        })
        .collect();
    let bytes = match row.0.get_mut(2) {
        Some(SqlValue::Blob(b)) => std::mem::take(b),
        _ => Vec::new(),
    };
    if ends.len() != found.len() || end != bytes.len() {
        return Err(Error::Storage(format!(
            "read {} vector bytes for {} vectors of {dims} dimensions",
            bytes.len(),
            found.len()
        )));
    }
    Ok(StoredVectors {
        ids: found,
        ends,
        bytes,
    })
}

/// The full vectors of `ids`, decoded (see [`vector_bytes`]).
pub async fn full_vectors<S: Sql>(
    sql: &S,
    ids: &[i64],
    dims: usize,
) -> Result<Vec<(i64, Vec<f32>)>> {
    let stored = vector_bytes(sql, ids, dims).await?;
    Ok(stored
        .iter()
        .filter_map(|(id, b)| decode_stored(b, dims).map(|v| (id, v)))
        .collect())
}

/// Candidate ids for `query`: the `n_binary` nearest sign codes by Hamming
/// distance, then the `n_rescored` best of those by the asymmetric score
/// `Σ qᵢ·(bitᵢ ? 1 : −1)` (the query, quantised to 4 bits, against the
/// stored bits, which ranks far better than Hamming distance for the same
/// bits; see `QueryPlanes`).
pub fn cascade(
    bits: &BitIndex,
    query: &[f32],
    allowed: Option<&HashSet<i64>>,
    n_binary: usize,
    n_rescored: usize,
) -> Vec<i64> {
    if n_rescored == 0 {
        return Vec::new();
    }
    let per = bits.per;
    let qcode = binary_code(query);
    // Hamming distances (u32::MAX = skipped), then the threshold that keeps
    // `n_binary` of them, from a histogram (distances are at most `dims`).
    let mut histogram = vec![0usize; bits.dimensions + 2];
    let distances: Vec<Vec<u32>> = bits
        .blocks
        .iter()
        .map(|block| {
            block
                .ids
                .iter()
                .zip(block.bits.chunks_exact(per.max(1)))
                .map(|(id, code)| {
                    if *id == 0 || allowed.is_some_and(|a| !a.contains(id)) {
                        return u32::MAX;
                    }
                    let d = hamming(code, &qcode);
                    histogram[d as usize] += 1;
                    d
                })
                .collect()
        })
        .collect();
    let mut kept = 0;
    let mut threshold = 0u32;
    for (d, n) in histogram.iter().enumerate() {
        threshold = d as u32;
        kept += n;
        if kept >= n_binary {
            break;
        }
    }
    let mut at_threshold = n_binary.saturating_sub(kept - histogram[threshold as usize]);
    let mut first: Vec<(usize, usize)> = Vec::with_capacity(n_binary);
    for (b, block) in distances.iter().enumerate() {
        for (slot, d) in block.iter().enumerate() {
            if *d < threshold {
                first.push((b, slot));
            } else if *d == threshold && at_threshold > 0 {
                first.push((b, slot));
                at_threshold -= 1;
            }
        }
    }
    let planes = QueryPlanes::new(query, per);
    let mut second: Vec<(f32, i64)> = first
        .iter()
        .map(|(b, slot)| {
            let block = &bits.blocks[*b];
            (planes.score(block.code(*slot, per)), block.ids[*slot])
        })
        .collect();
    // Best first, ties by id: the `n_rescored` best picked in linear time,
    // then only those sorted (not all `n_binary`).
    let order = |a: &(f32, i64), b: &(f32, i64)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if second.len() > n_rescored {
        second.select_nth_unstable_by(n_rescored - 1, order);
        second.truncate(n_rescored);
    }
    second.sort_by(order);
    second.into_iter().map(|(_, id)| id).collect()
}

/// Bits per quantised query component in the asymmetric stage.
const QUERY_BITS: usize = crate::vectors::PLANES;

/// The query side of the asymmetric stage, as bit planes. Ranking by
/// `Σ qᵢ·(bitᵢ ? 1 : −1) = 2·Σ_{bitᵢ set} qᵢ − Σ qᵢ` only needs
/// `Σ_{bitᵢ set} qᵢ`. With the query quantised to levels
/// `qᵢ ≈ low + step·uᵢ` (`uᵢ` of [`QUERY_BITS`] bits), that sum is
/// `low·popcount(code) + step·Σ_b 2ᵇ·popcount(code & plane_b)`, where
/// `plane_b` holds bit `b` of every `uᵢ`: a few `AND`s and popcounts per
/// 16 bytes, counted in `u8` lanes like [`hamming`] (`i8x16.popcnt` in
/// wasm), instead of a table lookup per 8 dimensions (the lookups, in
/// 192 KB of tables at 1,536 dimensions, waited on the cache: 0.6 ms for
/// 2,000 candidates in wasm). Each component is off by at most `step / 2`
/// (`(max − min) / 30` at 4 bits).
struct QueryPlanes {
    /// Plane `b`: bit `b` of each component's level, laid out like a code
    /// (bit `i` of byte `i / 8` at `i % 8`).
    planes: [Vec<u8>; QUERY_BITS],
    low: f32,
    step: f32,
}

impl QueryPlanes {
    /// Planes for codes of `per` bytes (`⌈d/8⌉`); components past the
    /// query's end count as 0, like their (clear) code bits.
    fn new(query: &[f32], per: usize) -> Self {
        let (low, high) = query
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), x| {
                (l.min(*x), h.max(*x))
            });
        let levels = ((1u32 << QUERY_BITS) - 1) as f32;
        let (low, step) = if query.is_empty() {
            (0.0, 1.0)
        } else if high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) {
            (low, 1.0)
        } else {
            (low, (high - low) / levels)
        };
        let mut planes: [Vec<u8>; QUERY_BITS] = std::array::from_fn(|_| vec![0u8; per]);
        for (i, x) in query.iter().enumerate().take(per * 8) {
            let level = ((x - low) / step).round().clamp(0.0, levels) as u32;
            for (b, plane) in planes.iter_mut().enumerate() {
                plane[i / 8] |= ((level >> b & 1) as u8) << (i % 8);
            }
        }
        Self { planes, low, step }
    }

    /// `≈ Σ_{bitᵢ set} qᵢ` for one code (`per` bytes, bit `i` of byte
    /// `i / 8` at `i % 8`, like the planes).
    fn score(&self, code: &[u8]) -> f32 {
        let (ones, counts) = crate::vectors::masked_popcounts(code, &self.planes);
        let weighted: u64 = counts
            .iter()
            .enumerate()
            .map(|(b, c)| u64::from(*c) << b)
            .sum();
        self.low * ones as f32 + self.step * weighted as f32
    }
}

/// Cosine similarity, summed in `f32` over 8 lanes (vectorised with
/// `simd128` in wasm; ranking needs no more precision than that).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            dot[i] += x[i] * y[i];
            na[i] += x[i] * x[i];
            nb[i] += y[i] * y[i];
        }
    }
    let mut sums = [dot, na, nb].map(|lanes| lanes.iter().map(|v| *v as f64).sum::<f64>());
    for (x, y) in ar.iter().zip(br) {
        sums[0] += (*x as f64) * (*y as f64);
        sums[1] += (*x as f64) * (*x as f64);
        sums[2] += (*y as f64) * (*y as f64);
    }
    let [dot, na, nb] = sums;
    unit_ratio(dot, na, nb)
}

fn unit_ratio(dot: f64, na: f64, nb: f64) -> f64 {
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// The query side of exact rescoring: its floats and squared norm, computed
/// once for all candidates.
#[derive(Debug)]
pub struct Rescorer<'q> {
    query: &'q [f32],
    norm2: f64,
}

impl<'q> Rescorer<'q> {
    pub fn new(query: &'q [f32]) -> Self {
        let norm2 = query.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
        Self { query, norm2 }
    }

    /// Cosine of the query with a stored vector, straight from its bytes as
    /// read from SQLite (no decoded copy), either encoding (told by its
    /// length, see [`Stored`]); 0 for a length that is neither. Equals
    /// [`cosine`] of the decoded vector up to `f32` rounding.
    pub fn cosine_stored(&self, stored: &[u8]) -> f64 {
        let (dot, norm2) = match Stored::of(stored.len(), self.query.len()) {
            Some(Stored::F16) => dot_norm_f16(self.query, stored),
            Some(Stored::F32) => dot_norm_le(self.query, stored),
            None => return 0.0,
        };
        unit_ratio(f64::from(dot), self.norm2, f64::from(norm2))
    }

    /// [`cosine_stored`](Self::cosine_stored) of each `(id, bytes)`, bit
    /// for bit, appended to `out`: `f16` vectors go two at a time through
    /// one loop (the query's lanes loaded once for both, and two vectors'
    /// bytes streaming from memory at once — the kept vectors' cosines were
    /// bound by fetching them, not by the arithmetic).
    pub fn cosines_stored(&self, items: &[(i64, &[u8])], out: &mut Vec<(i64, f64)>) {
        let f16 = |b: &[u8]| Stored::of(b.len(), self.query.len()) == Some(Stored::F16);
        let mut rest = items;
        while let [(i, v), (j, w), tail @ ..] = rest {
            if f16(v) && f16(w) {
                let [(dv, nv), (dw, nw)] = dot_norm_f16_pair(self.query, v, w);
                out.push((*i, unit_ratio(f64::from(dv), self.norm2, f64::from(nv))));
                out.push((*j, unit_ratio(f64::from(dw), self.norm2, f64::from(nw))));
                rest = tail;
            } else {
                out.push((*i, self.cosine_stored(v)));
                rest = &rest[1..];
            }
        }
        for (i, v) in rest {
            out.push((*i, self.cosine_stored(v)));
        }
    }
}

/// Holds [`Rescorer::cosines_stored`] to [`Rescorer::cosine_stored`] of
/// each vector, bit for bit, on `f16` and `f32` vectors of lengths around
/// the 8-lane groups, in runs that pair them every way. Run natively by the
/// unit tests and, in wasm (where the `simd128` kernels are), by the
/// test-only contract component.
pub fn check_rescoring() -> Result<(), String> {
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    for n in [1usize, 7, 8, 9, 16, 17, 384, 1536, 1537] {
        let q: Vec<f32> = (0..n).map(|_| next()).collect();
        let r = Rescorer::new(&q);
        let mut stored: Vec<Vec<u8>> = (0..7)
            .map(|_| {
                let v: Vec<f32> = (0..n).map(|_| next()).collect();
                crate::vectors::encode_f16(&v)
            })
            .collect();
        let v: Vec<f32> = (0..n).map(|_| next()).collect();
        stored.insert(3, ragspin_core::encode_f32(&v));
        stored.insert(5, vec![1, 2, 3]);
        let items: Vec<(i64, &[u8])> = stored
            .iter()
            .enumerate()
            .map(|(k, b)| (k as i64, b.as_slice()))
            .collect();
        for start in 0..items.len() {
            let mut got = Vec::new();
            r.cosines_stored(&items[start..], &mut got);
            let want: Vec<(i64, u64)> = items[start..]
                .iter()
                .map(|(id, b)| (*id, r.cosine_stored(b).to_bits()))
                .collect();
            let got: Vec<(i64, u64)> = got.iter().map(|(id, c)| (*id, c.to_bits())).collect();
            if got != want {
                return Err(format!("{n} dims from item {start}: {got:?} ≠ {want:?}"));
            }
        }
    }
    Ok(())
}

/// One little-endian `f32` (4 bytes).
fn f32_le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// `(q · v, v · v)` for `v` given as little-endian `f16` bytes: eight
/// halves per `v128`, widened to two `u32x4` and converted as in
/// [`crate::vectors::f16_to_f32`] (mask, shift, one multiply, the sign OR-ed back).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot_norm_f16(q: &[f32], v: &[u8]) -> (f32, f32) {
    dot_norm_simd(q, v, 2, f16x8, f16_le)
}

/// Eight little-endian halves (16 bytes) as two `f32x4`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn f16x8(y: &[u8]) -> (core::arch::wasm32::v128, core::arch::wasm32::v128) {
    use core::arch::wasm32::{
        f32x4_mul, f32x4_splat, u32x4_extend_high_u16x8, u32x4_extend_low_u16x8, u32x4_shl,
        u32x4_splat, v128, v128_and, v128_or,
    };
    let (magnitude, sign) = (u32x4_splat(0x7fff), u32x4_splat(0x8000));
    let rebase = f32x4_splat(f32::from_bits(0x7780_0000));
    let widen = |bits: v128| {
        let m = f32x4_mul(u32x4_shl(v128_and(bits, magnitude), 13), rebase);
        v128_or(m, u32x4_shl(v128_and(bits, sign), 16))
    };
    let halves: v128 = bytemuck::pod_read_unaligned(y);
    (
        widen(u32x4_extend_low_u16x8(halves)),
        widen(u32x4_extend_high_u16x8(halves)),
    )
}

/// `(q · v, v · v)` for `v` given as little-endian `f32` bytes: plain
/// unaligned `v128` loads (wasm is little-endian).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot_norm_le(q: &[f32], v: &[u8]) -> (f32, f32) {
    let eight = |y: &[u8]| {
        (
            bytemuck::pod_read_unaligned(&y[..16]),
            bytemuck::pod_read_unaligned(&y[16..]),
        )
    };
    dot_norm_simd(q, v, 4, eight, f32_le)
}

/// The `simd128` loop shared by the stored encodings: over
/// `min(q.len(), v.len() / width)` components, 8 at a time (`eight` turns
/// `8 × width` bytes into two `f32x4`), in two 4-lane sums each for the dot
/// product and the norm; `one` decodes the components after the last 8.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot_norm_simd(
    q: &[f32],
    v: &[u8],
    width: usize,
    eight: impl Fn(&[u8]) -> (core::arch::wasm32::v128, core::arch::wasm32::v128),
    one: impl Fn(&[u8]) -> f32,
) -> (f32, f32) {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128};
    let (qc, vc) = (q.chunks_exact(8), v.chunks_exact(8 * width));
    let done = qc.len().min(vc.len()) * 8;
    let zero = f32x4_splat(0.0);
    let (mut d0, mut d1, mut n0, mut n1) = (zero, zero, zero, zero);
    for (x, y) in qc.zip(vc) {
        let a0: v128 = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&x[..4]));
        let a1: v128 = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&x[4..]));
        let (b0, b1) = eight(y);
        d0 = f32x4_add(d0, f32x4_mul(a0, b0));
        d1 = f32x4_add(d1, f32x4_mul(a1, b1));
        n0 = f32x4_add(n0, f32x4_mul(b0, b0));
        n1 = f32x4_add(n1, f32x4_mul(b1, b1));
    }
    let sum = |a: v128, b: v128| {
        let s = f32x4_add(a, b);
        (f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s))
            + (f32x4_extract_lane::<2>(s) + f32x4_extract_lane::<3>(s))
    };
    let (mut dot, mut norm) = (sum(d0, d1), sum(n0, n1));
    for (x, y) in q[done..].iter().zip(v[done * width..].chunks_exact(width)) {
        let y = one(y);
        dot += x * y;
        norm += y * y;
    }
    (dot, norm)
}

/// [`dot_norm_f16`] of `v` and of `w` (the same length) in one loop: each
/// vector's lanes add the same products in the same order as alone.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot_norm_f16_pair(q: &[f32], v: &[u8], w: &[u8]) -> [(f32, f32); 2] {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128};
    let (qc, vc, wc) = (q.chunks_exact(8), v.chunks_exact(16), w.chunks_exact(16));
    let done = qc.len().min(vc.len()).min(wc.len()) * 8;
    let zero = f32x4_splat(0.0);
    let (mut d0, mut d1, mut n0, mut n1) = (zero, zero, zero, zero);
    let (mut e0, mut e1, mut m0, mut m1) = (zero, zero, zero, zero);
    for ((x, y), z) in qc.zip(vc).zip(wc) {
        let a0: v128 = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&x[..4]));
        let a1: v128 = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&x[4..]));
        let (b0, b1) = f16x8(y);
        let (c0, c1) = f16x8(z);
        d0 = f32x4_add(d0, f32x4_mul(a0, b0));
        d1 = f32x4_add(d1, f32x4_mul(a1, b1));
        n0 = f32x4_add(n0, f32x4_mul(b0, b0));
        n1 = f32x4_add(n1, f32x4_mul(b1, b1));
        e0 = f32x4_add(e0, f32x4_mul(a0, c0));
        e1 = f32x4_add(e1, f32x4_mul(a1, c1));
        m0 = f32x4_add(m0, f32x4_mul(c0, c0));
        m1 = f32x4_add(m1, f32x4_mul(c1, c1));
    }
    let sum = |a: v128, b: v128| {
        let s = f32x4_add(a, b);
        (f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s))
            + (f32x4_extract_lane::<2>(s) + f32x4_extract_lane::<3>(s))
    };
    let mut out = [(sum(d0, d1), sum(n0, n1)), (sum(e0, e1), sum(m0, m1))];
    for (k, bytes) in [v, w].into_iter().enumerate() {
        for (x, y) in q[done..].iter().zip(bytes[done * 2..].chunks_exact(2)) {
            let y = f16_le(y);
            out[k].0 += x * y;
            out[k].1 += y * y;
        }
    }
    out
}

/// The portable twin of the paired `f16` `simd128` kernel.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot_norm_f16_pair(q: &[f32], v: &[u8], w: &[u8]) -> [(f32, f32); 2] {
    [dot_norm_f16(q, v), dot_norm_f16(q, w)]
}

/// The portable twin of the `f16` `simd128` kernel.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot_norm_f16(q: &[f32], v: &[u8]) -> (f32, f32) {
    dot_norm_lanes(q, v, 2, f16_le)
}

/// The portable twin of the `f32` `simd128` kernel.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot_norm_le(q: &[f32], v: &[u8]) -> (f32, f32) {
    dot_norm_lanes(q, v, 4, f32_le)
}

/// `(q · v, v · v)` over `min(q.len(), v.len() / width)` components of
/// `width` bytes each (decoded by `one`), in 8 `f32` lanes.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot_norm_lanes(q: &[f32], v: &[u8], width: usize, one: impl Fn(&[u8]) -> f32) -> (f32, f32) {
    let (qc, vc) = (q.chunks_exact(8), v.chunks_exact(8 * width));
    let done = qc.len().min(vc.len()) * 8;
    let (mut dot, mut norm) = ([0f32; 8], [0f32; 8]);
    for (x, y) in qc.zip(vc) {
        for i in 0..8 {
            let y = one(&y[i * width..]);
            dot[i] += x[i] * y;
            norm[i] += y * y;
        }
    }
    let (mut dot, mut norm) = (dot.iter().sum::<f32>(), norm.iter().sum::<f32>());
    for (x, y) in q[done..].iter().zip(v[done * width..].chunks_exact(width)) {
        let y = one(y);
        dot += x * y;
        norm += y * y;
    }
    (dot, norm)
}

async fn load_hits<S: Sql>(sql: &S, ranked: &[(i64, Scores)]) -> Result<Vec<Hit>> {
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..ranked.len()).map(|k| format!("?{}", k + 1)).collect();
    let rows = sql
        .query(
            &format!(
                "SELECT c.id, c.doc_id, COALESCE(s.filename, ''), c.ordinal, c.text, c.page, c.heading_path, c.metadata
                 FROM rs_chunks c LEFT JOIN rs_sources s ON s.index_name = c.index_name AND s.doc_id = c.doc_id
                 WHERE c.id IN ({})",
                placeholders.join(", ")
            ),
            &ranked.iter().map(|(id, _)| SqlValue::Integer(*id)).collect::<Vec<_>>(),
        )
        .await?;
    let mut by_id: HashMap<i64, Hit> = HashMap::new();
    for r in &rows.rows {
        let id = int(r.0.first());
        by_id.insert(
            id,
            Hit {
                chunk_id: id,
                document_id: text(r.0.get(1)),
                filename: text(r.0.get(2)),
                ordinal: int(r.0.get(3)),
                text: text(r.0.get(4)),
                page: match r.0.get(5) {
                    Some(SqlValue::Integer(p)) => Some(*p),
                    _ => None,
                },
                heading_path: serde_json::from_str(&text(r.0.get(6))).unwrap_or_default(),
                metadata: serde_json::from_str(&text(r.0.get(7))).unwrap_or_default(),
                scores: Scores {
                    bm25: None,
                    vector: None,
                    fused: 0.0,
                },
            },
        );
    }
    Ok(ranked
        .iter()
        .filter_map(|(id, scores)| {
            by_id.remove(id).map(|mut h| {
                h.scores = scores.clone();
                h
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The asymmetric score in byte lanes equals the same sum taken bit by
    /// bit over the quantised levels, at widths around the lane groups.
    #[test]
    fn asymmetric_score_counts_like_a_bit_by_bit_sum() {
        let mut seed = 5u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for dims in [1usize, 7, 64, 130, 256, 1536, 3072, 16 * 31 * 8 + 24, 9000] {
            let query: Vec<f32> = (0..dims).map(|_| next()).collect();
            let per = dims.div_ceil(8);
            let planes = QueryPlanes::new(&query, per);
            let v: Vec<f32> = (0..dims).map(|_| next()).collect();
            let code = binary_code(&v);
            let level = |i: usize| {
                (0..QUERY_BITS)
                    .map(|b| u64::from(planes.planes[b][i / 8] >> (i % 8) & 1) << b)
                    .sum::<u64>()
            };
            let set: Vec<usize> = (0..dims)
                .filter(|i| code[i / 8] >> (i % 8) & 1 == 1)
                .collect();
            let expected = planes.low * set.len() as f32
                + planes.step * set.iter().map(|i| level(*i)).sum::<u64>() as f32;
            assert_eq!(
                planes.score(&code).to_bits(),
                expected.to_bits(),
                "{dims} dims"
            );
            // Levels round the query: each within step / 2 of its component.
            for (i, x) in query.iter().enumerate() {
                let back = planes.low + planes.step * level(i) as f32;
                assert!(
                    (back - x).abs() <= planes.step / 2.0 + 1e-6,
                    "{dims} dims, {i}"
                );
            }
        }
    }

    #[test]
    fn paired_rescoring_matches_one_vector_at_a_time_bit_for_bit() {
        check_rescoring().unwrap();
    }

    #[test]
    fn sqlite_varints_decode() {
        assert_eq!(sqlite_varint(&[0x05]), Some(5));
        assert_eq!(sqlite_varint(&[0x81, 0x00]), Some(128));
        assert_eq!(sqlite_varint(&[0xce, 0x10, 0xff]), Some(10_000));
        assert_eq!(sqlite_varint(&[0xff; 9]), Some(u64::MAX));
        assert_eq!(sqlite_varint(&[0x81]), None);
        assert_eq!(sqlite_varint(&[]), None);
    }

    #[test]
    fn cosine_in_f32_lanes_matches_f64_on_any_length() {
        for n in [1usize, 7, 8, 9, 384, 1537] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 4.0) / 2.0).collect();
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let want = dot / (norm(&a) * norm(&b));
            assert!((cosine(&a, &b) - want).abs() < 1e-5, "n={n}");
        }
        assert_eq!(cosine(&[0.0; 9], &[1.0; 9]), 0.0);
    }

    #[test]
    fn rescoring_stored_bytes_matches_cosine_of_the_decoded_vector() {
        for n in [1usize, 7, 8, 9, 16, 384, 1537] {
            let q: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let v: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 4.0) / 3.0).collect();
            let r = Rescorer::new(&q);
            let exact = cosine(&q, &v);
            let got = r.cosine_stored(&ragspin_core::encode_f32(&v));
            assert!((got - exact).abs() < 1e-5, "f32, n={n}: {got} vs {exact}");
            let f16 = crate::vectors::encode_f16(&v);
            let rounded = crate::vectors::decode_stored(&f16, n).unwrap();
            assert_ne!(rounded, v, "thirds are not exact in f16");
            let got = r.cosine_stored(&f16);
            assert!(
                (got - cosine(&q, &rounded)).abs() < 1e-5,
                "f16, n={n}: {got}"
            );
            assert!(
                (got - exact).abs() < 1e-3,
                "f16 rounding, n={n}: {got} vs {exact}"
            );
        }
        assert_eq!(Rescorer::new(&[1.0; 9]).cosine_stored(&[0; 36]), 0.0);
        assert_eq!(Rescorer::new(&[0.0; 9]).cosine_stored(&[1; 36]), 0.0);
        assert_eq!(Rescorer::new(&[1.0; 9]).cosine_stored(&[1; 35]), 0.0);
    }

    #[test]
    fn asymmetric_scores_sum_the_query_over_set_bits_within_the_quantisation_step() {
        // Code lengths with and without a partial last word, a query
        // shorter than the code (padding bits are clear), and a query whose
        // values lie on the quantisation grid (then the sum is exact).
        let levels = ((1u32 << QUERY_BITS) - 1) as f32;
        for (dims, per, on_grid) in [
            (8usize, 1usize, false),
            (40, 5, false),
            (61, 8, false),
            (1536, 192, false),
            (300, 38, true),
        ] {
            let q: Vec<f32> = if on_grid {
                (0..dims)
                    .map(|i| (i % (1 << QUERY_BITS)) as f32 * 0.5 - 3.0)
                    .collect()
            } else {
                (0..dims)
                    .map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 97.0)
                    .collect()
            };
            let planes = QueryPlanes::new(&q, per);
            let (low, high) = q
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
            for seed in 0..5usize {
                let mut code: Vec<u8> = (0..per)
                    .map(|j| ((j * 37 + seed * 101) % 256) as u8)
                    .collect();
                for i in dims..per * 8 {
                    code[i / 8] &= !(1 << (i % 8));
                }
                let set: Vec<usize> = (0..dims)
                    .filter(|i| code[i / 8] >> (i % 8) & 1 == 1)
                    .collect();
                let want: f64 = set.iter().map(|i| q[*i] as f64).sum();
                let got = planes.score(&code) as f64;
                let bound = if on_grid {
                    1e-3
                } else {
                    set.len() as f64 * ((high - low) / levels) as f64 / 2.0 + 1e-3
                };
                assert!(
                    (got - want).abs() <= bound,
                    "dims={dims} seed={seed}: {got} vs {want}"
                );
            }
        }
        // A constant query, and an empty one.
        assert_eq!(
            QueryPlanes::new(&[0.25; 16], 2).score(&[0b1010_0001, 0x01]),
            1.0
        );
        assert_eq!(QueryPlanes::new(&[], 2).score(&[0xff, 0xff]), 0.0);
    }

    #[test]
    fn fts_queries_quote_every_word() {
        assert_eq!(
            fts_query("Battery-life? \"x\" OR y").unwrap(),
            "\"battery\" OR \"life\" OR \"x\" OR \"or\" OR \"y\""
        );
        assert!(fts_query("?? !!").is_none());
        assert_eq!(fts_query("Phone phone PHONE").unwrap(), "\"phone\"");
    }

    #[test]
    fn common_terms_leave_the_bm25_query_unless_all_are_common() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let df: HashMap<String, i64> = [("product", 1000), ("battery", 230), ("123", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            keep_rare_terms(words(&["product", "battery", "123", "unknown"]), &df, 1000),
            words(&["battery", "123", "unknown"])
        );
        // Exactly half is not "more than half".
        assert_eq!(
            keep_rare_terms(words(&["battery"]), &df, 460),
            words(&["battery"])
        );
        assert_eq!(
            keep_rare_terms(words(&["product", "battery"]), &df, 300),
            words(&["battery"]),
            "all common: the rarest stays"
        );
    }

    #[test]
    fn filters_parse_and_name_bad_fields() {
        let f = Filter::parse(
            &json!({"category": "phones", "rating": {"gte": 4}, "brand": {"in": ["a", "b"]}}),
        )
        .unwrap();
        assert_eq!(f.0.len(), 3);
        let (sql, params) = f.sql(1);
        assert!(
            sql.contains("json_extract(c.metadata, ?1) IN (?2, ?3)") || sql.contains(">="),
            "{sql}"
        );
        assert_eq!(params.len(), 7);
        for (bad, field) in [
            (json!({"rating": {"between": 1}}), "filter.rating"),
            (json!({"rating": {"gte": "four"}}), "filter.rating"),
            (json!({"bad field": 1}), "filter.bad field"),
            (json!({"tags": {"in": []}}), "filter.tags"),
            (json!({"x": {"a": 1}}), "filter.x"),
            (json!({"x": [1]}), "filter.x"),
        ] {
            match Filter::parse(&bad) {
                Err(Error::BadRequest { field: Some(f), .. }) => assert_eq!(f, field),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(Filter::parse(&json!([1])).is_err());
        assert!(
            Filter::parse(&serde_json::Value::Null)
                .unwrap()
                .0
                .is_empty()
        );
    }
}
