//! One structured JSON line per request, for log stacks (Fluent Bit, Loki,
//! ELK) that read a container's stdout.
//!
//! ```json
//! {"time":"2026-11-23T10:04:05.123Z","level":"info","request_id":"5f0c…","component":"ragspin-query",
//!  "method":"POST","route":"/v1/query","status":200,"latency_ms":12.4,"principal":"alice",
//!  "index":"docs","llm_calls":1,"llm_ms":9.8,"embedding_calls":1,"embedding_ms":1.1}
//! ```
//!
//! The line never carries secrets, tokens, query strings, request or response
//! bodies: only the fields of [`RequestLog`]. `route` is the URL path (query
//! strings can hold questions); an error response adds its `error` code.
//!
//! How fields reach the line: the HTTP glue (`ragspin-spin`) starts a
//! [`RequestLog`] when a request arrives and finishes it with the response.
//! A handler adds what only it knows (principal, index, outbound call
//! counts) as *annotation headers* named [`ANNOTATION_PREFIX`]`<field>`,
//! which [`RequestLog::finish`] removes before the response leaves. Outbound
//! model calls are counted by wrapping the HTTP port in [`Metered`], whose
//! [`CallStats`] belong to one request (never a static: one instance serves
//! several requests at once).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::http::HttpResponse;
use crate::ports::{BodyStream, HttpClient, StreamingHttpClient};
use crate::{HttpRequest, Result};

/// Response headers starting with this are log fields, stripped before the
/// response is sent: `x-ragspin-log-principal`, `x-ragspin-log-index`, …
pub const ANNOTATION_PREFIX: &str = "x-ragspin-log-";

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The fields of one log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// RFC 3339 UTC time the request arrived, milliseconds.
    pub time: String,
    /// `info`, or `warn` for 4xx, `error` for 5xx.
    pub level: &'static str,
    /// The caller's `x-request-id` when well formed, else a new one.
    pub request_id: String,
    /// The component's package name.
    pub component: String,
    /// HTTP method.
    pub method: String,
    /// URL path, without the query string.
    pub route: String,
    /// Response status.
    pub status: u16,
    /// Time from arrival to the last byte of the body handed to the runtime.
    pub latency_ms: f64,
    /// The body was streamed (latency then covers the whole stream).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub streamed: bool,
    /// The error code of an error response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who called (username), when authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The index the request named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Chat-completion calls made.
    #[serde(skip_serializing_if = "is_zero")]
    pub llm_calls: u32,
    /// Time spent waiting on them (until the response head for streams).
    #[serde(skip_serializing_if = "is_zero_f")]
    pub llm_ms: f64,
    /// Embedding calls made.
    #[serde(skip_serializing_if = "is_zero")]
    pub embedding_calls: u32,
    /// Time spent waiting on them.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub embedding_ms: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

/// A request being served; [`finish`](Self::finish) it with the response.
#[derive(Debug, Clone)]
pub struct RequestLog {
    started: Instant,
    line: LogLine,
}

impl RequestLog {
    /// Start the log of `request` for `component`. `new_id` makes a request
    /// id when the caller sent none (or an unusable one).
    pub fn start(component: &str, request: &HttpRequest, new_id: impl FnOnce() -> String) -> Self {
        let request_id = request
            .header(REQUEST_ID_HEADER)
            .filter(|id| is_valid_request_id(id))
            .map_or_else(new_id, str::to_owned);
        Self {
            started: Instant::now(),
            line: LogLine {
                time: rfc3339_millis(SystemTime::now()),
                level: "info",
                request_id,
                component: component.to_owned(),
                method: request.method.clone(),
                route: request.path().to_owned(),
                status: 0,
                latency_ms: 0.0,
                streamed: false,
                error: None,
                principal: None,
                index: None,
                llm_calls: 0,
                llm_ms: 0.0,
                embedding_calls: 0,
                embedding_ms: 0.0,
            },
        }
    }

    /// The request id (echoed in the response's `x-request-id`).
    pub fn request_id(&self) -> &str {
        &self.line.request_id
    }

    /// Take the annotation headers out of `headers` into the line, add
    /// `x-request-id`, and record `status`. Call before sending the head.
    pub fn take_annotations(&mut self, status: u16, headers: &mut Vec<(String, String)>) {
        self.line.status = status;
        self.line.level = match status {
            500.. => "error",
            400..=499 => "warn",
            _ => "info",
        };
        headers.retain(|(name, value)| match name.strip_prefix(ANNOTATION_PREFIX) {
            Some(field) => {
                self.annotate(field, value);
                false
            }
            None => name != REQUEST_ID_HEADER,
        });
        headers.push((REQUEST_ID_HEADER.to_owned(), self.line.request_id.clone()));
    }

