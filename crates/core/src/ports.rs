//! The ports: the only ways the core reaches the outside world.
//!
//! Each trait has a Spin adapter (in `ragspin-spin`, wasm32 only) and an
//! in-memory adapter (in `ragspin-testkit`). The semantics every adapter must
//! honour are written down here and checked by the contract suites in
//! `ragspin_testkit::contract`.
//!
//! The traits use `async fn` without `Send` bounds: a Spin component is a
//! single-threaded wasm instance, and the Spin SDK's futures are not `Send`.
#![allow(async_fn_in_trait)]

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use crate::domain::{ChatCompletion, ChatRequest, Embedding, ScoredChunk, SearchQuery};
use crate::error::Result;
use crate::http::{HttpRequest, HttpResponse};

/// A key-value store (Spin's `default` store; Redis on Kubernetes).
///
/// Keys are UTF-8 strings, values are bytes. Failures are [`crate::Error::Storage`].
pub trait KvStore {
    /// The value of `key`, or `None` if it is absent.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Store `value` under `key`, overwriting any previous value.
    async fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Remove `key`. Deleting an absent key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Add `delta` to the counter at `key` and return the new value.
    ///
    /// Counters are stored as decimal ASCII (`b"42"`); an absent key counts as
    /// 0. A value that is not a decimal `i64`, or an overflow, is an error and
    /// leaves the stored value unchanged. Adapters without an atomic increment
    /// (Spin's key-value API) implement it as read-modify-write, so concurrent
    /// increments may be lost: use it for metrics and soft limits, not money.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64>;
}

/// Parse a counter value as stored by [`KvStore::increment`].
pub fn parse_counter(key: &str, bytes: &[u8]) -> Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| crate::Error::Storage(format!("value at {key:?} is not a decimal counter")))
}

/// Add `delta` to an optional stored counter, as [`KvStore::increment`] defines.
pub fn next_counter(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64> {
    let current = match current {
        Some(bytes) => parse_counter(key, bytes)?,
        None => 0,
    };
    current
        .checked_add(delta)
        .ok_or_else(|| crate::Error::Storage(format!("counter at {key:?} would overflow")))
}

/// A value bound to, or read from, SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQLite INTEGER.
    Integer(i64),
    /// SQLite REAL.
    Real(f64),
    /// SQLite TEXT.
    Text(String),
    /// SQLite BLOB.
    Blob(Vec<u8>),
    /// SQL NULL.
    Null,
}

impl SqlValue {
    /// The integer, if this is an INTEGER.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Integer(i) => Some(*i),
            _ => None,
        }
    }
    /// The number, if this is a REAL (or an INTEGER, widened).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Real(f) => Some(*f),
            #[allow(clippy::cast_precision_loss)]
            Self::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    /// The text, if this is TEXT.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }
    /// The bytes, if this is a BLOB.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Blob(b) => Some(b),
            _ => None,
        }
    }
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Integer(v)
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        Self::Blob(v)
    }
}
impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> Self {
        Self::Blob(v.to_vec())
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// One result row: values in column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    /// The value at column `index`.
    pub fn get(&self, index: usize) -> Option<&SqlValue> {
        self.0.get(index)
    }
}

