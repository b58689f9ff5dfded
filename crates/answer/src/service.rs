//! The query service: validate → look up the index → session → answer
//! cache → embed the (standalone) question → hybrid retrieval → relevant
//! sources within the prompt budget ([`prepare`]); then answer, whole
//! ([`answer`]) or as a stream of [`Event`]s ([`answer_stream`]), with
//! verified citations, falling back to an extractive answer whenever the
//! chat model cannot be used, and recording the session turn and the
//! cache entry at the end.

use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;

use futures::FutureExt;
use futures::future::{Either, select};
use futures::stream::{self, LocalBoxStream, StreamExt};
use ragspin_azure::{FinishReason, StreamEvent};
use ragspin_core::{
    ChatRequest, Clock, Error, ErrorBody, KvStore, Result, Sql, SqlValue, Timer, Usage,
    with_timeout,
};
use ragspin_index::IndexSettings;
use ragspin_index::search::{
    FTS_STATE_ROWS, Filter, FtsState, Hit, MAX_TOP_K, SearchRequest, SearchResult, Weights,
    bm25_words, search_version, uncounted_words, word_count_rows,
};

use crate::cache::{self, CacheKey, canonical_json};
use crate::citations::{strip_markers, verify};
use crate::extractive;
use crate::model::{
    Answer, Event, Provenance, Retrieval, SearchHit, SearchResponse, Source, SourceScores,
    SourcesEvent, UsageOut,
};
use crate::models::{ChatEvents, Models};
use crate::prompt::{self, PROMPT_VERSION, PromptLimits, Turn};
use crate::session::{self, Session};
use crate::text::{content_words, keywords, normalise_question, overlap};

/// Longest question, in characters.
pub const MAX_QUESTION_CHARS: usize = 4000;
/// The answer when nothing relevant was retrieved.
pub const NOT_FOUND_ANSWER: &str = "The documents do not contain an answer to this question.";

/// Tunables (Spin variables; see the README).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Time the chat model has for a whole answer before degrading.
    pub chat_timeout_ms: u64,
    /// Time to embed the question before falling back to BM25.
    pub embedding_timeout_ms: u64,
    /// Idle time after which a streamed answer sends a keep-alive comment.
    pub heartbeat_ms: u64,
    /// Lifetime of cached answers; 0 disables the cache.
    pub cache_ttl_s: u64,
    /// Idle lifetime of a session.
    pub session_ttl_s: u64,
    /// Turns a session keeps.
    pub session_max_turns: usize,
    /// Prompt limits.
    pub prompt: PromptLimits,
    /// A hit sharing no content word with the question is relevant only
    /// with at least this cosine similarity.
    pub min_vector_score: f64,
    /// Default fusion weights.
    pub weights: Weights,
    /// `top_k` when the request names none (query; search uses 10).
    pub default_top_k: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            chat_timeout_ms: 20_000,
            embedding_timeout_ms: 10_000,
            heartbeat_ms: 2_000,
            cache_ttl_s: 86_400,
            session_ttl_s: 3_600,
            session_max_turns: 10,
            prompt: PromptLimits::default(),
            min_vector_score: 0.45,
            weights: Weights::default(),
            default_top_k: 5,
        }
    }
}

/// The ports and settings a query runs with.
pub struct Ctx<S, K, C, T, M> {
    pub sql: S,
    pub kv: K,
    pub clock: C,
    pub timer: T,
    pub models: M,
    pub settings: Settings,
}

/// Who asks: `principal` owns sessions, `scope` (what the caller may see)
/// is part of the answer-cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub scope: String,
}

impl Caller {
    /// A caller before authentication is wired in: everyone is the same.
    pub fn anonymous() -> Self {
        Self {
            principal: "anonymous".into(),
            scope: "*".into(),
        }
    }
}

/// `POST /v1/search`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub index: String,
    pub query: String,
    pub top_k: Option<usize>,
    pub filter: serde_json::Value,
    pub weights: Option<Weights>,
    /// A query embedding the caller computed itself: used as is (it must
    /// have the index's dimensions), nothing is embedded.
    pub vector: Option<Vec<f32>>,
}

