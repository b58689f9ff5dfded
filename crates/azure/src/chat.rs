//! [`ChatClient`]: the `ChatModel` port over chat completions, plus the
//! streaming variant.

use ragspin_core::{
    ChatCompletion, ChatModel, ChatRequest, Clock, Error, HttpClient, HttpRequest, Result, Role,
    Timer, Usage,
};
use serde::{Deserialize, Serialize};

use crate::config::AzureConfig;
use crate::sse::{FinishReason, SseParser, StreamEvent};
use crate::transport::{CallStats, Operation, Target, Transport};

/// A whole answer with why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAnswer {
    /// The generated text.
    pub content: String,
    /// Why the model stopped (`None` if the server did not say).
    pub finish_reason: Option<FinishReason>,
    /// Token usage (zero if the server did not report it).
    pub usage: Usage,
}

/// Bytes handed to the SSE parser at a time when a whole streamed body is
/// replayed (see [`ChatClient::stream`]).
const REPLAY_PIECE: usize = 512;

/// Chats with one Azure OpenAI (or OpenAI-compatible) deployment.
///
/// Non-streaming calls ([`ChatModel::complete`], [`ChatClient::answer`]) and
/// streaming ones ([`ChatClient::stream`]) share the retry policy: transient
/// failures are retried before the first byte of an answer is used.
pub struct ChatClient<H, C, T> {
    transport: Transport<H, C, T>,
    target: Target,
    what: String,
    timeout_ms: u64,
}

