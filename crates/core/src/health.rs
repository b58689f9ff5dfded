//! The health service: liveness, readiness and the routing of the health
//! component, written against the ports so it is tested natively.
//!
//! * `GET /healthz` ([`liveness`]): 200 as long as the component runs. It
//!   touches nothing but the metrics counters, and a failing counter store
//!   never changes its answer.
//! * `GET /readyz` ([`readiness`]): three checks that each run even if an
//!   earlier one failed: `kv` (a unique probe key is written, read back and
//!   deleted), `sqlite` (`SELECT 1`), `variables` (every variable the app
//!   needs is defined and well formed). 200 when all pass, else 503 naming the
//!   failed checks. Secret values never appear in the output.
//! * `GET /metrics`: see [`crate::metrics`].

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::error::{Error, ErrorBody, Result};
use crate::http::{HttpRequest, HttpResponse};
use crate::metrics;
use crate::ports::{Config, KvStore, Sql, SqlValue};

/// The version reported by liveness and `ragspin_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Variables checked by readiness, in the order they are reported.
pub const REQUIRED_VARIABLES: [&str; 6] = [
    "azure_openai_endpoint",
    "azure_openai_api_key",
    "azure_openai_api_version",
    "azure_openai_chat_deployment",
    "azure_openai_embedding_deployment",
    "jwt_secret",
];

/// Minimum length of a configured `jwt_secret` (HS256 wants ≥ 256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The liveness body: `{"status":"ok","version":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liveness {
    /// Always `"ok"`.
    pub status: &'static str,
    /// The crate version.
    pub version: &'static str,
}

/// Liveness: the component runs.
pub fn liveness() -> Liveness {
    Liveness {
        status: "ok",
        version: VERSION,
    }
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `kv`, `sqlite` or `variables`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was checked, or what is wrong. Never a secret value.
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: true,
            detail: detail.into(),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// How answers will be produced, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No Azure endpoint: BM25 retrieval and extractive answers.
    Offline,
    /// An Azure OpenAI endpoint is configured.
    Azure,
}

/// The result of [`readiness`].
///
/// Serializes as `{"status":"ready","checks":[...],"mode":"offline"}` or
/// `{"status":"not_ready","failed":["kv"],"checks":[...],"error":{"code":"not_ready","message":"readiness check failed: kv"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every check, in the order `kv`, `sqlite`, `variables`.
    pub checks: Vec<Check>,
    /// The answer mode the configuration selects.
    pub mode: Mode,
}

impl Readiness {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
    /// Names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }
    /// 200 when ready, else 503.
    pub fn status(&self) -> u16 {
        if self.is_ready() { 200 } else { 503 }
    }
}

impl Serialize for Readiness {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let failed = self.failed();
        if failed.is_empty() {
            let mut s = serializer.serialize_struct("Readiness", 3)?;
            s.serialize_field("status", "ready")?;
            s.serialize_field("checks", &self.checks)?;
            s.serialize_field("mode", &self.mode)?;
            s.end()
        } else {
            let error = ErrorBody::new(
                "not_ready",
                format!("readiness check failed: {}", failed.join(", ")),
            );
            let mut s = serializer.serialize_struct("Readiness", 4)?;
            s.serialize_field("status", "not_ready")?;
            s.serialize_field("failed", &failed)?;
            s.serialize_field("checks", &self.checks)?;
            s.serialize_field("error", &error.error)?;
            s.end()
        }
    }
}

/// Run all readiness checks; each runs even if an earlier one failed.
pub async fn readiness<K: KvStore, S: Sql, C: Config>(kv: &K, sql: &S, config: &C) -> Readiness {
    let kv_check = check_kv(kv, probe_nonce()).await;
    let sql_check = check_sqlite(sql).await;
    let (variables_check, mode) = check_variables(config).await;
    Readiness {
        checks: vec![kv_check, sql_check, variables_check],
        mode,
    }
}

/// A value unique enough to keep concurrent probes (in this and other
/// instances) from reading each other's key.
fn probe_nonce() -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the host's randomness once per instance.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(SEQUENCE.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// The `kv` check: write a probe key, read it back and compare, delete it.
pub async fn check_kv<K: KvStore>(kv: &K, nonce: u64) -> Check {
    const NAME: &str = "kv";
    let key = format!("ragspin:readyz:probe:{nonce:016x}");
    let value = format!("probe-{nonce:016x}");
    if let Err(e) = kv.set(&key, value.as_bytes()).await {
        return Check::fail(NAME, format!("set probe key: {e}"));
    }
    let read = kv.get(&key).await;
    // Clean up whatever the read said; report the first problem.
    let deleted = kv.delete(&key).await;
    let problem = match read {
        Err(e) => Some(format!("get probe key: {e}")),
        Ok(None) => Some("probe key missing right after set".to_owned()),
        Ok(Some(v)) if v != value.as_bytes() => Some(format!(
            "probe key read back {} bytes that differ from what was set",
            v.len()
        )),
        Ok(Some(_)) => None,
    };
    match (problem, deleted) {
        (Some(p), _) => Check::fail(NAME, p),
        (None, Err(e)) => Check::fail(NAME, format!("delete probe key: {e}")),
        (None, Ok(())) => Check::pass(NAME, "probe key written, read back and deleted"),
    }
}

