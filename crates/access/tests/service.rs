//! The auth service and enforcement end to end, natively, over the testkit's
//! fakes (in-memory KV, real in-memory SQLite, a manual clock, seeded randomness).

use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use futures::executor::block_on;
use ragspin_access::password::hash_password;
use ragspin_access::{Auth, Permission, SeededRandom, authorize};
use ragspin_core::{HttpRequest, HttpResponse, KvStore, Sql};
use ragspin_testkit::{ManualClock, MapConfig, MemoryKv, SqliteSql};
use serde_json::{Value, json};

const SECRET: &str = "test-secret-test-secret-test-secret!";
const ADMIN_PASSWORD: &str = "admin-password";
const T0: u64 = 1_700_000_000_000;

fn admin_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(ADMIN_PASSWORD, &SeededRandom::new(99)).unwrap())
}

struct World {
    kv: MemoryKv,
    sql: SqliteSql,
    config: MapConfig,
    clock: ManualClock,
    random: SeededRandom,
    schema: AtomicBool,
}

struct Reply {
    status: u16,
    body: Value,
    response: HttpResponse,
}

impl World {
    fn new() -> Self {
        Self {
            kv: MemoryKv::new(),
            sql: SqliteSql::new().unwrap(),
            config: MapConfig::new()
                .with("jwt_secret", SECRET)
                .with("admin_username", "admin")
                .with("admin_password_hash", admin_hash()),
            clock: ManualClock::new(T0),
            random: SeededRandom::new(1),
            schema: AtomicBool::new(false),
        }
    }

    fn auth(&self) -> Auth<'_, MemoryKv, SqliteSql, MapConfig, ManualClock, SeededRandom> {
        Auth {
            kv: &self.kv,
            sql: &self.sql,
            config: &self.config,
            clock: &self.clock,
            random: &self.random,
            schema_ready: &self.schema,
        }
    }

    fn request(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> HttpRequest {
        let mut request = HttpRequest::new(method, format!("http://localhost{path}"))
            .with_header("spin-client-addr", "127.0.0.1:4242");
        if let Some(token) = token {
            request = request.with_header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request
                .with_header("content-type", "application/json")
                .with_body(body.to_string());
        }
        request
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let response = block_on(
            self.auth()
                .handle(&Self::request(method, path, token, body)),
        );
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).expect("JSON body")
        };
        Reply {
            status: response.status,
            body,
            response,
        }
    }

    fn login(&self, username: &str, password: &str) -> Reply {
        self.call(
            "POST",
            "/auth/token",
            None,
            Some(json!({"username": username, "password": password})),
        )
    }

    fn token(&self, username: &str, password: &str) -> (String, String) {
        let reply = self.login(username, password);
        assert_eq!(reply.status, 200, "{}", reply.body);
        (
            reply.body["access_token"].as_str().unwrap().to_owned(),
            reply.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).0
    }

    fn create_user(&self, admin: &str, username: &str, role: &str, indexes: &[&str]) {
        let reply = self.call(
            "POST",
            "/auth/users",
            Some(admin),
            Some(json!({"username": username, "password": format!("{username}-password"), "role": role, "indexes": indexes})),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
    }

    fn user_token(&self, username: &str) -> String {
        self.token(username, &format!("{username}-password")).0
    }

    /// What a component's `authorize` says for `credential`.
    fn authorize(&self, credential: &str, permission: Permission, index: Option<&str>) -> u16 {
        let request = HttpRequest::new("POST", "/v1/query")
            .with_header("authorization", format!("Bearer {credential}"));
        match block_on(authorize(
            &request,
            &self.kv,
            &self.config,
            &self.clock,
            permission,
            index,
        )) {
            Ok(_) => 200,
            Err(e) => ragspin_core::status_for(&e),
        }
    }
}

fn code(reply: &Reply) -> &str {
    reply.body["error"]["code"].as_str().unwrap_or("<none>")
}

#[test]
fn logs_in_the_bootstrap_admin_and_says_who_it_is() {
    let w = World::new();
    let reply = w.login("Admin", ADMIN_PASSWORD);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    let token = reply.body["access_token"].as_str().unwrap();
    let me = w.call("GET", "/auth/me", Some(token), None);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["indexes"], json!(["*"]));
    assert_eq!(me.body["credential"]["type"], "session");
}

