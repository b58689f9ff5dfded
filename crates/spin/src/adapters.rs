//! The ports over `spin-sdk` 6.

use std::cell::{Cell, OnceCell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::reuse::ConnectionState;
use bytes::Bytes;
use http_body_util::Full;
use ragspin_core::ports::{next_counter, validate_variable_name};
use ragspin_core::{
    BodyStream, Clock, Config, Error, HttpClient, HttpRequest, HttpResponse, KvStore, Result, Row,
    Rows, Sql, SqlValue, StreamingHttpClient, Timer,
};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::key_value::{self, Store};
use spin_sdk::sqlite::wit::sqlite::Connection;
use spin_sdk::sqlite::{self, Value};
use spin_sdk::variables;
use spin_sdk::wasip3::http::types::ErrorCode;
use spin_sdk::wasip3::http_compat::IncomingResponseBody;

/// [`KvStore`] over a Spin key-value store.
///
/// The store is opened on first use, so a missing or forbidden store shows up
/// as an operation's `Error::Storage` (e.g. a failed readiness check), not as
/// a failed request. `increment` is get + parse + set: not atomic.
pub struct SpinKv {
    label: String,
    store: OnceCell<Store>,
}

impl SpinKv {
    /// The store called `label` in `spin.toml` (`key_value_stores`).
    pub fn open(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            store: OnceCell::new(),
        }
    }

    /// The `default` store.
    pub fn open_default() -> Self {
        Self::open("default")
    }

    async fn store(&self) -> Result<&Store> {
        if self.store.get().is_none() {
            let store = Store::open(&self.label).await.map_err(kv_error)?;
            // Another task of this instance may have opened it meanwhile; keep one.
            let _ = self.store.set(store);
        }
        self.store
            .get()
            .ok_or_else(|| Error::Internal("key-value store vanished".into()))
    }
}

fn kv_error(e: key_value::Error) -> Error {
    Error::Storage(format!("key-value: {e}"))
}

impl KvStore for SpinKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store().await?.get(key).await.map_err(kv_error)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.store().await?.set(key, value).await.map_err(kv_error)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store().await?.delete(key).await.map_err(kv_error)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let store = self.store().await?;
        let current = store.get(key).await.map_err(kv_error)?;
        let next = next_counter(key, current.as_deref(), delta)?;
        store
            .set(key, next.to_string().as_bytes())
            .await
            .map_err(kv_error)?;
        Ok(next)
    }
}

/// [`Sql`] over a Spin SQLite database.
///
/// Opened on first use (see [`SpinKv`]). `execute` reports the connection's
/// `changes()`, which concurrent tasks of one instance could interleave.
///
/// Statements go through `spin:sqlite@3.1.0`'s synchronous `execute` (the
/// whole result in one list), not the SDK's `execute-async` (a row stream
/// and a result future: a task, a stream read and a future read per
/// statement). Spin runs a statement to completion on its thread either way
/// (SQLite is synchronous), so nothing else of the instance could run
/// meanwhile; the synchronous call took ≈ 0.19 ms off a query's four
/// statements (paired A/B, BENCHMARKS.md). The bindings are the SDK's own
/// (`spin_sdk::sqlite::wit`), for the WIT the SDK ships.
///
/// A [`SpinSql::pooled`] value hands its connection back to the instance
/// when dropped, and the next request of the (reused) instance takes it
/// instead of opening a new one: Spin opens a new SQLite connection per
/// `open`, which reads and parses the whole schema on its first statement
/// (≈ 0.3 ms here) and starts with an empty page cache. A connection is
/// only handed back idle: after a `BEGIN` or `SAVEPOINT` without a
/// successful `COMMIT`/`END`/`ROLLBACK` (a request cancelled mid-transaction,
/// a failed commit), or with a statement still running (a request dropped
/// while waiting on it), it is closed instead, which rolls any transaction
/// back. SQLite checks at each read transaction whether another
/// connection wrote, so a kept connection never reads stale pages.
pub struct SpinSql {
    label: String,
    conn: OnceCell<Connection>,
    pooled: bool,
    state: Cell<ConnectionState>,
}

/// Idle connections an instance keeps (per database label).
const IDLE_CONNECTIONS: usize = 4;