    /// [`take_annotations`](Self::take_annotations) for a whole response,
    /// plus its error code.
    pub fn take_response(&mut self, response: &mut HttpResponse) {
        self.take_annotations(response.status, &mut response.headers);
        if response.status >= 400 {
            self.line.error = error_code(&response.body);
        }
    }

    /// Add late fields (as annotation name/value pairs without the prefix),
    /// e.g. outbound call counts known only when a stream ends.
    pub fn annotate_all(&mut self, fields: &[(String, String)]) {
        for (field, value) in fields {
            self.annotate(field, value);
        }
    }

    fn annotate(&mut self, field: &str, value: &str) {
        let line = &mut self.line;
        match field {
            "principal" => line.principal = Some(value.to_owned()),
            "index" => line.index = Some(value.to_owned()),
            "llm-calls" => line.llm_calls = value.parse().unwrap_or(0),
            "llm-ms" => line.llm_ms = value.parse().unwrap_or(0.0),
            "embedding-calls" => line.embedding_calls = value.parse().unwrap_or(0),
            "embedding-ms" => line.embedding_ms = value.parse().unwrap_or(0.0),
            _ => {}
        }
    }

    /// The finished line (latency measured now), as JSON.
    pub fn finish(mut self, streamed: bool) -> String {
        self.line.streamed = streamed;
        self.line.latency_ms = round2(self.started.elapsed().as_secs_f64() * 1000.0);
        serde_json::to_string(&self.line).unwrap_or_default()
    }

    /// The line so far (for tests).
    pub fn line(&self) -> &LogLine {
        &self.line
    }
}

/// What a handler learns about its request for the log line: who called,
/// which index, and (through [`Metered`]) the model calls made. One per
/// request, owned by the handler.
#[derive(Debug, Default)]
pub struct Notes {
    principal: std::cell::RefCell<Option<String>>,
    index: std::cell::RefCell<Option<String>>,
    /// The request's outbound model calls; give a clone to [`Metered`].
    pub calls: CallStats,
}

impl Notes {
    /// Who called.
    pub fn principal(&self, name: &str) {
        *self.principal.borrow_mut() = Some(name.to_owned());
    }

    /// The index the request names.
    pub fn index(&self, name: &str) {
        *self.index.borrow_mut() = Some(name.to_owned());
    }

    /// Annotation headers for the principal and index (not the calls: a
    /// streamed reply reports those when it ends, see [`CallStats::fields`]).
    pub fn who(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = self.principal.borrow().as_ref() {
            out.push((format!("{ANNOTATION_PREFIX}principal"), p.clone()));
        }
        if let Some(i) = self.index.borrow().as_ref() {
            out.push((format!("{ANNOTATION_PREFIX}index"), i.clone()));
        }
        out
    }

    /// Every annotation header: [`who`](Self::who) and the calls so far.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = self.who();
        out.extend(self.calls.headers());
        out
    }
}

/// A request id we accept from a caller: 1–64 of `[A-Za-z0-9._-]` (anything
/// else could forge or break log lines).
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `n` random bytes as lowercase hex (a request id from 16 random bytes).
pub fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("code")?.as_str()?.to_owned())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Outbound model calls of one request: counts and time waited, by kind.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    inner: Rc<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    llm_calls: Cell<u32>,
    llm_us: Cell<u64>,
    embedding_calls: Cell<u32>,
    embedding_us: Cell<u64>,
}

/// What an outbound call was, from its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `…/chat/completions`.
    Llm,
    /// `…/embeddings`.
    Embedding,
    /// Anything else (not counted).
    Other,
}

impl CallKind {
    /// Classify `url` (Azure and OpenAI-compatible paths alike).
    pub fn of(url: &str) -> Self {
        let path = url.split(['?', '#']).next().unwrap_or("");
        if path.ends_with("/chat/completions") {
            Self::Llm
        } else if path.ends_with("/embeddings") {
            Self::Embedding
        } else {
            Self::Other
        }
    }
}

impl CallStats {
    /// Add `elapsed` to the time of calls of `kind`, without counting a
    /// call (the wait for a piece of a streamed body).
    pub fn add_wait(&self, kind: CallKind, elapsed: std::time::Duration) {
        let us = elapsed.as_micros() as u64;
        let s = &self.inner;
        match kind {
            CallKind::Llm => s.llm_us.set(s.llm_us.get() + us),
            CallKind::Embedding => s.embedding_us.set(s.embedding_us.get() + us),
            CallKind::Other => {}
        }
    }