#[test]
fn the_auth_tables_made_first_give_a_new_database_16_kb_pages() {
    // Auth may create the shared database's first tables (users managed
    // before any index exists), so it sets the page size the index expects.
    let w = World::new();
    let admin = w.login("admin", ADMIN_PASSWORD).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.call("GET", "/auth/users", Some(&admin), None).status, 200);
    let rows = futures::executor::block_on(w.sql.query("PRAGMA page_size", &[])).unwrap();
    assert_eq!(rows.rows[0].0[0], ragspin_core::SqlValue::Integer(16384));
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let w = World::new();
    let wrong = w.login("admin", "not-the-password");
    let unknown = w.login("nobody", "not-the-password");
    let sql_like = w.login("x' OR '1'='1", "whatever");
    for reply in [&wrong, &unknown, &sql_like] {
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, wrong.body);
    }
    assert_eq!(
        wrong.body["error"]["message"],
        "invalid username or password"
    );
}

#[test]
fn auth_responses_are_not_cached_and_carry_security_headers() {
    let w = World::new();
    for reply in [w.login("admin", ADMIN_PASSWORD), w.login("admin", "nope")] {
        let r = &reply.response;
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert!(r.header("content-security-policy").is_some());
    }
}

#[test]
fn refresh_rotates_the_token_and_reuse_revokes_the_whole_session() {
    let w = World::new();
    let (access, refresh) = w.token("admin", ADMIN_PASSWORD);
    w.clock.advance(1000);
    let rotated = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_refresh = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    let new_access = rotated.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    assert_eq!(w.authorize(&new_access, Permission::Admin, None), 200);
    // The old refresh token again: theft assumed, the family is revoked.
    let reuse = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(reuse.status, 401);
    assert!(
        reuse.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reuse")
    );
    assert_eq!(w.authorize(&new_access, Permission::Admin, None), 401);
    assert_eq!(w.authorize(&access, Permission::Admin, None), 401);
    let after = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": new_refresh})),
    );
    assert_eq!(after.status, 401);
}

#[test]
fn logout_revokes_the_session_so_its_tokens_are_refused() {
    let w = World::new();
    let (access, refresh) = w.token("admin", ADMIN_PASSWORD);
    let (other, _) = w.token("admin", ADMIN_PASSWORD);
    let out = w.call("POST", "/auth/logout", Some(&access), None);
    assert_eq!(out.status, 204);
    assert_eq!(w.call("GET", "/auth/me", Some(&access), None).status, 401);
    let refreshed = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(refreshed.status, 401);
    // Another session of the same user is untouched.
    assert_eq!(w.call("GET", "/auth/me", Some(&other), None).status, 200);
}

#[test]
fn logout_with_the_refresh_token_alone_works_too() {
    let w = World::new();
    let (access, refresh) = w.token("admin", ADMIN_PASSWORD);
    let out = w.call(
        "POST",
        "/auth/logout",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(out.status, 204);
    assert_eq!(w.authorize(&access, Permission::Search, None), 401);
}

#[test]
fn rejects_an_expired_access_token_but_refresh_still_works() {
    let w = World::new();
    let (access, refresh) = w.token("admin", ADMIN_PASSWORD);
    w.clock.advance(901_000 + 30_000);
    assert_eq!(w.authorize(&access, Permission::Search, None), 401);
    let rotated = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(rotated.status, 200);
}

#[test]
fn a_session_ends_at_its_refresh_lifetime() {
    let w = World::new();
    w.config.set("refresh_token_ttl_s", "3600");
    let (_, refresh) = w.token("admin", ADMIN_PASSWORD);
    w.clock.advance(3_600_000);
    let reply = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(reply.status, 401);
}

#[test]
fn readers_query_their_indexes_editors_also_ingest() {
    let w = World::new();
    let admin = w.admin_token();
    w.create_user(&admin, "rita", "reader", &["docs"]);
    w.create_user(&admin, "ed", "editor", &["docs", "faq"]);
    let rita = w.user_token("rita");
    let ed = w.user_token("ed");
    assert_eq!(w.authorize(&rita, Permission::Query, Some("docs")), 200);
    assert_eq!(w.authorize(&rita, Permission::Search, Some("docs")), 200);
    assert_eq!(w.authorize(&rita, Permission::Ingest, Some("docs")), 403);
    assert_eq!(w.authorize(&rita, Permission::Query, Some("faq")), 403);
    assert_eq!(w.authorize(&ed, Permission::Ingest, Some("faq")), 200);
    assert_eq!(w.authorize(&ed, Permission::Admin, None), 403);
    assert_eq!(
        w.authorize(&admin, Permission::Ingest, Some("anything")),
        200
    );
    let denied = w.call("GET", "/auth/users", Some(&ed), None);
    assert_eq!(denied.status, 403);
    assert_eq!(code(&denied), "forbidden");
}

#[test]
fn grants_and_revocations_reach_live_sessions_at_once() {
    let w = World::new();
    let admin = w.admin_token();
    w.create_user(&admin, "rita", "reader", &[]);
    let rita = w.user_token("rita");
    assert_eq!(w.authorize(&rita, Permission::Query, Some("docs")), 403);
    let granted = w.call("PUT", "/auth/users/rita/indexes/docs", Some(&admin), None);
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["indexes"], json!(["docs"]));
    assert_eq!(w.authorize(&rita, Permission::Query, Some("docs")), 200);
    let revoked = w.call(
        "DELETE",
        "/auth/users/rita/indexes/docs",
        Some(&admin),
        None,
    );
    assert_eq!(revoked.status, 200);
    assert_eq!(w.authorize(&rita, Permission::Query, Some("docs")), 403);
    let promoted = w.call(
        "PATCH",
        "/auth/users/rita",
        Some(&admin),
        Some(json!({"role": "editor"})),
    );
    assert_eq!(promoted.status, 200);
    w.call("PUT", "/auth/users/rita/indexes/*", Some(&admin), None);
    assert_eq!(w.authorize(&rita, Permission::Ingest, Some("any")), 200);
}