#[derive(Serialize)]
struct ChatBody<'a> {
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatAnswerWire {
    #[serde(default)]
    choices: Vec<ChoiceWire>,
    #[serde(default)]
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct ChoiceWire {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    message: Option<MessageWire>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageWire {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

impl<H: HttpClient, C: Clock, T: Timer> ChatClient<H, C, T> {
    /// A client for `config.chat_deployment` over the given ports.
    pub fn new(config: &AzureConfig, http: H, clock: C, timer: T) -> Self {
        let deployment = &config.chat_deployment;
        Self {
            transport: Transport::new(config, http, clock, timer),
            target: Target::new(config, deployment, Operation::ChatCompletions),
            what: format!("chat (deployment {deployment:?})"),
            timeout_ms: config.chat_timeout_ms,
        }
    }

    /// Seed the backoff jitter (the default seed is the clock's time).
    #[must_use]
    pub fn with_jitter_seed(self, seed: u64) -> Self {
        self.transport.reseed(seed);
        self
    }

    /// Counters since creation.
    pub fn stats(&self) -> CallStats {
        self.transport.stats()
    }

    /// The HTTP port (tests inspect the requests sent).
    pub fn http(&self) -> &H {
        &self.transport.http
    }

    /// The timer port (tests inspect the waits).
    pub fn timer(&self) -> &T {
        &self.transport.timer
    }

    /// The HTTP request for `request`; with `stream`, an SSE request
    /// (`"stream": true, "stream_options": {"include_usage": true}`,
    /// `accept: text/event-stream`). Only the arguments Azure documents are
    /// sent; unset options are left out.
    pub fn request_for(&self, request: &ChatRequest, stream: bool) -> Result<HttpRequest> {
        if request.messages.is_empty() {
            return Err(Error::validation("messages", "must not be empty"));
        }
        let body = ChatBody {
            messages: request
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: role(m.role),
                    content: &m.content,
                })
                .collect(),
            model: self.target.body_model.as_deref(),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| Error::Internal(format!("serialize chat request: {e}")))?;
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        Ok(self.target.post(body, accept))
    }

    /// The whole answer, with its finish reason, without streaming.
    pub async fn answer(&self, request: &ChatRequest) -> Result<ChatAnswer> {
        let http_request = self.request_for(request, false)?;
        let response = self
            .transport
            .send(&self.what, &self.target, http_request, self.timeout_ms)
            .await?;
        let answer = self
            .parse_answer(&response.body)
            .map_err(|e| self.transport.fail(e))?;
        self.count(answer.usage);
        Ok(answer)
    }

    /// Ask for a streamed answer and hand each [`StreamEvent`] to `on_event`
    /// as it is parsed; returns the assembled answer.
    ///
    /// The `HttpClient` port returns whole bodies, so today the events are
    /// produced once the body has arrived (it is fed to the incremental
    /// [`SseParser`] piece by piece, exactly as a streaming transport would).
    /// A server that ignores `stream` and answers plain JSON is accepted.
    /// A stream that fails or ends without `[DONE]` is
    /// [`Error::Upstream`] after the events already delivered; a
    /// `content_filter` finish is not an error (see
    /// [`ChatAnswer::finish_reason`]).
    pub async fn stream(
        &self,
        request: &ChatRequest,
        mut on_event: impl FnMut(&StreamEvent),
    ) -> Result<ChatAnswer> {
        let http_request = self.request_for(request, true)?;
        let response = self
            .transport
            .send(&self.what, &self.target, http_request, self.timeout_ms)
            .await?;
        let is_json = response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        if is_json {
            let answer = self
                .parse_answer(&response.body)
                .map_err(|e| self.transport.fail(e))?;
            if !answer.content.is_empty() {
                on_event(&StreamEvent::Content(answer.content.clone()));
            }
            if let Some(reason) = &answer.finish_reason {
                on_event(&StreamEvent::Finish(reason.clone()));
            }
            on_event(&StreamEvent::Usage(answer.usage));
            on_event(&StreamEvent::Done);
            self.count(answer.usage);
            return Ok(answer);
        }
        let mut parser = SseParser::new();
        let mut answer = ChatAnswer {
            content: String::new(),
            finish_reason: None,
            usage: Usage::default(),
        };
        let pieces = response
            .body
            .chunks(REPLAY_PIECE)
            .map(|piece| parser.push(piece));
        let mut events: Vec<StreamEvent> = pieces.flatten().collect();
        events.extend(parser.finish());
        for event in &events {
            on_event(event);
            match event {
                StreamEvent::Content(piece) => answer.content.push_str(piece),
                StreamEvent::Finish(reason) => answer.finish_reason = Some(reason.clone()),
                StreamEvent::Usage(usage) => answer.usage = *usage,
                StreamEvent::Done => {}
                StreamEvent::Failed(error) => {
                    let error = match error {
                        Error::Upstream(m) => {
                            Error::Upstream(format!("{}: {}", self.what, self.transport.scrub(m)))
                        }
                        other => other.clone(),
                    };
                    return Err(self.transport.fail(error));
                }
            }
        }
        self.count(answer.usage);
        Ok(answer)
    }

    fn count(&self, usage: Usage) {
        self.transport.record(|s| {
            s.prompt_tokens += u64::from(usage.prompt_tokens);
            s.completion_tokens += u64::from(usage.completion_tokens);
        });
    }

    fn parse_answer(&self, body: &[u8]) -> Result<ChatAnswer> {
        let malformed =
            |why: String| Error::Upstream(format!("{}: malformed answer: {why}", self.what));
        let wire: ChatAnswerWire = serde_json::from_slice(body)
            .map_err(|e| malformed(self.transport.scrub(&e.to_string())))?;
        let choice = wire
            .choices
            .into_iter()
            .find(|c| c.index == 0)
            .ok_or_else(|| malformed("no choices".into()))?;
        Ok(ChatAnswer {
            content: choice.message.and_then(|m| m.content).unwrap_or_default(),
            finish_reason: choice.finish_reason.as_deref().map(FinishReason::parse),
            usage: wire.usage.map_or_else(Usage::default, |u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            }),
        })
    }
}

impl<H: HttpClient, C: Clock, T: Timer> ChatModel for ChatClient<H, C, T> {
    /// The answer's text. A completion stopped by the content filter is
    /// [`Error::Upstream`] (its partial text is not an answer); one cut by
    /// `max_tokens` is returned as is.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatCompletion> {
        let answer = self.answer(request).await?;
        if answer.finish_reason == Some(FinishReason::ContentFilter) {
            return Err(self.transport.fail(Error::Upstream(format!(
                "{}: the completion was stopped by the content filter (finish_reason \
                 content_filter)",
                self.what
            ))));
        }
        Ok(ChatCompletion {
            content: answer.content,
            usage: answer.usage,
        })
    }
}
