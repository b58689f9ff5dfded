//! Sending one model call: URL and authentication per provider, the retry
//! loop (per-attempt timeout, server hints, backoff, budget), error mapping
//! and call statistics. Shared by the embeddings and chat clients.

use std::sync::{Mutex, MutexGuard, PoisonError};

use ragspin_core::{
    Clock, Error, HttpClient, HttpRequest, HttpResponse, Result, Timer, with_timeout,
};
use serde::Deserialize;

use crate::config::{AzureConfig, Provider, RetryPolicy};
use crate::retry::{Jitter, backoff_delay_ms, is_retryable_status, server_delay_ms};

/// Counters of one client since it was created, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallStats {
    /// HTTP requests sent (attempts, retries included).
    pub calls: u64,
    /// Attempts after the first, over all operations.
    pub retries: u64,
    /// Operations that failed once a request was sent (after any retries;
    /// inputs refused before sending are not counted).
    pub failures: u64,
    /// Time spent waiting between attempts, in ms (as requested of the timer).
    pub waited_ms: u64,
    /// Prompt tokens reported by the server (embeddings: all input tokens).
    pub prompt_tokens: u64,
    /// Completion tokens reported by the server.
    pub completion_tokens: u64,
    /// Texts embedded.
    pub embedded_inputs: u64,
}

/// The two operations the clients perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Embeddings,
    ChatCompletions,
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Self::Embeddings => "embeddings",
            Self::ChatCompletions => "chat/completions",
        }
    }
}

/// Where one operation goes: URL, auth header, and whether the body names
/// the model.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    url: String,
    auth: (&'static str, String),
    /// `Some(model)` for OpenAI-compatible servers.
    pub(crate) body_model: Option<String>,
    /// How errors name the server.
    pub(crate) server: &'static str,
}

impl Target {
    pub(crate) fn new(config: &AzureConfig, deployment: &str, operation: Operation) -> Self {
        match &config.provider {
            Provider::Azure { endpoint, api_key } => Self {
                url: format!(
                    "{endpoint}/openai/deployments/{}/{}?api-version={}",
                    encode_component(deployment),
                    operation.path(),
                    encode_component(&config.api_version)
                ),
                auth: ("api-key", api_key.clone()),
                body_model: None,
                server: "Azure OpenAI",
            },
            Provider::OpenAiCompatible { base_url, bearer } => {
                let base = base_url.strip_suffix("/v1").unwrap_or(base_url);
                Self {
                    url: format!("{base}/v1/{}", operation.path()),
                    auth: ("authorization", format!("Bearer {bearer}")),
                    body_model: Some(deployment.to_owned()),
                    server: "the OpenAI-compatible server",
                }
            }
        }
    }

    /// A JSON POST to this target.
    pub(crate) fn post(&self, body: Vec<u8>, accept: &str) -> HttpRequest {
        HttpRequest::new("POST", self.url.as_str())
            .with_header("content-type", "application/json")
            .with_header("accept", accept)
            .with_header(self.auth.0, self.auth.1.as_str())
            .with_body(body)
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ports plus retry state shared by a client's calls.
pub(crate) struct Transport<H, C, T> {
    pub(crate) http: H,
    pub(crate) clock: C,
    pub(crate) timer: T,
    policy: RetryPolicy,
    secret: String,
    jitter: Mutex<Jitter>,
    stats: Mutex<CallStats>,
}

fn lock<V>(m: &Mutex<V>) -> MutexGuard<'_, V> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What went wrong with the last attempt, kept to explain a give-up.
enum Failure {
    Status { status: u16, detail: String },
    Transport(Error),
}

impl<H: HttpClient, C: Clock, T: Timer> Transport<H, C, T> {
    pub(crate) fn new(config: &AzureConfig, http: H, clock: C, timer: T) -> Self {
        let seed = clock.now_unix_ms();
        Self {
            http,
            clock,
            timer,
            policy: config.retry,
            secret: config.provider.secret().to_owned(),
            jitter: Mutex::new(Jitter::new(seed)),
            stats: Mutex::new(CallStats::default()),
        }
    }

    pub(crate) fn reseed(&self, seed: u64) {
        *lock(&self.jitter) = Jitter::new(seed);
    }

    pub(crate) fn stats(&self) -> CallStats {
        *lock(&self.stats)
    }

    pub(crate) fn record(&self, update: impl FnOnce(&mut CallStats)) {
        update(&mut lock(&self.stats));
    }

    /// Remove the secret from a text that came from the server.
    pub(crate) fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secret)
    }

    /// Count a failure that happened after the HTTP exchange (a malformed
    /// answer) and hand the error back.
    pub(crate) fn fail(&self, error: Error) -> Error {
        self.record(|s| s.failures += 1);
        error
    }