#[test]
fn disabling_a_user_ends_their_sessions_keys_and_logins() {
    let w = World::new();
    let admin = w.admin_token();
    w.create_user(&admin, "ed", "editor", &["docs"]);
    let ed = w.user_token("ed");
    let key = w.call(
        "POST",
        "/auth/api-keys",
        Some(&admin),
        Some(json!({"name": "ci", "username": "ed", "role": "editor", "indexes": ["docs"]})),
    );
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert_eq!(w.authorize(&key, Permission::Ingest, Some("docs")), 200);
    let disabled = w.call(
        "PATCH",
        "/auth/users/ed",
        Some(&admin),
        Some(json!({"disabled": true})),
    );
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(w.authorize(&ed, Permission::Search, None), 401);
    assert_eq!(w.authorize(&key, Permission::Search, None), 401);
    assert_eq!(w.login("ed", "ed-password").status, 401);
    // Re-enabled: the key works again, old sessions stay dead.
    w.call(
        "PATCH",
        "/auth/users/ed",
        Some(&admin),
        Some(json!({"disabled": false})),
    );
    assert_eq!(w.authorize(&key, Permission::Ingest, Some("docs")), 200);
    assert_eq!(w.authorize(&ed, Permission::Search, None), 401);
}

#[test]
fn a_new_password_ends_existing_sessions() {
    let w = World::new();
    let admin = w.admin_token();
    w.create_user(&admin, "rita", "reader", &["docs"]);
    let rita = w.user_token("rita");
    let changed = w.call(
        "PATCH",
        "/auth/users/rita",
        Some(&admin),
        Some(json!({"password": "a-brand-new-password"})),
    );
    assert_eq!(changed.status, 200);
    assert_eq!(w.authorize(&rita, Permission::Search, None), 401);
    assert_eq!(w.login("rita", "rita-password").status, 401);
    assert_eq!(w.login("rita", "a-brand-new-password").status, 200);
}