/// The `sqlite` check: `SELECT 1` returns 1.
pub async fn check_sqlite<S: Sql>(sql: &S) -> Check {
    const NAME: &str = "sqlite";
    match sql.query("SELECT 1", &[]).await {
        Ok(rows) => match rows.rows.first().and_then(|r| r.get(0)) {
            Some(SqlValue::Integer(1)) => Check::pass(NAME, "SELECT 1 returned 1"),
            Some(other) => Check::fail(NAME, format!("SELECT 1 returned {other:?}")),
            None => Check::fail(NAME, "SELECT 1 returned no value"),
        },
        Err(e) => Check::fail(NAME, format!("SELECT 1 failed: {e}")),
    }
}

/// The `variables` check, and the mode the configuration selects.
pub async fn check_variables<C: Config>(config: &C) -> (Check, Mode) {
    const NAME: &str = "variables";
    let mut problems = Vec::new();
    let endpoint = fetch(config, "azure_openai_endpoint", &mut problems).await;
    let api_key = fetch(config, "azure_openai_api_key", &mut problems).await;
    let api_version = fetch(config, "azure_openai_api_version", &mut problems).await;
    let chat = fetch(config, "azure_openai_chat_deployment", &mut problems).await;
    let embedding = fetch(config, "azure_openai_embedding_deployment", &mut problems).await;
    let jwt = fetch(config, "jwt_secret", &mut problems).await;
    let (vars, notes) = Variables {
        endpoint: endpoint.as_deref(),
        api_key: api_key.as_deref(),
        api_version: api_version.as_deref(),
        chat_deployment: chat.as_deref(),
        embedding_deployment: embedding.as_deref(),
        jwt_secret: jwt.as_deref(),
    }
    .validate();
    problems.extend(vars);
    let mode = match endpoint.as_deref() {
        Some(e) if !e.is_empty() => Mode::Azure,
        _ => Mode::Offline,
    };
    let check = if problems.is_empty() {
        let mut detail = format!(
            "{} variables defined and well formed; {} mode",
            REQUIRED_VARIABLES.len(),
            match mode {
                Mode::Offline => "offline",
                Mode::Azure => "azure",
            }
        );
        for note in notes {
            detail.push_str("; ");
            detail.push_str(&note);
        }
        Check::pass(NAME, detail)
    } else {
        Check::fail(NAME, problems.join("; "))
    };
    (check, mode)
}

/// Read one variable; an undefined or unreadable one is recorded as a problem.
async fn fetch<C: Config>(config: &C, name: &str, problems: &mut Vec<String>) -> Option<String> {
    match config.get(name).await {
        Ok(Some(value)) => Some(value),
        Ok(None) => {
            problems.push(format!("{name} is not defined for this component"));
            None
        }
        Err(e) => {
            problems.push(format!("{name} could not be read: {e}"));
            None
        }
    }
}

/// The configuration values readiness validates (`None` = not available,
/// already reported). Borrowed, never printed.
struct Variables<'a> {
    endpoint: Option<&'a str>,
    api_key: Option<&'a str>,
    api_version: Option<&'a str>,
    chat_deployment: Option<&'a str>,
    embedding_deployment: Option<&'a str>,
    jwt_secret: Option<&'a str>,
}

impl Variables<'_> {
    /// (problems, notes). Messages name variables, never their values.
    fn validate(&self) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let azure = matches!(self.endpoint, Some(e) if !e.is_empty());
        if let Some(endpoint) = self.endpoint.filter(|e| !e.is_empty())
            && let Err(why) = validate_endpoint(endpoint)
        {
            problems.push(format!("azure_openai_endpoint {why}"));
        }
        match self.api_version {
            Some("") if azure => problems.push(
                "azure_openai_api_version must be set when azure_openai_endpoint is set".into(),
            ),
            Some(v) if !v.is_empty() && !is_api_version(v) => problems.push(
                "azure_openai_api_version must look like YYYY-MM-DD or YYYY-MM-DD-preview".into(),
            ),
            _ => {}
        }
        if azure {
            if self.api_key == Some("") {
                problems.push(
                    "azure_openai_api_key must be set when azure_openai_endpoint is set".into(),
                );
            }
            for (name, value) in [
                ("azure_openai_chat_deployment", self.chat_deployment),
                (
                    "azure_openai_embedding_deployment",
                    self.embedding_deployment,
                ),
            ] {
                match value {
                    Some("") => problems.push(format!(
                        "{name} must be set when azure_openai_endpoint is set"
                    )),
                    Some(v) if !is_deployment_name(v) => problems.push(format!(
                        "{name} must be 1-64 characters of letters, digits, '-', '_' or '.'"
                    )),
                    _ => {}
                }
            }
        }
        match self.jwt_secret {
            Some("") => notes.push("jwt_secret empty: auth not configured".to_owned()),
            Some(s) if s.len() < MIN_JWT_SECRET_BYTES => problems.push(format!(
                "jwt_secret must be empty or at least {MIN_JWT_SECRET_BYTES} bytes"
            )),
            _ => {}
        }
        (problems, notes)
    }
}