    /// Send `request`, retrying transient failures, and return the first
    /// 2xx response.
    ///
    /// `what` names the operation in errors (e.g. `embeddings (deployment
    /// "x")`). Transient: statuses per [`is_retryable_status`], and transport
    /// errors and timeouts (`Error::Upstream`/`Error::Timeout` from the
    /// port). Each attempt is bounded by `timeout_ms` and by what is left of
    /// the policy's budget. Between attempts the client waits what the
    /// server asked for (`retry-after-ms`, `Retry-After`), else a jittered
    /// exponential backoff. Time spent is the larger of the clock's elapsed
    /// time and the waits requested, so a fake timer still exhausts the
    /// budget.
    pub(crate) async fn send(
        &self,
        what: &str,
        target: &Target,
        request: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse> {
        let start = self.clock.now_unix_ms();
        let budget = self.policy.budget_ms;
        let mut waited: u64 = 0;
        let mut attempt: u32 = 0;
        loop {
            let spent = self.clock.now_unix_ms().saturating_sub(start).max(waited);
            let attempt_timeout = timeout_ms.min(budget.saturating_sub(spent)).max(1);
            attempt += 1;
            self.record(|s| {
                s.calls += 1;
                if attempt > 1 {
                    s.retries += 1;
                }
            });
            let outcome = with_timeout(
                &self.timer,
                attempt_timeout,
                self.http.send(request.clone()),
            )
            .await;
            let (failure, hint) = match outcome {
                Ok(response) if (200..300).contains(&response.status) => return Ok(response),
                Ok(response) if is_retryable_status(response.status) => (
                    Failure::Status {
                        status: response.status,
                        detail: describe(&response, &self.secret),
                    },
                    server_delay_ms(&response.headers),
                ),
                Ok(response) => {
                    return Err(self.fail(error_for_status(
                        what,
                        target.server,
                        &response,
                        &self.secret,
                    )));
                }
                Err(e @ (Error::Timeout(_) | Error::Upstream(_))) => {
                    (Failure::Transport(self.scrub_error(e)), None)
                }
                Err(e) => return Err(self.fail(e)),
            };
            if attempt >= self.policy.max_attempts {
                return Err(self.fail(give_up(
                    what,
                    target.server,
                    attempt,
                    &failure,
                    "no attempts left",
                )));
            }
            let delay = hint.unwrap_or_else(|| {
                let random = lock(&self.jitter).next_u64();
                backoff_delay_ms(&self.policy, attempt - 1, random)
            });
            let spent = self.clock.now_unix_ms().saturating_sub(start).max(waited);
            if spent.saturating_add(delay) >= budget {
                let why = format!(
                    "waiting {delay} ms{} would exceed the {budget} ms budget ({spent} ms spent)",
                    if hint.is_some() { " as asked" } else { "" }
                );
                return Err(self.fail(give_up(what, target.server, attempt, &failure, &why)));
            }
            self.timer.sleep(delay).await;
            waited += delay;
            self.record(|s| s.waited_ms += delay);
        }
    }

    fn scrub_error(&self, error: Error) -> Error {
        match error {
            Error::Timeout(m) => Error::Timeout(self.scrub(&m)),
            Error::Upstream(m) => Error::Upstream(self.scrub(&m)),
            other => other,
        }
    }
}

fn give_up(what: &str, server: &str, attempts: u32, failure: &Failure, why: &str) -> Error {
    let tries = if attempts == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{attempts} attempts")
    };
    match failure {
        Failure::Status {
            status: 429,
            detail,
        } => Error::Unavailable(format!(
            "{what}: {server} is rate limiting ({detail}); gave up after {tries}: {why}"
        )),
        Failure::Status { detail, .. } => Error::Unavailable(format!(
            "{what}: {server} failed ({detail}); gave up after {tries}: {why}"
        )),
        Failure::Transport(Error::Timeout(m)) => Error::Timeout(format!(
            "{what}: {server} did not answer ({m}); gave up after {tries}: {why}"
        )),
        Failure::Transport(e) => Error::Unavailable(format!(
            "{what}: cannot reach {server} ({e}); gave up after {tries}: {why}"
        )),
    }
}

/// The `error` object of Azure/OpenAI error bodies; `code` may be a string,
/// a number or null.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

/// The `error.code` of an error body, if any.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let envelope: ErrorEnvelope = serde_json::from_slice(body).ok()?;
    match envelope.error.code? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

const MAX_DETAIL_CHARS: usize = 300;

