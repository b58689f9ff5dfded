//! The health service against the testkit fakes: every readiness failure
//! mode, the exact JSON shapes, routing, and best-effort counting.

use std::sync::Mutex;

use futures::executor::block_on;
use ragspin_core::health::{self, Mode, REQUIRED_VARIABLES};
use ragspin_core::{
    Config, Error, HttpRequest, HttpResponse, KvStore, Result, Row, Rows, Sql, SqlValue,
};
use ragspin_testkit::{MapConfig, MemoryKv, SqliteSql};
use serde_json::{Value, json};

const API_KEY: &str = "sk-SECRET-api-key-value-0123456789";
const JWT_SECRET: &str = "SECRET-jwt-0123456789abcdef0123456789abcdef";

/// The defaults of spin.toml: offline mode, auth not configured.
fn offline_config() -> MapConfig {
    MapConfig::new()
        .with("azure_openai_endpoint", "")
        .with("azure_openai_api_key", "")
        .with("azure_openai_api_version", "2024-10-21")
        .with("azure_openai_chat_deployment", "")
        .with("azure_openai_embedding_deployment", "")
        .with("jwt_secret", "")
}

fn azure_config() -> MapConfig {
    MapConfig::new()
        .with("azure_openai_endpoint", "https://my-res.openai.azure.com/")
        .with("azure_openai_api_key", API_KEY)
        .with("azure_openai_api_version", "2025-01-01-preview")
        .with("azure_openai_chat_deployment", "gpt-4o-mini")
        .with(
            "azure_openai_embedding_deployment",
            "text-embedding-3-small",
        )
        .with("jwt_secret", JWT_SECRET)
}

fn db() -> SqliteSql {
    SqliteSql::new().unwrap()
}

fn readiness(kv: &impl KvStore, sql: &impl Sql, config: &impl Config) -> health::Readiness {
    block_on(health::readiness(kv, sql, config))
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap()
}

fn check<'a>(report: &'a health::Readiness, name: &str) -> &'a health::Check {
    report.checks.iter().find(|c| c.name == name).unwrap()
}

fn get(path: &str) -> HttpRequest {
    HttpRequest::new("GET", format!("http://127.0.0.1:3000{path}"))
}

fn body_json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

#[test]
fn liveness_reports_ok_and_the_crate_version() {
    assert_eq!(
        serde_json::to_string(&health::liveness()).unwrap(),
        format!(
            r#"{{"status":"ok","version":"{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn is_ready_in_offline_mode_with_the_manifest_defaults() {
    let report = readiness(&MemoryKv::new(), &db(), &offline_config());
    assert!(report.is_ready(), "{report:?}");
    assert_eq!(report.status(), 200);
    assert_eq!(report.mode, Mode::Offline);
    let body = to_json(&report);
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["mode"], "offline");
    let names: Vec<_> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kv", "sqlite", "variables"]);
    for c in body["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true);
        assert!(c["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(c.as_object().unwrap().len(), 3);
    }
    assert!(
        check(&report, "variables")
            .detail
            .contains("jwt_secret empty: auth not configured")
    );
}

#[test]
fn is_ready_in_azure_mode_when_azure_is_fully_configured() {
    let report = readiness(&MemoryKv::new(), &db(), &azure_config());
    assert!(report.is_ready(), "{report:?}");
    assert_eq!(to_json(&report)["mode"], "azure");
}

#[test]
fn reports_not_ready_in_the_exact_failure_shape() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("connection refused"));
    let report = readiness(&kv, &db(), &offline_config());
    assert_eq!(report.status(), 503);
    let body = to_json(&report);
    let mut keys: Vec<_> = body.as_object().unwrap().keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["checks", "error", "failed", "status"]);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], json!(["kv"]));
    assert_eq!(
        body["error"],
        json!({"code": "not_ready", "message": "readiness check failed: kv"})
    );
    assert_eq!(body["checks"].as_array().unwrap().len(), 3);
}

