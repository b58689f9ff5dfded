//! Enforcement: what every component calls.
//!
//! * [`authenticate`]: who is calling (access token or API key), rate-limited
//!   per principal.
//! * [`authorize`]: the same, plus "may they do `permission` on `index`".
//! * [`guard`]: wrap a handler with CORS (preflight, allowlist) and the
//!   security headers, turning its `Err` into the JSON error response.

use std::future::Future;

use ragspin_core::{Clock, Config, Error, HttpRequest, HttpResponse, KvStore, Result};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::apikey;
use crate::cors::{CorsPolicy, RouteKind, apply_security_headers};
use crate::jwt::{self, Expect, MAX_TOKEN_BYTES};
use crate::ratelimit::{self, bucket_key};
use crate::roles::{IndexScope, Permission, Role};
use crate::session;
use crate::settings::{AUDIENCE, ISSUER, Settings, vars};

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    /// An access token of a login session.
    Session {
        /// The session id.
        session_id: String,
        /// When the access token expires (Unix seconds).
        expires_at: u64,
    },
    /// An API key.
    ApiKey {
        /// The key's public id.
        key_id: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Username (for API keys: the owner).
    pub username: String,
    /// Current role.
    pub role: Role,
    /// Current indexes.
    pub indexes: IndexScope,
    /// Session or API key.
    pub credential: Credential,
}

impl Principal {
    /// 403 unless this principal's role grants `permission` and, when an
    /// index is named, the index is in its scope.
    pub fn check(&self, permission: Permission, index: Option<&str>) -> Result<()> {
        if !self.role.allows(permission) {
            return Err(Error::Forbidden(format!(
                "role {} may not {}",
                self.role,
                permission.as_str()
            )));
        }
        if let Some(index) = index
            && self.role != Role::Admin
            && !self.indexes.contains(index)
        {
            return Err(Error::Forbidden("no access to this index".into()));
        }
        Ok(())
    }

    /// The rate-limit bucket of this principal.
    fn bucket(&self) -> String {
        match &self.credential {
            Credential::Session { .. } => bucket_key("user", &self.username),
            Credential::ApiKey { key_id } => bucket_key("key", key_id),
        }
    }
}

/// The credential a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <jwt>`.
    Token(&'a str),
    /// `Authorization: Bearer rsk_...` or `X-API-Key: rsk_...`.
    ApiKey(&'a str),
}

fn headers<'a>(request: &'a HttpRequest, name: &str) -> Vec<&'a str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn malformed() -> Error {
    Error::bad_request("malformed Authorization header")
}

/// Find the credential in `request`.
///
/// 401 when there is none, or for an unknown scheme or an oversized value;
/// 400 when it is ambiguous (the header twice, or both `Authorization` and
/// `X-API-Key`) or malformed (control or non-ASCII characters, no token).
pub fn presented(request: &HttpRequest) -> Result<Presented<'_>> {
    let authorization = headers(request, "authorization");
    let api_key = headers(request, "x-api-key");
    if authorization.len() > 1 || api_key.len() > 1 {
        return Err(Error::bad_request("duplicate credentials header"));
    }
    let value = match (authorization.first(), api_key.first()) {
        (Some(_), Some(_)) => {
            return Err(Error::bad_request(
                "send either Authorization or X-API-Key, not both",
            ));
        }
        (None, None) => return Err(Error::Unauthorized("missing credentials".into())),
        (None, Some(key)) => {
            let key = key.trim();
            if key.len() > MAX_TOKEN_BYTES {
                return Err(Error::Unauthorized("credentials too large".into()));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) || key.is_empty() {
                return Err(Error::bad_request("malformed X-API-Key header"));
            }
            return Ok(Presented::ApiKey(key));
        }
        (Some(value), None) => value.trim(),
    };
    if value.len() > MAX_TOKEN_BYTES + 16 {
        return Err(Error::Unauthorized("credentials too large".into()));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(malformed());
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthorized(
            "unsupported authorization scheme; use Bearer".into(),
        ));
    }
    let token = token.trim_start();
    if token.is_empty() || token.contains(' ') {
        return Err(malformed());
    }
    Ok(if apikey::looks_like_key(token) {
        Presented::ApiKey(token)
    } else {
        Presented::Token(token)
    })
}

fn invalid_key() -> Error {
    Error::Unauthorized("invalid API key".into())
}

/// Verify what `request` presents, without rate limiting or permissions.
pub async fn identify<K: KvStore, T: Clock>(
    settings: &Settings,
    request: &HttpRequest,
    kv: &K,
    clock: &T,
) -> Result<Principal> {
    let key = settings.signing_key()?;
    let now_ms = clock.now_unix_ms();
    match presented(request)? {
        Presented::Token(token) => {
            let claims = jwt::verify(
                token,
                key,
                Expect {
                    issuer: ISSUER,
                    audience: AUDIENCE,
                    now_s: now_ms / 1000,
                },
            )?;
            let revoked = || Error::Unauthorized("session revoked or expired".into());
            let session = session::load(kv, &claims.sid).await?.ok_or_else(revoked)?;
            if session.sub != claims.sub
                || session.expires_ms <= now_ms
                || session.bootstrap_changed(settings)
            {
                return Err(revoked());
            }
            Ok(Principal {
                username: session.sub,
                role: session.role,
                indexes: session.indexes,
                credential: Credential::Session {
                    session_id: claims.sid,
                    expires_at: claims.exp,
                },
            })
        }
        Presented::ApiKey(presented_key) => {
            let id = apikey::key_id(presented_key).ok_or_else(invalid_key)?;
            let record = apikey::load(kv, id).await?.ok_or_else(invalid_key)?;
            let matches: bool = apikey::hash(presented_key)
                .as_bytes()
                .ct_eq(record.key_hash.as_bytes())
                .into();
            if !matches {
                return Err(invalid_key());
            }
            if !record.active {
                return Err(Error::Unauthorized(
                    "API key revoked or its user disabled".into(),
                ));
            }
            Ok(Principal {
                username: record.username,
                role: record.role,
                indexes: record.indexes,
                credential: Credential::ApiKey {
                    key_id: id.to_owned(),
                },
            })
        }
    }
}

