//! [`AzureConfig`]: where the model lives, how to authenticate, and the
//! limits, timeouts and retry policy of the clients.

use std::fmt;

use ragspin_core::{Config, Error, Result};

/// The api-version sent when `azure_openai_api_version` is empty or undefined.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Where requests go and how they authenticate.
///
/// `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub enum Provider {
    /// Azure OpenAI's deployments surface:
    /// `{endpoint}/openai/deployments/{deployment}/{operation}?api-version=...`
    /// with the header `api-key`.
    Azure {
        /// `https://<resource>.openai.azure.com`, without a trailing `/`.
        endpoint: String,
        /// The resource key (secret).
        api_key: String,
    },
    /// An OpenAI-compatible server (Ollama, vLLM, llama.cpp, Azure's `/openai/v1`):
    /// `{base_url}/v1/{operation}` with `Authorization: Bearer`, the
    /// deployment sent as `model` in the body.
    OpenAiCompatible {
        /// E.g. `http://127.0.0.1:11434`, without a trailing `/` (a trailing
        /// `/v1` is tolerated).
        base_url: String,
        /// The bearer token (secret).
        bearer: String,
    },
}

impl Provider {
    /// The secret this provider sends; error messages are scrubbed of it.
    pub fn secret(&self) -> &str {
        match self {
            Self::Azure { api_key, .. } => api_key,
            Self::OpenAiCompatible { bearer, .. } => bearer,
        }
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Azure { endpoint, .. } => f
                .debug_struct("Azure")
                .field("endpoint", endpoint)
                .field("api_key", &"[redacted]")
                .finish(),
            Self::OpenAiCompatible { base_url, .. } => f
                .debug_struct("OpenAiCompatible")
                .field("base_url", base_url)
                .field("bearer", &"[redacted]")
                .finish(),
        }
    }
}

/// How hard to try before giving up on one model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// Overall time budget of one call, in ms, waits and attempts included.
    /// A wait that would end past the budget is not started.
    pub budget_ms: u64,
    /// First backoff step, in ms, when the server names no wait.
    pub base_delay_ms: u64,
    /// Cap of a backoff step, in ms (jitter stays below it).
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            budget_ms: 60_000,
            base_delay_ms: 500,
            max_delay_ms: 20_000,
        }
    }
}

/// How embeddings are split into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingLimits {
    /// Most inputs in one request (Azure: 2048).
    pub max_inputs: usize,
    /// Most (estimated) tokens in one request, to stay well inside a
    /// deployment's tokens-per-minute quota.
    pub max_request_tokens: u32,
    /// Most (estimated) tokens in one input (Azure: 8192); a longer input is
    /// a validation error, not a silent truncation.
    pub max_input_tokens: u32,
}

impl Default for EmbeddingLimits {
    fn default() -> Self {
        Self {
            max_inputs: 2048,
            max_request_tokens: 100_000,
            max_input_tokens: 8192,
        }
    }
}

/// Everything the clients need to reach one Azure OpenAI resource (or an
/// OpenAI-compatible server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// Where and how.
    pub provider: Provider,
    /// `api-version` query parameter (Azure provider only).
    pub api_version: String,
    /// Deployment (Azure) or model (OpenAI-compatible) answering chats.
    pub chat_deployment: String,
    /// Deployment (Azure) or model (OpenAI-compatible) computing embeddings.
    pub embedding_deployment: String,
    /// The model behind `embedding_deployment` (defaults to its name): only
    /// `text-embedding-3-*` models accept `dimensions`.
    pub embedding_model: String,
    /// Requested vector length (`text-embedding-3-*` only).
    pub embedding_dimensions: Option<u32>,
    /// Batching limits.
    pub embedding_limits: EmbeddingLimits,
    /// Timeout of one embeddings HTTP call, in ms.
    pub embedding_timeout_ms: u64,
    /// Timeout of one chat HTTP call (the whole answer, streamed or not), in ms.
    pub chat_timeout_ms: u64,
    /// Retries.
    pub retry: RetryPolicy,
}

