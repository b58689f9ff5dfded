#![allow(async_fn_in_trait)]
//! The models a query uses, behind one trait: [`Models`] embeds the
//! question and asks the chat model, whole or streamed.
//!
//! [`AzureModels`] implements it over `ragspin-azure` and the ports. Whole
//! answers go through `ChatClient::answer` (retries inside). Streamed ones
//! need the body as it arrives, which the `HttpClient` port cannot give, so
//! they are sent over the [`StreamingHttpClient`] port: the request is
//! built by `ChatClient::request_for`, sent with the same retry rules
//! (408/429/5xx and transport failures retried before the first byte,
//! waiting what the server asks or a jittered backoff, within the policy's
//! attempts and budget) and parsed by the incremental `SseParser`.
//! [`Offline`] is the model-less mode.

use std::collections::VecDeque;

use ragspin_azure::{
    AzureConfig, ChatAnswer, ChatClient, EmbeddingsClient, Jitter, SseParser, StreamEvent,
    backoff_delay_ms, is_retryable_status, server_delay_ms,
};
use ragspin_core::{
    BodyStream, ChatRequest, Clock, Embedder, Error, HttpClient, HttpRequest, HttpResponse, Result,
    StreamingHttpClient, Timer, with_timeout,
};
use ragspin_index::IndexSettings;

/// A streamed chat answer, event by event.
pub trait ChatEvents {
    /// The next event; `None` after the last. Cancel-safe.
    async fn next(&mut self) -> Option<StreamEvent>;
}

/// What a query needs from the models.
pub trait Models {
    /// The events of a streamed answer.
    type Events: ChatEvents;
    /// Whether models are configured at all (false = offline mode).
    fn online(&self) -> bool;
    /// The chat deployment, when online.
    fn chat_deployment(&self) -> Option<String>;
    /// The embedding deployment used for an index with `settings`.
    fn embedding_deployment(&self, settings: &IndexSettings) -> Option<String>;
    /// Embed `text` as the index's documents were embedded.
    async fn embed(&self, settings: &IndexSettings, text: &str) -> Result<Vec<f32>>;
    /// The whole answer.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatAnswer>;
    /// The answer as it is generated.
    async fn stream(&self, request: &ChatRequest) -> Result<Self::Events>;
}

/// No models: offline mode (BM25 retrieval, extractive answers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

/// Never produced.
#[derive(Debug)]
pub struct NoEvents;

impl ChatEvents for NoEvents {
    async fn next(&mut self) -> Option<StreamEvent> {
        None
    }
}

fn offline() -> Error {
    Error::Unavailable("no model is configured (offline mode)".into())
}

impl Models for Offline {
    type Events = NoEvents;
    fn online(&self) -> bool {
        false
    }
    fn chat_deployment(&self) -> Option<String> {
        None
    }
    fn embedding_deployment(&self, _: &IndexSettings) -> Option<String> {
        None
    }
    async fn embed(&self, _: &IndexSettings, _: &str) -> Result<Vec<f32>> {
        Err(offline())
    }
    async fn complete(&self, _: &ChatRequest) -> Result<ChatAnswer> {
        Err(offline())
    }
    async fn stream(&self, _: &ChatRequest) -> Result<NoEvents> {
        Err(offline())
    }
}

/// `None` is offline mode.
impl<M: Models> Models for Option<M> {
    type Events = M::Events;
    fn online(&self) -> bool {
        self.as_ref().is_some_and(Models::online)
    }
    fn chat_deployment(&self) -> Option<String> {
        self.as_ref().and_then(Models::chat_deployment)
    }
    fn embedding_deployment(&self, settings: &IndexSettings) -> Option<String> {
        self.as_ref().and_then(|m| m.embedding_deployment(settings))
    }
    async fn embed(&self, settings: &IndexSettings, text: &str) -> Result<Vec<f32>> {
        match self {
            Some(m) => m.embed(settings, text).await,
            None => Err(offline()),
        }
    }
    async fn complete(&self, request: &ChatRequest) -> Result<ChatAnswer> {
        match self {
            Some(m) => m.complete(request).await,
            None => Err(offline()),
        }
    }
    async fn stream(&self, request: &ChatRequest) -> Result<M::Events> {
        match self {
            Some(m) => m.stream(request).await,
            None => Err(offline()),
        }
    }
}

/// Lends a port by reference (the Azure clients take their ports by value).
struct By<'a, P>(&'a P);

impl<P: HttpClient> HttpClient for By<'_, P> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.0.send(request).await
    }
}

impl<P: Clock> Clock for By<'_, P> {
    fn now_unix_ms(&self) -> u64 {
        self.0.now_unix_ms()
    }
}

impl<P: Timer> Timer for By<'_, P> {
    async fn sleep(&self, ms: u64) {
        self.0.sleep(ms).await;
    }
}

/// Azure OpenAI (or an OpenAI-compatible server) over the ports.
pub struct AzureModels<H, C, T> {
    config: AzureConfig,
    http: H,
    clock: C,
    timer: T,
}