    /// Record one call of `kind` that took `elapsed`.
    pub fn record(&self, kind: CallKind, elapsed: std::time::Duration) {
        let s = &self.inner;
        match kind {
            CallKind::Llm => s.llm_calls.set(s.llm_calls.get() + 1),
            CallKind::Embedding => s.embedding_calls.set(s.embedding_calls.get() + 1),
            CallKind::Other => {}
        }
        self.add_wait(kind, elapsed);
    }

    /// (llm calls, embedding calls) so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.inner.llm_calls.get(), self.inner.embedding_calls.get())
    }

    /// The non-zero counters as annotation fields (no prefix), for
    /// [`RequestLog::annotate_all`].
    pub fn fields(&self) -> Vec<(String, String)> {
        let s = &self.inner;
        let ms = |us: u64| format!("{}", round2(us as f64 / 1000.0));
        let mut out = Vec::new();
        if s.llm_calls.get() > 0 {
            out.push(("llm-calls".to_owned(), s.llm_calls.get().to_string()));
            out.push(("llm-ms".to_owned(), ms(s.llm_us.get())));
        }
        if s.embedding_calls.get() > 0 {
            out.push((
                "embedding-calls".to_owned(),
                s.embedding_calls.get().to_string(),
            ));
            out.push(("embedding-ms".to_owned(), ms(s.embedding_us.get())));
        }
        out
    }

    /// [`fields`](Self::fields) as annotation headers for a response.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.fields()
            .into_iter()
            .map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v))
            .collect()
    }
}

/// An HTTP port that records every model call it makes in [`CallStats`].
#[derive(Debug, Clone)]
pub struct Metered<H> {
    inner: H,
    stats: CallStats,
}

impl<H> Metered<H> {
    /// Wrap `inner`, recording into `stats`.
    pub fn new(inner: H, stats: CallStats) -> Self {
        Self { inner, stats }
    }
}

impl<H: HttpClient> HttpClient for Metered<H> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let kind = CallKind::of(&request.url);
        let started = Instant::now();
        let result = self.inner.send(request).await;
        self.stats.record(kind, started.elapsed());
        result
    }
}

impl<H: StreamingHttpClient> StreamingHttpClient for Metered<H> {
    type Body = MeteredBody<H::Body>;

    /// The call's time is the wait for its headers plus every wait for a
    /// piece of its body (a streamed answer arrives over the model's whole
    /// generation): `llm_ms` is then time spent waiting on the model, as
    /// for a whole response, not only until the stream opened.
    async fn open(&self, request: HttpRequest) -> Result<(HttpResponse, Self::Body)> {
        let kind = CallKind::of(&request.url);
        let started = Instant::now();
        let result = self.inner.open(request).await;
        self.stats.record(kind, started.elapsed());
        result.map(|(head, body)| {
            let body = MeteredBody {
                inner: body,
                kind,
                stats: self.stats.clone(),
            };
            (head, body)
        })
    }
}

/// A streamed response body whose waits count towards its call's time.
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    kind: CallKind,
    stats: CallStats,
}

/// Adds the time since `started` to a call's time when dropped: when the
/// piece arrived, and also when the wait was cancelled (raced by a timer).
struct WaitTimer<'a> {
    started: Instant,
    kind: CallKind,
    stats: &'a CallStats,
}

impl Drop for WaitTimer<'_> {
    fn drop(&mut self) {
        self.stats.add_wait(self.kind, self.started.elapsed());
    }
}

