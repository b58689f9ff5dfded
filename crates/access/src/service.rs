//! The auth component's routes (`/auth/...`), over the ports.
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /auth/token` | anyone | `{username, password}` → tokens |
//! | `POST /auth/refresh` | anyone | `{refresh_token}` → rotated tokens |
//! | `POST /auth/logout` | token holder | revoke the session (Bearer token or `{refresh_token}`) |
//! | `GET /auth/me` | any principal | who am I |
//! | `GET, POST /auth/users` | admin | list, create users |
//! | `GET, PATCH /auth/users/{username}` | admin | read; change role, disabled, password |
//! | `PUT, DELETE /auth/users/{username}/indexes/{index}` | admin | grant, revoke an index (`*` = all) |
//! | `GET, POST /auth/api-keys` | admin | list, create API keys (the key is shown once) |
//! | `DELETE /auth/api-keys/{id}` | admin | revoke an API key |
//!
//! A change that removes access (disable, lower role, revoke a grant or a
//! key, new password) writes the KV view (sessions, key records) *before*
//! SQLite, then SQLite, then the KV view of the new state; a change that
//! adds access writes SQLite first. A failure part-way leaves less access,
//! never more.

use std::sync::atomic::{AtomicBool, Ordering};

use ragspin_core::{Clock, Config, Error, HttpRequest, HttpResponse, KvStore, Result, Sql};
use serde::Serialize;

use crate::apikey::{self, KeyRecord};
use crate::body::{self, JsonBody};
use crate::cors::RouteKind;
use crate::guard::{Credential, Principal, authenticate_with, guard, identify};
use crate::password::{self, MAX_PASSWORD_BYTES};
use crate::random::Random;
use crate::ratelimit::{self, bucket_key};
use crate::roles::{IndexScope, Permission, Role, validate_index_name};
use crate::session;
use crate::settings::Settings;
use crate::store::{self, ApiKey, User};

/// Longest username.
pub const MAX_USERNAME: usize = 64;
/// Most index grants in one request.
pub const MAX_INDEXES_PER_REQUEST: usize = 100;

/// Whether `name` is a valid (lowercase) username: 1–64 of `a-z 0-9 . _ @ -`,
/// starting with a letter or digit.
pub fn is_username(name: &str) -> bool {
    (1..=MAX_USERNAME).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-')
        })
}

fn validate_username(field: &str, name: &str) -> Result<String> {
    let name = name.to_ascii_lowercase();
    if is_username(&name) {
        Ok(name)
    } else {
        Err(Error::validation(
            field,
            "usernames are 1-64 of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit",
        ))
    }
}

fn invalid_login() -> Error {
    Error::Unauthorized("invalid username or password".into())
}

/// What a user may currently do; `None` = nothing (missing or disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Access {
    role: Role,
    scope: IndexScope,
}

impl Access {
    fn of(user: &User) -> Option<Self> {
        (!user.disabled).then(|| Self {
            role: user.role,
            scope: user.effective_scope(),
        })
    }
}

/// The auth service over its ports. `schema_ready` remembers (per wasm
/// instance) that the `auth_` tables were created.
#[derive(Debug)]
pub struct Auth<'a, K, S, C, T, R> {
    /// Sessions, key records, rate limits.
    pub kv: &'a K,
    /// Users, grants, API keys.
    pub sql: &'a S,
    /// Spin variables.
    pub config: &'a C,
    /// Now.
    pub clock: &'a T,
    /// Ids, secrets, salts.
    pub random: &'a R,
    /// Set once the migrations ran.
    pub schema_ready: &'a AtomicBool,
}

#[derive(Serialize)]
struct CreatedKey<'a> {
    #[serde(flatten)]
    key: &'a ApiKey,
    /// The whole key; shown only in this response.
    #[serde(rename = "key")]
    key_secret: &'a str,
}

enum Route<'p> {
    Token,
    Refresh,
    Logout,
    Me,
    Users,
    User(&'p str),
    Grant(&'p str, &'p str),
    ApiKeys,
    ApiKey(&'p str),
}

impl<'p> Route<'p> {
    fn parse(path: &'p str) -> Option<(Self, &'static [&'static str])> {
        let rest = path.strip_prefix("/auth/")?;
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        Some(match segments.as_slice() {
            ["token"] => (Self::Token, &["POST"]),
            ["refresh"] => (Self::Refresh, &["POST"]),
            ["logout"] => (Self::Logout, &["POST"]),
            ["me"] => (Self::Me, &["GET"]),
            ["users"] => (Self::Users, &["GET", "POST"]),
            ["users", u] if !u.is_empty() => (Self::User(u), &["GET", "PATCH"]),
            ["users", u, "indexes", i] if !u.is_empty() && !i.is_empty() => {
                (Self::Grant(u, i), &["PUT", "DELETE"])
            }
            ["api-keys"] => (Self::ApiKeys, &["GET", "POST"]),
            ["api-keys", id] if !id.is_empty() => (Self::ApiKey(id), &["DELETE"]),
            _ => return None,
        })
    }
}

impl<K, S, C, T, R> Auth<'_, K, S, C, T, R>
where
    K: KvStore,
    S: Sql,
    C: Config,
    T: Clock,
    R: Random,
{
    /// Serve one `/auth/...` request (CORS, security headers, `no-store`).
    pub async fn handle(&self, request: &HttpRequest) -> HttpResponse {
        guard(request, self.config, RouteKind::Auth, || {
            self.route(request)
        })
        .await
    }

    async fn route(&self, request: &HttpRequest) -> Result<HttpResponse> {
        let path = request.path();
        let Some((route, methods)) = Route::parse(path) else {
            return Err(Error::NotFound(format!(
                "no route for {} {path}",
                request.method
            )));
        };
        if !methods.contains(&request.method.as_str()) {
            return Err(Error::MethodNotAllowed {
                method: request.method.clone(),
                allow: methods.iter().map(|m| (*m).to_owned()).collect(),
            });
        }
        let settings = Settings::load(self.config).await?;
        // Refuse to serve auth at all without a usable secret (readyz says why).
        settings.signing_key()?;
        let post = request.method == "POST";
        match route {
            Route::Token => self.login(&settings, request).await,
            Route::Refresh => self.refresh(&settings, request).await,
            Route::Logout => self.logout(&settings, request).await,
            Route::Me => {
                let me = authenticate_with(&settings, request, self.kv, self.clock).await?;
                Ok(HttpResponse::json(200, &me))
            }
            Route::Users => {
                self.admin(&settings, request).await?;
                if post {
                    self.create_user(&settings, request).await
                } else {
                    self.schema().await?;
                    let users = store::list_users(self.sql).await?;
                    Ok(HttpResponse::json(
                        200,
                        &serde_json::json!({ "users": users }),
                    ))
                }
            }
            Route::User(username) => {
                self.admin(&settings, request).await?;
                if request.method == "GET" {
                    let user = self.existing_user(&settings, username).await?;
                    Ok(HttpResponse::json(200, &user))
                } else {
                    self.patch_user(&settings, request, username).await
                }
            }
            Route::Grant(username, index) => {
                self.admin(&settings, request).await?;
                self.change_grant(&settings, username, index, request.method == "PUT")
                    .await
            }
            Route::ApiKeys => {
                let admin = self.admin(&settings, request).await?;
                if post {
                    self.create_key(&settings, request, &admin).await
                } else {
                    self.schema().await?;
                    let keys = store::list_keys(self.sql).await?;
                    Ok(HttpResponse::json(
                        200,
                        &serde_json::json!({ "api_keys": keys }),
                    ))
                }
            }
            Route::ApiKey(id) => {
                self.admin(&settings, request).await?;
                self.revoke_key(id).await
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    fn now_s(&self) -> i64 {
        i64::try_from(self.now_ms() / 1000).unwrap_or(i64::MAX)
    }

    async fn schema(&self) -> Result<()> {
        if !self.schema_ready.load(Ordering::Relaxed) {
            store::migrate(self.sql).await?;
            self.schema_ready.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn admin(&self, settings: &Settings, request: &HttpRequest) -> Result<Principal> {
        let principal = authenticate_with(settings, request, self.kv, self.clock).await?;
        principal.check(Permission::Admin, None)?;
        Ok(principal)
    }

    /// One token from the client address's login bucket.
    async fn limit_address(&self, settings: &Settings, request: &HttpRequest) -> Result<()> {
        let addr = request.header("spin-client-addr").unwrap_or("unknown");
        // `ip:port` or `[v6]:port`: the port changes per connection.
        let ip = match addr.rsplit_once(':') {
            Some((ip, port)) if port.bytes().all(|b| b.is_ascii_digit()) => ip,
            _ => addr,
        };
        let ip: String = ip
            .chars()
            .filter(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':'))
            .take(45)
            .collect();
        ratelimit::consume(
            self.kv,
            &bucket_key("addr", &ip),
            settings.login_rate_limit_per_minute,
            self.now_ms(),
        )
        .await
    }

    /// The password hash and access of `username`: the bootstrap admin from
    /// variables, else the `auth_users` row.
    async fn credentials(
        &self,
        settings: &Settings,
        username: &str,
    ) -> Result<Option<(String, Option<Access>)>> {
        if settings.has_bootstrap_admin() && username == settings.admin_username {
            return Ok(Some((
                settings.admin_password_hash.clone(),
                Some(Access {
                    role: Role::Admin,
                    scope: IndexScope::All,
                }),
            )));
        }
        if !is_username(username) {
            return Ok(None);
        }
        self.schema().await?;
        Ok(store::find_user(self.sql, username)
            .await?
            .map(|(user, hash)| (hash, Access::of(&user))))
    }

    async fn login(&self, settings: &Settings, request: &HttpRequest) -> Result<HttpResponse> {
        self.limit_address(settings, request).await?;
        let body = body::parse(request)?;
        body.only(&["username", "password"])?;
        let username = body.required_string("username")?;
        let password = body.required_string("password")?;
        if username.is_empty() {
            return Err(Error::bad_field("username", "must not be empty"));
        }
        if password.is_empty() {
            return Err(Error::bad_field("password", "must not be empty"));
        }
        if password.len() > MAX_PASSWORD_BYTES || username.len() > 4 * MAX_USERNAME {
            return Err(invalid_login());
        }
        let username = username.to_ascii_lowercase();
        let now = self.now_ms();
        ratelimit::check_lockout(self.kv, &username, now).await?;
        let access = match self.credentials(settings, &username).await? {
            Some((hash, access)) => {
                let matches = password::verify_password(password, &hash);
                access.filter(|_| matches)
            }
            None => {
                password::burn(password);
                None
            }
        };
        let Some(access) = access else {
            ratelimit::record_failure(self.kv, &username, now, settings.login_max_failures).await?;
            return Err(invalid_login());
        };
        ratelimit::clear_failures(self.kv, &username).await?;
        let bootstrap = settings
            .bootstrap_tag()
            .filter(|_| username == settings.admin_username);
        let issued = session::start(
            self.kv,
            self.random,
            settings,
            now,
            &username,
            access.role,
            access.scope,
            bootstrap,
        )
        .await?;
        Ok(HttpResponse::json(200, &issued))
    }

    /// The current access of `username`, or `None` (missing, disabled).
    async fn current_access(&self, settings: &Settings, username: &str) -> Result<Option<Access>> {
        Ok(self
            .credentials(settings, username)
            .await?
            .and_then(|(_, access)| access))
    }

    async fn refresh(&self, settings: &Settings, request: &HttpRequest) -> Result<HttpResponse> {
        self.limit_address(settings, request).await?;
        let body = body::parse(request)?;
        body.only(&["refresh_token"])?;
        let token = body.required_string("refresh_token")?;
        let now = self.now_ms();
        let (sid, found) = session::check_refresh(self.kv, token, now).await?;
        let access = match found.bootstrap_changed(settings) {
            true => None,
            false => self.current_access(settings, &found.sub).await?,
        };
        let Some(access) = access else {
            session::revoke(self.kv, &sid, &found.sub).await?;
            return Err(Error::Unauthorized(
                "invalid or expired refresh token".into(),
            ));
        };
        let issued = session::rotate(
            self.kv,
            self.random,
            settings,
            now,
            &sid,
            found,
            access.role,
            access.scope,
        )
        .await?;
        Ok(HttpResponse::json(200, &issued))
    }

    async fn logout(&self, settings: &Settings, request: &HttpRequest) -> Result<HttpResponse> {
        let has_credentials =
            request.header("authorization").is_some() || request.header("x-api-key").is_some();
        if has_credentials {
            let principal = identify(settings, request, self.kv, self.clock).await?;
            let Credential::Session { session_id, .. } = &principal.credential else {
                return Err(Error::bad_request(
                    "API keys do not log out; revoke them with DELETE /auth/api-keys/{id}",
                ));
            };
            session::revoke(self.kv, session_id, &principal.username).await?;
        } else {
            let body = body::parse(request)?;
            body.only(&["refresh_token"])?;
            let Some(token) = body.string("refresh_token")? else {
                return Err(Error::Unauthorized("missing credentials".into()));
            };
            let (sid, found) = session::check_refresh(self.kv, token, self.now_ms()).await?;
            session::revoke(self.kv, &sid, &found.sub).await?;
        }
        Ok(HttpResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }

    fn refuse_bootstrap(&self, settings: &Settings, username: &str) -> Result<()> {
        if username == settings.admin_username {
            return Err(Error::Conflict(
                "the bootstrap admin is managed by the admin_username and admin_password_hash variables".into(),
            ));
        }
        Ok(())
    }

    async fn existing_user(&self, settings: &Settings, username: &str) -> Result<User> {
        let username = username.to_ascii_lowercase();
        self.refuse_bootstrap(settings, &username)?;
        let not_found = || Error::NotFound("user not found".into());
        if !is_username(&username) {
            return Err(not_found());
        }
        self.schema().await?;
        Ok(store::find_user(self.sql, &username)
            .await?
            .ok_or_else(not_found)?
            .0)
    }

    fn parse_indexes(body: &JsonBody, name: &str) -> Result<IndexScope> {
        let names = body
            .strings(name, MAX_INDEXES_PER_REQUEST)?
            .unwrap_or_default();
        for index in &names {
            validate_index_name(name, index)?;
        }
        Ok(IndexScope::from_names(names))
    }

    fn parse_role(body: &JsonBody) -> Result<Option<Role>> {
        body.string("role")?
            .map(|r| {
                Role::parse(r)
                    .ok_or_else(|| Error::validation("role", "must be admin, editor or reader"))
            })
            .transpose()
    }

    async fn create_user(
        &self,
        settings: &Settings,
        request: &HttpRequest,
    ) -> Result<HttpResponse> {
        let body = body::parse(request)?;
        body.only(&["username", "password", "role", "indexes"])?;
        let username = validate_username("username", body.required_string("username")?)?;
        let password = body.required_string("password")?;
        password::validate_new_password(password)?;
        let role =
            Self::parse_role(&body)?.ok_or_else(|| Error::bad_field("role", "is required"))?;
        let indexes = Self::parse_indexes(&body, "indexes")?;
        if username == settings.admin_username {
            return Err(Error::Conflict("username is taken".into()));
        }
        self.schema().await?;
        let hash = password::hash_password(password, self.random)?;
        let now = self.now_s();
        if !store::insert_user(self.sql, &username, &hash, role, now).await? {
            return Err(Error::Conflict("username is taken".into()));
        }
        for index in indexes.names() {
            store::grant(self.sql, &username, &index, now).await?;
        }
        let user = self.existing_user(settings, &username).await?;
        Ok(HttpResponse::json(201, &user))
    }

    /// Write the KV view of `username`: sessions (updated, or revoked when
    /// `access` is `None` or `revoke_sessions`) and active API key records.
    async fn write_view(
        &self,
        username: &str,
        access: Option<&Access>,
        revoke_sessions: bool,
    ) -> Result<()> {
        let session_access = access
            .filter(|_| !revoke_sessions)
            .map(|a| (a.role, &a.scope));
        session::update_all(self.kv, username, self.now_ms(), session_access).await?;
        for key in store::active_keys_of(self.sql, username).await? {
            let record = key_record(&key, access);
            apikey::save(self.kv, &key.id, &record).await?;
        }
        Ok(())
    }

    /// Write SQLite with `write`, then the KV view of the result.
    async fn change_user<F, Fut>(&self, revoke_sessions: bool, write: F) -> Result<User>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<User>>,
    {
        let after = write().await?;
        self.write_view(
            &after.username,
            Access::of(&after).as_ref(),
            revoke_sessions,
        )
        .await?;
        Ok(after)
    }

    async fn patch_user(
        &self,
        settings: &Settings,
        request: &HttpRequest,
        username: &str,
    ) -> Result<HttpResponse> {
        let body = body::parse(request)?;
        body.only(&["role", "disabled", "password"])?;
        let role = Self::parse_role(&body)?;
        let disabled = body.bool("disabled")?;
        let password = body.string("password")?;
        let hash = match password {
            Some(p) => {
                password::validate_new_password(p)?;
                Some(password::hash_password(p, self.random)?)
            }
            None => None,
        };
        let user = self.existing_user(settings, username).await?;
        let reduces =
            disabled == Some(true) || hash.is_some() || role.is_some_and(|r| r < user.role);
        if reduces {
            // Remove access from the hot path before the source of truth.
            let target = User {
                role: role.map_or(user.role, |r| r.min(user.role)),
                disabled: user.disabled || disabled == Some(true),
                ..user.clone()
            };
            self.write_view(&user.username, Access::of(&target).as_ref(), hash.is_some())
                .await?;
        }
        let now = self.now_s();
        let name = user.username.clone();
        let after = self
            .change_user(hash.is_some(), || async {
                store::update_user(self.sql, &name, role, disabled, hash.as_deref(), now).await?;
                self.existing_user(settings, &name).await
            })
            .await?;
        Ok(HttpResponse::json(200, &after))
    }

    async fn change_grant(
        &self,
        settings: &Settings,
        username: &str,
        index: &str,
        grant: bool,
    ) -> Result<HttpResponse> {
        validate_index_name("index", index)?;
        let user = self.existing_user(settings, username).await?;
        if !grant {
            let mut names = user.indexes.names();
            names.retain(|n| n != index);
            let target = User {
                indexes: IndexScope::from_names(names),
                ..user.clone()
            };
            self.write_view(&user.username, Access::of(&target).as_ref(), false)
                .await?;
        }
        let now = self.now_s();
        let name = user.username.clone();
        let after = self
            .change_user(false, || async {
                if grant {
                    store::grant(self.sql, &name, index, now).await?;
                } else {
                    store::revoke_grant(self.sql, &name, index).await?;
                }
                self.existing_user(settings, &name).await
            })
            .await?;
        Ok(HttpResponse::json(200, &after))
    }

    async fn create_key(
        &self,
        settings: &Settings,
        request: &HttpRequest,
        admin: &Principal,
    ) -> Result<HttpResponse> {
        let body = body::parse(request)?;
        body.only(&["name", "role", "indexes", "username"])?;
        let name = body.required_string("name")?.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::validation(
                "name",
                "must be 1-100 characters without control characters",
            ));
        }
        let owner = match body.string("username")? {
            Some(u) => validate_username("username", u)?,
            None => admin.username.clone(),
        };
        let role =
            Self::parse_role(&body)?.ok_or_else(|| Error::bad_field("role", "is required"))?;
        let indexes = Self::parse_indexes(&body, "indexes")?;
        let owner_access = self
            .current_access(settings, &owner)
            .await?
            .ok_or_else(|| Error::validation("username", "no such enabled user"))?;
        if role > owner_access.role {
            return Err(Error::validation("role", "cannot exceed the owner's role"));
        }
        if !owner_access.scope.covers(&indexes) {
            return Err(Error::validation(
                "indexes",
                "must be within the owner's indexes",
            ));
        }
        self.schema().await?;
        let (id, secret) = apikey::generate(self.random)?;
        let key = ApiKey {
            id: id.clone(),
            username: owner,
            name: name.to_owned(),
            role,
            indexes,
            created_at: self.now_s(),
            revoked: false,
            revoked_at: None,
            key_hash: apikey::hash(&secret),
        };
        store::insert_key(self.sql, &key).await?;
        apikey::save(self.kv, &id, &key_record(&key, Some(&owner_access))).await?;
        Ok(HttpResponse::json(
            201,
            &CreatedKey {
                key: &key,
                key_secret: &secret,
            },
        ))
    }

    async fn revoke_key(&self, id: &str) -> Result<HttpResponse> {
        let not_found = || Error::NotFound("API key not found".into());
        if id.len() > 64 {
            return Err(not_found());
        }
        self.schema().await?;
        let key = store::find_key(self.sql, id).await?.ok_or_else(not_found)?;
        // Hot path first: the key stops working even if SQLite then fails.
        apikey::save(self.kv, &key.id, &key_record(&key, None)).await?;
        store::revoke_key(self.sql, &key.id, self.now_s()).await?;
        Ok(HttpResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// The KV record of `key` given its owner's access (`None` = inactive).
fn key_record(key: &ApiKey, owner: Option<&Access>) -> KeyRecord {
    match owner {
        Some(owner) if !key.revoked => KeyRecord {
            username: key.username.clone(),
            key_hash: key.key_hash.clone(),
            role: key.role.min(owner.role),
            indexes: if key.role == Role::Admin && owner.role == Role::Admin {
                IndexScope::All
            } else {
                key.indexes.intersect(&owner.scope)
            },
            active: true,
        },
        _ => KeyRecord {
            username: key.username.clone(),
            key_hash: key.key_hash.clone(),
            role: key.role,
            indexes: IndexScope::None,
            active: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercase_and_plain() {
        for ok in ["alice", "a", "bob.smith@example.com", "x_1-2"] {
            assert!(is_username(ok), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "-x",
            "a b",
            "a'--",
            "x' OR '1'='1",
            &"a".repeat(65),
        ] {
            assert!(!is_username(bad), "{bad}");
        }
    }

    #[test]
    fn parses_every_route_with_its_methods() {
        let cases = [
            ("/auth/token", ["POST"].as_slice()),
            ("/auth/refresh", &["POST"]),
            ("/auth/logout", &["POST"]),
            ("/auth/me", &["GET"]),
            ("/auth/users", &["GET", "POST"]),
            ("/auth/users/bob", &["GET", "PATCH"]),
            ("/auth/users/bob/indexes/docs", &["PUT", "DELETE"]),
            ("/auth/api-keys", &["GET", "POST"]),
            ("/auth/api-keys/abc", &["DELETE"]),
        ];
        for (path, methods) in cases {
            let (_, allowed) = Route::parse(path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(allowed, methods, "{path}");
        }
        for path in [
            "/auth",
            "/auth/",
            "/auth/nope",
            "/auth/users//indexes/x",
            "/v1/query",
        ] {
            assert!(Route::parse(path).is_none(), "{path}");
        }
    }
}