/// Variable names read by [`AzureConfig::from_config`].
pub mod vars {
    /// `https://<resource>.openai.azure.com` (or the OpenAI-compatible base URL).
    pub const ENDPOINT: &str = "azure_openai_endpoint";
    /// The key (secret).
    pub const API_KEY: &str = "azure_openai_api_key";
    /// Default [`super::DEFAULT_API_VERSION`].
    pub const API_VERSION: &str = "azure_openai_api_version";
    /// Chat deployment name.
    pub const CHAT_DEPLOYMENT: &str = "azure_openai_chat_deployment";
    /// Embedding deployment name.
    pub const EMBEDDING_DEPLOYMENT: &str = "azure_openai_embedding_deployment";
    /// Optional: `azure` (default) or `openai_compatible`.
    pub const PROVIDER: &str = "azure_openai_provider";
    /// Optional: the model behind the embedding deployment (default: its name).
    pub const EMBEDDING_MODEL: &str = "azure_openai_embedding_model";
    /// Optional: vector length for `text-embedding-3-*`.
    pub const EMBEDDING_DIMENSIONS: &str = "azure_openai_embedding_dimensions";
    /// Optional: per-call embeddings timeout in ms (default 30000).
    pub const EMBEDDING_TIMEOUT_MS: &str = "azure_openai_embedding_timeout_ms";
    /// Optional: per-call chat timeout in ms (default 60000).
    pub const CHAT_TIMEOUT_MS: &str = "azure_openai_chat_timeout_ms";
    /// Optional: overall retry budget per call in ms (default 60000).
    pub const RETRY_BUDGET_MS: &str = "azure_openai_retry_budget_ms";
    /// Optional: attempts per call (default 6).
    pub const MAX_ATTEMPTS: &str = "azure_openai_max_attempts";
    /// Optional: estimated tokens per embeddings request (default 100000).
    pub const EMBEDDING_BATCH_TOKENS: &str = "azure_openai_embedding_batch_tokens";
}

impl AzureConfig {
    /// An Azure configuration with defaults for everything but the essentials.
    pub fn azure(
        endpoint: &str,
        api_key: &str,
        chat_deployment: &str,
        embedding_deployment: &str,
    ) -> Self {
        Self::with_provider(
            Provider::Azure {
                endpoint: trim_base(endpoint),
                api_key: api_key.to_owned(),
            },
            chat_deployment,
            embedding_deployment,
        )
    }

    /// An OpenAI-compatible configuration with defaults.
    pub fn openai_compatible(
        base_url: &str,
        bearer: &str,
        chat_model: &str,
        embedding_model: &str,
    ) -> Self {
        Self::with_provider(
            Provider::OpenAiCompatible {
                base_url: trim_base(base_url),
                bearer: bearer.to_owned(),
            },
            chat_model,
            embedding_model,
        )
    }

    fn with_provider(provider: Provider, chat: &str, embedding: &str) -> Self {
        Self {
            provider,
            api_version: DEFAULT_API_VERSION.to_owned(),
            chat_deployment: chat.to_owned(),
            embedding_deployment: embedding.to_owned(),
            embedding_model: embedding.to_owned(),
            embedding_dimensions: None,
            embedding_limits: EmbeddingLimits::default(),
            embedding_timeout_ms: 30_000,
            chat_timeout_ms: 60_000,
            retry: RetryPolicy::default(),
        }
    }