impl<H, C, T> AzureModels<H, C, T>
where
    H: HttpClient + StreamingHttpClient,
    C: Clock,
    T: Timer,
{
    /// Models of `config` over the given ports.
    pub fn new(config: AzureConfig, http: H, clock: C, timer: T) -> Self {
        Self {
            config,
            http,
            clock,
            timer,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AzureConfig {
        &self.config
    }

    /// The HTTP port (tests inspect it).
    pub fn http(&self) -> &H {
        &self.http
    }

    fn chat(&self) -> ChatClient<By<'_, H>, By<'_, C>, By<'_, T>> {
        ChatClient::new(
            &self.config,
            By(&self.http),
            By(&self.clock),
            By(&self.timer),
        )
    }

    fn embedding_config(&self, settings: &IndexSettings) -> AzureConfig {
        let mut config = self.config.clone();
        if !settings.embedding_deployment.is_empty() {
            config.embedding_deployment = settings.embedding_deployment.clone();
            config.embedding_model = settings.embedding_deployment.clone();
        }
        if settings.dimensions.is_some() {
            config.embedding_dimensions = settings.dimensions;
        }
        config
    }

    /// Send `request` for a streamed answer, retrying transient failures
    /// before the first byte; returns the 2xx body.
    async fn open(&self, request: HttpRequest) -> Result<H::Body> {
        let policy = self.config.retry;
        let start = self.clock.now_unix_ms();
        let mut jitter = Jitter::new(start);
        let mut waited: u64 = 0;
        let mut attempt: u32 = 0;
        let what = format!("chat (deployment {:?})", self.config.chat_deployment);
        loop {
            attempt += 1;
            let spent = self.clock.now_unix_ms().saturating_sub(start).max(waited);
            let timeout = self
                .config
                .chat_timeout_ms
                .min(policy.budget_ms.saturating_sub(spent))
                .max(1);
            let outcome = with_timeout(&self.timer, timeout, self.http.open(request.clone())).await;
            let (failure, hint) = match outcome {
                Ok((head, body)) if (200..300).contains(&head.status) => return Ok(body),
                Ok((head, _)) if is_retryable_status(head.status) => {
                    let failure = if head.status == 429 {
                        Error::Unavailable(format!("{what}: the server is rate limiting (429)"))
                    } else {
                        Error::Unavailable(format!("{what}: the server failed ({})", head.status))
                    };
                    (failure, server_delay_ms(&head.headers))
                }
                Ok((head, mut body)) => {
                    let mut text = Vec::new();
                    while let Some(Ok(piece)) = body.next().await {
                        text.extend_from_slice(&piece);
                        if text.len() > 4096 {
                            break;
                        }
                    }
                    let text = String::from_utf8_lossy(&text);
                    let filtered = text.contains("content_filter");
                    return Err(Error::Upstream(format!(
                        "{what}: the server rejected the request ({}{})",
                        head.status,
                        if filtered { ", content filter" } else { "" }
                    )));
                }
                Err(e @ Error::Timeout(_)) => (e, None),
                Err(Error::Upstream(m)) => (
                    Error::Unavailable(format!("{what}: cannot reach the server ({m})")),
                    None,
                ),
                Err(e) => return Err(e),
            };
            if attempt >= policy.max_attempts {
                return Err(failure);
            }
            let delay =
                hint.unwrap_or_else(|| backoff_delay_ms(&policy, attempt - 1, jitter.next_u64()));
            let spent = self.clock.now_unix_ms().saturating_sub(start).max(waited);
            if spent.saturating_add(delay) >= policy.budget_ms {
                return Err(failure);
            }
            self.timer.sleep(delay).await;
            waited += delay;
        }
    }
}

/// A streamed chat answer parsed from SSE as the bytes arrive.
pub struct SseEvents<B> {
    body: B,
    parser: SseParser,
    pending: VecDeque<StreamEvent>,
    ended: bool,
}

impl<B: BodyStream> SseEvents<B> {
    /// Events of `body`.
    pub fn new(body: B) -> Self {
        Self {
            body,
            parser: SseParser::new(),
            pending: VecDeque::new(),
            ended: false,
        }
    }
}

impl<B: BodyStream> ChatEvents for SseEvents<B> {
    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            // State changes only after the await: cancel-safe.
            match self.body.next().await {
                Some(Ok(bytes)) => self.pending.extend(self.parser.push(&bytes)),
                Some(Err(e)) => {
                    self.ended = true;
                    return Some(StreamEvent::Failed(e));
                }
                None => {
                    self.ended = true;
                    self.pending.extend(self.parser.finish());
                }
            }
        }
    }
}

impl<H, C, T> Models for AzureModels<H, C, T>
where
    H: HttpClient + StreamingHttpClient,
    C: Clock,
    T: Timer,
{
    type Events = SseEvents<H::Body>;

    fn online(&self) -> bool {
        true
    }

    fn chat_deployment(&self) -> Option<String> {
        Some(self.config.chat_deployment.clone())
    }

    fn embedding_deployment(&self, settings: &IndexSettings) -> Option<String> {
        Some(self.embedding_config(settings).embedding_cache_model())
    }

    async fn embed(&self, settings: &IndexSettings, text: &str) -> Result<Vec<f32>> {
        let config = self.embedding_config(settings);
        let client =
            EmbeddingsClient::new(&config, By(&self.http), By(&self.clock), By(&self.timer));
        client
            .embed(&[text.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| Error::Upstream("embeddings: no vector returned".into()))
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatAnswer> {
        self.chat().answer(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<Self::Events> {
        let http_request = self.chat().request_for(request, true)?;
        Ok(SseEvents::new(self.open(http_request).await?))
    }
}
