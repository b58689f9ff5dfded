//! Prometheus metrics in the text exposition format 0.0.4.
//!
//! Why hand-written: `prometheus-client` 0.24.1 builds for wasm32-wasip2, but
//! its text encoder emits OpenMetrics only (a trailing `# EOF`, and counter
//! families declared without their `_total` suffix), while `/metrics` is
//! served as `text/plain; version=0.0.4`. Its metrics are also in-process
//! atomics, whereas ours are read from KV on every scrape. The 0.0.4 format
//! needs only the few lines of escaping in [`Encoder`].
//!
//! Where the numbers live:
//! * `ragspin_health_requests_total{route}` and
//!   `ragspin_readiness_checks_failed_total{check}` are counters in the KV store
//!   ([`KvStore::increment`]), so they are shared by all instances and survive
//!   instance recycling. Increments are read-modify-write in Spin, so
//!   concurrent requests can lose a count: they are approximate.
//! * `ragspin_instance_requests_total` counts requests seen by *this* wasm
//!   instance (a static); Spin recycles instances, so it resets often and is
//!   only useful to see instance reuse.
//! * `ragspin_metrics_store_up` is 1 when the KV counters could be read for
//!   this scrape; when it is 0 the KV families are left out rather than
//!   reported as zero.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::health::VERSION;
use crate::ports::{KvStore, parse_counter};

/// `content-type` of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label values of `ragspin_health_requests_total`.
pub const HEALTH_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The `check` label values of `ragspin_readiness_checks_failed_total`.
pub const READINESS_CHECKS: [&str; 3] = ["kv", "sqlite", "variables"];

static INSTANCE_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The KV key of the request counter for `route`.
pub fn health_requests_key(route: &str) -> String {
    format!("ragspin:metrics:health_requests_total:{route}")
}

/// The KV key of the failure counter for readiness check `check`.
pub fn readiness_failed_key(check: &str) -> String {
    format!("ragspin:metrics:readiness_checks_failed_total:{check}")
}

/// Count one request in this instance; returns the new count.
pub fn count_instance_request() -> u64 {
    INSTANCE_REQUESTS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Requests counted in this instance so far.
pub fn instance_requests() -> u64 {
    INSTANCE_REQUESTS.load(Ordering::Relaxed)
}

/// Count one request to `route` in the KV store.
pub async fn record_health_request<K: KvStore>(kv: &K, route: &str) -> Result<i64> {
    kv.increment(&health_requests_key(route), 1).await
}

/// Count one failure of each named check; tries all, returns the first error.
pub async fn record_failed_checks<K: KvStore>(kv: &K, failed: &[&str]) -> Result<()> {
    let mut first_error = None;
    for check in failed {
        if let Err(e) = kv.increment(&readiness_failed_key(check), 1).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The numbers behind one scrape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// `(route, count)` for each of [`HEALTH_ROUTES`]; empty if the store failed.
    pub health_requests: Vec<(String, i64)>,
    /// `(check, count)` for each of [`READINESS_CHECKS`]; empty if the store failed.
    pub readiness_checks_failed: Vec<(String, i64)>,
    /// Whether the KV counters were read.
    pub store_up: bool,
    /// This instance's request count.
    pub instance_requests: u64,
}

/// Read every counter (absent keys count 0).
pub async fn snapshot<K: KvStore>(kv: &K) -> Snapshot {
    async fn read<K: KvStore>(kv: &K, key: String) -> Result<i64> {
        match kv.get(&key).await? {
            Some(bytes) => parse_counter(&key, &bytes),
            None => Ok(0),
        }
    }
    let mut snapshot = Snapshot {
        store_up: true,
        instance_requests: instance_requests(),
        ..Snapshot::default()
    };
    for route in HEALTH_ROUTES {
        match read(kv, health_requests_key(route)).await {
            Ok(n) => snapshot.health_requests.push((route.to_owned(), n)),
            Err(_) => snapshot.store_up = false,
        }
    }
    for check in READINESS_CHECKS {
        match read(kv, readiness_failed_key(check)).await {
            Ok(n) => snapshot.readiness_checks_failed.push((check.to_owned(), n)),
            Err(_) => snapshot.store_up = false,
        }
    }
    if !snapshot.store_up {
        snapshot.health_requests.clear();
        snapshot.readiness_checks_failed.clear();
    }
    snapshot
}

/// Encode a snapshot in the text exposition format.
pub fn render(snapshot: &Snapshot) -> String {
    let mut e = Encoder::new();
    e.family(
        "ragspin_build_info",
        "Build information; the value is always 1.",
        MetricType::Gauge,
    );
    e.sample("ragspin_build_info", &[("version", VERSION)], 1.0);
    if snapshot.store_up {
        e.family(
            "ragspin_health_requests_total",
            "Requests to the health component by route, all instances (KV-backed, approximate).",
            MetricType::Counter,
        );
        for (route, n) in &snapshot.health_requests {
            e.sample(
                "ragspin_health_requests_total",
                &[("route", route)],
                *n as f64,
            );
        }
        e.family(
            "ragspin_readiness_checks_failed_total",
            "Failed readiness checks by check, all instances (KV-backed, approximate).",
            MetricType::Counter,
        );
        for (check, n) in &snapshot.readiness_checks_failed {
            e.sample(
                "ragspin_readiness_checks_failed_total",
                &[("check", check)],
                *n as f64,
            );
        }
    }
    e.family(
        "ragspin_metrics_store_up",
        "1 if the KV-backed counters were read for this scrape, else 0.",
        MetricType::Gauge,
    );
    e.sample(
        "ragspin_metrics_store_up",
        &[],
        if snapshot.store_up { 1.0 } else { 0.0 },
    );
    e.family(
        "ragspin_instance_requests_total",
        "Requests handled by this wasm instance (per instance; resets when Spin recycles it).",
        MetricType::Counter,
    );
    e.sample(
        "ragspin_instance_requests_total",
        &[],
        snapshot.instance_requests as f64,
    );
    e.finish()
}

/// Prometheus metric types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
}

/// A minimal writer for the text exposition format 0.0.4: write a family's
/// `# HELP`/`# TYPE` header, then its samples.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a family. `name` must be a valid metric name.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        let kind = match kind {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// Write one sample of the current family. Label names must be valid;
    /// label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(label), "invalid label name {label:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    !name.starts_with("__")
        && matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_backslash_quote_and_newline_in_label_values() {
        let mut e = Encoder::new();
        e.sample("m", &[("l", "a\\b\"c\nd")], 1.0);
        assert_eq!(e.finish(), "m{l=\"a\\\\b\\\"c\\nd\"} 1\n");
    }

    #[test]
    fn escapes_backslash_and_newline_in_help() {
        let mut e = Encoder::new();
        e.family("m", "a\\b\nc", MetricType::Gauge);
        assert_eq!(e.finish(), "# HELP m a\\\\b\\nc\n# TYPE m gauge\n");
    }

    #[test]
    fn formats_special_and_fractional_values() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn validates_metric_and_label_names() {
        assert!(is_metric_name("ragspin_build_info"));
        assert!(is_metric_name("a:b_c1"));
        assert!(!is_metric_name("1abc"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name(""));
        assert!(is_label_name("route"));
        assert!(!is_label_name("__name"));
        assert!(!is_label_name("a:b"));
    }
}
