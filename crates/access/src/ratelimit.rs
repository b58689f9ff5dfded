//! Token buckets and login lockout, kept in KV.
//!
//! A bucket holds up to `per_minute` tokens (a full minute of burst) and
//! refills continuously at `per_minute / 60` tokens per second; each request
//! takes one. Stored as `"<milli-tokens>:<updated-ms>"` under
//! `auth:ratelimit:<scope>:<id>`. Spin's KV has no atomic update, so the
//! read-modify-write can lose a decrement under concurrency: limits are
//! approximate (a few requests over), never stricter than configured.
//!
//! Login lockout: `auth:login:<sha256(username)>` counts failed logins of a
//! username (whether or not it exists). From the `max`-th consecutive
//! failure on, the username is locked for 30 s × 2^(failures − max), at most
//! 15 minutes; while locked every login is 429 without checking the
//! password. A success clears it; failures older than 15 minutes are
//! forgotten.

use ragspin_core::{Error, KvStore, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::random::hex;

/// First lockout (seconds).
pub const LOCKOUT_BASE_S: u64 = 30;
/// Longest lockout (seconds).
pub const LOCKOUT_MAX_S: u64 = 900;
/// Failures older than this are forgotten (ms).
pub const FAILURE_MEMORY_MS: u64 = 15 * 60 * 1000;

/// The KV key of a bucket: `scope` is `user`, `key` or `addr`.
pub fn bucket_key(scope: &str, id: &str) -> String {
    format!("auth:ratelimit:{scope}:{id}")
}

/// A bucket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens × 1000.
    pub tokens_milli: u64,
    /// When `tokens_milli` was computed (Unix ms).
    pub updated_ms: u64,
}

impl Bucket {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (tokens, updated) = text.split_once(':')?;
        Some(Self {
            tokens_milli: tokens.parse().ok()?,
            updated_ms: updated.parse().ok()?,
        })
    }

    fn encode(self) -> String {
        format!("{}:{}", self.tokens_milli, self.updated_ms)
    }
}

/// Take one token: the new state, or the seconds until one is available.
pub fn take(state: Option<Bucket>, per_minute: u32, now_ms: u64) -> Result<Bucket, u64> {
    let capacity = u64::from(per_minute) * 1000;
    let bucket = state.unwrap_or(Bucket {
        tokens_milli: capacity,
        updated_ms: now_ms,
    });
    let elapsed = now_ms.saturating_sub(bucket.updated_ms);
    // per_minute tokens per 60_000 ms = per_minute milli-tokens per 60 ms.
    let refill = u128::from(elapsed) * u128::from(per_minute) / 60;
    let tokens = (u128::from(bucket.tokens_milli) + refill).min(u128::from(capacity)) as u64;
    if tokens >= 1000 {
        Ok(Bucket {
            tokens_milli: tokens - 1000,
            updated_ms: now_ms.max(bucket.updated_ms),
        })
    } else {
        let missing = 1000 - tokens;
        let wait_ms = (missing * 60).div_ceil(u64::from(per_minute.max(1)));
        Err(wait_ms.div_ceil(1000).max(1))
    }
}

/// Take one token from the bucket at `key` (`per_minute == 0`: unlimited).
/// An empty bucket is `Error::RateLimited` with the seconds to wait.
pub async fn consume<K: KvStore>(kv: &K, key: &str, per_minute: u32, now_ms: u64) -> Result<()> {
    if per_minute == 0 {
        return Ok(());
    }
    let state = kv.get(key).await?.as_deref().and_then(Bucket::decode);
    match take(state, per_minute, now_ms) {
        Ok(next) => kv.set(key, next.encode().as_bytes()).await,
        Err(retry_after_s) => Err(Error::RateLimited { retry_after_s }),
    }
}

/// The KV key of a username's failed-login record. Hashed, so whatever a
/// client types as a username never becomes part of a key.
pub fn login_key(username: &str) -> String {
    format!("auth:login:{}", hex(&Sha256::digest(username.as_bytes())))
}

/// Failed logins of one username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoginFailures {
    /// Consecutive failures.
    pub failures: u32,
    /// Last failure (Unix ms).
    pub last_failure_ms: u64,
    /// Locked until (Unix ms); 0 = not locked.
    pub locked_until_ms: u64,
}

impl LoginFailures {
    /// Seconds until a login may be tried, if locked.
    pub fn locked_for_s(&self, now_ms: u64) -> Option<u64> {
        (self.locked_until_ms > now_ms)
            .then(|| (self.locked_until_ms - now_ms).div_ceil(1000).max(1))
    }

    /// The state after one more failure at `now_ms`.
    pub fn after_failure(self, now_ms: u64, max_failures: u32) -> Self {
        let stale = now_ms.saturating_sub(self.last_failure_ms) > FAILURE_MEMORY_MS
            && self.locked_until_ms <= now_ms;
        let failures = if stale {
            1
        } else {
            self.failures.saturating_add(1)
        };
        let locked_until_ms = if failures >= max_failures {
            let doublings = (failures - max_failures).min(16);
            let lock_s = (LOCKOUT_BASE_S << doublings).min(LOCKOUT_MAX_S);
            now_ms + lock_s * 1000
        } else {
            0
        };
        Self {
            failures,
            last_failure_ms: now_ms,
            locked_until_ms,
        }
    }
}