/// The result of a query: column names and rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Rows {
    /// The position of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    /// The value of column `name` in row `row`.
    pub fn value(&self, row: usize, name: &str) -> Option<&SqlValue> {
        self.rows.get(row)?.get(self.column(name)?)
    }
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// SQL over SQLite (Spin's `default` database; libSQL remotely).
///
/// Parameters bind positionally to `?` / `?N`. One statement per call.
/// Failures (bad SQL, constraint violations, I/O) are [`crate::Error::Storage`].
pub trait Sql {
    /// Run a statement; returns the number of rows it inserted, updated or deleted.
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64>;
    /// Run a query and return all its rows with their column names.
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Rows>;
    /// [`execute`](Sql::execute) taking its parameters by value, for
    /// statements carrying megabytes (a document's chunk rows, its source):
    /// an adapter that hands values on can move them instead of copying.
    async fn execute_owned(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64> {
        self.execute(sql, &params).await
    }
}

/// Run first on every schema migration: the page size of a new database,
/// before its first table (SQLite ignores it once the file has content, and
/// a WAL database keeps its size for good, so existing databases keep
/// theirs). 16 KB instead of SQLite's 4 KB: a chunk row (text ≈ 1.5–2.5 KB)
/// left a quarter of each 4 KB page empty, and ingest writes every page
/// twice (the WAL, then the checkpoint). Measured in BENCHMARKS.md (Ingest).
pub const NEW_DATABASE_PAGE_SIZE: &str = "PRAGMA page_size = 16384";

/// Application configuration (Spin variables).
pub trait Config {
    /// The value of variable `name`.
    ///
    /// `Ok(None)`: the variable is not defined for this component (Spin's
    /// `Undefined`); `Ok(Some(""))`: defined and empty. An invalid name
    /// (see [`validate_variable_name`]) or a failing provider is an error.
    async fn get(&self, name: &str) -> Result<Option<String>>;
}

/// Check a variable name against Spin's rules: lowercase ASCII letters,
/// digits and single underscores, starting with a letter, not ending with `_`.
pub fn validate_variable_name(name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(crate::Error::Internal(format!(
            "invalid variable name {name:?}: {why}"
        )))
    };
    let Some(first) = name.bytes().next() else {
        return invalid("empty");
    };
    if !name
        .bytes()
        .all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return invalid("only lowercase letters, digits and '_' are allowed");
    }
    if !first.is_ascii_lowercase() {
        return invalid("must start with a letter");
    }
    if name.ends_with('_') {
        return invalid("must not end with '_'");
    }
    if name.contains("__") {
        return invalid("must not contain '__'");
    }
    Ok(())
}

/// Wall-clock time.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> u64;
}

/// Waiting: retry backoff and timeouts.
///
/// `sleep` completes after at least `ms` milliseconds (an adapter may wait
/// longer, never shorter); fakes may complete at once. Dropping the future
/// before it completes cancels the wait. Combine it with any future through
/// [`with_timeout`].
pub trait Timer {
    /// Wait `ms` milliseconds. `sleep(0)` completes promptly.
    async fn sleep(&self, ms: u64);
}

impl<T: Timer + ?Sized> Timer for &T {
    async fn sleep(&self, ms: u64) {
        (**self).sleep(ms).await;
    }
}

