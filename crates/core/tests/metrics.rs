//! `/metrics`: the exposition parses, counters come from KV, and a failing
//! store is reported rather than hidden as zeros.

use futures::executor::block_on;
use prometheus_parse::{Scrape, Value};
use ragspin_core::metrics::{self, Encoder, MetricType, Snapshot};
use ragspin_core::{HttpRequest, KvStore, health};
use ragspin_testkit::{MapConfig, MemoryKv, SqliteSql};

/// Parse strictly: prometheus-parse skips lines it does not understand, so
/// also require one sample per non-comment line, each typed by its family.
fn parse(text: &str) -> Scrape {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "unparsed lines in:\n{text}"
    );
    for sample in &scrape.samples {
        assert!(
            matches!(sample.value, Value::Counter(_) | Value::Gauge(_)),
            "{} has no TYPE:\n{text}",
            sample.metric
        );
        assert!(
            scrape.docs.contains_key(&sample.metric),
            "{} has no HELP",
            sample.metric
        );
    }
    assert!(text.ends_with('\n'));
    scrape
}

fn value(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn renders_an_exposition_that_parses_with_every_family_typed() {
    let kv = MemoryKv::new();
    let scrape = parse(&metrics::render(&block_on(metrics::snapshot(&kv))));
    assert_eq!(
        value(
            &scrape,
            "ragspin_build_info",
            Some(("version", env!("CARGO_PKG_VERSION")))
        ),
        Some(1.0)
    );
    assert_eq!(value(&scrape, "ragspin_metrics_store_up", None), Some(1.0));
    assert!(value(&scrape, "ragspin_instance_requests_total", None).is_some());
    for route in metrics::HEALTH_ROUTES {
        assert_eq!(
            value(
                &scrape,
                "ragspin_health_requests_total",
                Some(("route", route))
            ),
            Some(0.0),
            "{route}"
        );
    }
    for check in metrics::READINESS_CHECKS {
        assert_eq!(
            value(
                &scrape,
                "ragspin_readiness_checks_failed_total",
                Some(("check", check))
            ),
            Some(0.0),
            "{check}"
        );
    }
}

#[test]
fn reports_counters_stored_in_kv() {
    let kv = MemoryKv::new();
    block_on(kv.increment(&metrics::health_requests_key("/readyz"), 41)).unwrap();
    block_on(kv.increment(&metrics::readiness_failed_key("variables"), 3)).unwrap();
    let scrape = parse(&metrics::render(&block_on(metrics::snapshot(&kv))));
    assert_eq!(
        value(
            &scrape,
            "ragspin_health_requests_total",
            Some(("route", "/readyz"))
        ),
        Some(41.0)
    );
    assert_eq!(
        value(
            &scrape,
            "ragspin_readiness_checks_failed_total",
            Some(("check", "variables"))
        ),
        Some(3.0)
    );
}

#[test]
fn reports_the_store_down_instead_of_zeros_when_kv_fails() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("down"));
    let text = metrics::render(&block_on(metrics::snapshot(&kv)));
    let scrape = parse(&text);
    assert_eq!(value(&scrape, "ragspin_metrics_store_up", None), Some(0.0));
    assert!(!text.contains("ragspin_health_requests_total"), "{text}");
    assert!(value(&scrape, "ragspin_build_info", None).is_some());
}

#[test]
fn reports_the_store_down_when_a_counter_is_garbage() {
    let kv = MemoryKv::new();
    block_on(kv.set(&metrics::health_requests_key("/healthz"), b"lots")).unwrap();
    let snapshot = block_on(metrics::snapshot(&kv));
    assert!(!snapshot.store_up);
    assert!(snapshot.health_requests.is_empty());
}

#[test]
fn serves_metrics_with_the_text_format_content_type_and_counts_the_scrape() {
    let kv = MemoryKv::new();
    let request = HttpRequest::new("GET", "http://127.0.0.1:3000/metrics");
    let response = block_on(health::handle(
        &request,
        &kv,
        &SqliteSql::new().unwrap(),
        &MapConfig::new(),
    ));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let scrape = parse(std::str::from_utf8(&response.body).unwrap());
    assert_eq!(
        value(
            &scrape,
            "ragspin_health_requests_total",
            Some(("route", "/metrics"))
        ),
        Some(1.0)
    );
    assert!(value(&scrape, "ragspin_instance_requests_total", None).unwrap() >= 1.0);
}

#[test]
fn counts_requests_in_this_instance() {
    let before = metrics::instance_requests();
    let after = metrics::count_instance_request();
    assert!(after > before);
    assert!(metrics::instance_requests() >= after);
}

#[test]
fn encodes_labels_that_parse_back_to_their_values() {
    let mut e = Encoder::new();
    e.family("m_total", "A counter.", MetricType::Counter);
    e.sample("m_total", &[("a", "x y"), ("b", "/v1/indexes")], 2.0);
    let scrape = parse(&e.finish());
    assert_eq!(scrape.samples[0].labels.get("a"), Some("x y"));
    assert_eq!(scrape.samples[0].labels.get("b"), Some("/v1/indexes"));
}

#[test]
fn renders_a_snapshot_exactly() {
    let snapshot = Snapshot {
        health_requests: vec![("/healthz".into(), 2)],
        readiness_checks_failed: vec![("kv".into(), 1)],
        store_up: true,
        instance_requests: 7,
    };
    let text = metrics::render(&snapshot);
    let expected_samples = [
        format!(
            "ragspin_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "ragspin_health_requests_total{route=\"/healthz\"} 2".to_owned(),
        "ragspin_readiness_checks_failed_total{check=\"kv\"} 1".to_owned(),
        "ragspin_metrics_store_up 1".to_owned(),
        "ragspin_instance_requests_total 7".to_owned(),
    ];
    let samples: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(samples, expected_samples);
    assert!(text.contains("# TYPE ragspin_health_requests_total counter\n"));
    assert!(text.contains("# TYPE ragspin_build_info gauge\n"));
}
