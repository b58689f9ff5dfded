//! [`Settings`] from Spin variables, and the Azure client tuned for
//! interactive queries.

use ragspin_azure::AzureConfig;
use ragspin_core::{Config, Error, Result};

use crate::service::Settings;

/// Variables the query component reads (besides the `azure_openai_*` ones).
pub mod vars {
    /// Chat time before degrading to an extractive answer (ms).
    pub const CHAT_TIMEOUT_MS: &str = "chat_timeout_ms";
    /// Question-embedding time before falling back to BM25 (ms).
    pub const EMBEDDING_TIMEOUT_MS: &str = "embedding_timeout_ms";
    /// Idle time before a streamed answer sends a keep-alive (ms).
    pub const SSE_HEARTBEAT_MS: &str = "sse_heartbeat_ms";
    /// Lifetime of cached answers (s); 0 disables the cache.
    pub const ANSWER_CACHE_TTL_S: &str = "answer_cache_ttl_s";
    /// Idle lifetime of a session (s).
    pub const SESSION_TTL_S: &str = "session_ttl_s";
    /// Turns a session keeps.
    pub const SESSION_MAX_TURNS: &str = "session_max_turns";
    /// Estimated tokens of sources in a prompt.
    pub const PROMPT_TOKEN_BUDGET: &str = "prompt_token_budget";
    /// Default BM25 weight of the fusion.
    pub const BM25_WEIGHT: &str = "search_bm25_weight";
    /// Default vector weight of the fusion.
    pub const VECTOR_WEIGHT: &str = "search_vector_weight";
    /// Cosine similarity making a hit relevant without a shared word.
    pub const MIN_VECTOR_SCORE: &str = "min_vector_score";
}

async fn read<N: std::str::FromStr>(config: &impl Config, name: &str) -> Result<Option<N>> {
    let Some(value) = config.get(name).await? else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| Error::Unavailable(format!("variable {name} must be a number, not {value:?}")))
}

impl Settings {
    /// The defaults, overridden by the variables that are set; a malformed
    /// one is [`Error::Unavailable`] naming it.
    pub async fn from_config(config: &impl Config) -> Result<Self> {
        let mut s = Self::default();
        if let Some(v) = read(config, vars::CHAT_TIMEOUT_MS).await? {
            s.chat_timeout_ms = v;
        }
        if let Some(v) = read(config, vars::EMBEDDING_TIMEOUT_MS).await? {
            s.embedding_timeout_ms = v;
        }
        if let Some(v) = read::<u64>(config, vars::SSE_HEARTBEAT_MS).await? {
            s.heartbeat_ms = v.max(50);
        }
        if let Some(v) = read(config, vars::ANSWER_CACHE_TTL_S).await? {
            s.cache_ttl_s = v;
        }
        if let Some(v) = read(config, vars::SESSION_TTL_S).await? {
            s.session_ttl_s = v;
        }
        if let Some(v) = read::<usize>(config, vars::SESSION_MAX_TURNS).await? {
            s.session_max_turns = v.clamp(1, 100);
        }
        if let Some(v) = read::<usize>(config, vars::PROMPT_TOKEN_BUDGET).await? {
            s.prompt.source_tokens = v.max(100);
        }
        if let Some(v) = read::<f64>(config, vars::BM25_WEIGHT).await? {
            s.weights.bm25 = v;
        }
        if let Some(v) = read::<f64>(config, vars::VECTOR_WEIGHT).await? {
            s.weights.vector = v;
        }
        if let Some(v) = read(config, vars::MIN_VECTOR_SCORE).await? {
            s.min_vector_score = v;
        }
        let ok = |w: f64| w.is_finite() && w >= 0.0;
        if !ok(s.weights.bm25) || !ok(s.weights.vector) || s.weights.bm25 + s.weights.vector <= 0.0
        {
            return Err(Error::Unavailable(format!(
                "variables {} and {} must be non-negative and not both 0",
                vars::BM25_WEIGHT,
                vars::VECTOR_WEIGHT
            )));
        }
        Ok(s)
    }
}

/// An Azure configuration for interactive queries: per-call timeouts as the
/// settings say, and retries that end within the chat timeout (a query
/// degrades rather than waits out a long `Retry-After`).
pub fn tune_for_queries(mut config: AzureConfig, settings: &Settings) -> AzureConfig {
    config.chat_timeout_ms = settings.chat_timeout_ms;
    config.embedding_timeout_ms = settings.embedding_timeout_ms;
    config.retry.budget_ms = config.retry.budget_ms.min(settings.chat_timeout_ms);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragspin_testkit::MapConfig;

    #[test]
    fn reads_the_set_variables_and_keeps_defaults_for_the_rest() {
        let config = MapConfig::new()
            .with("chat_timeout_ms", "1500")
            .with("answer_cache_ttl_s", "0")
            .with("search_vector_weight", "2.5")
            .with("session_max_turns", "");
        let s = futures::executor::block_on(Settings::from_config(&config)).unwrap();
        assert_eq!(s.chat_timeout_ms, 1500);
        assert_eq!(s.cache_ttl_s, 0);
        assert_eq!(s.weights.vector, 2.5);
        assert_eq!(s.session_max_turns, Settings::default().session_max_turns);
    }

    #[test]
    fn names_a_malformed_variable() {
        let config = MapConfig::new().with("chat_timeout_ms", "soon");
        let e = futures::executor::block_on(Settings::from_config(&config)).unwrap_err();
        assert!(e.to_string().contains("chat_timeout_ms"), "{e}");
        let zero = MapConfig::new()
            .with("search_vector_weight", "0")
            .with("search_bm25_weight", "0");
        assert!(futures::executor::block_on(Settings::from_config(&zero)).is_err());
    }

    #[test]
    fn query_retries_end_within_the_chat_timeout() {
        let settings = Settings {
            chat_timeout_ms: 3000,
            ..Settings::default()
        };
        let tuned = tune_for_queries(AzureConfig::azure("https://x", "k", "c", "e"), &settings);
        assert_eq!(tuned.chat_timeout_ms, 3000);
        assert_eq!(tuned.retry.budget_ms, 3000);
    }
}
