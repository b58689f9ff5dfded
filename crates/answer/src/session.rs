//! Conversations in KV, and follow-up condensation.
//!
//! A session is one KV value, `query:session:<principal-hash>:<id>` →
//! JSON [`Session`]: the index, the last turns (at most
//! `max_turns`, answers shortened), and its expiry. Every turn renews the
//! expiry; an expired session reads as absent and is deleted when touched
//! (Spin's KV has no TTL of its own). The caller's principal is part of the
//! key, so one user cannot read or extend another's session by guessing
//! its id.
//!
//! Condensation is deterministic and local (no extra model call): a
//! follow-up that leans on the conversation (a pronoun, "what about ...",
//! or fewer than three content words) is suffixed with the previous
//! standalone question, which retrieval and the model then see.

use ragspin_core::{Clock, Error, KvStore, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::prompt::Turn;
use crate::text::{content_words, one_line, truncate, words};

/// Longest answer kept in a session, in bytes.
pub const MAX_STORED_ANSWER_BYTES: usize = 2000;

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The index it asks.
    pub index: String,
    /// The turns, oldest first.
    pub turns: Vec<Turn>,
    /// Unix ms after which it is gone.
    pub expires_at: u64,
}

/// Session ids: 1–64 of `A-Z a-z 0-9 _ - .`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_field(
            "session_id",
            "session ids are 1-64 characters of letters, digits, '_', '-' and '.'",
        ))
    }
}

/// The first 16 hex digits of SHA-256(`text`).
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The KV key of session `id` of `principal`.
pub fn key(principal: &str, id: &str) -> String {
    format!("query:session:{}:{id}", short_hash(principal))
}

/// The live session under `key`, if any (an expired one is deleted).
pub async fn load(kv: &impl KvStore, clock: &impl Clock, key: &str) -> Result<Option<Session>> {
    let Some(bytes) = kv.get(key).await? else {
        return Ok(None);
    };
    let session: Option<Session> = serde_json::from_slice(&bytes).ok();
    match session {
        Some(s) if s.expires_at > clock.now_unix_ms() => Ok(Some(s)),
        _ => {
            kv.delete(key).await?;
            Ok(None)
        }
    }
}

/// Append `turn`, keep the last `max_turns`, renew the expiry, store.
pub async fn record(
    kv: &impl KvStore,
    clock: &impl Clock,
    key: &str,
    mut session: Session,
    mut turn: Turn,
    max_turns: usize,
    ttl_s: u64,
) -> Result<()> {
    turn.answer = truncate(&turn.answer, MAX_STORED_ANSWER_BYTES);
    session.turns.push(turn);
    let excess = session.turns.len().saturating_sub(max_turns.max(1));
    session.turns.drain(..excess);
    session.expires_at = clock
        .now_unix_ms()
        .saturating_add(ttl_s.saturating_mul(1000));
    let bytes = serde_json::to_vec(&session)
        .map_err(|e| Error::Internal(format!("serialize session: {e}")))?;
    kv.set(key, &bytes).await
}

const ANAPHORS: &[&str] = &[
    "it", "its", "they", "them", "their", "theirs", "this", "that", "these", "those", "he", "him",
    "his", "she", "her", "there", "one", "ones", "same", "former", "latter",
];

const FOLLOW_UP_OPENERS: &[&str] = &[
    "and",
    "also",
    "what about",
    "how about",
    "and what",
    "what else",
    "why",
    "so",
];

/// Whether `question` leans on the conversation.
pub fn is_follow_up(question: &str) -> bool {
    let lower = one_line(&question.to_lowercase());
    if words(&lower).any(|w| ANAPHORS.contains(&w.as_str())) {
        return true;
    }
    if FOLLOW_UP_OPENERS
        .iter()
        .any(|o| lower.starts_with(&format!("{o} ")) || lower == *o)
    {
        return true;
    }
    content_words(&lower).len() < 3
}

/// The standalone form of `question` after `history`: `None` when it stands
/// on its own (or there is no history).
pub fn condense(question: &str, history: &[Turn]) -> Option<String> {
    let last = history.last()?;
    if !is_follow_up(question) {
        return None;
    }
    let previous = last.standalone.trim().trim_end_matches(['?', '.', '!']);
    Some(format!(
        "{} (follow-up to: {previous})",
        one_line(question.trim())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragspin_testkit::{ManualClock, MemoryKv};

    fn turn(q: &str) -> Turn {
        Turn {
            question: q.into(),
            standalone: q.into(),
            answer: "a".into(),
        }
    }

    #[test]
    fn condenses_follow_ups_with_the_previous_standalone_question() {
        let history = [turn("What is the battery life of the Zephyr phone?")];
        assert_eq!(
            condense("How long does it take to charge?", &history).unwrap(),
            "How long does it take to charge? (follow-up to: What is the battery life of the Zephyr phone)"
        );
        assert_eq!(
            condense("What about price?", &history).unwrap(),
            "What about price? (follow-up to: What is the battery life of the Zephyr phone)"
        );
        assert_eq!(
            condense("Which laptop has the brightest screen display?", &history),
            None
        );
        assert_eq!(condense("How long does it take to charge?", &[]), None);
    }

    #[test]
    fn sessions_keep_the_last_turns_and_expire() {
        futures::executor::block_on(async {
            let kv = MemoryKv::new();
            let clock = ManualClock::new(1_000_000);
            let k = key("alice", "s1");
            assert!(k.starts_with("query:session:") && !k.contains("alice"));
            let mut session = Session {
                index: "docs".into(),
                turns: vec![],
                expires_at: 0,
            };
            for n in 0..5 {
                record(
                    &kv,
                    &clock,
                    &k,
                    session.clone(),
                    turn(&format!("q{n}")),
                    3,
                    60,
                )
                .await
                .unwrap();
                session = load(&kv, &clock, &k).await.unwrap().unwrap();
            }
            let questions: Vec<_> = session.turns.iter().map(|t| t.question.as_str()).collect();
            assert_eq!(questions, ["q2", "q3", "q4"]);
            clock.advance(60_001);
            assert_eq!(load(&kv, &clock, &k).await.unwrap(), None);
            assert!(kv.snapshot().is_empty(), "the expired session was deleted");
        });
    }

    #[test]
    fn another_principal_gets_another_key() {
        assert_ne!(key("alice", "s1"), key("bob", "s1"));
    }

    #[test]
    fn rejects_malformed_session_ids() {
        assert!(validate_id("abc-123_x.y").is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