#[test]
fn api_keys_are_shown_once_stored_hashed_and_stop_when_revoked() {
    let w = World::new();
    let admin = w.admin_token();
    let created = w.call(
        "POST",
        "/auth/api-keys",
        Some(&admin),
        Some(json!({"name": "scraper", "role": "reader", "indexes": ["docs"]})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("rsk_"));
    assert_eq!(created.body["username"], "admin");
    // Works as Bearer and as X-API-Key, within its scope.
    assert_eq!(w.authorize(&key, Permission::Query, Some("docs")), 200);
    assert_eq!(w.authorize(&key, Permission::Query, Some("faq")), 403);
    assert_eq!(w.authorize(&key, Permission::Ingest, Some("docs")), 403);
    let via_header = HttpRequest::new("GET", "/auth/me").with_header("x-api-key", key.clone());
    let me = block_on(w.auth().handle(&via_header));
    assert_eq!(me.status, 200);
    // Listed without the secret; neither SQL nor KV holds it.
    let listed = w.call("GET", "/auth/api-keys", Some(&admin), None);
    assert_eq!(listed.body["api_keys"][0]["id"], id.as_str());
    assert!(!listed.body.to_string().contains(&key));
    let rows = block_on(w.sql.query("SELECT * FROM auth_api_keys", &[])).unwrap();
    assert!(!format!("{rows:?}").contains(&key[20..]));
    assert!(!format!("{:?}", w.kv.snapshot()).contains(&key[20..]));
    let revoked = w.call(
        "DELETE",
        &format!("/auth/api-keys/{id}"),
        Some(&admin),
        None,
    );
    assert_eq!(revoked.status, 204);
    assert_eq!(w.authorize(&key, Permission::Query, Some("docs")), 401);
    let listed = w.call("GET", "/auth/api-keys", Some(&admin), None);
    assert_eq!(listed.body["api_keys"][0]["revoked"], true);
    let again = w.call("DELETE", "/auth/api-keys/unknown", Some(&admin), None);
    assert_eq!(again.status, 404);
}

#[test]
fn an_api_key_cannot_exceed_its_owners_role_or_indexes() {
    let w = World::new();
    let admin = w.admin_token();
    w.create_user(&admin, "rita", "reader", &["docs"]);
    for (body, field) in [
        (
            json!({"name": "k", "username": "rita", "role": "editor", "indexes": ["docs"]}),
            "role",
        ),
        (
            json!({"name": "k", "username": "rita", "role": "reader", "indexes": ["faq"]}),
            "indexes",
        ),
        (
            json!({"name": "k", "username": "ghost", "role": "reader"}),
            "username",
        ),
        (json!({"name": "", "role": "reader"}), "name"),
    ] {
        let reply = w.call("POST", "/auth/api-keys", Some(&admin), Some(body));
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field)
        );
    }
}

#[test]
fn locks_out_a_username_after_repeated_failures_even_with_the_right_password() {
    let w = World::new();
    w.config.set("login_rate_limit_per_minute", "0");
    for _ in 0..5 {
        assert_eq!(w.login("admin", "wrong-password").status, 401);
    }
    let locked = w.login("admin", ADMIN_PASSWORD);
    assert_eq!(locked.status, 429);
    assert_eq!(locked.response.header("retry-after"), Some("30"));
    assert_eq!(code(&locked), "rate_limited");
    // Unknown usernames lock out the same way: no hint they do not exist.
    for _ in 0..5 {
        w.login("ghost", "wrong-password");
    }
    assert_eq!(w.login("ghost", "wrong-password").status, 429);
    w.clock.advance(30_000);
    assert_eq!(w.login("admin", ADMIN_PASSWORD).status, 200);
}

#[test]
fn rate_limits_logins_per_client_address() {
    let w = World::new();
    w.config.set("login_rate_limit_per_minute", "3");
    for _ in 0..3 {
        assert_eq!(w.login("nobody", "x-password").status, 401);
    }
    let limited = w.login("admin", ADMIN_PASSWORD);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.response.header("retry-after"), Some("20"));
}

#[test]
fn rate_limits_each_principal() {
    let w = World::new();
    w.config.set("rate_limit_per_minute", "2");
    let admin = w.admin_token();
    assert_eq!(w.authorize(&admin, Permission::Search, None), 200);
    assert_eq!(w.authorize(&admin, Permission::Search, None), 200);
    assert_eq!(w.authorize(&admin, Permission::Search, None), 429);
    w.clock.advance(30_000);
    assert_eq!(w.authorize(&admin, Permission::Search, None), 200);
}

#[test]
fn refuses_to_serve_without_a_usable_secret() {
    for secret in ["", "short"] {
        let w = World::new();
        w.config.set("jwt_secret", secret);
        let reply = w.login("admin", ADMIN_PASSWORD);
        assert_eq!(reply.status, 503, "{secret:?}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("jwt_secret")
        );
        assert!(!reply.body.to_string().contains("short\""));
    }
}