/// Run once on each new kept connection: reads of the database file through
/// a memory map of up to 256 MB (the OS page cache, shared by all
/// connections, instead of a `read` into each connection's own page cache
/// per page). The query's 200 full-vector rows are 200 random pages: ≈ 1.5x
/// faster this way on a kept connection, and a fresh instance's first query
/// (which reads every block of sign bits) took 8 ms p50 instead of 12–18 at
/// 10k vectors (BENCHMARKS.md). Only kept connections get it: the fifth
/// session measured it slower on a new connection per request.
const POOLED_SETUP: &str = "PRAGMA mmap_size = 268435456";

thread_local! {
    /// Connections handed back by [`SpinSql::pooled`] values, with their label.
    static IDLE: RefCell<Vec<(String, Connection)>> = const { RefCell::new(Vec::new()) };
}

impl SpinSql {
    /// The database called `label` in `spin.toml` (`sqlite_databases`).
    pub fn open(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            conn: OnceCell::new(),
            pooled: false,
            state: Cell::new(ConnectionState::default()),
        }
    }

    /// The `default` database.
    pub fn open_default() -> Self {
        Self::open("default")
    }

    /// The database called `label`, on a connection kept by the instance
    /// between requests (see the type's documentation).
    pub fn pooled(label: impl Into<String>) -> Self {
        let mut sql = Self::open(label);
        sql.pooled = true;
        sql
    }

    async fn conn(&self) -> Result<&Connection> {
        if self.conn.get().is_none() {
            let idle = if self.pooled {
                IDLE.with_borrow_mut(|idle| {
                    let at = idle.iter().rposition(|(label, _)| *label == self.label)?;
                    Some(idle.swap_remove(at).1)
                })
            } else {
                None
            };
            let conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_async(self.label.clone())
                        .await
                        .map_err(sql_error)?;
                    if self.pooled {
                        // Best effort: a database without it (remote
                        // libSQL) reads as before.
                        let _ = conn.execute(POOLED_SETUP, &[]);
                    }
                    conn
                }
            };
            let _ = self.conn.set(conn);
        }
        self.conn
            .get()
            .ok_or_else(|| Error::Internal("sqlite connection vanished".into()))
    }

    async fn execute_values(&self, sql: &str, params: Vec<Value>) -> Result<u64> {
        let conn = self.conn().await?;
        self.update(|s| s.starting(sql));
        let ran = conn.execute(sql, &params).map_err(sql_error);
        self.update(|s| s.finished(sql, ran.is_ok()));
        ran?;
        Ok(conn.changes())
    }

    fn update(&self, f: impl FnOnce(&mut ConnectionState)) {
        let mut state = self.state.get();
        f(&mut state);
        self.state.set(state);
    }
}

impl Drop for SpinSql {
    fn drop(&mut self) {
        if !self.pooled || !self.state.get().reusable() {
            return;
        }
        if let Some(conn) = self.conn.take() {
            IDLE.with_borrow_mut(|idle| {
                if idle.iter().filter(|(l, _)| *l == self.label).count() < IDLE_CONNECTIONS {
                    idle.push((std::mem::take(&mut self.label), conn));
                }
            });
        }
    }
}

fn sql_error(e: sqlite::Error) -> Error {
    ragspin_core::sql_failure(format!("sqlite: {e}"))
}

fn to_spin(value: &SqlValue) -> Value {
    match value {
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
        SqlValue::Null => Value::Null,
    }
}

fn into_spin(value: SqlValue) -> Value {
    match value {
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
        SqlValue::Null => Value::Null,
    }
}