/// `POST /v1/query` and `/v1/chat/completions`, decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryParams {
    pub index: String,
    pub question: String,
    pub top_k: Option<usize>,
    pub filter: serde_json::Value,
    pub weights: Option<Weights>,
    pub session_id: Option<String>,
    /// Earlier turns given by the client (chat completions' messages).
    pub history: Vec<Turn>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// An index's active version.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    pub version: i64,
    pub generation: i64,
    pub settings: IndexSettings,
    /// The FTS index's state, read in the same statement (see
    /// [`ragspin_index::search::FTS_STATE_ROWS`]); `None` on a database
    /// too old to have it.
    pub fts: Option<FtsState>,
}

/// The index row, and with `fts` the FTS state with the row counts of the
/// words given (those the instance has not counted yet).
async fn lookup<S: Sql>(sql: &S, index: &str, fts: Option<&[String]>) -> Result<Option<IndexInfo>> {
    let with_fts = fts.is_some();
    let words = fts.unwrap_or_default();
    let mut statement =
        "SELECT 'index', x.active_version, v.generation, v.settings FROM rs_indexes x
         JOIN rs_versions v ON v.index_name = x.name AND v.version = x.active_version
         WHERE x.name = ?1"
            .to_string();
    if with_fts {
        statement.push_str(&format!(
            " UNION ALL SELECT 'fts', * FROM ({}{FTS_STATE_ROWS})",
            word_count_rows(words.len(), 2)
        ));
    }
    let mut params = vec![SqlValue::Text(index.to_owned())];
    params.extend(words.iter().map(|w| SqlValue::Text(w.clone())));
    let rows = sql.query(&statement, &params).await?;
    let (found, fts): (Vec<_>, Vec<_>) = rows
        .rows
        .iter()
        .partition(|r| r.get(0).and_then(SqlValue::as_str) == Some("index"));
    Ok(found.first().map(|row| IndexInfo {
        version: row.get(1).and_then(SqlValue::as_i64).unwrap_or(0),
        generation: row.get(2).and_then(SqlValue::as_i64).unwrap_or(0),
        settings: row
            .get(3)
            .and_then(SqlValue::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        fts: with_fts.then(|| {
            FtsState::from_rows(fts.iter().map(|r| r.0.get(1..).unwrap_or_default()))
                .counting(words)
        }),
    }))
}

/// The active version of `index` (404 when it does not exist), read with
/// the FTS state and the row counts of the words a BM25 search for `text`
/// needs that this instance has not counted, so the search itself needs no
/// statement for them. A database nobody has ingested into yet has no
/// tables: it is migrated once, then asked again. One from before the FTS
/// state could be read (schema 5) is asked without it.
pub async fn index_info<S: Sql>(sql: &S, index: &str, text: &str) -> Result<IndexInfo> {
    ragspin_index::model::validate_index_name(index)?;
    let words = uncounted_words(&bm25_words(&bm25_text(text)));
    let found = match lookup(sql, index, Some(&words)).await {
        Ok(found) => found,
        Err(Error::Storage(_)) => match lookup(sql, index, None).await {
            Ok(found) => found,
            Err(Error::Storage(_)) => {
                ragspin_index::schema::migrate(sql).await?;
                lookup(sql, index, Some(&words)).await?
            }
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    found.ok_or_else(|| Error::NotFound(format!("index {index:?} does not exist")))
}

/// What BM25 searches for `text`: its topic words only; a text of nothing
/// but stopwords keeps its words.
fn bm25_text(text: &str) -> String {
    let keywords = keywords(text);
    if keywords.is_empty() {
        text.to_owned()
    } else {
        keywords.join(" ")
    }
}

fn check_top_k(top_k: usize) -> Result<usize> {
    if top_k == 0 || top_k > MAX_TOP_K {
        return Err(Error::validation(
            "top_k",
            format!("must be between 1 and {MAX_TOP_K}"),
        ));
    }
    Ok(top_k)
}

fn check_weights(weights: Weights) -> Result<Weights> {
    let ok = |w: f64| w.is_finite() && (0.0..=100.0).contains(&w);
    if !ok(weights.bm25) || !ok(weights.vector) || weights.bm25 + weights.vector <= 0.0 {
        return Err(Error::validation(
            "weights",
            "bm25 and vector are between 0 and 100, not both 0",
        ));
    }
    Ok(weights)
}

fn check_text(field: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    if text.chars().count() > MAX_QUESTION_CHARS {
        return Err(Error::validation(
            field,
            format!("must be at most {MAX_QUESTION_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The reason code for a chat failure.
pub fn chat_failure_reason(error: &Error) -> &'static str {
    match error {
        Error::Timeout(_) => "chat_timeout",
        Error::Unavailable(m) if m.contains("rate limit") => "chat_rate_limited",
        Error::Unavailable(m) if m.contains("offline") => "offline",
        Error::Unavailable(_) => "chat_unavailable",
        Error::Upstream(m) if m.contains("content filter") => "chat_content_filter",
        _ => "chat_error",
    }
}

struct Retrieved {
    result: SearchResult,
    retrieval: Retrieval,
    embedding_deployment: Option<String>,
}

/// What to retrieve, besides the text.
struct Query {
    top_k: usize,
    filter: Filter,
    weights: Weights,
    /// The caller's own query embedding, if any.
    vector: Option<Vec<f32>>,
}

/// A caller-supplied query embedding: non-empty, finite.
fn check_vector(v: &[f32]) -> Result<()> {
    if v.is_empty() || v.len() > 16_384 {
        return Err(Error::validation("vector", "must hold 1 to 16384 numbers"));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::validation("vector", "must hold finite numbers"));
    }
    Ok(())
}

async fn retrieve<S, K, C, T, M>(
    ctx: &Ctx<S, K, C, T, M>,
    index: &str,
    info: &IndexInfo,
    text: &str,
    query: Query,
) -> Result<Retrieved>
where
    S: Sql,
    C: Clock,
    T: Timer,
    M: Models,
{
    let Query {
        top_k,
        filter,
        weights,
        vector: given,
    } = query;
    let mut reason = None;
    let mut vector = None;
    let supplied = given.is_some();
    if let Some(v) = given {
        if let Some(dims) = info.settings.dimensions
            && dims as usize != v.len()
        {
            return Err(Error::validation(
                "vector",
                format!(
                    "has {} numbers but index {index:?} holds {dims}-dimension vectors",
                    v.len()
                ),
            ));
        }
        vector = Some(v);
    } else if weights.vector > 0.0 {
        if ctx.models.online() {
            let embedded = with_timeout(
                &ctx.timer,
                ctx.settings.embedding_timeout_ms,
                ctx.models.embed(&info.settings, text),
            )
            .await;
            match embedded {
                Ok(v) => vector = Some(v),
                Err(Error::Timeout(_)) => reason = Some("embeddings_timeout"),
                Err(_) => reason = Some("embeddings_unavailable"),
            }
        } else {
            reason = Some("offline");
        }
    }
    let bm25_only = Weights {
        bm25: 1.0,
        vector: 0.0,
    };
    let mut request = SearchRequest {
        index: index.to_owned(),
        query: bm25_text(text),
        top_k,
        filter,
        weights: if vector.is_some() { weights } else { bm25_only },
        query_vector: vector,
    };
    let result = match search_version(
        &ctx.sql,
        &request,
        info.version,
        info.generation,
        info.fts.as_ref(),
    )
    .await
    {
        Err(Error::Conflict(message)) if supplied => {
            return Err(Error::validation("vector", message));
        }
        Err(Error::Conflict(_)) if request.query_vector.is_some() => {
            request.query_vector = None;
            request.weights = bm25_only;
            reason = Some("embedding_dimensions_mismatch");
            search_version(
                &ctx.sql,
                &request,
                info.version,
                info.generation,
                info.fts.as_ref(),
            )
            .await?
        }
        other => other?,
    };
    let embedding_deployment = request
        .query_vector
        .is_some()
        .then(|| ctx.models.embedding_deployment(&info.settings))
        .flatten();
    Ok(Retrieved {
        retrieval: Retrieval {
            mode: result.mode.clone(),
            degraded_reason: reason.map(str::to_owned),
        },
        result,
        embedding_deployment,
    })
}

fn scores(hit: &Hit) -> SourceScores {
    SourceScores {
        bm25: hit.scores.bm25,
        vector: hit.scores.vector,
        fused: hit.scores.fused,
    }
}

/// `POST /v1/search`.
pub async fn search_index<S, K, C, T, M>(
    ctx: &Ctx<S, K, C, T, M>,
    params: SearchParams,
) -> Result<SearchResponse>
where
    S: Sql,
    C: Clock,
    T: Timer,
    M: Models,
{
    check_text("query", &params.query)?;
    let top_k = check_top_k(params.top_k.unwrap_or(10))?;
    let weights = check_weights(params.weights.unwrap_or(ctx.settings.weights))?;
    let filter = Filter::parse(&params.filter)?;
    if let Some(v) = &params.vector {
        check_vector(v)?;
    }
    let info = index_info(&ctx.sql, &params.index, &params.query).await?;
    let r = retrieve(
        ctx,
        &params.index,
        &info,
        &params.query,
        Query {
            top_k,
            filter,
            weights,
            vector: params.vector,
        },
    )
    .await?;
    Ok(SearchResponse {
        index: params.index,
        index_version: r.result.index_version,
        degraded: r.retrieval.degraded_reason.is_some(),
        retrieval: r.retrieval,
        hits: r
            .result
            .hits
            .iter()
            .map(|h| SearchHit {
                chunk_id: h.chunk_id,
                document_id: h.document_id.clone(),
                filename: h.filename.clone(),
                ordinal: h.ordinal,
                page: h.page,
                heading_path: h.heading_path.clone(),
                text: h.text.clone(),
                metadata: h.metadata.clone(),
                scores: scores(h),
            })
            .collect(),
    })
}

/// The hits worth showing the model: sharing a content word with the
/// question, or close enough in embedding space.
pub fn relevant_sources(question: &str, hits: &[Hit], min_vector_score: f64) -> Vec<Source> {
    let q = content_words(question);
    // One shared word is chance when the question has three or more.
    let needed = if q.len() >= 3 { 2 } else { 1 };
    hits.iter()
        .filter(|h| {
            let lexical = overlap(
                &q,
                &content_words(&format!("{} {}", h.heading_path.join(" "), h.text)),
            ) >= needed;
            lexical || h.scores.vector.is_some_and(|v| v >= min_vector_score)
        })
        .enumerate()
        .map(|(k, h)| Source {
            id: u32::try_from(k + 1).unwrap_or(u32::MAX),
            chunk_id: h.chunk_id,
            document_id: h.document_id.clone(),
            filename: h.filename.clone(),
            page: h.page,
            heading_path: h.heading_path.clone(),
            text: h.text.clone(),
            scores: scores(h),
        })
        .collect()
}

/// A question, ready to be answered.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub index: String,
    pub info: IndexInfo,
    pub question: String,
    pub standalone: String,
    pub condensed: bool,
    pub sources: Vec<Source>,
    pub retrieval: Retrieval,
    pub embedding_deployment: Option<String>,
    pub history: Vec<Turn>,
    pub session: Option<(String, String, Session)>,
    pub cache_key: Option<String>,
    pub cached: Option<Answer>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// Everything before the model: validation, index, session, cache,
/// retrieval. Errors here are the request's (4xx, or 5xx for storage).
pub async fn prepare<S, K, C, T, M>(
    ctx: &Ctx<S, K, C, T, M>,
    caller: &Caller,
    params: QueryParams,
) -> Result<Prepared>
where
    S: Sql,
    K: KvStore,
    C: Clock,
    T: Timer,
    M: Models,
{
    check_text("question", &params.question)?;
    let top_k = check_top_k(params.top_k.unwrap_or(ctx.settings.default_top_k))?;
    let weights = check_weights(params.weights.unwrap_or(ctx.settings.weights))?;
    let filter = Filter::parse(&params.filter)?;
    if let Some(id) = &params.session_id {
        session::validate_id(id)?;
    }
    // The question's words are counted with the index row; a follow-up's
    // condensed question may add a few the search counts itself.
    let info = index_info(&ctx.sql, &params.index, &params.question).await?;
    let mut history = params.history;
    let mut session_state = None;
    if let Some(id) = &params.session_id {
        let key = session::key(&caller.principal, id);
        let existing = session::load(&ctx.kv, &ctx.clock, &key).await?;
        let current = match existing {
            Some(s) if s.index != params.index => {
                return Err(Error::Conflict(format!(
                    "session {id:?} belongs to index {:?}",
                    s.index
                )));
            }
            Some(s) => s,
            None => Session {
                index: params.index.clone(),
                turns: Vec::new(),
                expires_at: 0,
            },
        };
        if history.is_empty() {
            history = current.turns.clone();
        }
        session_state = Some((id.clone(), key, current));
    }
    let condensed = session::condense(&params.question, &history);
    let standalone = condensed.clone().unwrap_or_else(|| params.question.clone());
    let mut prepared = Prepared {
        index: params.index.clone(),
        info,
        question: params.question.clone(),
        condensed: condensed.is_some(),
        standalone,
        sources: Vec::new(),
        retrieval: Retrieval {
            mode: String::new(),
            degraded_reason: None,
        },
        embedding_deployment: None,
        history,
        session: session_state,
        cache_key: None,
        cached: None,
        max_tokens: params.max_tokens,
        temperature: params.temperature,
    };
    if prepared.history.is_empty() && ctx.settings.cache_ttl_s > 0 {
        let chat = ctx.models.chat_deployment();
        let embedding = ctx.models.embedding_deployment(&prepared.info.settings);
        let question = normalise_question(&params.question);
        let filter_json = canonical_json(&params.filter);
        let key = CacheKey {
            prompt_version: PROMPT_VERSION,
            index: &params.index,
            index_version: prepared.info.version,
            generation: prepared.info.generation,
            question: &question,
            filter: &filter_json,
            top_k,
            weights: (weights.bm25, weights.vector),
            scope: &caller.scope,
            chat_deployment: chat.as_deref(),
            embedding_deployment: embedding.as_deref(),
        }
        .key();
        if let Some(hit) = cache::get(&ctx.kv, &ctx.clock, &key).await {
            prepared.cached = Some(hit);
            prepared.retrieval = prepared
                .cached
                .as_ref()
                .map(|a| a.retrieval.clone())
                .unwrap_or(prepared.retrieval);
            return Ok(prepared);
        }
        prepared.cache_key = Some(key);
    }
    let r = retrieve(
        ctx,
        &params.index,
        &prepared.info,
        &prepared.standalone,
        Query {
            top_k,
            filter,
            weights,
            vector: None,
        },
    )
    .await?;
    let relevant = relevant_sources(
        &prepared.standalone,
        &r.result.hits,
        ctx.settings.min_vector_score,
    );
    prepared.sources = prompt::fit_sources(relevant, ctx.settings.prompt.source_tokens);
    prepared.retrieval = r.retrieval;
    prepared.embedding_deployment = r.embedding_deployment;
    Ok(prepared)
}

impl Prepared {
    fn chat_request(&self, limits: &PromptLimits) -> ChatRequest {
        let mut request = prompt::build(&self.standalone, &self.sources, &self.history, limits);
        if let Some(m) = self.max_tokens {
            request.max_tokens = Some(m.min(limits.max_answer_tokens.max(1) * 4));
        }
        if let Some(t) = self.temperature {
            request.temperature = Some(t);
        }
        request
    }

    fn sources_event(&self) -> SourcesEvent {
        let cached = self.cached.as_ref();
        SourcesEvent {
            index: self.index.clone(),
            index_version: self.info.version,
            sources: cached.map_or_else(|| self.sources.clone(), |a| a.sources.clone()),
            retrieval: cached.map_or_else(|| self.retrieval.clone(), |a| a.retrieval.clone()),
            session_id: self.session.as_ref().map(|(id, _, _)| id.clone()),
            standalone_question: self.condensed.then(|| self.standalone.clone()),
        }
    }

    /// An answer from `text` (verified against the sources).
    fn answer_from(
        &self,
        text: &str,
        usage: Usage,
        finish: &str,
        chat_deployment: Option<String>,
        degraded_reason: Option<&str>,
    ) -> Answer {
        let verified = verify(text, &self.sources);
        let found = !self.sources.is_empty();
        Answer {
            answer: verified.text,
            citations: verified.citations,
            dropped_citations: verified.dropped,
            found,
            degraded: degraded_reason.is_some() || self.retrieval.degraded_reason.is_some(),
            degraded_reason: degraded_reason.map(str::to_owned),
            finish_reason: finish.to_owned(),
            index: self.index.clone(),
            index_version: self.info.version,
            usage: UsageOut::from(usage),
            provenance: Provenance {
                index: self.index.clone(),
                index_version: self.info.version,
                index_generation: self.info.generation,
                chat_deployment,
                embedding_deployment: self.embedding_deployment.clone(),
                prompt_version: PROMPT_VERSION.to_owned(),
            },
            retrieval: self.retrieval.clone(),
            cached: false,
            session_id: self.session.as_ref().map(|(id, _, _)| id.clone()),
            standalone_question: self.condensed.then(|| self.standalone.clone()),
            sources: self.sources.clone(),
        }
    }

    fn not_found(&self) -> Answer {
        self.answer_from(NOT_FOUND_ANSWER, Usage::default(), "stop", None, None)
    }

    fn extractive(&self, reason: &str) -> Answer {
        let text = extractive::answer(&self.standalone, &self.sources)
            .unwrap_or_else(|| NOT_FOUND_ANSWER.to_owned());
        self.answer_from(&text, Usage::default(), "stop", None, Some(reason))
    }

    fn cache_hit(&self, mut answer: Answer) -> Answer {
        answer.cached = true;
        answer.session_id = self.session.as_ref().map(|(id, _, _)| id.clone());
        answer.standalone_question = None;
        answer
    }
}

fn finish_name(reason: Option<&FinishReason>) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ContentFilter) => "content_filter",
        _ => "stop",
    }
}

/// What an answer does last: record the session turn and cache the answer.
async fn settle<S, K, C, T, M>(ctx: &Ctx<S, K, C, T, M>, p: &Prepared, answer: &Answer)
where
    K: KvStore,
    C: Clock,
{
    if let Some((_, key, session)) = &p.session {
        let turn = Turn {
            question: p.question.clone(),
            standalone: p.standalone.clone(),
            answer: strip_markers(&answer.answer),
        };
        // A lost turn must not cost the answer; the next question simply
        // has less context.
        _ = session::record(
            &ctx.kv,
            &ctx.clock,
            key,
            session.clone(),
            turn,
            ctx.settings.session_max_turns,
            ctx.settings.session_ttl_s,
        )
        .await;
    }
    if let Some(key) = &p.cache_key
        && !answer.degraded
        && !answer.cached
    {
        cache::put(&ctx.kv, &ctx.clock, key, answer, ctx.settings.cache_ttl_s).await;
    }
}

/// Answer `p` whole.
pub async fn answer<S, K, C, T, M>(ctx: &Ctx<S, K, C, T, M>, mut p: Prepared) -> Answer
where
    S: Sql,
    K: KvStore,
    C: Clock,
    T: Timer,
    M: Models,
{
    let draft = if let Some(hit) = p.cached.take() {
        p.cache_hit(hit)
    } else if p.sources.is_empty() {
        p.not_found()
    } else if !ctx.models.online() {
        p.extractive("offline")
    } else {
        let request = p.chat_request(&ctx.settings.prompt);
        let outcome = with_timeout(
            &ctx.timer,
            ctx.settings.chat_timeout_ms,
            ctx.models.complete(&request),
        )
        .await;
        match outcome {
            Ok(a) if a.finish_reason == Some(FinishReason::ContentFilter) => {
                p.extractive("chat_content_filter")
            }
            Ok(a) => p.answer_from(
                &a.content,
                a.usage,
                finish_name(a.finish_reason.as_ref()),
                ctx.models.chat_deployment(),
                None,
            ),
            Err(e) => p.extractive(chat_failure_reason(&e)),
        }
    };
    settle(ctx, &p, &draft).await;
    draft
}

type Opening<E> = Pin<Box<dyn Future<Output = Result<E>>>>;

enum Phase<E> {
    Start,
    /// An answer known in full: send it as one delta, then finish.
    Whole(Answer),
    Opening(Opening<E>),
    Streaming(Box<Partial<E>>),
    Final(Answer),
    End,
}

struct Partial<E> {
    events: E,
    text: String,
    usage: Usage,
    finish: Option<FinishReason>,
    deadline: u64,
}

struct StreamState<S, K, C, T, M: Models> {
    ctx: Rc<Ctx<S, K, C, T, M>>,
    p: Prepared,
    phase: Phase<M::Events>,
    /// When the whole answer must be done (`chat_timeout_ms` after the
    /// model was first asked).
    deadline: u64,
}

/// Answer `p` as a stream: `Sources`, `Delta`s (with `Heartbeat`s while
/// the model is silent for `heartbeat_ms`), then `Done`.
///
/// Dropping the stream drops the model call in flight: the component drops
/// it when writing to a client that went away fails.
pub fn answer_stream<S, K, C, T, M>(
    ctx: Rc<Ctx<S, K, C, T, M>>,
    p: Prepared,
) -> LocalBoxStream<'static, Event>
where
    S: Sql + 'static,
    K: KvStore + 'static,
    C: Clock + 'static,
    T: Timer + 'static,
    M: Models + 'static,
    M::Events: 'static,
{
    let state = StreamState {
        ctx,
        p,
        phase: Phase::Start,
        deadline: u64::MAX,
    };
    stream::unfold(state, step).boxed_local()
}

async fn step<S, K, C, T, M>(
    mut st: StreamState<S, K, C, T, M>,
) -> Option<(Event, StreamState<S, K, C, T, M>)>
where
    S: Sql + 'static,
    K: KvStore + 'static,
    C: Clock + 'static,
    T: Timer + 'static,
    M: Models + 'static,
    M::Events: 'static,
{
    let ctx = st.ctx.clone();
    loop {
        match std::mem::replace(&mut st.phase, Phase::End) {
            Phase::Start => {
                let event = Event::Sources(st.p.sources_event());
                st.phase = if let Some(hit) = st.p.cached.take() {
                    Phase::Whole(st.p.cache_hit(hit))
                } else if st.p.sources.is_empty() {
                    Phase::Whole(st.p.not_found())
                } else if !ctx.models.online() {
                    Phase::Whole(st.p.extractive("offline"))
                } else {
                    let request = st.p.chat_request(&ctx.settings.prompt);
                    let c = ctx.clone();
                    st.deadline = ctx
                        .clock
                        .now_unix_ms()
                        .saturating_add(ctx.settings.chat_timeout_ms);
                    Phase::Opening(Box::pin(async move {
                        with_timeout(
                            &c.timer,
                            c.settings.chat_timeout_ms,
                            c.models.stream(&request),
                        )
                        .await
                    }))
                };
                return Some((event, st));
            }
            Phase::Whole(answer) => {
                let text = answer.answer.clone();
                st.phase = Phase::Final(answer);
                return Some((Event::Delta(text), st));
            }
            Phase::Opening(mut opening) => {
                let waited = {
                    let sleep = pin!(ctx.timer.sleep(ctx.settings.heartbeat_ms));
                    match select(opening.as_mut(), sleep).await {
                        Either::Left((opened, _)) => Some(opened),
                        Either::Right(((), _)) => None,
                    }
                };
                match waited {
                    None => {
                        st.phase = Phase::Opening(opening);
                        return Some((Event::Heartbeat, st));
                    }
                    Some(Ok(events)) => {
                        st.phase = Phase::Streaming(Box::new(Partial {
                            events,
                            text: String::new(),
                            usage: Usage::default(),
                            finish: None,
                            deadline: st.deadline,
                        }));
                    }
                    Some(Err(e)) => {
                        st.phase = Phase::Whole(st.p.extractive(chat_failure_reason(&e)))
                    }
                }
            }
            Phase::Streaming(mut s) => {
                // An event already decoded (one upstream read often holds
                // many) is taken without arming the heartbeat timer or
                // reading the clock: those are host calls, once per delta.
                let ready = s.events.next().now_or_never();
                let remaining = if ready.is_some() {
                    u64::MAX
                } else {
                    s.deadline.saturating_sub(ctx.clock.now_unix_ms())
                };
                let next = if let Some(event) = ready {
                    Ok(Some(event))
                } else if remaining == 0 {
                    Err(Error::Timeout(format!(
                        "no complete answer within {} ms",
                        ctx.settings.chat_timeout_ms
                    )))
                } else {
                    let sleep = pin!(ctx.timer.sleep(ctx.settings.heartbeat_ms.min(remaining)));
                    let next = pin!(s.events.next());
                    match select(next, sleep).await {
                        Either::Left((event, _)) => Ok(Some(event)),
                        Either::Right(((), _)) => Ok(None),
                    }
                };
                match next {
                    Ok(None) => {
                        st.phase = Phase::Streaming(s);
                        return Some((Event::Heartbeat, st));
                    }
                    Ok(Some(Some(StreamEvent::Content(piece)))) => {
                        s.text.push_str(&piece);
                        st.phase = Phase::Streaming(s);
                        return Some((Event::Delta(piece), st));
                    }
                    Ok(Some(Some(StreamEvent::Finish(reason)))) => {
                        s.finish = Some(reason);
                        st.phase = Phase::Streaming(s);
                    }
                    Ok(Some(Some(StreamEvent::Usage(usage)))) => {
                        s.usage = usage;
                        st.phase = Phase::Streaming(s);
                    }
                    Ok(Some(Some(StreamEvent::Done) | None)) => {
                        st.phase =
                            if s.finish == Some(FinishReason::ContentFilter) && s.text.is_empty() {
                                Phase::Whole(st.p.extractive("chat_content_filter"))
                            } else {
                                Phase::Final(
                                    st.p.answer_from(
                                        &s.text,
                                        s.usage,
                                        finish_name(s.finish.as_ref()),
                                        ctx.models.chat_deployment(),
                                        (s.finish == Some(FinishReason::ContentFilter))
                                            .then_some("chat_content_filter"),
                                    ),
                                )
                            };
                    }
                    Ok(Some(Some(StreamEvent::Failed(e)))) | Err(e) => {
                        let reason = chat_failure_reason(&e);
                        st.phase = if s.text.is_empty() {
                            Phase::Whole(st.p.extractive(reason))
                        } else {
                            // Deltas were sent: keep what came, flagged.
                            Phase::Final(st.p.answer_from(
                                &s.text,
                                s.usage,
                                "error",
                                ctx.models.chat_deployment(),
                                Some(reason),
                            ))
                        };
                    }
                }
            }
            Phase::Final(mut answer) => {
                settle(&ctx, &st.p, &answer).await;
                answer.sources.clear();
                return Some((Event::Done(Box::new(answer)), st));
            }
            Phase::End => return None,
        }
    }
}

/// The error event for a failure after the stream started.
pub fn error_event(error: &Error) -> Event {
    Event::Error(ErrorBody::from(error))
}