/// `Ok` for `https://host[:port][/]` (or `http://` to localhost / 127.0.0.1);
/// otherwise why not, without echoing the value.
pub fn validate_endpoint(value: &str) -> Result<(), &'static str> {
    let (https, rest) = if let Some(rest) = value.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = value.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("must start with https://");
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err("must not have a path, query or fragment");
    }
    if authority.contains('@') {
        return Err("must not contain credentials");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err("must have a valid host name");
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("must have a valid port");
    }
    if !https && host != "localhost" && host != "127.0.0.1" {
        return Err("must use https:// (http:// only for localhost or 127.0.0.1)");
    }
    Ok(())
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`, with a plausible month and day.
pub fn is_api_version(value: &str) -> bool {
    let date = value.strip_suffix("-preview").unwrap_or(value);
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

fn is_deployment_name(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The health component's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
}

impl Endpoint {
    /// The route path, also the `route` label of the request counter.
    pub fn path(self) -> &'static str {
        match self {
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::Metrics => "/metrics",
        }
    }
}

/// Route a request: unknown path → 404, known path with a method other than
/// `GET` → 405 (`allow: GET`).
pub fn route(method: &str, path: &str) -> Result<Endpoint> {
    let endpoint = match path {
        "/healthz" => Endpoint::Healthz,
        "/readyz" => Endpoint::Readyz,
        "/metrics" => Endpoint::Metrics,
        _ => return Err(Error::NotFound(format!("no route for {method} {path}"))),
    };
    if method != "GET" {
        return Err(Error::MethodNotAllowed {
            method: method.to_owned(),
            allow: vec!["GET".to_owned()],
        });
    }
    Ok(endpoint)
}

/// The whole health component: route, serve, count.
///
/// Counting is best effort: a failing KV store never changes an answer.
pub async fn handle<K: KvStore, S: Sql, C: Config>(
    request: &HttpRequest,
    kv: &K,
    sql: &S,
    config: &C,
) -> HttpResponse {
    metrics::count_instance_request();
    let endpoint = match route(&request.method, request.path()) {
        Ok(endpoint) => endpoint,
        Err(e) => return HttpResponse::error(&e),
    };
    let _ = metrics::record_health_request(kv, endpoint.path()).await;
    match endpoint {
        Endpoint::Healthz => HttpResponse::json(200, &liveness()),
        Endpoint::Readyz => {
            let report = readiness(kv, sql, config).await;
            let _ = metrics::record_failed_checks(kv, &report.failed()).await;
            HttpResponse::json(report.status(), &report)
        }
        Endpoint::Metrics => {
            let snapshot = metrics::snapshot(kv).await;
            HttpResponse::text(200, metrics::CONTENT_TYPE, metrics::render(&snapshot))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_endpoints_with_optional_port_and_slash() {
        for ok in [
            "https://my-res.openai.azure.com",
            "https://my-res.openai.azure.com/",
            "https://my-res.openai.azure.com:443",
            "http://localhost:8080",
            "http://127.0.0.1:9999/",
        ] {
            assert_eq!(validate_endpoint(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_endpoints_with_path_query_credentials_or_plain_http() {
        for bad in [
            "my-res.openai.azure.com",
            "ftp://x",
            "https://",
            "https://x.openai.azure.com/openai",
            "https://x.openai.azure.com?x=1",
            "https://user:pw@x.openai.azure.com",
            "https://x.openai.azure.com:0",
            "https://x.openai.azure.com:99999",
            "https://x .com",
            "http://x.openai.azure.com",
            "http://localhost.evil.com",
        ] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recognises_azure_api_versions() {
        for ok in ["2024-10-21", "2025-01-01-preview"] {
            assert!(is_api_version(ok), "{ok}");
        }
        for bad in [
            "",
            "2024-13-01",
            "2024-10-32",
            "2024-1-01",
            "v1",
            "2024-10-21-beta",
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn routes_get_requests_to_the_three_endpoints() {
        assert_eq!(route("GET", "/healthz"), Ok(Endpoint::Healthz));
        assert_eq!(route("GET", "/readyz"), Ok(Endpoint::Readyz));
        assert_eq!(route("GET", "/metrics"), Ok(Endpoint::Metrics));
    }

    #[test]
    fn rejects_other_methods_with_405_and_unknown_paths_with_404() {
        let e = route("POST", "/healthz").unwrap_err();
        assert_eq!(crate::status_for(&e), 405);
        let e = route("GET", "/healthz/extra").unwrap_err();
        assert_eq!(crate::status_for(&e), 404);
    }
}