/// Run `fut`, giving up after `ms` milliseconds of `timer` time with
/// [`crate::Error::Timeout`].
///
/// `fut` is polled before the timer, so a future that is ready when first
/// polled always wins, even against a timer that fires at once. On expiry
/// `fut` is dropped (cancelled). Works without `Send`: both futures are
/// polled on the caller's task.
pub async fn with_timeout<T, F>(timer: &impl Timer, ms: u64, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let mut fut = pin!(fut);
    let mut expiry = pin!(timer.sleep(ms));
    poll_fn(|cx| {
        if let Poll::Ready(output) = fut.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        match expiry.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(crate::Error::Timeout(format!(
                "no answer within {ms} ms"
            )))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Outbound HTTP (Azure OpenAI).
///
/// Transport failures are [`crate::Error::Upstream`] or [`crate::Error::Timeout`];
/// any HTTP status, including 4xx/5xx, is a successful `send`.
pub trait HttpClient {
    /// Send `request` and return the whole response.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse>;
}

/// A response body read piece by piece, as it arrives.
pub trait BodyStream {
    /// The next piece of the body; `None` at its end.
    ///
    /// Must be cancel-safe: dropping the returned future before it completes
    /// loses no bytes (callers race it against a timer).
    async fn next(&mut self) -> Option<Result<Vec<u8>>>;
}

/// Outbound HTTP whose response body is streamed (Server-Sent Events from a
/// chat model). Dropping the body cancels the request.
pub trait StreamingHttpClient {
    /// The body of a response.
    type Body: BodyStream;
    /// Send `request`; returns status and headers (with an empty `body`)
    /// once they arrive, and the body to read. Errors as [`HttpClient::send`].
    async fn open(&self, request: HttpRequest) -> Result<(HttpResponse, Self::Body)>;
}

/// Turns texts into vectors.
pub trait Embedder {
    /// The model (or deployment) name; part of the embedding cache key.
    fn model(&self) -> &str;
    /// Embed each text; the result has one vector per input, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>>;
    /// How `texts` split into the upstream calls `embed` makes: index
    /// ranges, in order, covering every text. A caller that embeds one
    /// range at a time and keeps its vectors before the next never loses a
    /// finished call to a later failure. Default: [`DEFAULT_EMBED_BATCH`]
    /// texts a range.
    fn plan(&self, texts: &[String]) -> Result<Vec<std::ops::Range<usize>>> {
        Ok((0..texts.len())
            .step_by(DEFAULT_EMBED_BATCH)
            .map(|start| start..(start + DEFAULT_EMBED_BATCH).min(texts.len()))
            .collect())
    }
}

/// Texts per range in [`Embedder::plan`]'s default.
pub const DEFAULT_EMBED_BATCH: usize = 256;

/// A chat-completion model.
pub trait ChatModel {
    /// Complete the conversation in `request`.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatCompletion>;
}

/// Finds the chunks most relevant to a query.
pub trait Retriever {
    /// At most `query.top_k` chunks, best first.
    async fn retrieve(&self, query: &SearchQuery) -> Result<Vec<ScoredChunk>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fires at once, counting how often it was asked to wait.
    #[derive(Default)]
    struct ImmediateTimer(std::cell::Cell<u32>);

    impl Timer for ImmediateTimer {
        async fn sleep(&self, _ms: u64) {
            self.0.set(self.0.get() + 1);
        }
    }

    /// Pending on the first poll, ready with `value` on the second.
    async fn ready_on_second_poll(value: u32) -> Result<u32> {
        let mut polled = false;
        poll_fn(|cx| {
            if polled {
                Poll::Ready(())
            } else {
                polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
        Ok(value)
    }

    #[test]
    fn with_timeout_returns_a_ready_future_even_when_the_timer_fires_at_once() {
        let timer = ImmediateTimer::default();
        let got = futures::executor::block_on(with_timeout(&timer, 0, async { Ok(7) }));
        assert_eq!(got, Ok(7));
        assert_eq!(timer.0.get(), 0, "the timer was not even started");
    }

    #[test]
    fn with_timeout_gives_up_on_a_slower_future_with_a_timeout_error() {
        let timer = ImmediateTimer::default();
        let got = futures::executor::block_on(with_timeout(&timer, 250, ready_on_second_poll(1)));
        assert_eq!(
            got,
            Err(crate::Error::Timeout("no answer within 250 ms".into()))
        );
        assert_eq!(timer.0.get(), 1);
    }

    #[test]
    fn with_timeout_passes_the_future_s_own_error_through() {
        let timer = ImmediateTimer::default();
        let got: Result<()> = futures::executor::block_on(with_timeout(&timer, 5, async {
            Err(crate::Error::Upstream("boom".into()))
        }));
        assert_eq!(got, Err(crate::Error::Upstream("boom".into())));
    }

    #[test]
    fn accepts_spin_style_variable_names() {
        for name in ["azure_openai_endpoint", "jwt_secret", "a1", "x"] {
            assert!(validate_variable_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_variable_names_spin_would_reject() {
        for name in ["", "Upper", "1abc", "_a", "a_", "a__b", "a-b", "a.b"] {
            assert!(validate_variable_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn counts_an_absent_counter_from_zero() {
        assert_eq!(next_counter("k", None, 5).unwrap(), 5);
        assert_eq!(next_counter("k", Some(b"-3"), 1).unwrap(), -2);
    }

    #[test]
    fn refuses_to_increment_garbage_or_overflow() {
        assert!(next_counter("k", Some(b"abc"), 1).is_err());
        assert!(next_counter("k", Some(i64::MAX.to_string().as_bytes()), 1).is_err());
    }
}