/// `401 Unauthorized (code "401"): Access denied...`, scrubbed of `secret`
/// and shortened.
fn describe(response: &HttpResponse, secret: &str) -> String {
    let status = response.status;
    let parsed: Option<ErrorEnvelope> = serde_json::from_slice(&response.body).ok();
    let text = match parsed {
        Some(envelope) => {
            let code = error_code(&response.body);
            let message = envelope.error.message.unwrap_or_default();
            match code {
                Some(code) => format!("{status} (code {code:?}): {message}"),
                None => format!("{status}: {message}"),
            }
        }
        None if response.body.is_empty() => format!("{status} with an empty body"),
        None => format!("{status}: {}", String::from_utf8_lossy(&response.body)),
    };
    shorten(&scrub(text.trim(), secret), MAX_DETAIL_CHARS)
}

/// The error for a non-retryable, non-2xx answer.
fn error_for_status(what: &str, server: &str, response: &HttpResponse, secret: &str) -> Error {
    let detail = describe(response, secret);
    let code = error_code(&response.body);
    let message = match (response.status, code.as_deref()) {
        (400, Some("content_filter")) => {
            format!("{what}: the prompt was blocked by {server}'s content filter ({detail})")
        }
        (400 | 422, _) => format!("{what}: {server} rejected the request ({detail})"),
        (401 | 403, _) => format!(
            "{what}: {server} rejected the credentials ({detail}); check azure_openai_api_key \
             and azure_openai_endpoint"
        ),
        (404, _) => format!(
            "{what}: {server} found no such deployment or route ({detail}); check the deployment \
             name, azure_openai_endpoint and azure_openai_api_version"
        ),
        _ => format!("{what}: {server} answered {detail}"),
    };
    Error::Upstream(message)
}

/// Replace every occurrence of `secret` (if long enough to be one) in `text`.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.len() < 4 {
        return text.to_owned();
    }
    text.replace(secret, "[redacted]")
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(status, "application/json", body)
    }

    #[test]
    fn builds_azure_deployment_urls_with_the_api_key_header() {
        let config =
            AzureConfig::azure("https://res.openai.azure.com/", "k3y-secret", "chat", "emb");
        let target = Target::new(&config, "emb", Operation::Embeddings);
        let request = target.post(b"{}".to_vec(), "application/json");
        assert_eq!(
            request.url,
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
        assert_eq!(request.header("api-key"), Some("k3y-secret"));
        assert_eq!(request.header("authorization"), None);
        assert_eq!(target.body_model, None);
        let chat = Target::new(&config, "my chat", Operation::ChatCompletions);
        assert_eq!(
            chat.url,
            "https://res.openai.azure.com/openai/deployments/my%20chat/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn builds_openai_compatible_urls_with_a_bearer_and_the_model_in_the_body() {
        for base in ["http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/"] {
            let config = AzureConfig::openai_compatible(base, "tok-secret", "llama3", "nomic");
            let target = Target::new(&config, "nomic", Operation::Embeddings);
            let request = target.post(Vec::new(), "application/json");
            assert_eq!(
                request.url, "http://127.0.0.1:11434/v1/embeddings",
                "{base}"
            );
            assert_eq!(request.header("authorization"), Some("Bearer tok-secret"));
            assert_eq!(request.header("api-key"), None);
            assert_eq!(target.body_model.as_deref(), Some("nomic"));
        }
    }

    #[test]
    fn describes_azure_error_bodies_with_code_and_message() {
        let r = response(
            404,
            r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
        );
        assert_eq!(
            describe(&r, "secret-key"),
            r#"404 (code "DeploymentNotFound"): The API deployment for this resource does not exist."#
        );
        let numeric = response(429, r#"{"error":{"code":429,"message":"slow down"}}"#);
        assert_eq!(describe(&numeric, ""), r#"429 (code "429"): slow down"#);
        assert_eq!(describe(&response(502, ""), ""), "502 with an empty body");
        assert_eq!(
            describe(&response(502, "<html>bad gateway</html>"), ""),
            "502: <html>bad gateway</html>"
        );
    }

    #[test]
    fn never_repeats_the_secret_a_server_echoes() {
        let r = response(
            401,
            r#"{"error":{"code":"401","message":"key sk-abcdef123456 is invalid"}}"#,
        );
        let error = error_for_status("embeddings", "Azure OpenAI", &r, "sk-abcdef123456");
        let text = error.to_string();
        assert!(!text.contains("sk-abcdef123456"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn shortens_huge_error_bodies() {
        let body = "x".repeat(10_000);
        let text = describe(&response(500, &body), "");
        assert!(
            text.chars().count() <= MAX_DETAIL_CHARS + 1,
            "{}",
            text.len()
        );
        assert!(text.ends_with('…'));
    }

    #[test]
    fn encodes_only_reserved_characters_in_path_segments() {
        assert_eq!(encode_component("gpt-4o_mini.v2~x"), "gpt-4o_mini.v2~x");
        assert_eq!(encode_component("a/b?c d"), "a%2Fb%3Fc%20d");
    }
}
