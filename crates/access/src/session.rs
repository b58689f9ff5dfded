//! Sessions and refresh tokens in KV.
//!
//! * `auth:session:<sid>` → [`Session`] (JSON): who, role and indexes (kept
//!   current by the admin routes), absolute expiry, the SHA-256 of the one
//!   live refresh token and of the ones it replaced. Every access token
//!   carries its `sid`; verifying a token reads this one key, so logout,
//!   disabling a user or detected refresh-token reuse take effect at once.
//! * `auth:user-sessions:<username>` → `[{sid, expires_ms}]`: the sessions of
//!   a user, so they can be updated or revoked together; at most
//!   [`MAX_SESSIONS_PER_USER`] (a login beyond that revokes the oldest).
//!
//! A refresh token is `<sid>.<secret>` (22 + 1 + 43 base64url characters,
//! 128-bit id, 256-bit secret), stored only as its SHA-256. Refreshing
//! rotates it; presenting a token that was already rotated away means it
//! was copied, and the whole session (the token family) is revoked.
//!
//! Spin's KV has no expiry: an expired session is deleted when next touched.

use ragspin_core::{Error, KvStore, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::jwt::{self, Claims};
use crate::random::{Random, hex, token};
use crate::roles::{IndexScope, Role};
use crate::settings::{AUDIENCE, ISSUER, Settings};

/// How many rotated refresh-token hashes a session remembers for reuse detection.
pub const REMEMBERED_ROTATIONS: usize = 32;
/// Live sessions per user; a new login beyond this revokes the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 50;

/// The KV key of session `sid`.
pub fn session_key(sid: &str) -> String {
    format!("auth:session:{sid}")
}

/// The KV key of the session list of `username`.
pub fn user_sessions_key(username: &str) -> String {
    format!("auth:user-sessions:{username}")
}

/// A login session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Username.
    pub sub: String,
    /// Current role (authoritative over the token's `roles`).
    pub role: Role,
    /// Current indexes.
    pub indexes: IndexScope,
    /// Started (Unix ms).
    pub created_ms: u64,
    /// Ends (Unix ms); refresh does not extend it.
    pub expires_ms: u64,
    /// SHA-256 (hex) of the live refresh token.
    pub refresh_hash: String,
    /// SHA-256 (hex) of refresh tokens rotated away, newest last.
    pub previous_hashes: Vec<String>,
    /// For the bootstrap admin: [`Settings::bootstrap_tag`] at login, so
    /// changing `admin_password_hash` ends the admin's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_tag: Option<String>,
}

impl Session {
    /// Whether this session outlived the bootstrap admin it belongs to (the
    /// admin variables changed since login). Components that do not declare
    /// `admin_password_hash` cannot tell and say `false`.
    pub fn bootstrap_changed(&self, settings: &Settings) -> bool {
        settings.sees_bootstrap_admin()
            && self.bootstrap_tag.as_ref().is_some_and(|tag| {
                settings.admin_username != self.sub
                    || settings.bootstrap_tag().as_ref() != Some(tag)
            })
    }
}

/// Tokens handed to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issued {
    /// The HS256 JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Seconds the session (and so the refresh token) is valid.
    pub refresh_expires_in: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRef {
    sid: String,
    expires_ms: u64,
}

fn sha256_hex(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes()))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("serialize: {e}")))
}

