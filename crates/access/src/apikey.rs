//! API keys: `rsk_<16 hex id>_<43 base64url secret>`, shown once, stored as
//! SHA-256.
//!
//! SQLite (`auth_api_keys`) keeps every key for admins; KV keeps what the
//! hot path needs under `auth:apikey:<id>` ([`KeyRecord`]): the hash and the
//! *effective* role and indexes (the key's own, capped by its owner's
//! current ones) and whether it is active (not revoked, owner enabled). A
//! fast hash is enough: the secret has 256 bits of entropy.

use ragspin_core::{Error, KvStore, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::random::{Random, hex, hex_token, token};
use crate::roles::{IndexScope, Role};

/// Every key starts with this.
pub const PREFIX: &str = "rsk_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;

/// The KV key of API key `id`.
pub fn record_key(id: &str) -> String {
    format!("auth:apikey:{id}")
}

/// What authorization needs to know about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Owner.
    pub username: String,
    /// SHA-256 (hex) of the whole key.
    pub key_hash: String,
    /// Effective role.
    pub role: Role,
    /// Effective indexes.
    pub indexes: IndexScope,
    /// False once revoked or while the owner is disabled.
    pub active: bool,
}

/// SHA-256 (hex) of a presented key.
pub fn hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// A fresh key: `(id, key)`.
pub fn generate(random: &impl Random) -> Result<(String, String)> {
    let id = hex_token(random, ID_LEN / 2)?;
    let secret = token(random, 32)?;
    Ok((id.clone(), format!("{PREFIX}{id}_{secret}")))
}

/// Whether `value` looks like an API key (rather than a JWT).
pub fn looks_like_key(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The id of a well-formed key.
pub fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN || !rest.is_char_boundary(ID_LEN) {
        return None;
    }
    let (id, secret) = rest.split_at(ID_LEN);
    let secret = secret.strip_prefix('_')?;
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(id)
}

/// The record of key `id`, if any.
pub async fn load<K: KvStore>(kv: &K, id: &str) -> Result<Option<KeyRecord>> {
    Ok(kv
        .get(&record_key(id))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Write the record of key `id`.
pub async fn save<K: KvStore>(kv: &K, id: &str, record: &KeyRecord) -> Result<()> {
    let bytes =
        serde_json::to_vec(record).map_err(|e| Error::Internal(format!("serialize: {e}")))?;
    kv.set(&record_key(id), &bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn generated_keys_parse_back_to_their_id() {
        let (id, key) = generate(&SeededRandom::new(3)).unwrap();
        assert!(key.starts_with("rsk_"));
        assert_eq!(key.len(), 4 + 16 + 1 + 43);
        assert_eq!(key_id(&key), Some(id.as_str()));
    }

    #[test]
    fn rejects_keys_of_the_wrong_shape() {
        let (_, key) = generate(&SeededRandom::new(4)).unwrap();
        for bad in [
            "rsk_".to_owned(),
            key[..key.len() - 1].to_owned(),
            format!("{key}x"),
            key.replacen("rsk_", "rsk-", 1),
            format!("rsk_{}_{}", "G".repeat(16), "a".repeat(43)),
            format!("rsk_{}_{}", "a".repeat(16), "é".repeat(21)),
        ] {
            assert_eq!(key_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_are_stable_hex() {
        assert_eq!(hash("abc").len(), 64);
        assert_eq!(hash("abc"), hash("abc"));
        assert_ne!(hash("abc"), hash("abd"));
    }
}