    /// Read the configuration from Spin variables ([`vars`]).
    ///
    /// `Ok(None)` — offline mode — when the endpoint or the key is empty or
    /// undefined. With both set, the deployments are required and every
    /// optional variable must parse; a problem is [`Error::Unavailable`]
    /// naming the variable (never a secret value).
    pub async fn from_config(config: &impl Config) -> Result<Option<Self>> {
        let endpoint = read(config, vars::ENDPOINT).await?;
        let api_key = read(config, vars::API_KEY).await?;
        if endpoint.is_empty() || api_key.is_empty() {
            return Ok(None);
        }
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(misconfigured(vars::ENDPOINT, "must be an http(s) URL"));
        }
        let chat = required(config, vars::CHAT_DEPLOYMENT).await?;
        let embedding = required(config, vars::EMBEDDING_DEPLOYMENT).await?;
        let mut out = match read(config, vars::PROVIDER).await?.as_str() {
            "" | "azure" => Self::azure(&endpoint, &api_key, &chat, &embedding),
            "openai_compatible" => Self::openai_compatible(&endpoint, &api_key, &chat, &embedding),
            _ => {
                return Err(misconfigured(
                    vars::PROVIDER,
                    "must be \"azure\" or \"openai_compatible\"",
                ));
            }
        };
        let api_version = read(config, vars::API_VERSION).await?;
        if !api_version.is_empty() {
            out.api_version = api_version;
        }
        let model = read(config, vars::EMBEDDING_MODEL).await?;
        if !model.is_empty() {
            out.embedding_model = model;
        }
        out.embedding_dimensions = number(config, vars::EMBEDDING_DIMENSIONS).await?;
        if let Some(ms) = number(config, vars::EMBEDDING_TIMEOUT_MS).await? {
            out.embedding_timeout_ms = ms;
        }
        if let Some(ms) = number(config, vars::CHAT_TIMEOUT_MS).await? {
            out.chat_timeout_ms = ms;
        }
        if let Some(ms) = number(config, vars::RETRY_BUDGET_MS).await? {
            out.retry.budget_ms = ms;
        }
        if let Some(n) = number(config, vars::MAX_ATTEMPTS).await? {
            out.retry.max_attempts = n;
        }
        if let Some(n) = number(config, vars::EMBEDDING_BATCH_TOKENS).await? {
            out.embedding_limits.max_request_tokens = n;
        }
        out.validate()?;
        Ok(Some(out))
    }

    /// Check the invariants the clients rely on.
    pub fn validate(&self) -> Result<()> {
        if self.embedding_dimensions == Some(0) {
            return Err(misconfigured(
                vars::EMBEDDING_DIMENSIONS,
                "must be at least 1",
            ));
        }
        if self.embedding_dimensions.is_some() && !accepts_dimensions(&self.embedding_model) {
            return Err(misconfigured(
                vars::EMBEDDING_DIMENSIONS,
                &format!(
                    "only text-embedding-3-* models accept dimensions, and the model is {:?} \
                     (set {} if the deployment's name is not the model's)",
                    self.embedding_model,
                    vars::EMBEDDING_MODEL
                ),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(misconfigured(vars::MAX_ATTEMPTS, "must be at least 1"));
        }
        let limits = &self.embedding_limits;
        if limits.max_inputs == 0 || limits.max_input_tokens == 0 {
            return Err(Error::Internal("embedding limits must be positive".into()));
        }
        if limits.max_request_tokens < limits.max_input_tokens {
            return Err(misconfigured(
                vars::EMBEDDING_BATCH_TOKENS,
                &format!(
                    "must be at least the per-input limit ({} tokens)",
                    limits.max_input_tokens
                ),
            ));
        }
        Ok(())
    }

    /// The name the embeddings are cached under: the model, plus `@dims`
    /// when a vector length is requested (different lengths never mix).
    pub fn embedding_cache_model(&self) -> String {
        match self.embedding_dimensions {
            Some(d) => format!("{}@{d}", self.embedding_model),
            None => self.embedding_model.clone(),
        }
    }
}

/// Whether `model` accepts the `dimensions` argument.
pub fn accepts_dimensions(model: &str) -> bool {
    model.starts_with("text-embedding-3")
}

fn trim_base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

fn misconfigured(name: &str, why: &str) -> Error {
    Error::Unavailable(format!("variable {name} {why}"))
}

async fn read(config: &impl Config, name: &str) -> Result<String> {
    Ok(config
        .get(name)
        .await?
        .map(|v| v.trim().to_owned())
        .unwrap_or_default())
}

async fn required(config: &impl Config, name: &str) -> Result<String> {
    let value = read(config, name).await?;
    if value.is_empty() {
        return Err(misconfigured(
            name,
            "must be set when the endpoint and key are",
        ));
    }
    Ok(value)
}

async fn number<N: std::str::FromStr>(config: &impl Config, name: &str) -> Result<Option<N>> {
    let value = read(config, name).await?;
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| misconfigured(name, "must be a non-negative integer"))
}