/// [`identify`] with already loaded settings, then one token from the
/// principal's rate-limit bucket.
pub async fn authenticate_with<K: KvStore, T: Clock>(
    settings: &Settings,
    request: &HttpRequest,
    kv: &K,
    clock: &T,
) -> Result<Principal> {
    let principal = identify(settings, request, kv, clock).await?;
    ratelimit::consume(
        kv,
        &principal.bucket(),
        settings.rate_limit_per_minute,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(principal)
}

/// Who is calling: verify the access token (signature, HS256 only,
/// `exp`/`nbf`/`iat`, `iss`/`aud`, session not revoked — one KV read) or the
/// API key (one KV read), then take one request from the caller's rate-limit
/// bucket. Errors: 400/401 (credentials), 429 (rate), 503 (not configured).
pub async fn authenticate<K: KvStore, C: Config, T: Clock>(
    request: &HttpRequest,
    kv: &K,
    config: &C,
    clock: &T,
) -> Result<Principal> {
    let settings = Settings::load(config).await?;
    authenticate_with(&settings, request, kv, clock).await
}

/// [`authenticate`], then 403 unless the caller may do `permission` (on
/// `index`, when the route names one).
pub async fn authorize<K: KvStore, C: Config, T: Clock>(
    request: &HttpRequest,
    kv: &K,
    config: &C,
    clock: &T,
    permission: Permission,
    index: Option<&str>,
) -> Result<Principal> {
    let principal = authenticate(request, kv, config, clock).await?;
    principal.check(permission, index)?;
    Ok(principal)
}

/// Serve `request` with `handler` inside the CORS and security-header
/// policy: a CORS preflight is answered without calling `handler`; an `Err`
/// becomes its JSON error response; every response gets the CORS headers
/// (allowed origins only) and the security headers of `kind`.
pub async fn guard<C, F, Fut>(
    request: &HttpRequest,
    config: &C,
    kind: RouteKind,
    handler: F,
) -> HttpResponse
where
    C: Config,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<HttpResponse>>,
{
    let cors = match config.get(vars::CORS_ALLOWED_ORIGINS).await {
        Ok(value) => CorsPolicy::parse(value.as_deref().unwrap_or("")),
        Err(_) => CorsPolicy::default(),
    };
    let response = match cors.preflight(request) {
        Some(response) => response,
        None => handler().await.unwrap_or_else(|e| HttpResponse::error(&e)),
    };
    apply_security_headers(cors.apply(request, response), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&str, &str)]) -> HttpRequest {
        headers
            .iter()
            .fold(HttpRequest::new("GET", "/"), |r, (n, v)| {
                r.with_header(n, *v)
            })
    }

    fn status(request: &HttpRequest) -> u16 {
        ragspin_core::status_for(&presented(request).unwrap_err())
    }

    #[test]
    fn finds_bearer_tokens_and_api_keys() {
        assert_eq!(
            presented(&with(&[("authorization", "Bearer abc.def.ghi")])).unwrap(),
            Presented::Token("abc.def.ghi")
        );
        assert_eq!(
            presented(&with(&[("Authorization", "bearer rsk_x")])).unwrap(),
            Presented::ApiKey("rsk_x")
        );
        assert_eq!(
            presented(&with(&[("x-api-key", "rsk_y")])).unwrap(),
            Presented::ApiKey("rsk_y")
        );
    }

    #[test]
    fn missing_or_foreign_schemes_are_401() {
        assert_eq!(status(&with(&[])), 401);
        assert_eq!(status(&with(&[("authorization", "Basic YTpi")])), 401);
        assert_eq!(status(&with(&[("authorization", "Token abc")])), 401);
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 100));
        assert_eq!(status(&with(&[("authorization", &huge)])), 401);
    }

    #[test]
    fn duplicate_ambiguous_or_malformed_headers_are_400() {
        assert_eq!(
            status(&with(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            400
        );
        assert_eq!(
            status(&with(&[
                ("authorization", "Bearer a"),
                ("x-api-key", "rsk_b")
            ])),
            400
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer \u{fffd}",
            "Bearer a\tb",
        ] {
            assert_eq!(status(&with(&[("authorization", bad)])), 400, "{bad:?}");
        }
    }

    fn principal(role: Role, indexes: IndexScope) -> Principal {
        Principal {
            username: "u".into(),
            role,
            indexes,
            credential: Credential::ApiKey { key_id: "k".into() },
        }
    }

    #[test]
    fn checks_role_and_index_scope() {
        let reader = principal(Role::Reader, IndexScope::from_names(["docs"]));
        assert!(reader.check(Permission::Query, Some("docs")).is_ok());
        assert!(reader.check(Permission::Search, None).is_ok());
        let e = reader.check(Permission::Ingest, Some("docs")).unwrap_err();
        assert_eq!(ragspin_core::status_for(&e), 403);
        let e = reader.check(Permission::Query, Some("other")).unwrap_err();
        assert_eq!(e, Error::Forbidden("no access to this index".into()));
        let admin = principal(Role::Admin, IndexScope::None);
        assert!(admin.check(Permission::Ingest, Some("anything")).is_ok());
        assert!(admin.check(Permission::Admin, None).is_ok());
    }
}
