//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

use ragspin_host::{HostOptions, RunningHost};
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn app_manifest() -> PathBuf {
    root().join("spin.toml")
}

pub fn wasm(name: &str) -> PathBuf {
    root().join(format!("target/wasm32-wasip2/release/{name}.wasm"))
}

/// Starts the project's app (in-memory stores) on a free loopback port.
pub fn start(options: HostOptions) -> RunningHost {
    RunningHost::start(options, "127.0.0.1:0".parse().unwrap()).expect("host starts")
}

/// Only the components a test needs, so it does not depend on the others.
pub fn app(components: &[&str]) -> HostOptions {
    let mut options = HostOptions::for_tests(app_manifest());
    options.only_components = components.iter().map(|s| s.to_string()).collect();
    options
}

/// Writes a variant of the project's `spin.toml` (edited as TOML) into a
/// temp folder, with component sources made absolute, and returns its path.
pub fn manifest_variant(name: &str, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let text = std::fs::read_to_string(app_manifest()).unwrap();
    let mut doc: toml::Table = text.parse().unwrap();
    if let Some(components) = doc.get_mut("component").and_then(|c| c.as_table_mut()) {
        for (_, c) in components.iter_mut() {
            let c = c.as_table_mut().unwrap();
            let source = c["source"].as_str().unwrap().to_string();
            let absolute = root().join(source);
            c.insert(
                "source".into(),
                absolute.to_string_lossy().into_owned().into(),
            );
        }
    }
    edit(&mut doc);
    // Under target/tmp (Cargo's folder for integration-test files), not the system temp dir.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ragspin-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

pub fn component_table<'a>(doc: &'a mut toml::Table, id: &str) -> &'a mut toml::Table {
    doc["component"].as_table_mut().unwrap()[id]
        .as_table_mut()
        .unwrap()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let res = client().get(url).send().expect("request succeeds");
    let status = res.status().as_u16();
    let text = res.text().unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text:?}"));
    (status, json)
}

/// A `jwt_secret` for tests (≥ 32 bytes).
pub const TEST_JWT_SECRET: &str = "common-test-secret-0123456789-abcdef";
/// The bootstrap admin's password in tests.
pub const TEST_ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The Argon2id hash of [`TEST_ADMIN_PASSWORD`] (computed once).
pub fn test_admin_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        ragspin_access::password::hash_password(
            TEST_ADMIN_PASSWORD,
            &ragspin_access::SeededRandom::new(11),
        )
        .unwrap()
    })
}

/// `options` with auth configured and the auth component loaded.
pub fn secured(mut options: HostOptions) -> HostOptions {
    if !options.only_components.is_empty() && !options.only_components.iter().any(|c| c == "auth") {
        options.only_components.push("auth".into());
    }
    options
        .variable("jwt_secret", TEST_JWT_SECRET)
        .variable("admin_password_hash", test_admin_hash())
}

/// A running app and an admin's access token: the API as a client sees it.
pub struct Api {
    pub host: RunningHost,
    pub token: String,
}

impl Api {
    /// Starts `options` (made [`secured`]) and logs in as the bootstrap admin.
    pub fn start(options: HostOptions) -> Self {
        let host = start(secured(options));
        let res = client()
            .post(host.url("/auth/token"))
            .json(&serde_json::json!({"username": "admin", "password": TEST_ADMIN_PASSWORD}))
            .send()
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "admin login failed");
        let body: serde_json::Value = res.json().unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        Self { host, token }
    }

    pub fn url(&self, path: &str) -> String {
        self.host.url(path)
    }

    /// A request builder with the admin's bearer token.
    pub fn request(&self, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        client()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(&self.token)
    }

    /// Sends `body` as JSON (if any); returns status and JSON (Null when empty).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().unwrap();
        let status = res.status().as_u16();
        let text = res.text().unwrap();
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        (status, json)
    }
}

/// Reads one HTTP/1.1 message, request or response, from `reader`: its
/// start line and its body, framed by `content-length` or chunked (`None`
/// when the stream ends or is malformed first).
pub fn read_http_message(reader: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let mut start = String::new();
    reader.read_line(&mut start).ok()?;
    let (mut length, mut chunked) = (0, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok()?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    while chunked {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut piece = vec![0; n + 2];
        reader.read_exact(&mut piece).ok()?;
        body.extend_from_slice(&piece[..n]);
        chunked = n > 0;
    }
    Some((start.trim_end().to_string(), body))
}
