//! The cluster runtime config against a real Redis: sessions live in the
//! shared key-value store, so a login through one host process is valid in
//! another and survives a restart of every host.
//!
//! Needs `RAGSPIN_REDIS_URL` (`make redis-test` starts a throw-away Redis and
//! sets it, with `RAGSPIN_REQUIRE_REDIS=1` so a missing URL fails instead of
//! skipping). The runtime config is k8s/runtime-config/prod/runtime-config.toml
//! with the Redis URL pointed at that server and the libSQL database replaced
//! by one SQLite file both hosts share (the test host has no libSQL client).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{TEST_ADMIN_PASSWORD, TEST_JWT_SECRET, client, root, test_admin_hash};
use serde_json::{Value, json};

fn redis_url() -> Option<String> {
    let url = std::env::var("RAGSPIN_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var_os("RAGSPIN_REQUIRE_REDIS").is_none(),
            "RAGSPIN_REQUIRE_REDIS is set but RAGSPIN_REDIS_URL is not"
        );
        eprintln!(
            "SKIPPED: RAGSPIN_REDIS_URL is not set; `make redis-test` runs this against a real Redis"
        );
    }
    url
}

/// The cluster runtime config, with KV on `redis_url` and SQLite in `dir`.
fn cluster_runtime_config(dir: &Path, redis_url: &str) -> PathBuf {
    let path = root().join("k8s/runtime-config/prod/runtime-config.toml");
    let mut config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let kv = config["key_value_store"]["default"].as_table_mut().unwrap();
    assert_eq!(kv["type"].as_str(), Some("redis"), "{}", path.display());
    kv.insert("url".into(), redis_url.into());
    let db = config["sqlite_database"]["default"].as_table_mut().unwrap();
    assert_eq!(db["type"].as_str(), Some("libsql"));
    *db = toml::toml! { type = "spin" path = "shared.db" };
    let file = dir.join("runtime-config.toml");
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    file
}

/// One `ragspin-host` process on a free loopback port.
struct HostProcess {
    child: Child,
    base: String,
}

impl HostProcess {
    fn start(runtime_config: &Path, state_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ragspin-host"))
            .arg("--manifest")
            .arg(root().join("spin.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--runtime-config-file")
            .arg(runtime_config)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--variable", &format!("jwt_secret={TEST_JWT_SECRET}")])
            .args([
                "--variable",
                &format!("admin_password_hash={}", test_admin_hash()),
            ])
            // Every login of this test comes from 127.0.0.1.
            .args(["--variable", "login_rate_limit_per_minute=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ragspin-host starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("ragspin test host serving ")
                    && let Some(tx) = tx.take()
                {
                    _ = tx.send(addr.trim().to_string());
                }
                // Keep draining so the host never blocks on a full pipe.
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(base) => base,
            Err(e) => {
                _ = child.kill();
                panic!(
                    "ragspin-host did not start: {e} (status {:?})",
                    child.try_wait()
                );
            }
        };
        Self { child, base }
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = client().post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        reply(req.send().unwrap())
    }

    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        reply(
            client()
                .get(format!("{}{path}", self.base))
                .bearer_auth(token)
                .send()
                .unwrap(),
        )
    }

    fn stop(mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

fn reply(res: reqwest::blocking::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

fn tokens(body: &Value) -> (String, String) {
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

#[test]
fn sessions_in_redis_are_shared_by_hosts_and_survive_restarts() {
    let Some(url) = redis_url() else { return };
    let dir = std::env::temp_dir().join(format!("ragspin-redis-test-{}", std::process::id()));
    _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = cluster_runtime_config(&dir, &url);

    // Two hosts, one Redis, one SQLite file: two replicas of one app.
    let a = HostProcess::start(&config, &dir.join("state-a"));
    let b = HostProcess::start(&config, &dir.join("state-b"));

    let (status, body) = a.post(
        "/auth/token",
        None,
        &json!({"username": "admin", "password": TEST_ADMIN_PASSWORD}),
    );
    assert_eq!(status, 200, "login through host A: {body}");
    let (access, refresh) = tokens(&body);

    // The session is a plain Redis key, as Spin's Redis store writes it
    // (keys as they are, no store-label prefix).
    let sid = refresh.split('.').next().unwrap();
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("auth:session:{sid}"))
        .query(&mut redis)
        .unwrap();
    assert!(stored.is_some(), "auth:session:{sid} is not in Redis");

    let (status, me) = b.get("/auth/me", &access);
    assert_eq!(status, 200, "host B accepts host A's token: {me}");
    assert_eq!(me["username"], "admin", "{me}");

    // Refresh through B rotates the session A created.
    let (status, body) = b.post("/auth/refresh", None, &json!({"refresh_token": refresh}));
    assert_eq!(status, 200, "refresh through host B: {body}");
    let (access2, refresh2) = tokens(&body);
    assert_ne!(refresh2, refresh);

    // Restart everything: the session lives in Redis, not in a host.
    a.stop();
    b.stop();
    let c = HostProcess::start(&config, &dir.join("state-c"));
    let (status, me) = c.get("/auth/me", &access2);
    assert_eq!(status, 200, "the session survives a restart: {me}");

    // The rotated refresh token is remembered too: reusing it revokes the
    // session, and a second new host sees the revocation at once.
    let d = HostProcess::start(&config, &dir.join("state-d"));
    let (status, _) = c.post("/auth/refresh", None, &json!({"refresh_token": refresh}));
    assert_eq!(status, 401, "reuse of a rotated refresh token");
    let (status, _) = d.get("/auth/me", &access2);
    assert_eq!(
        status, 401,
        "the revoked session is refused by the other host"
    );
    let (status, _) = d.post("/auth/refresh", None, &json!({"refresh_token": refresh2}));
    assert_eq!(status, 401);

    c.stop();
    d.stop();
    _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_store_behaves_like_spins() {
    let Some(url) = redis_url() else { return };
    use ragspin_host::manifest::Backing;
    use ragspin_host::storage::KvBackend;
    let kv = KvBackend::open(&Backing::Redis(url.clone())).unwrap();
    let key = format!("ragspin-test:{}:k", std::process::id());
    assert_eq!(kv.get("default", &key).unwrap(), None);
    assert!(!kv.exists("default", &key).unwrap());
    kv.set("default", &key, b"\x00\xffbinary").unwrap();
    assert_eq!(
        kv.get("default", &key).unwrap(),
        Some(b"\x00\xffbinary".to_vec())
    );
    // One Redis, no label prefix: another label sees the same key.
    assert!(kv.exists("other", &key).unwrap());
    assert!(kv.keys("default").unwrap().contains(&key));
    kv.delete("default", &key).unwrap();
    kv.delete("default", &key).unwrap();
    assert!(!kv.exists("default", &key).unwrap());

    // A Redis that is gone is an error, not a panic, and not at start-up.
    let gone = KvBackend::open(&Backing::Redis("redis://127.0.0.1:1".into())).unwrap();
    assert!(gone.get("default", "x").is_err());
}
