//! Auth and access control through the compiled components, over real HTTP:
//! the auth component issues tokens, the test-only `guarded` component
//! (tests/guarded, merged in from tests/host/fixtures/probe.toml) and the
//! health component enforce them with `ragspin_access`.

mod common;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{client, manifest_variant, root, start};
use ragspin_access::jwt::{Claims, sign, sign_raw};
use ragspin_access::password::hash_password;
use ragspin_access::{Role, SeededRandom};
use ragspin_host::{HostOptions, RunningHost};
use serde_json::{Value, json};

const SECRET: &str = "host-test-secret-host-test-secret-0123";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";

fn admin_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(ADMIN_PASSWORD, &SeededRandom::new(7)).unwrap())
}

/// The app's spin.toml plus the guarded component from the probe fixture.
fn app_with_guarded() -> HostOptions {
    static N: AtomicUsize = AtomicUsize::new(0);
    let fixture: toml::Table =
        std::fs::read_to_string(root().join("tests/host/fixtures/probe.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let name = format!("auth-{}", N.fetch_add(1, Ordering::SeqCst));
    let manifest = manifest_variant(&name, |doc| {
        let mut guarded = fixture["component"]["guarded"].as_table().unwrap().clone();
        let wasm = root().join("target/wasm32-wasip2/release/guarded.wasm");
        guarded.insert("source".into(), wasm.to_string_lossy().into_owned().into());
        doc["component"]
            .as_table_mut()
            .unwrap()
            .insert("guarded".into(), guarded.into());
        let trigger = fixture["trigger"]["http"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["component"].as_str() == Some("guarded"))
            .unwrap()
            .clone();
        doc["trigger"]["http"].as_array_mut().unwrap().push(trigger);
    });
    let mut options = HostOptions::for_tests(manifest);
    options.only_components = vec!["auth".into(), "guarded".into(), "health".into()];
    options
        .variable("jwt_secret", SECRET)
        .variable("admin_password_hash", admin_hash())
}

fn host_with(vars: &[(&str, &str)]) -> RunningHost {
    let options = vars.iter().fold(app_with_guarded(), |o, (name, value)| {
        o.variable(name, value)
    });
    start(options)
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn send(
    host: &RunningHost,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: Option<&Value>,
) -> Reply {
    let mut request = client().request(method.parse().unwrap(), host.url(path));
    for (name, value) in headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().expect("request succeeds");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().unwrap(),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get(host: &RunningHost, path: &str, token: &str) -> Reply {
    send(
        host,
        "GET",
        path,
        &[("authorization", bearer(token).as_bytes())],
        None,
    )
}

fn post(host: &RunningHost, path: &str, token: Option<&str>, body: &Value) -> Reply {
    match token {
        Some(token) => send(
            host,
            "POST",
            path,
            &[("authorization", bearer(token).as_bytes())],
            Some(body),
        ),
        None => send(host, "POST", path, &[], Some(body)),
    }
}

fn login(host: &RunningHost, username: &str, password: &str) -> Reply {
    post(
        host,
        "/auth/token",
        None,
        &json!({"username": username, "password": password}),
    )
}

/// (access token, refresh token) of a successful login.
fn tokens(host: &RunningHost, username: &str, password: &str) -> (String, String) {
    let reply = login(host, username, password);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn create_user(host: &RunningHost, admin: &str, username: &str, role: &str, indexes: &[&str]) {
    let reply = post(
        host,
        "/auth/users",
        Some(admin),
        &json!({"username": username, "password": format!("{username}-password"), "role": role, "indexes": indexes}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
}

fn create_key(host: &RunningHost, admin: &str, body: &Value) -> (String, String) {
    let reply = post(host, "/auth/api-keys", Some(admin), body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sid: &str) -> Claims {
    let now = now_s();
    Claims {
        iss: "ragspin".into(),
        aud: "ragspin-api".into(),
        sub: "admin".into(),
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: "forged".into(),
        sid: sid.into(),
        roles: vec![Role::Admin],
    }
}

/// The `sid` claim of an access token.
fn sid_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

/// Secrets and internals that must never appear in a response.
fn assert_nothing_leaks(case: &str, reply: &Reply, extra: &[&str]) {
    let lower = reply.text.to_lowercase();
    for needle in [
        SECRET,
        ADMIN_PASSWORD,
        "panicked",
        "backtrace",
        ".rs:",
        "argon2",
        "select ",
        "sqlite",
        "auth:session",
        "auth:apikey",
        "stack",
    ] {
        assert!(
            !lower.contains(&needle.to_lowercase()),
            "{case}: response leaks {needle:?}: {}",
            reply.text
        );
    }
    for needle in extra {
        assert!(
            !reply.text.contains(needle),
            "{case}: response leaks a credential: {}",
            reply.text
        );
    }
}

/// Everything the hostile table needs, set up once.
struct Fixture {
    admin: String,
    reader: String,
    editor: String,
    reader_key: String,
    revoked_key: String,
    disabled_user_key: String,
    logged_out: String,
    reused_refresh: String,
    family_access: String,
}

fn fixture(host: &RunningHost) -> Fixture {
    let (admin, _) = tokens(host, "admin", ADMIN_PASSWORD);
    create_user(host, &admin, "rita", "reader", &["docs"]);
    create_user(host, &admin, "ed", "editor", &["docs"]);
    create_user(host, &admin, "gone", "editor", &["docs"]);
    let (reader, _) = tokens(host, "rita", "rita-password");
    let (editor, _) = tokens(host, "ed", "ed-password");
    let (_, reader_key) = create_key(
        host,
        &admin,
        &json!({"name": "reader key", "username": "rita", "role": "reader", "indexes": ["docs"]}),
    );
    let (revoked_id, revoked_key) = create_key(
        host,
        &admin,
        &json!({"name": "to revoke", "role": "reader", "indexes": ["docs"]}),
    );
    let reply = send(
        host,
        "DELETE",
        &format!("/auth/api-keys/{revoked_id}"),
        &[("authorization", bearer(&admin).as_bytes())],
        None,
    );
    assert_eq!(reply.status, 204, "{}", reply.text);
    let (_, disabled_user_key) = create_key(
        host,
        &admin,
        &json!({"name": "of a disabled user", "username": "gone", "role": "editor", "indexes": ["docs"]}),
    );
    let reply = send(
        host,
        "PATCH",
        "/auth/users/gone",
        &[("authorization", bearer(&admin).as_bytes())],
        Some(&json!({"disabled": true})),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (logged_out, _) = tokens(host, "ed", "ed-password");
    let reply = post(host, "/auth/logout", Some(&logged_out), &json!({}));
    assert_eq!(reply.status, 204, "{}", reply.text);
    let (_, first_refresh) = tokens(host, "rita", "rita-password");
    let reply = post(
        host,
        "/auth/refresh",
        None,
        &json!({"refresh_token": first_refresh}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let family_access = reply.json()["access_token"].as_str().unwrap().to_owned();
    Fixture {
        admin,
        reader,
        editor,
        reader_key,
        revoked_key,
        disabled_user_key,
        logged_out,
        reused_refresh: first_refresh,
        family_access,
    }
}

type Case<'a> = (&'a str, u16, Box<dyn Fn() -> Reply + 'a>);

/// At least 25 bad or hostile requests, each answered with the right status,
/// a JSON `{"error":{"code","message"}}` and nothing leaked.
#[test]
fn hostile_requests_get_4xx_json_errors_and_leak_nothing() {
    let host = host_with(&[
        ("login_rate_limit_per_minute", "10000"),
        ("cors_allowed_origins", "https://app.example.com"),
    ]);
    let f = fixture(&host);
    let h = &host;
    let me = |token: String| move || get(h, "/auth/me", &token);
    let guarded =
        |path: &'static str, token: String| move || post(h, path, Some(&token), &json!({}));
    let admin_sid = sid_of(&f.admin);
    let good = f.admin.clone();
    let tampered_signature = {
        let mut t = good.clone();
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    let tampered_payload = {
        let parts: Vec<&str> = f.reader.split('.').collect();
        let mut evil = claims(&sid_of(&f.reader));
        evil.sub = "rita".into();
        let forged = sign(&evil, b"whatever-key-whatever-key-whatever").unwrap();
        format!(
            "{}.{}.{}",
            parts[0],
            forged.split('.').nth(1).unwrap(),
            parts[2]
        )
    };
    let payload = serde_json::to_vec(&claims(&admin_sid)).unwrap();
    let alg_none = {
        use base64::Engine as _;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            e.encode(br#"{"alg":"none","typ":"JWT"}"#),
            e.encode(&payload)
        )
    };
    let hs512 = sign_raw(
        br#"{"alg":"HS512","typ":"JWT"}"#,
        &payload,
        SECRET.as_bytes(),
    );
    let other_key = sign(&claims(&admin_sid), b"another-secret-another-secret-0123").unwrap();
    let expired = {
        let mut c = claims(&admin_sid);
        c.iat = now_s() - 3600;
        c.nbf = c.iat;
        c.exp = now_s() - 1800;
        sign(&c, SECRET.as_bytes()).unwrap()
    };
    let not_yet = {
        let mut c = claims(&admin_sid);
        c.nbf = now_s() + 3600;
        c.exp = now_s() + 7200;
        sign(&c, SECRET.as_bytes()).unwrap()
    };
    let wrong_aud = {
        let mut c = claims(&admin_sid);
        c.aud = "another-api".into();
        sign(&c, SECRET.as_bytes()).unwrap()
    };
    let wrong_iss = {
        let mut c = claims(&admin_sid);
        c.iss = "evil".into();
        sign(&c, SECRET.as_bytes()).unwrap()
    };
    let unknown_session = sign(&claims("AAAAAAAAAAAAAAAAAAAAAA"), SECRET.as_bytes()).unwrap();
    let oversized = format!("{good}{}", "A".repeat(8 * 1024));
    let forged_key = format!("rsk_{}_{}", "0123456789abcdef", "A".repeat(43));

    let cases: Vec<Case> = vec![
        ("tampered signature", 401, Box::new(me(tampered_signature))),
        ("tampered payload", 401, Box::new(me(tampered_payload))),
        ("alg none", 401, Box::new(me(alg_none))),
        ("HS512 header", 401, Box::new(me(hs512))),
        (
            "HS256 signed with another key",
            401,
            Box::new(me(other_key)),
        ),
        ("expired token", 401, Box::new(me(expired))),
        ("not yet valid token", 401, Box::new(me(not_yet))),
        ("wrong audience", 401, Box::new(me(wrong_aud))),
        ("wrong issuer", 401, Box::new(me(wrong_iss))),
        (
            "session that never existed",
            401,
            Box::new(me(unknown_session)),
        ),
        (
            "revoked session (logged out)",
            401,
            Box::new(me(f.logged_out.clone())),
        ),
        (
            "refresh-token reuse",
            401,
            Box::new(|| {
                post(
                    h,
                    "/auth/refresh",
                    None,
                    &json!({"refresh_token": f.reused_refresh}),
                )
            }),
        ),
        (
            "access token of a family revoked by reuse",
            401,
            Box::new(me(f.family_access.clone())),
        ),
        (
            "garbage refresh token",
            401,
            Box::new(|| post(h, "/auth/refresh", None, &json!({"refresh_token": "x.y"}))),
        ),
        (
            "missing Authorization",
            401,
            Box::new(|| send(h, "POST", "/guarded/docs/query", &[], Some(&json!({})))),
        ),
        (
            "duplicate Authorization",
            400,
            Box::new(|| {
                send(
                    h,
                    "POST",
                    "/guarded/docs/query",
                    &[
                        ("authorization", bearer(&f.reader).as_bytes()),
                        ("authorization", bearer(&f.reader).as_bytes()),
                    ],
                    Some(&json!({})),
                )
            }),
        ),
        (
            "malformed Authorization (no token)",
            400,
            Box::new(|| send(h, "GET", "/auth/me", &[("authorization", b"Bearer")], None)),
        ),
        (
            "malformed Authorization (Basic scheme)",
            401,
            Box::new(|| {
                send(
                    h,
                    "GET",
                    "/auth/me",
                    &[("authorization", b"Basic YWRtaW46YWRtaW4=")],
                    None,
                )
            }),
        ),
        (
            "non-UTF-8 Authorization header",
            400,
            Box::new(|| {
                send(
                    h,
                    "GET",
                    "/auth/me",
                    &[("authorization", b"Bearer \xff\xfe\xfd")],
                    None,
                )
            }),
        ),
        (
            "Authorization and X-API-Key together",
            400,
            Box::new(|| {
                send(
                    h,
                    "GET",
                    "/auth/me",
                    &[
                        ("authorization", bearer(&f.reader).as_bytes()),
                        ("x-api-key", f.reader_key.as_bytes()),
                    ],
                    None,
                )
            }),
        ),
        ("oversized token", 401, Box::new(me(oversized))),
        (
            "API key of a disabled user",
            401,
            Box::new(me(f.disabled_user_key.clone())),
        ),
        ("revoked API key", 401, Box::new(me(f.revoked_key.clone()))),
        ("forged API key", 401, Box::new(me(forged_key))),
        (
            "reader trying to ingest",
            403,
            Box::new(guarded("/guarded/docs/ingest", f.reader.clone())),
        ),
        (
            "reader API key trying to ingest",
            403,
            Box::new(guarded("/guarded/docs/ingest", f.reader_key.clone())),
        ),
        (
            "access to another index",
            403,
            Box::new(guarded("/guarded/faq/query", f.editor.clone())),
        ),
        (
            "editor on an admin route",
            403,
            Box::new(|| {
                post(
                    h,
                    "/auth/users",
                    Some(&f.editor),
                    &json!({"username": "x1", "password": "long-enough", "role": "admin"}),
                )
            }),
        ),
        (
            "SQL-looking username",
            401,
            Box::new(|| login(h, "admin' OR '1'='1' --", "anything")),
        ),
        (
            "unknown username",
            401,
            Box::new(|| login(h, "nobody", "anything")),
        ),
        ("empty password", 400, Box::new(|| login(h, "admin", ""))),
        (
            "login body that is not JSON",
            400,
            Box::new(|| send(h, "POST", "/auth/token", &[], None)),
        ),
        (
            "login with an extra field",
            400,
            Box::new(|| {
                post(
                    h,
                    "/auth/token",
                    None,
                    &json!({"username": "admin", "password": "x", "role": "admin"}),
                )
            }),
        ),
        (
            "CORS preflight from a disallowed origin",
            403,
            Box::new(|| {
                send(
                    h,
                    "OPTIONS",
                    "/guarded/docs/query",
                    &[
                        ("origin", b"https://evil.example.com"),
                        ("access-control-request-method", b"POST"),
                    ],
                    None,
                )
            }),
        ),
    ];
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let credentials = [
        f.admin.as_str(),
        f.reader.as_str(),
        f.reader_key.as_str(),
        f.revoked_key.as_str(),
        f.disabled_user_key.as_str(),
        f.reused_refresh.as_str(),
    ];
    let mut failures = Vec::new();
    for (name, expected, run) in &cases {
        let reply = run();
        let body = serde_json::from_str::<Value>(&reply.text).ok();
        let code = body
            .as_ref()
            .and_then(|b| b["error"]["code"].as_str())
            .map(str::to_owned);
        let message_ok = body.as_ref().is_some_and(|b| {
            b["error"]["message"].is_string() && b.as_object().unwrap().len() == 1
        });
        let expected_code = match expected {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            429 => "rate_limited",
            _ => unreachable!(),
        };
        if reply.status != *expected || code.as_deref() != Some(expected_code) || !message_ok {
            failures.push(format!(
                "{name}: expected {expected} {expected_code}, got {} {}",
                reply.status, reply.text
            ));
            continue;
        }
        assert_nothing_leaks(name, &reply, &credentials);
        if reply.status == 401 {
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{name}: 401 without a Bearer challenge"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Unknown user, wrong password and SQL-looking name: indistinguishable.
    let unknown = login(h, "nobody-at-all", "wrong-password");
    let wrong = login(h, "rita", "wrong-password");
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.text, wrong.text);
    // The SQL-looking name did nothing to the tables.
    let users = get(h, "/auth/users", &f.admin).json();
    assert_eq!(users["users"].as_array().unwrap().len(), 3, "{users}");
}

#[test]
fn brute_force_locks_the_username_out_with_retry_after() {
    let host = host_with(&[("login_rate_limit_per_minute", "1000")]);
    for attempt in 1..=5 {
        let reply = login(&host, "admin", "wrong-guess");
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text);
    }
    // Even the right password is refused while locked out.
    let locked = login(&host, "admin", ADMIN_PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert_eq!(locked.json()["error"]["code"], "rate_limited");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_nothing_leaks("lockout", &locked, &[]);
    // A username that does not exist locks out the same way.
    for _ in 1..=5 {
        assert_eq!(login(&host, "ghost", "wrong-guess").status, 401);
    }
    assert_eq!(login(&host, "ghost", "wrong-guess").status, 429);
}

#[test]
fn logins_are_rate_limited_per_client_address() {
    let host = host_with(&[("login_rate_limit_per_minute", "3")]);
    for _ in 0..3 {
        assert_eq!(login(&host, "someone", "wrong-guess").status, 401);
    }
    let limited = login(&host, "admin", ADMIN_PASSWORD);
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.header("retry-after"), Some("20"));
}

#[test]
fn each_principal_is_rate_limited() {
    let host = host_with(&[("rate_limit_per_minute", "3")]);
    let (admin, _) = tokens(&host, "admin", ADMIN_PASSWORD);
    for _ in 0..3 {
        assert_eq!(
            post(&host, "/guarded/docs/query", Some(&admin), &json!({})).status,
            200
        );
    }
    let limited = post(&host, "/guarded/docs/query", Some(&admin), &json!({}));
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.header("retry-after"), Some("20"));
}

#[test]
fn login_query_refresh_logout_then_the_token_is_refused() {
    let host = host_with(&[]);
    let (admin, _) = tokens(&host, "admin", ADMIN_PASSWORD);
    create_user(&host, &admin, "rita", "reader", &["docs"]);
    let login_reply = login(&host, "rita", "rita-password");
    assert_eq!(login_reply.status, 200);
    assert_eq!(login_reply.header("cache-control"), Some("no-store"));
    let body = login_reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    let query = post(&host, "/guarded/docs/query", Some(&access), &json!({}));
    assert_eq!(query.status, 200, "{}", query.text);
    assert_eq!(query.json()["username"], "rita");
    assert_eq!(query.json()["role"], "reader");

    let rotated = post(
        &host,
        "/auth/refresh",
        None,
        &json!({"refresh_token": refresh}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let access2 = rotated.json()["access_token"].as_str().unwrap().to_owned();
    let refresh2 = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let query = post(&host, "/guarded/docs/search", Some(&access2), &json!({}));
    assert_eq!(query.status, 200, "{}", query.text);

    let out = post(&host, "/auth/logout", Some(&access2), &json!({}));
    assert_eq!(out.status, 204, "{}", out.text);
    for token in [&access, &access2] {
        let refused = post(&host, "/guarded/docs/query", Some(token), &json!({}));
        assert_eq!(refused.status, 401, "{}", refused.text);
    }
    let refused = post(
        &host,
        "/auth/refresh",
        None,
        &json!({"refresh_token": refresh2}),
    );
    assert_eq!(refused.status, 401);
}

#[test]
fn api_keys_work_wherever_tokens_do() {
    let host = host_with(&[]);
    let (admin, _) = tokens(&host, "admin", ADMIN_PASSWORD);
    create_user(&host, &admin, "ed", "editor", &["docs"]);
    let (_, key) = create_key(
        &host,
        &admin,
        &json!({"name": "pipeline", "username": "ed", "role": "editor", "indexes": ["docs"]}),
    );
    let by_header = send(
        &host,
        "POST",
        "/guarded/docs/ingest",
        &[("x-api-key", key.as_bytes())],
        Some(&json!({})),
    );
    assert_eq!(by_header.status, 200, "{}", by_header.text);
    assert_eq!(by_header.json()["credential"]["type"], "api_key");
    let by_bearer = post(&host, "/guarded/docs/ingest", Some(&key), &json!({}));
    assert_eq!(by_bearer.status, 200, "{}", by_bearer.text);
    let me = get(&host, "/auth/me", &key);
    assert_eq!(me.json()["username"], "ed");
    let listed = get(&host, "/auth/api-keys", &admin);
    assert!(!listed.text.contains(&key), "the key is shown once only");
}

#[test]
fn metrics_can_require_an_admin_while_health_stays_public() {
    let host = host_with(&[("metrics_require_auth", "true")]);
    for path in ["/healthz", "/readyz"] {
        let reply = send(&host, "GET", path, &[], None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    let anonymous = send(&host, "GET", "/metrics", &[], None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(anonymous.json()["error"]["code"], "unauthorized");
    let (admin, _) = tokens(&host, "admin", ADMIN_PASSWORD);
    create_user(&host, &admin, "rita", "reader", &["*"]);
    let (reader, _) = tokens(&host, "rita", "rita-password");
    assert_eq!(get(&host, "/metrics", &reader).status, 403);
    let scraped = get(&host, "/metrics", &admin);
    assert_eq!(scraped.status, 200);
    assert!(scraped.text.contains("ragspin_build_info"));
}

#[test]
fn metrics_are_public_by_default() {
    let host = host_with(&[]);
    assert_eq!(send(&host, "GET", "/metrics", &[], None).status, 200);
}

#[test]
fn auth_refuses_to_serve_without_a_secret_and_readyz_says_why() {
    let options = app_with_guarded().variable("jwt_secret", "");
    let host = start(options);
    let reply = login(&host, "admin", ADMIN_PASSWORD);
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jwt_secret")
    );
    let guarded = send(
        &host,
        "POST",
        "/guarded/docs/query",
        &[("authorization", b"Bearer x.y.z")],
        None,
    );
    assert_eq!(guarded.status, 503, "protected routes fail closed");
    let ready = send(&host, "GET", "/readyz", &[], None);
    assert!(ready.text.contains("jwt_secret"), "{}", ready.text);
    // A short secret: readyz fails naming it, auth still refuses.
    let host = start(app_with_guarded().variable("jwt_secret", "too-short"));
    assert_eq!(login(&host, "admin", ADMIN_PASSWORD).status, 503);
    let ready = send(&host, "GET", "/readyz", &[], None);
    assert_eq!(ready.status, 503);
    assert!(ready.text.contains("jwt_secret"), "{}", ready.text);
    assert!(!ready.text.contains("too-short"));
}

#[test]
fn cors_preflight_from_an_allowed_origin_gets_204_and_headers() {
    let host = host_with(&[("cors_allowed_origins", "https://app.example.com")]);
    for path in ["/auth/token", "/guarded/docs/query", "/healthz"] {
        let reply = send(
            &host,
            "OPTIONS",
            path,
            &[
                ("origin", b"https://app.example.com"),
                ("access-control-request-method", b"POST"),
                (
                    "access-control-request-headers",
                    b"authorization, content-type",
                ),
            ],
            None,
        );
        assert_eq!(reply.status, 204, "{path}: {}", reply.text);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert!(
            reply
                .header("access-control-allow-headers")
                .unwrap()
                .contains("authorization")
        );
        assert!(reply.header("access-control-allow-credentials").is_none());
    }
    let (admin, _) = tokens(&host, "admin", ADMIN_PASSWORD);
    let reply = send(
        &host,
        "GET",
        "/auth/me",
        &[
            ("authorization", bearer(&admin).as_bytes()),
            ("origin", b"https://app.example.com"),
        ],
        None,
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let foreign = send(
        &host,
        "GET",
        "/auth/me",
        &[
            ("authorization", bearer(&admin).as_bytes()),
            ("origin", b"https://evil.example.com"),
        ],
        None,
    );
    assert_eq!(foreign.status, 200);
    assert!(foreign.header("access-control-allow-origin").is_none());
}

#[test]
fn a_failing_kv_store_is_a_json_500_without_details() {
    let host = host_with(&[]);
    let (admin, _) = tokens(&host, "admin", ADMIN_PASSWORD);
    host.faults()
        .set_kv(Some("redis 10.1.2.3:6379 connection refused"));
    let reply = post(&host, "/guarded/docs/query", Some(&admin), &json!({}));
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "storage_error");
    assert!(!reply.text.contains("10.1.2.3"));
    host.faults().set_kv(None);
    assert_eq!(
        post(&host, "/guarded/docs/query", Some(&admin), &json!({})).status,
        200
    );
}

/// Measures what a login costs in wasm (Argon2id m=19 MiB, t=2, p=1), end to
/// end through the host; prints the numbers for the README.
#[test]
fn login_cost_in_wasm_is_measured_and_bounded() {
    let host = host_with(&[("login_rate_limit_per_minute", "0")]);
    tokens(&host, "admin", ADMIN_PASSWORD); // warm the instance
    let runs = 5;
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        tokens(&host, "admin", ADMIN_PASSWORD);
        times.push(started.elapsed());
    }
    let started = Instant::now();
    assert_eq!(login(&host, "nobody", "wrong-password").status, 401);
    let unknown = started.elapsed();
    times.sort();
    let median = times[runs / 2];
    eprintln!(
        "login through the host (Argon2id m=19456 KiB t=2 p=1): median {:?}, min {:?}, max {:?}; unknown user {:?}",
        median,
        times[0],
        times[runs - 1],
        unknown
    );
    assert!(median < Duration::from_secs(5), "login takes {median:?}");
    // An unknown user costs a hash verification too (no timing hint).
    assert!(
        unknown * 3 > median,
        "unknown {unknown:?} vs known {median:?}"
    );
}

/// Every variable access control reads is declared in spin.toml and
/// documented in the README's variable table.
#[test]
fn every_access_variable_is_in_spin_toml_and_the_readme_table() {
    use ragspin_access::settings::vars;
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let manifest = ragspin_host::manifest::Manifest::load(&common::app_manifest()).unwrap();
    for name in [
        vars::JWT_SECRET,
        vars::ADMIN_USERNAME,
        vars::ADMIN_PASSWORD_HASH,
        vars::CORS_ALLOWED_ORIGINS,
        vars::RATE_LIMIT_PER_MINUTE,
        vars::LOGIN_RATE_LIMIT_PER_MINUTE,
        vars::LOGIN_MAX_FAILURES,
        vars::ACCESS_TOKEN_TTL_S,
        vars::REFRESH_TOKEN_TTL_S,
        vars::METRICS_REQUIRE_AUTH,
    ] {
        assert!(
            manifest.variables.contains_key(name),
            "spin.toml lacks {name}"
        );
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README's variable table lacks {name}"
        );
    }
}

/// The auth component reads every access variable, so it must declare them
/// (an undeclared one silently takes its default).
#[test]
fn the_auth_component_declares_every_access_variable() {
    use ragspin_access::settings::vars;
    let manifest = ragspin_host::manifest::Manifest::load(&common::app_manifest()).unwrap();
    let auth = &manifest.component["auth"];
    for name in [
        vars::JWT_SECRET,
        vars::ADMIN_USERNAME,
        vars::ADMIN_PASSWORD_HASH,
        vars::CORS_ALLOWED_ORIGINS,
        vars::RATE_LIMIT_PER_MINUTE,
        vars::LOGIN_RATE_LIMIT_PER_MINUTE,
        vars::LOGIN_MAX_FAILURES,
        vars::ACCESS_TOKEN_TTL_S,
        vars::REFRESH_TOKEN_TTL_S,
    ] {
        assert_eq!(
            auth.variables.get(name).map(String::as_str),
            Some(format!("{{{{ {name} }}}}").as_str()),
            "component.auth.variables.{name}"
        );
        assert!(manifest.variables.contains_key(name), "{name}");
    }
    assert_eq!(auth.key_value_stores, vec!["default".to_string()]);
    assert_eq!(auth.sqlite_databases, vec!["default".to_string()]);
    for secret in [vars::JWT_SECRET, vars::ADMIN_PASSWORD_HASH] {
        assert!(manifest.variables[secret].secret, "{secret}");
    }
}