fn from_spin(value: Value) -> SqlValue {
    match value {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}

impl Sql for SpinSql {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64> {
        self.execute_values(sql, params.iter().map(to_spin).collect())
            .await
    }

    async fn execute_owned(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64> {
        self.execute_values(sql, params.into_iter().map(into_spin).collect())
            .await
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Rows> {
        let conn = self.conn().await?;
        self.update(|s| s.starting(sql));
        let params: Vec<Value> = params.iter().map(to_spin).collect();
        let ran = conn.execute(sql, &params).map_err(sql_error);
        self.update(|s| s.finished(sql, ran.is_ok()));
        let result = ran?;
        Ok(Rows {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| Row(row.values.into_iter().map(from_spin).collect()))
                .collect(),
        })
    }
}

/// [`Config`] over Spin variables: `Undefined` is `Ok(None)`, an invalid name
/// `Error::Internal`, a failing provider `Error::Unavailable`.
///
/// Values (and `Undefined`) are remembered by the instance: a query reads
/// 36 variables, each an async host call, and with a remote provider (Vault,
/// Azure Key Vault) each would be a network lookup. Spin reuses an instance
/// for at most 128 requests (and drops it after 1 s idle), so a value changed
/// in the provider is seen by the next instance. Errors are not remembered.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinConfig;

thread_local! {
    /// Variables read by this instance, by name.
    static VARIABLES: RefCell<std::collections::HashMap<String, Option<String>>> =
        RefCell::new(std::collections::HashMap::new());
}

impl Config for SpinConfig {
    async fn get(&self, name: &str) -> Result<Option<String>> {
        if let Some(known) = VARIABLES.with_borrow(|v| v.get(name).cloned()) {
            return Ok(known);
        }
        validate_variable_name(name)?;
        let value = match variables::get(name).await {
            Ok(value) => Some(value),
            Err(variables::Error::Undefined(_)) => None,
            Err(variables::Error::InvalidName(m)) => {
                return Err(Error::Internal(format!(
                    "invalid variable name {name:?}: {m}"
                )));
            }
            Err(variables::Error::Provider(m)) => {
                return Err(Error::Unavailable(format!(
                    "variable provider failed for {name}: {m}"
                )));
            }
            Err(variables::Error::Other(m)) => {
                return Err(Error::Internal(format!("reading variable {name}: {m}")));
            }
        };
        VARIABLES.with_borrow_mut(|v| v.insert(name.to_owned(), value.clone()));
        Ok(value)
    }
}

/// [`Clock`] over the host's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinClock;

impl Clock for SpinClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// [`Timer`] over WASI P3's monotonic clock
/// (`wasi:clocks/monotonic-clock@0.3.0-rc-2026-03-15`, `wait-for`).
///
/// The wait is an async host call: other tasks of the instance (e.g. an
/// outbound request raced by `with_timeout`) keep running meanwhile.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinTimer;

impl Timer for SpinTimer {
    async fn sleep(&self, ms: u64) {
        // The WIT duration is in nanoseconds.
        spin_sdk::wasip3::clocks::monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
    }
}

/// [`HttpClient`] over Spin's outbound HTTP (hosts must be listed in
/// `allowed_outbound_hosts`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinHttp;

fn http_error(e: ErrorCode) -> Error {
    match e {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => Error::Timeout(e.to_string()),
        ErrorCode::HttpRequestDenied => {
            Error::Upstream(format!("{e} (is the host in allowed_outbound_hosts?)"))
        }
        other => Error::Upstream(other.to_string()),
    }
}

fn outgoing(request: HttpRequest) -> Result<http::Request<Full<Bytes>>> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|e| Error::Internal(format!("invalid outbound request: {e}")))
}

fn head(response: &http::Response<IncomingResponseBody>) -> HttpResponse {
    HttpResponse {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    }
}

impl HttpClient for SpinHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let response = spin_sdk::http::send(outgoing(request)?)
            .await
            .map_err(http_error)?;
        let mut out = head(&response);
        let body = response.into_body().bytes().await.map_err(http_error)?;
        out.body = body.to_vec();
        Ok(out)
    }
}

/// The body of a streamed outbound response: the SDK's incoming body, read
/// frame by frame (its state lives in the body, so a dropped `next` loses
/// nothing). Dropping it drops the request.
pub struct SpinBodyStream(IncomingResponseBody);

impl BodyStream for SpinBodyStream {
    async fn next(&mut self) -> Option<Result<Vec<u8>>> {
        use http_body_util::BodyExt;
        loop {
            match self.0.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data.to_vec())),
                    // Trailers: nothing to hand on.
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(http_error(e))),
            }
        }
    }
}

impl StreamingHttpClient for SpinHttp {
    type Body = SpinBodyStream;

    async fn open(&self, request: HttpRequest) -> Result<(HttpResponse, SpinBodyStream)> {
        let response = spin_sdk::http::send(outgoing(request)?)
            .await
            .map_err(http_error)?;
        let out = head(&response);
        Ok((out, SpinBodyStream(response.into_body())))
    }
}