#[test]
fn serializes_fields_in_the_documented_order() {
    let ready =
        serde_json::to_string(&readiness(&MemoryKv::new(), &db(), &offline_config())).unwrap();
    assert!(
        ready.starts_with(r#"{"status":"ready","checks":["#),
        "{ready}"
    );
    assert!(ready.ends_with(r#"],"mode":"offline"}"#), "{ready}");
    let kv = MemoryKv::new();
    kv.fail_with(Some("down"));
    let failed = serde_json::to_string(&readiness(&kv, &db(), &offline_config())).unwrap();
    assert!(
        failed.starts_with(r#"{"status":"not_ready","failed":["kv"],"checks":["#),
        "{failed}"
    );
    assert!(
        failed
            .ends_with(r#"],"error":{"code":"not_ready","message":"readiness check failed: kv"}}"#),
        "{failed}"
    );
}

#[test]
fn runs_every_check_even_when_all_fail() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("kv down"));
    let sql = db();
    sql.fail_with(Some("db down"));
    let report = readiness(&kv, &sql, &MapConfig::new());
    assert_eq!(report.failed(), ["kv", "sqlite", "variables"]);
    assert_eq!(
        to_json(&report)["error"]["message"],
        "readiness check failed: kv, sqlite, variables"
    );
    assert!(check(&report, "kv").detail.contains("kv down"));
    assert!(check(&report, "sqlite").detail.contains("db down"));
}

#[test]
fn fails_only_sqlite_when_the_database_is_down() {
    let sql = db();
    sql.fail_with(Some("no such database"));
    let report = readiness(&MemoryKv::new(), &sql, &offline_config());
    assert_eq!(report.failed(), ["sqlite"]);
}

/// A KV store that acknowledges writes and forgets them.
#[derive(Default)]
struct ForgetfulKv;

impl KvStore for ForgetfulKv {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn set(&self, _: &str, _: &[u8]) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn increment(&self, _: &str, delta: i64) -> Result<i64> {
        Ok(delta)
    }
}

/// A KV store that flips a bit in every value it returns.
#[derive(Default)]
struct CorruptingKv(MemoryKv);

impl KvStore for CorruptingKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).await?.map(|mut v| {
            if let Some(b) = v.first_mut() {
                *b ^= 1;
            }
            v
        }))
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.0.set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.0.increment(key, delta).await
    }
}

/// A KV store whose deletes fail; records the keys it was asked to set.
#[derive(Default)]
struct UndeletableKv {
    inner: MemoryKv,
    set_keys: Mutex<Vec<String>>,
}

impl KvStore for UndeletableKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.set_keys.lock().unwrap().push(key.to_owned());
        self.inner.set(key, value).await
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Err(Error::Storage("read-only replica".into()))
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.inner.increment(key, delta).await
    }
}

#[test]
fn fails_kv_when_the_probe_key_vanishes_after_set() {
    let report = readiness(&ForgetfulKv, &db(), &offline_config());
    assert_eq!(report.failed(), ["kv"]);
    assert!(check(&report, "kv").detail.contains("missing"));
}

#[test]
fn fails_kv_when_the_probe_value_reads_back_different() {
    let report = readiness(&CorruptingKv::default(), &db(), &offline_config());
    assert_eq!(report.failed(), ["kv"]);
    assert!(check(&report, "kv").detail.contains("differ"));
}

#[test]
fn fails_kv_when_the_probe_key_cannot_be_deleted() {
    let kv = UndeletableKv::default();
    let report = readiness(&kv, &db(), &offline_config());
    assert_eq!(report.failed(), ["kv"]);
    assert!(check(&report, "kv").detail.contains("read-only replica"));
}

#[test]
fn deletes_the_probe_key_after_a_successful_check() {
    let kv = MemoryKv::new();
    assert!(readiness(&kv, &db(), &offline_config()).is_ready());
    assert!(kv.snapshot().is_empty(), "{:?}", kv.snapshot());
}