impl<B: BodyStream> BodyStream for MeteredBody<B> {
    async fn next(&mut self) -> Option<Result<Vec<u8>>> {
        let _timer = WaitTimer {
            started: Instant::now(),
            kind: self.kind,
            stats: &self.stats,
        };
        self.inner.next().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> HttpRequest {
        HttpRequest::new("POST", "http://h/v1/query?q=secret")
    }

    #[test]
    fn line_has_path_without_query_and_the_response_fields() {
        let mut log = RequestLog::start("ragspin-query", &request(), || "id1".into());
        let mut response = HttpResponse::error(&crate::Error::NotFound("no index".into()));
        let notes = Notes::default();
        notes.principal("alice");
        notes.index("docs");
        response.headers.extend(notes.headers());
        response
            .headers
            .push(("x-ragspin-log-llm-calls".into(), "2".into()));
        log.take_response(&mut response);
        assert!(
            response
                .headers
                .iter()
                .all(|(n, _)| !n.starts_with(ANNOTATION_PREFIX)),
            "annotations are stripped: {:?}",
            response.headers
        );
        assert_eq!(response.header(REQUEST_ID_HEADER), Some("id1"));
        let line: serde_json::Value = serde_json::from_str(&log.finish(false)).unwrap();
        assert_eq!(line["route"], "/v1/query");
        assert_eq!(line["status"], 404);
        assert_eq!(line["level"], "warn");
        assert_eq!(line["error"], "not_found");
        assert_eq!(line["principal"], "alice");
        assert_eq!(line["index"], "docs");
        assert_eq!(line["llm_calls"], 2);
        assert!(line.get("embedding_calls").is_none());
        assert!(!line.to_string().contains("secret"));
    }

    #[test]
    fn keeps_a_well_formed_caller_request_id_and_replaces_a_bad_one() {
        let good = request().with_header(REQUEST_ID_HEADER, "abc-123");
        assert_eq!(
            RequestLog::start("c", &good, || "new".into()).request_id(),
            "abc-123"
        );
        let bad = request().with_header(REQUEST_ID_HEADER, "a\"b\n");
        assert_eq!(
            RequestLog::start("c", &bad, || "new".into()).request_id(),
            "new"
        );
        assert!(!is_valid_request_id(&"x".repeat(65)));
    }

    #[test]
    fn formats_rfc3339_utc_with_millis() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_435_445_123);
        assert_eq!(rfc3339_millis(t), "2026-11-23T12:04:05.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn classifies_model_calls_by_path() {
        assert_eq!(
            CallKind::of("https://x/openai/deployments/gpt/chat/completions?api-version=1"),
            CallKind::Llm
        );
        assert_eq!(
            CallKind::of("https://x/openai/deployments/e/embeddings?api-version=1"),
            CallKind::Embedding
        );
        assert_eq!(CallKind::of("https://x/v1/embeddings"), CallKind::Embedding);
        assert_eq!(CallKind::of("https://x/other"), CallKind::Other);
    }

    #[test]
    fn metered_client_counts_calls_per_kind() {
        struct Ok200;
        impl HttpClient for Ok200 {
            async fn send(&self, _: HttpRequest) -> Result<HttpResponse> {
                Ok(HttpResponse::text(200, "text/plain", "ok"))
            }
        }
        let stats = CallStats::default();
        let http = Metered::new(Ok200, stats.clone());
        futures::executor::block_on(async {
            for url in [
                "http://a/x/embeddings",
                "http://a/x/embeddings",
                "http://a/chat/completions",
                "http://a/",
            ] {
                http.send(HttpRequest::new("POST", url)).await.unwrap();
            }
        });
        assert_eq!(stats.counts(), (1, 2));
        let fields = stats.fields();
        assert!(fields.contains(&("llm-calls".into(), "1".into())));
        assert!(fields.contains(&("embedding-calls".into(), "2".into())));
        let mut log = RequestLog::start("c", &request(), || "id".into());
        log.annotate_all(&fields);
        assert_eq!(log.line().embedding_calls, 2);
    }

    /// A streamed answer's time is its opening plus each wait for a piece
    /// of its body, finished or cancelled; it is still one call.
    #[test]
    fn metered_stream_counts_waiting_for_body_pieces_as_the_calls_time() {
        struct Slow(u32);
        impl BodyStream for Slow {
            async fn next(&mut self) -> Option<Result<Vec<u8>>> {
                std::thread::sleep(std::time::Duration::from_millis(5));
                (self.0 > 0).then(|| {
                    self.0 -= 1;
                    Ok(b"data: x\n\n".to_vec())
                })
            }
        }
        struct Streams;
        impl StreamingHttpClient for Streams {
            type Body = Slow;
            async fn open(&self, _: HttpRequest) -> Result<(HttpResponse, Slow)> {
                Ok((HttpResponse::text(200, "text/event-stream", ""), Slow(3)))
            }
        }
        let stats = CallStats::default();
        let http = Metered::new(Streams, stats.clone());
        futures::executor::block_on(async {
            let (_, mut body) = http
                .open(HttpRequest::new("POST", "http://a/chat/completions"))
                .await
                .unwrap();
            while body.next().await.is_some() {}
        });
        assert_eq!(stats.counts(), (1, 0));
        let llm_ms: f64 = stats
            .fields()
            .iter()
            .find(|(name, _)| name == "llm-ms")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap();
        // Four waits of 5 ms (three pieces, then the end).
        assert!(llm_ms >= 20.0, "{llm_ms}");
    }
}
