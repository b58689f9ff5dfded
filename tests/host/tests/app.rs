//! The whole app as `spin.toml` describes it: routing to every component,
//! the manifest's promises, component interfaces and sizes.

mod common;

use common::{app_manifest, client, root, start, wasm};
use ragspin_host::HostOptions;
use ragspin_host::manifest::{Backing, Manifest, RuntimeConfig};

const COMPONENTS: [&str; 5] = ["health", "query", "ingest", "auth", "web"];

/// With every component loaded, the web component's `/...` catches only
/// what no other route claims: the page at `/`, APIs at their own routes.
#[test]
fn the_whole_app_serves_the_page_at_the_root_and_the_apis_beside_it() {
    let host = start(HostOptions::for_tests(app_manifest()));
    let page = client().get(host.url("/")).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(
        page.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    // Ingest answers (401, or 503 without a jwt_secret), not the web's 404.
    for (path, statuses) in [
        ("/healthz", &[200][..]),
        ("/v1/indexes", &[401, 503][..]),
        ("/nope", &[404][..]),
    ] {
        let res = client().get(host.url(path)).send().unwrap();
        let status = res.status().as_u16();
        assert!(statuses.contains(&status), "{path}: {status}");
        let body: serde_json::Value = res.json().unwrap();
        assert!(body.is_object(), "{path}: {body}");
    }
}

#[test]
fn every_component_builds_for_wasm32_wasip2_in_release() {
    let manifest = Manifest::load(&app_manifest()).unwrap();
    let text = std::fs::read_to_string(app_manifest()).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    for id in COMPONENTS {
        let c = &manifest.component[id];
        assert_eq!(c.source, format!("target/wasm32-wasip2/release/{id}.wasm"));
        let build = doc["component"][id]["build"]["command"].as_str().unwrap();
        assert!(
            build.contains("--target wasm32-wasip2 --release"),
            "{id}: {build}"
        );
    }
}

#[test]
fn only_components_that_call_azure_may_reach_it() {
    let manifest = Manifest::load(&app_manifest()).unwrap();
    for (id, c) in &manifest.component {
        let expected: Vec<String> = match id.as_str() {
            "query" | "ingest" => vec!["{{ azure_openai_endpoint }}".into()],
            _ => vec![],
        };
        assert_eq!(c.allowed_outbound_hosts, expected, "{id}");
    }
    for secret in ["azure_openai_api_key", "jwt_secret", "admin_password_hash"] {
        assert!(manifest.variables[secret].secret, "{secret} must be secret");
    }
}

#[test]
fn runtime_configs_are_well_formed() {
    let local =
        RuntimeConfig::load(&root().join("runtime-config.toml"), &root().join(".spin")).unwrap();
    assert_eq!(
        local.key_value_stores["default"],
        Backing::File(root().join(".spin/sqlite_key_value.db"))
    );
    assert_eq!(
        local.sqlite_databases["default"],
        Backing::File(root().join(".spin/sqlite_db.db"))
    );
    let cluster: toml::Table =
        std::fs::read_to_string(root().join("k8s/runtime-config/prod/runtime-config.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let kv = &cluster["key_value_store"]["default"];
    assert_eq!(kv["type"].as_str(), Some("redis"));
    assert!(kv["url"].as_str().unwrap().starts_with("redis://"));
    let db = &cluster["sqlite_database"]["default"];
    assert_eq!(db["type"].as_str(), Some("libsql"));
    assert!(db["url"].as_str().unwrap().starts_with("http"));
    assert!(db["token"].is_str());
}

#[test]
fn component_sizes_stay_within_budget() {
    for id in COMPONENTS {
        let size = std::fs::metadata(wasm(id)).unwrap().len();
        assert!(
            size <= 2 * 1024 * 1024,
            "{id}.wasm is {size} bytes (budget 2 MiB)"
        );
    }
}

/// A new host import must be noticed: each component's imports and exports
/// are compared with `tests/host/snapshots/<id>.txt`. After a deliberate
/// change, run with `UPDATE_SNAPSHOTS=1` and review the diff.
#[test]
fn component_interfaces_match_their_snapshots() {
    let engine = ragspin_host::engine().unwrap();
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut mismatches = Vec::new();
    for id in COMPONENTS.iter().chain(&["probe", "contract", "guarded"]) {
        let lines = ragspin_host::component_interface(&engine, &wasm(id)).unwrap();
        let actual = lines.join("\n") + "\n";
        let path = root().join(format!("tests/host/snapshots/{id}.txt"));
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!("{id}: expected\n{expected}\nactual\n{actual}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "interfaces changed (UPDATE_SNAPSHOTS=1 to accept):\n{}",
        mismatches.join("\n")
    );
}

/// Every route in `spin.toml` is described in `docs/openapi.yaml`: exact
/// routes by the same path, wildcard routes by at least one path under them.
#[test]
fn every_manifest_route_is_in_the_openapi_description() {
    let spec = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    let paths: Vec<&str> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("  /").map(|p| p.trim_end()))
        .filter_map(|p| p.strip_suffix(':'))
        .collect();
    assert!(spec.starts_with("openapi: 3.1"), "OpenAPI 3.1 expected");
    let manifest = Manifest::load(&app_manifest()).unwrap();
    for trigger in &manifest.trigger.http {
        let route = trigger.route.trim_start_matches('/');
        let covered = match route.strip_suffix("...") {
            Some(prefix) => paths.iter().any(|p| p.starts_with(prefix)),
            None => paths.contains(&route),
        };
        assert!(
            covered,
            "route {} is not in docs/openapi.yaml",
            trigger.route
        );
    }
}