#[test]
fn uses_a_different_probe_key_on_every_check() {
    let kv = UndeletableKv::default();
    readiness(&kv, &db(), &offline_config());
    readiness(&kv, &db(), &offline_config());
    let keys = kv.set_keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

/// A database whose `SELECT 1` answers something else.
struct WrongAnswerSql(SqlValue);

impl Sql for WrongAnswerSql {
    async fn execute(&self, _: &str, _: &[SqlValue]) -> Result<u64> {
        Ok(0)
    }
    async fn query(&self, _: &str, _: &[SqlValue]) -> Result<Rows> {
        Ok(Rows {
            columns: vec!["1".into()],
            rows: vec![Row(vec![self.0.clone()])],
        })
    }
}

#[test]
fn fails_sqlite_when_select_1_does_not_return_1() {
    for wrong in [
        SqlValue::Integer(2),
        SqlValue::Text("1".into()),
        SqlValue::Null,
    ] {
        let report = readiness(
            &MemoryKv::new(),
            &WrongAnswerSql(wrong.clone()),
            &offline_config(),
        );
        assert_eq!(report.failed(), ["sqlite"], "{wrong:?}");
    }
}

#[test]
fn fails_variables_naming_each_undefined_variable() {
    for name in REQUIRED_VARIABLES {
        let config = offline_config();
        config.remove(name);
        let report = readiness(&MemoryKv::new(), &db(), &config);
        assert_eq!(report.failed(), ["variables"], "{name}");
        assert!(
            check(&report, "variables")
                .detail
                .contains(&format!("{name} is not defined")),
            "{name}: {}",
            check(&report, "variables").detail
        );
    }
}

#[test]
fn fails_variables_when_the_provider_fails() {
    let config = offline_config();
    config.fail_with(Some("vault sealed"));
    let report = readiness(&MemoryKv::new(), &db(), &config);
    assert_eq!(report.failed(), ["variables"]);
    assert!(check(&report, "variables").detail.contains("vault sealed"));
}

fn variables_detail_with(config: MapConfig) -> (bool, String) {
    let report = readiness(&MemoryKv::new(), &db(), &config);
    let c = check(&report, "variables");
    (c.ok, c.detail.clone())
}

#[test]
fn fails_variables_on_a_malformed_endpoint() {
    for bad in [
        "my-res.openai.azure.com",
        "https://my-res.openai.azure.com/openai/deployments",
        "https://my-res.openai.azure.com/?api-version=1",
        "http://my-res.openai.azure.com",
    ] {
        let config = azure_config();
        config.set("azure_openai_endpoint", bad);
        let (ok, detail) = variables_detail_with(config);
        assert!(!ok, "{bad}");
        assert!(detail.contains("azure_openai_endpoint"), "{detail}");
        assert!(!detail.contains(bad), "value echoed: {detail}");
    }
}

#[test]
fn accepts_a_local_http_endpoint_for_development() {
    let config = azure_config();
    config.set("azure_openai_endpoint", "http://127.0.0.1:8089");
    assert!(variables_detail_with(config).0);
}

#[test]
fn fails_variables_on_a_malformed_api_version() {
    let config = offline_config();
    config.set("azure_openai_api_version", "latest");
    let (ok, detail) = variables_detail_with(config);
    assert!(!ok);
    assert!(detail.contains("azure_openai_api_version"), "{detail}");
}

#[test]
fn fails_variables_when_azure_is_half_configured() {
    for missing in [
        "azure_openai_api_key",
        "azure_openai_api_version",
        "azure_openai_chat_deployment",
        "azure_openai_embedding_deployment",
    ] {
        let config = azure_config();
        config.set(missing, "");
        let (ok, detail) = variables_detail_with(config);
        assert!(!ok, "{missing}");
        assert!(
            detail.contains(&format!("{missing} must be set")),
            "{detail}"
        );
    }
}

#[test]
fn fails_variables_on_a_deployment_name_that_would_break_the_url() {
    let config = azure_config();
    config.set("azure_openai_chat_deployment", "gpt/../../admin");
    let (ok, detail) = variables_detail_with(config);
    assert!(!ok);
    assert!(detail.contains("azure_openai_chat_deployment"), "{detail}");
}

#[test]
fn fails_variables_on_a_short_jwt_secret_without_revealing_it() {
    let config = offline_config();
    config.set("jwt_secret", "SECRET-short");
    let (ok, detail) = variables_detail_with(config);
    assert!(!ok);
    assert!(
        detail.contains("jwt_secret must be empty or at least 32 bytes"),
        "{detail}"
    );
    assert!(!detail.contains("SECRET"), "{detail}");
}

#[test]
fn never_puts_secret_values_in_the_readiness_output() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("down"));
    for config in [azure_config(), {
        let c = azure_config();
        c.set("azure_openai_api_version", "bogus");
        c
    }] {
        let body = serde_json::to_string(&readiness(&kv, &db(), &config)).unwrap();
        assert!(!body.contains("SECRET"), "{body}");
    }
}

