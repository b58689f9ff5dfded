//! The compiled health component, served by the host over real HTTP.

mod common;

use common::{app, client, component_table, get_json, manifest_variant, start};
use ragspin_host::HostOptions;

fn failed(body: &serde_json::Value) -> Vec<String> {
    body["failed"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn check<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {body}"))
}

#[test]
fn healthz_answers_ok_with_the_version() {
    let host = start(app(&["health"]));
    let (status, body) = get_json(&host.url("/healthz"));
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn readyz_is_ready_on_the_embedded_defaults() {
    let host = start(app(&["health"]));
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for name in ["kv", "sqlite", "variables"] {
        assert_eq!(check(&body, name)["ok"], true, "{body}");
    }
    assert_eq!(body["mode"], "offline");
}

#[test]
fn readyz_fails_kv_when_the_store_errors_and_recovers_after() {
    let host = start(app(&["health"]));
    host.faults().set_kv(Some("disk I/O error"));
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(failed(&body), vec!["kv"]);
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(body["error"]["message"].as_str().unwrap().contains("kv"));
    assert_eq!(check(&body, "sqlite")["ok"], true);
    host.faults().set_kv(None);
    let (status, _) = get_json(&host.url("/readyz"));
    assert_eq!(status, 200);
}

#[test]
fn healthz_stays_up_when_kv_is_down() {
    let host = start(app(&["health"]));
    host.faults().set_kv(Some("connection refused"));
    let (status, body) = get_json(&host.url("/healthz"));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn readyz_fails_kv_when_the_component_is_not_granted_the_store() {
    let manifest = manifest_variant("no-kv", |doc| {
        component_table(doc, "health").remove("key_value_stores");
    });
    let mut options = HostOptions::for_tests(manifest);
    options.only_components = vec!["health".into()];
    let host = start(options);
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(failed(&body), vec!["kv"]);
}

#[test]
fn readyz_fails_sqlite_when_the_database_errors() {
    let host = start(app(&["health"]));
    host.faults()
        .set_sqlite(Some("database disk image is malformed"));
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(failed(&body), vec!["sqlite"]);
    assert_eq!(check(&body, "kv")["ok"], true);
}

#[test]
fn readyz_names_a_variable_the_component_cannot_see() {
    let manifest = manifest_variant("no-var", |doc| {
        component_table(doc, "health")["variables"]
            .as_table_mut()
            .unwrap()
            .remove("azure_openai_api_version");
    });
    let mut options = HostOptions::for_tests(manifest);
    options.only_components = vec!["health".into()];
    let host = start(options);
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(failed(&body), vec!["variables"]);
    assert!(
        body.to_string().contains("azure_openai_api_version"),
        "{body}"
    );
}

#[test]
fn readyz_rejects_a_malformed_endpoint_without_leaking_secrets() {
    let host = start(
        app(&["health"])
            .variable("azure_openai_endpoint", "not a url")
            .variable("azure_openai_api_key", "sk-very-secret-value"),
    );
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(failed(&body), vec!["variables"]);
    assert!(body.to_string().contains("azure_openai_endpoint"), "{body}");
    assert!(!body.to_string().contains("sk-very-secret-value"), "{body}");
}

#[test]
fn readyz_reports_azure_mode_when_fully_configured() {
    let host = start(app(&["health"]).azure("https://res.openai.azure.com", "k"));
    let (status, body) = get_json(&host.url("/readyz"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "azure");
}

#[test]
fn metrics_are_valid_prometheus_text_and_count_requests() {
    let host = start(app(&["health"]));
    for _ in 0..3 {
        get_json(&host.url("/healthz"));
    }
    let res = client().get(host.url("/metrics")).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "ragspin_build_info")
        .unwrap_or_else(|| panic!("no build info in {text}"));
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let healthz = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric.starts_with("ragspin_health_requests")
                && s.labels.get("route") == Some("/healthz")
        })
        .unwrap_or_else(|| panic!("no healthz counter in {text}"));
    match healthz.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => {
            assert!(v >= 3.0, "{text}")
        }
        ref other => panic!("unexpected value {other:?}"),
    }
}

#[test]
fn wrong_method_gets_a_json_405() {
    let host = start(app(&["health"]));
    let res = client().post(host.url("/healthz")).send().unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let body: serde_json::Value = res.json().unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
}