/// Session `sid`, if it exists (an unreadable record counts as absent).
pub async fn load<K: KvStore>(kv: &K, sid: &str) -> Result<Option<Session>> {
    Ok(kv
        .get(&session_key(sid))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Write session `sid`.
pub async fn save<K: KvStore>(kv: &K, sid: &str, session: &Session) -> Result<()> {
    kv.set(&session_key(sid), &json(session)?).await
}

async fn user_sessions<K: KvStore>(kv: &K, username: &str) -> Result<Vec<SessionRef>> {
    Ok(kv
        .get(&user_sessions_key(username))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default())
}

async fn set_user_sessions<K: KvStore>(kv: &K, username: &str, refs: &[SessionRef]) -> Result<()> {
    if refs.is_empty() {
        kv.delete(&user_sessions_key(username)).await
    } else {
        kv.set(&user_sessions_key(username), &json(&refs)?).await
    }
}

/// The live session ids of `username` (expired ones pruned from the list).
pub async fn sessions_of<K: KvStore>(kv: &K, username: &str, now_ms: u64) -> Result<Vec<String>> {
    let refs = user_sessions(kv, username).await?;
    let live: Vec<SessionRef> = refs
        .iter()
        .filter(|r| r.expires_ms > now_ms)
        .cloned()
        .collect();
    if live.len() != refs.len() {
        set_user_sessions(kv, username, &live).await?;
    }
    Ok(live.into_iter().map(|r| r.sid).collect())
}

/// Delete session `sid` of `username`.
pub async fn revoke<K: KvStore>(kv: &K, sid: &str, username: &str) -> Result<()> {
    kv.delete(&session_key(sid)).await?;
    let refs: Vec<SessionRef> = user_sessions(kv, username)
        .await?
        .into_iter()
        .filter(|r| r.sid != sid)
        .collect();
    set_user_sessions(kv, username, &refs).await
}

fn mint_access(
    settings: &Settings,
    random: &impl Random,
    now_ms: u64,
    sub: &str,
    sid: &str,
    role: Role,
) -> Result<String> {
    let now_s = now_ms / 1000;
    let claims = Claims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: sub.to_owned(),
        iat: now_s,
        nbf: now_s,
        exp: now_s + settings.access_ttl_s,
        jti: token(random, 12)?,
        sid: sid.to_owned(),
        roles: vec![role],
    };
    jwt::sign(&claims, settings.signing_key()?)
}

fn issued(
    settings: &Settings,
    session: &Session,
    access: String,
    refresh: String,
    now_ms: u64,
) -> Issued {
    let remaining_s = session.expires_ms.saturating_sub(now_ms) / 1000;
    Issued {
        access_token: access,
        token_type: "Bearer",
        expires_in: settings.access_ttl_s.min(remaining_s.max(1)),
        refresh_token: refresh,
        refresh_expires_in: remaining_s,
    }
}

/// Start a session for a user who just logged in.
#[allow(clippy::too_many_arguments)]
pub async fn start<K: KvStore>(
    kv: &K,
    random: &impl Random,
    settings: &Settings,
    now_ms: u64,
    username: &str,
    role: Role,
    indexes: IndexScope,
    bootstrap_tag: Option<String>,
) -> Result<Issued> {
    let sid = token(random, 16)?;
    let refresh = format!("{sid}.{}", token(random, 32)?);
    let session = Session {
        sub: username.to_owned(),
        role,
        indexes,
        created_ms: now_ms,
        expires_ms: now_ms + settings.refresh_ttl_s * 1000,
        refresh_hash: sha256_hex(&refresh),
        previous_hashes: Vec::new(),
        bootstrap_tag,
    };
    let access = mint_access(settings, random, now_ms, username, &sid, role)?;
    save(kv, &sid, &session).await?;
    let mut refs = user_sessions(kv, username).await?;
    refs.retain(|r| r.expires_ms > now_ms);
    refs.push(SessionRef {
        sid: sid.clone(),
        expires_ms: session.expires_ms,
    });
    let excess = refs.len().saturating_sub(MAX_SESSIONS_PER_USER);
    for old in refs.drain(..excess) {
        kv.delete(&session_key(&old.sid)).await?;
    }
    set_user_sessions(kv, username, &refs).await?;
    Ok(issued(settings, &session, access, refresh, now_ms))
}

/// The session id in a refresh token, if the token is well formed.
pub fn refresh_sid(refresh_token: &str) -> Option<&str> {
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let (sid, secret) = refresh_token.split_once('.')?;
    (sid.len() == 22 && secret.len() == 43 && b64url(sid) && b64url(secret)).then_some(sid)
}

fn invalid_refresh() -> Error {
    Error::Unauthorized("invalid or expired refresh token".into())
}

/// Find the session a refresh token belongs to, if the token is its live
/// one. A token that was already rotated away revokes the session (401).
pub async fn check_refresh<K: KvStore>(
    kv: &K,
    refresh_token: &str,
    now_ms: u64,
) -> Result<(String, Session)> {
    let sid = refresh_sid(refresh_token).ok_or_else(invalid_refresh)?;
    let session = load(kv, sid).await?.ok_or_else(invalid_refresh)?;
    if session.expires_ms <= now_ms {
        revoke(kv, sid, &session.sub).await?;
        return Err(invalid_refresh());
    }
    let hash = sha256_hex(refresh_token);
    if ct_eq(&hash, &session.refresh_hash) {
        return Ok((sid.to_owned(), session));
    }
    if session.previous_hashes.iter().any(|h| ct_eq(h, &hash)) {
        revoke(kv, sid, &session.sub).await?;
        return Err(Error::Unauthorized(
            "refresh token reuse detected; the session is revoked".into(),
        ));
    }
    Err(invalid_refresh())
}

/// Rotate the refresh token of a session found by [`check_refresh`],
/// updating its role and indexes, and mint a new access token.
#[allow(clippy::too_many_arguments)]
pub async fn rotate<K: KvStore>(
    kv: &K,
    random: &impl Random,
    settings: &Settings,
    now_ms: u64,
    sid: &str,
    mut session: Session,
    role: Role,
    indexes: IndexScope,
) -> Result<Issued> {
    let refresh = format!("{sid}.{}", token(random, 32)?);
    let old = std::mem::replace(&mut session.refresh_hash, sha256_hex(&refresh));
    session.previous_hashes.push(old);
    let excess = session
        .previous_hashes
        .len()
        .saturating_sub(REMEMBERED_ROTATIONS);
    session.previous_hashes.drain(..excess);
    session.role = role;
    session.indexes = indexes;
    let access = mint_access(settings, random, now_ms, &session.sub, sid, role)?;
    save(kv, sid, &session).await?;
    Ok(issued(settings, &session, access, refresh, now_ms))
}

/// Rewrite every live session of `username`: new role and indexes, or
/// delete them all with `None` (user disabled, removed, password changed).
pub async fn update_all<K: KvStore>(
    kv: &K,
    username: &str,
    now_ms: u64,
    access: Option<(Role, &IndexScope)>,
) -> Result<()> {
    let sids = sessions_of(kv, username, now_ms).await?;
    for sid in &sids {
        match (access, load(kv, sid).await?) {
            (Some((role, indexes)), Some(mut session)) => {
                session.role = role;
                session.indexes = indexes.clone();
                save(kv, sid, &session).await?;
            }
            _ => kv.delete(&session_key(sid)).await?,
        }
    }
    if access.is_none() {
        set_user_sessions(kv, username, &[]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;
    use futures::executor::block_on;
    use ragspin_testkit::MemoryKv;

    fn start_one(kv: &MemoryKv, random: &SeededRandom, now_ms: u64) -> Issued {
        let settings = Settings::with_secret("k".repeat(32));
        block_on(start(
            kv,
            random,
            &settings,
            now_ms,
            "bob",
            Role::Reader,
            IndexScope::None,
            None,
        ))
        .unwrap()
    }

    #[test]
    fn a_login_beyond_the_cap_revokes_the_oldest_session() {
        let (kv, random) = (MemoryKv::new(), SeededRandom::new(5));
        let first = start_one(&kv, &random, 1_000);
        for i in 0..MAX_SESSIONS_PER_USER {
            start_one(&kv, &random, 2_000 + i as u64);
        }
        let sid = refresh_sid(&first.refresh_token).unwrap();
        assert!(block_on(load(&kv, sid)).unwrap().is_none());
        let live = block_on(sessions_of(&kv, "bob", 3_000)).unwrap();
        assert_eq!(live.len(), MAX_SESSIONS_PER_USER);
    }

    #[test]
    fn refresh_tokens_have_a_fixed_shape() {
        let issued = start_one(&MemoryKv::new(), &SeededRandom::new(6), 0);
        assert!(refresh_sid(&issued.refresh_token).is_some());
        for bad in ["", "a.b", "x".repeat(66).as_str(), &issued.access_token] {
            assert!(refresh_sid(bad).is_none(), "{bad}");
        }
    }
}
