//! The host's Spin behaviours, observed through the test-only probe component.

mod common;

use common::{client, get_json, start};
use ragspin_host::HostOptions;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn probe(port: u16) -> HostOptions {
    HostOptions::for_tests(common::root().join("tests/host/fixtures/probe.toml"))
        .variable("allowed_port", &port.to_string())
}

/// A loopback server answering `204` and counting connections.
fn upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            _ = stream.read(&mut buf);
            _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (port, hits)
}

#[test]
fn passes_spin_headers_and_an_absolute_uri() {
    let host = start(probe(1));
    let (status, body) = get_json(&host.url("/probe/echo?x=1"));
    assert_eq!(status, 200);
    let full = format!("http://{}/probe/echo?x=1", host.addr);
    assert_eq!(body["uri"], full.as_str());
    let h = &body["headers"];
    assert_eq!(h["spin-full-url"], full.as_str());
    assert_eq!(h["spin-path-info"], "/echo");
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-raw-component-route"], "/probe/...");
    assert_eq!(h["spin-component-route"], "/probe");
    assert_eq!(h["spin-base-path"], "/");
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[test]
fn allows_outbound_requests_to_allowed_hosts() {
    let (port, hits) = upstream();
    let host = start(probe(port));
    let (status, body) = get_json(&host.url(&format!("/probe/outbound?port={port}")));
    assert_eq!(
        (status, &body["status"]),
        (200, &serde_json::json!(204)),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn refuses_outbound_requests_to_hosts_not_allowed() {
    let (allowed, _) = upstream();
    let (other, hits) = upstream();
    let host = start(probe(allowed));
    let (status, body) = get_json(&host.url(&format!("/probe/outbound?port={other}")));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{body}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the refused host was contacted"
    );
}

#[test]
fn a_panicking_handler_gets_an_empty_500_and_the_host_recovers() {
    let host = start(probe(1));
    let res = client().get(host.url("/probe/panic")).send().unwrap();
    assert_eq!(res.status().as_u16(), 500);
    assert_eq!(res.headers()["content-length"], "0");
    assert_eq!(res.text().unwrap(), "");
    let (status, _) = get_json(&host.url("/probe/echo"));
    assert_eq!(status, 200);
}

#[test]
fn instances_are_reused_so_statics_survive_between_requests() {
    let host = start(probe(1));
    let (_, first) = get_json(&host.url("/probe/count"));
    let (_, second) = get_json(&host.url("/probe/count"));
    assert_eq!(first["count"], 1);
    assert_eq!(second["count"], 2);
}

#[test]
fn unrouted_paths_get_spins_empty_404() {
    let host = start(probe(1));
    let res = client().get(host.url("/elsewhere")).send().unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.text().unwrap(), "");
}

#[test]
fn a_required_variable_without_value_refuses_to_start() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ragspin-required-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("spin.toml");
    let text = std::fs::read_to_string(common::root().join("tests/host/fixtures/probe.toml"))
        .unwrap()
        .replace(
            "allowed_port = { default = \"1\" }",
            "allowed_port = { required = true }",
        )
        .replace(
            "../../../target",
            &common::root().join("target").to_string_lossy(),
        );
    std::fs::write(&manifest, text).unwrap();
    let err = ragspin_host::RunningHost::start(
        HostOptions::for_tests(&manifest),
        "127.0.0.1:0".parse().unwrap(),
    )
    .err()
    .expect("start-up must fail");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(format!("{err:#}").contains("allowed_port"), "{err:#}");
}

/// Each port has one contract suite; here it runs against the Spin adapters,
/// inside a real component, on the host's KV, SQLite and variables.
#[test]
fn spin_adapters_pass_the_port_contract_suites() {
    let host = start(probe(1));
    let (status, body) = get_json(&host.url("/contract"));
    assert_eq!(status, 200, "{body}");
    for suite in [
        "kv_store",
        "sql",
        "config",
        "clock",
        "timer",
        "byte_scan",
        "vector_kernels",
    ] {
        assert_eq!(body[suite], "ok", "{suite}: {body}");
    }
}