/// The failure record of `username` (absent or unreadable = none).
pub async fn login_failures<K: KvStore>(kv: &K, username: &str) -> Result<LoginFailures> {
    Ok(kv
        .get(&login_key(username))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default())
}

/// 429 if `username` is locked out.
pub async fn check_lockout<K: KvStore>(kv: &K, username: &str, now_ms: u64) -> Result<()> {
    match login_failures(kv, username).await?.locked_for_s(now_ms) {
        Some(retry_after_s) => Err(Error::RateLimited { retry_after_s }),
        None => Ok(()),
    }
}

/// Count one failed login of `username`.
pub async fn record_failure<K: KvStore>(
    kv: &K,
    username: &str,
    now_ms: u64,
    max_failures: u32,
) -> Result<LoginFailures> {
    let next = login_failures(kv, username)
        .await?
        .after_failure(now_ms, max_failures);
    let bytes =
        serde_json::to_vec(&next).map_err(|e| Error::Internal(format!("serialize: {e}")))?;
    kv.set(&login_key(username), &bytes).await?;
    Ok(next)
}

/// Forget the failures of `username` (after a successful login).
pub async fn clear_failures<K: KvStore>(kv: &K, username: &str) -> Result<()> {
    kv.delete(&login_key(username)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use ragspin_testkit::MemoryKv;

    #[test]
    fn a_full_bucket_allows_a_minute_of_burst_then_refuses() {
        let mut state = None;
        for i in 0..60 {
            state = Some(take(state, 60, 1_000).unwrap_or_else(|_| panic!("request {i}")));
        }
        assert_eq!(take(state, 60, 1_000), Err(1));
    }

    #[test]
    fn a_bucket_refills_continuously() {
        let empty = Some(Bucket {
            tokens_milli: 0,
            updated_ms: 0,
        });
        // 6 per minute: one token every 10 s.
        assert_eq!(take(empty, 6, 0), Err(10));
        assert_eq!(take(empty, 6, 4_000), Err(6));
        assert!(take(empty, 6, 10_000).is_ok());
    }

    #[test]
    fn consume_stores_the_bucket_and_answers_429_with_retry_after() {
        let kv = MemoryKv::new();
        let key = bucket_key("user", "alice");
        block_on(consume(&kv, &key, 2, 0)).unwrap();
        block_on(consume(&kv, &key, 2, 0)).unwrap();
        let e = block_on(consume(&kv, &key, 2, 0)).unwrap_err();
        assert_eq!(e, Error::RateLimited { retry_after_s: 30 });
        assert!(kv.snapshot().contains_key("auth:ratelimit:user:alice"));
        block_on(consume(&kv, &key, 2, 30_000)).unwrap();
    }

    #[test]
    fn zero_per_minute_means_unlimited() {
        let kv = MemoryKv::new();
        for _ in 0..1000 {
            block_on(consume(&kv, "k", 0, 0)).unwrap();
        }
        assert!(kv.snapshot().is_empty());
    }

    #[test]
    fn locks_out_after_max_failures_with_doubling_backoff() {
        let mut f = LoginFailures::default();
        for i in 1..5 {
            f = f.after_failure(i * 1000, 5);
            assert_eq!(f.locked_for_s(i * 1000), None, "failure {i}");
        }
        f = f.after_failure(5_000, 5);
        assert_eq!(f.locked_for_s(5_000), Some(30));
        f = f.after_failure(40_000, 5);
        assert_eq!(f.locked_for_s(40_000), Some(60));
        for _ in 0..20 {
            f = f.after_failure(f.locked_until_ms, 5);
        }
        assert_eq!(f.locked_for_s(f.last_failure_ms), Some(LOCKOUT_MAX_S));
    }

    #[test]
    fn forgets_old_failures() {
        let f = LoginFailures::default()
            .after_failure(0, 5)
            .after_failure(1, 5);
        let later = f.after_failure(FAILURE_MEMORY_MS + 10, 5);
        assert_eq!(later.failures, 1);
    }

    #[test]
    fn lockout_keys_hash_the_username() {
        let key = login_key("x' OR '1'='1");
        assert!(key.starts_with("auth:login:"));
        assert_eq!(key.len(), "auth:login:".len() + 64);
        assert!(!key.contains('\''));
    }

    #[test]
    fn records_checks_and_clears_failures_in_kv() {
        let kv = MemoryKv::new();
        for _ in 0..3 {
            block_on(record_failure(&kv, "bob", 0, 3)).unwrap();
        }
        let e = block_on(check_lockout(&kv, "bob", 1000)).unwrap_err();
        assert_eq!(e, Error::RateLimited { retry_after_s: 29 });
        block_on(clear_failures(&kv, "bob")).unwrap();
        block_on(check_lockout(&kv, "bob", 1000)).unwrap();
    }
}