#[test]
fn validates_user_creation_input() {
    let w = World::new();
    let admin = w.admin_token();
    let cases = [
        (
            json!({"username": "Bad Name", "password": "long-enough", "role": "reader"}),
            422,
        ),
        (
            json!({"username": "ok", "password": "short", "role": "reader"}),
            422,
        ),
        (
            json!({"username": "ok", "password": "long-enough", "role": "root"}),
            422,
        ),
        (
            json!({"username": "ok", "password": "long-enough", "role": "reader", "indexes": ["a/b"]}),
            422,
        ),
        (
            json!({"username": "ok", "password": "long-enough", "role": "reader", "is_admin": true}),
            400,
        ),
        (
            json!({"username": "ok", "password": 12345678, "role": "reader"}),
            400,
        ),
        (
            json!({"username": "admin", "password": "long-enough", "role": "reader"}),
            409,
        ),
    ];
    for (body, status) in cases {
        let reply = w.call("POST", "/auth/users", Some(&admin), Some(body.clone()));
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
    w.create_user(&admin, "ok", "reader", &[]);
    let dup = w.call(
        "POST",
        "/auth/users",
        Some(&admin),
        Some(json!({"username": "OK", "password": "long-enough", "role": "reader"})),
    );
    assert_eq!(dup.status, 409);
    let listed = w.call("GET", "/auth/users", Some(&admin), None);
    assert_eq!(listed.body["users"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains("argon2"));
}

#[test]
fn the_bootstrap_admin_cannot_be_changed_through_the_api() {
    let w = World::new();
    let admin = w.admin_token();
    let reply = w.call(
        "PATCH",
        "/auth/users/admin",
        Some(&admin),
        Some(json!({"disabled": true})),
    );
    assert_eq!(reply.status, 409);
}

#[test]
fn bad_login_bodies_are_400s() {
    let w = World::new();
    let cases = [
        json!({"username": "admin"}),
        json!({"username": "admin", "password": ""}),
        json!({"username": "", "password": "x"}),
        json!({"username": ["admin"], "password": "x"}),
        json!({"username": "admin", "password": "x", "extra": 1}),
    ];
    for body in cases {
        let reply = w.call("POST", "/auth/token", None, Some(body.clone()));
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(code(&reply), "bad_request");
    }
    let not_json = HttpRequest::new("POST", "/auth/token").with_body("{nope");
    assert_eq!(block_on(w.auth().handle(&not_json)).status, 400);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405() {
    let w = World::new();
    assert_eq!(w.call("GET", "/auth/nope", None, None).status, 404);
    let reply = w.call("GET", "/auth/token", None, None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.response.header("allow"), Some("POST"));
}

#[test]
fn every_kv_key_and_table_is_namespaced() {
    let w = World::new();
    let admin = w.admin_token();
    w.create_user(&admin, "rita", "reader", &["docs"]);
    w.login("rita", "wrong-password");
    w.call(
        "POST",
        "/auth/api-keys",
        Some(&admin),
        Some(json!({"name": "k", "role": "reader"})),
    );
    let keys: Vec<String> = w.kv.snapshot().into_keys().collect();
    assert!(keys.iter().any(|k| k.starts_with("auth:session:")));
    assert!(keys.iter().any(|k| k.starts_with("auth:user-sessions:")));
    assert!(keys.iter().any(|k| k.starts_with("auth:apikey:")));
    assert!(keys.iter().any(|k| k.starts_with("auth:login:")));
    assert!(keys.iter().any(|k| k.starts_with("auth:ratelimit:")));
    assert!(keys.iter().all(|k| k.starts_with("auth:")), "{keys:?}");
    let tables = block_on(w.sql.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        &[],
    ))
    .unwrap();
    for row in &tables.rows {
        assert!(row.get(0).unwrap().as_str().unwrap().starts_with("auth_"));
    }
}

#[test]
fn a_failing_kv_store_is_a_500_without_details() {
    let w = World::new();
    let admin = w.admin_token();
    w.kv.fail_with(Some("redis at 10.0.0.7 refused"));
    let reply = w.call("GET", "/auth/me", Some(&admin), None);
    assert_eq!(reply.status, 500);
    assert!(!reply.body.to_string().contains("10.0.0.7"));
    w.kv.fail_with(None);
    assert!(block_on(w.kv.get("x")).is_ok());
}

#[test]
fn rotating_the_admin_password_hash_ends_the_bootstrap_admins_sessions() {
    let w = World::new();
    let (access, refresh) = w.token("admin", ADMIN_PASSWORD);
    assert_eq!(w.authorize(&access, Permission::Admin, None), 200);
    let new_hash = hash_password("rotated-password", &SeededRandom::new(5)).unwrap();
    w.config.set("admin_password_hash", &new_hash);
    assert_eq!(w.authorize(&access, Permission::Admin, None), 401);
    let reply = w.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(reply.status, 401);
    assert_eq!(w.login("admin", ADMIN_PASSWORD).status, 401);
    let (fresh, _) = w.token("admin", "rotated-password");
    assert_eq!(w.authorize(&fresh, Permission::Admin, None), 200);
}

#[test]
fn components_that_do_not_see_the_admin_hash_still_accept_admin_tokens() {
    let w = World::new();
    let (access, _) = w.token("admin", ADMIN_PASSWORD);
    w.config.remove("admin_password_hash");
    w.config.remove("admin_username");
    assert_eq!(w.authorize(&access, Permission::Admin, None), 200);
}
