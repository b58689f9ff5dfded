//! The answer cache in KV.
//!
//! Key: `query:answer:<sha256>` of (prompt version, index, index version,
//! generation, normalised question, canonical filter, top_k, weights,
//! caller scope, chat and embedding deployments). Every write to an index
//! version bumps its generation, and activating another version changes
//! the version: a stale answer cannot be found, by construction. Values
//! carry an expiry so abandoned entries can be recognised (Spin's KV has
//! no TTL); degraded answers and answers that depend on a conversation are
//! never cached.

use ragspin_core::{Clock, KvStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Answer;

/// Everything an answer depends on.
#[derive(Debug, Clone, Serialize)]
pub struct CacheKey<'a> {
    pub prompt_version: &'a str,
    pub index: &'a str,
    pub index_version: i64,
    pub generation: i64,
    /// [`crate::text::normalise_question`] of the question.
    pub question: &'a str,
    /// [`canonical_json`] of the filter.
    pub filter: &'a str,
    pub top_k: usize,
    pub weights: (f64, f64),
    pub scope: &'a str,
    pub chat_deployment: Option<&'a str>,
    pub embedding_deployment: Option<&'a str>,
}

impl CacheKey<'_> {
    /// The KV key.
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&json);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("query:answer:{hex}")
    }
}

/// JSON with object keys sorted at every level.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sort(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sort(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sort).collect())
            }
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

#[derive(Serialize, Deserialize)]
struct Entry {
    expires_at: u64,
    answer: Answer,
}

/// The cached answer under `key`, if fresh. A failing or corrupt cache is a
/// miss.
pub async fn get(kv: &impl KvStore, clock: &impl Clock, key: &str) -> Option<Answer> {
    let bytes = kv.get(key).await.ok()??;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    (entry.expires_at > clock.now_unix_ms()).then_some(entry.answer)
}

/// Store `answer` for `ttl_s` seconds; failures are ignored (a cache).
pub async fn put(kv: &impl KvStore, clock: &impl Clock, key: &str, answer: &Answer, ttl_s: u64) {
    let entry = Entry {
        expires_at: clock
            .now_unix_ms()
            .saturating_add(ttl_s.saturating_mul(1000)),
        answer: answer.clone(),
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        _ = kv.set(key, &bytes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(question: &'a str, generation: i64, scope: &'a str) -> CacheKey<'a> {
        CacheKey {
            prompt_version: "p1",
            index: "docs",
            index_version: 1,
            generation,
            question,
            filter: "null",
            top_k: 5,
            weights: (1.0, 1.0),
            scope,
            chat_deployment: Some("gpt"),
            embedding_deployment: Some("emb"),
        }
    }

    #[test]
    fn every_part_of_the_key_changes_it() {
        let base = key("q", 1, "*").key();
        assert!(base.starts_with("query:answer:"));
        assert_eq!(base, key("q", 1, "*").key());
        assert_ne!(base, key("q2", 1, "*").key());
        assert_ne!(
            base,
            key("q", 2, "*").key(),
            "a write to the index invalidates"
        );
        assert_ne!(base, key("q", 1, "user:bob").key());
        let mut other = key("q", 1, "*");
        other.chat_deployment = Some("gpt-4o");
        assert_ne!(base, other.key());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[{"d":1,"c":2}]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":[{"c":2,"d":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}