#[test]
fn asks_config_for_every_required_variable() {
    /// Records every name asked for.
    struct Recording(MapConfig, Mutex<Vec<String>>);
    impl Config for Recording {
        async fn get(&self, name: &str) -> Result<Option<String>> {
            self.1.lock().unwrap().push(name.to_owned());
            self.0.get(name).await
        }
    }
    let config = Recording(offline_config(), Mutex::new(Vec::new()));
    readiness(&MemoryKv::new(), &db(), &config);
    assert_eq!(*config.1.lock().unwrap(), REQUIRED_VARIABLES);
}

fn handle(request: &HttpRequest, kv: &MemoryKv, sql: &SqliteSql) -> HttpResponse {
    block_on(health::handle(request, kv, sql, &offline_config()))
}

#[test]
fn healthz_answers_200_even_when_kv_is_down() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("redis gone"));
    let response = handle(&get("/healthz"), &kv, &db());
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(body_json(&response)["status"], "ok");
}

#[test]
fn readyz_answers_503_with_the_failure_body_when_kv_is_down() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("redis gone"));
    let response = handle(&get("/readyz"), &kv, &db());
    assert_eq!(response.status, 503);
    assert_eq!(body_json(&response)["failed"], json!(["kv"]));
}

#[test]
fn readyz_answers_200_when_everything_works() {
    let response = handle(&get("/readyz"), &MemoryKv::new(), &db());
    assert_eq!(response.status, 200);
    assert_eq!(body_json(&response)["status"], "ready");
}

#[test]
fn answers_404_json_for_unknown_paths() {
    let response = handle(&get("/nope"), &MemoryKv::new(), &db());
    assert_eq!(response.status, 404);
    assert_eq!(
        body_json(&response),
        json!({"error": {"code": "not_found", "message": "no route for GET /nope"}})
    );
}

#[test]
fn answers_405_json_with_allow_for_other_methods() {
    for method in ["POST", "PUT", "DELETE", "HEAD", "PATCH"] {
        let request = HttpRequest::new(method, "http://127.0.0.1:3000/healthz");
        let response = handle(&request, &MemoryKv::new(), &db());
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET"));
        assert_eq!(body_json(&response)["error"]["code"], "method_not_allowed");
    }
}

#[test]
fn routes_on_the_url_path_ignoring_the_query() {
    let response = handle(&get("/healthz?probe=kubelet"), &MemoryKv::new(), &db());
    assert_eq!(response.status, 200);
}

#[test]
fn counts_requests_per_route_in_kv() {
    let kv = MemoryKv::new();
    let sql = db();
    handle(&get("/healthz"), &kv, &sql);
    handle(&get("/healthz"), &kv, &sql);
    handle(&get("/readyz"), &kv, &sql);
    handle(&get("/nope"), &kv, &sql);
    let entries = kv.snapshot();
    let count = |route: &str| {
        entries
            .get(&ragspin_core::metrics::health_requests_key(route))
            .cloned()
    };
    assert_eq!(count("/healthz"), Some(b"2".to_vec()));
    assert_eq!(count("/readyz"), Some(b"1".to_vec()));
    assert_eq!(count("/metrics"), None);
}

#[test]
fn counts_failed_readiness_checks_in_kv() {
    let kv = MemoryKv::new();
    let sql = db();
    sql.fail_with(Some("down"));
    handle(&get("/readyz"), &kv, &sql);
    handle(&get("/readyz"), &kv, &sql);
    let key = ragspin_core::metrics::readiness_failed_key("sqlite");
    assert_eq!(kv.snapshot().get(&key), Some(&b"2".to_vec()));
    assert_eq!(
        kv.snapshot()
            .get(&ragspin_core::metrics::readiness_failed_key("kv")),
        None
    );
}
