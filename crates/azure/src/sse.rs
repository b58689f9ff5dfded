//! Server-Sent Events, in two pure, incremental layers:
//!
//! * [`SseDecoder`]: bytes → [`SseMessage`]s, following the WHATWG event
//!   stream rules (`\n`, `\r\n` or `\r` line ends, `data:` lines joined with
//!   `\n`, comments, a blank line dispatches), for chunks split anywhere —
//!   inside a line, a UTF-8 character or a `\r\n`.
//! * [`SseParser`]: the chat-completions stream on top of it →
//!   [`StreamEvent`]s: content pieces, the finish reason, usage, `[DONE]`,
//!   tolerating Azure's extras (a first chunk with empty `choices` and
//!   `prompt_filter_results`, `content_filter_results` on chunks, a final
//!   usage chunk with empty `choices`).

use ragspin_core::{Error, Usage};
use serde::Deserialize;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// The `event:` field, if any (`None` means the default, `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Incremental SSE framing.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    started: bool,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        self.buffer.extend_from_slice(bytes);
        self.drain(false)
    }

    /// The stream ended: complete a last line without its line end, and
    /// dispatch an event that lacks its closing blank line. (The WHATWG
    /// rules drop such an event; servers that end with `data: [DONE]\n`
    /// are common enough to be lenient.)
    pub fn finish(&mut self) -> Vec<SseMessage> {
        let mut out = self.drain(true);
        if self.has_data {
            out.push(SseMessage {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.has_data = false;
        self.event = None;
        out
    }

    fn drain(&mut self, at_end: bool) -> Vec<SseMessage> {
        let mut out = Vec::new();
        let mut consumed = 0;
        loop {
            let rest = &self.buffer[consumed..];
            let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if at_end && !rest.is_empty() {
                    let line = rest.to_vec();
                    consumed = self.buffer.len();
                    self.line(&line, &mut out);
                }
                break;
            };
            let end_len = if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A `\r` at the end of the buffer may be half of `\r\n`.
                    None if at_end => 1,
                    None => break,
                }
            } else {
                1
            };
            let line = rest[..pos].to_vec();
            consumed += pos + end_len;
            self.line(&line, &mut out);
        }
        self.buffer.drain(..consumed);
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseMessage>) {
        let mut line = String::from_utf8_lossy(line).into_owned();
        if !self.started {
            self.started = true;
            if let Some(stripped) = line.strip_prefix('\u{feff}') {
                line = stripped.to_owned();
            }
        }
        if line.is_empty() {
            if self.has_data {
                out.push(SseMessage {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.data.clear();
            self.has_data = false;
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` matter for reconnecting, which we never do.
            _ => {}
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The completion was filtered (Azure content filter).
    ContentFilter,
    /// The model wants to call tools.
    ToolCalls,
    /// Anything else, verbatim.
    Other(String),
}

impl FinishReason {
    /// Parse the wire value.
    pub fn parse(value: &str) -> Self {
        match value {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "content_filter" => Self::ContentFilter,
            "tool_calls" | "function_call" => Self::ToolCalls,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// What a chat-completions stream says, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of the answer (never empty).
    Content(String),
    /// The model stopped (choice 0).
    Finish(FinishReason),
    /// Token usage (sent when `stream_options.include_usage` was asked).
    Usage(Usage),
    /// `data: [DONE]`: the stream is complete; nothing follows.
    Done,
    /// An error object in the stream, or a chunk that is not valid JSON;
    /// the parser ignores everything after it.
    Failed(Error),
}

/// Incremental parser of a chat-completions SSE stream.
///
/// ```
/// use ragspin_azure::{SseParser, StreamEvent};
/// let mut parser = SseParser::new();
/// let mut events = parser.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel");
/// events.extend(parser.push(b"lo\"}}]}\n\ndata: [DONE]\n\n"));
/// assert_eq!(events, [StreamEvent::Content("Hello".into()), StreamEvent::Done]);
/// ```
#[derive(Debug, Default)]
pub struct SseParser {
    decoder: SseDecoder,
    done: bool,
    failed: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
    #[serde(default)]
    error: Option<ChunkError>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[derive(Deserialize)]
struct ChunkError {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `[DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feed the next bytes of the body; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        if self.done || self.failed {
            return Vec::new();
        }
        let messages = self.decoder.push(bytes);
        self.events(messages)
    }

    /// The body ended. Completes a last unterminated line; a stream that
    /// ends without `[DONE]` (and without an earlier failure) yields
    /// [`StreamEvent::Failed`] — the answer may be cut short.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        if self.done || self.failed {
            return Vec::new();
        }
        let messages = self.decoder.finish();
        let mut events = self.events(messages);
        if !self.done && !self.failed {
            self.failed = true;
            events.push(StreamEvent::Failed(Error::Upstream(
                "chat stream ended before data: [DONE]".into(),
            )));
        }
        events
    }

    fn events(&mut self, messages: Vec<SseMessage>) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        for message in messages {
            if self.done || self.failed {
                break;
            }
            self.message(message, &mut events);
        }
        events
    }

    fn message(&mut self, message: SseMessage, events: &mut Vec<StreamEvent>) {
        let data = message.data.trim();
        if data == "[DONE]" {
            self.done = true;
            events.push(StreamEvent::Done);
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.failed = true;
                events.push(StreamEvent::Failed(Error::Upstream(format!(
                    "chat stream: a chunk is not valid JSON ({e})"
                ))));
                return;
            }
        };
        if let Some(error) = chunk.error {
            self.failed = true;
            let code = match error.code {
                Some(serde_json::Value::String(s)) => s,
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => "unknown".to_owned(),
            };
            events.push(StreamEvent::Failed(Error::Upstream(format!(
                "chat stream: error {code:?}: {}",
                error.message.unwrap_or_default()
            ))));
            return;
        }
        // Azure's first chunk has `choices: []` (prompt_filter_results only),
        // and the usage chunk too; only choice 0 is followed.
        if let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) {
            if let Some(content) = choice.delta.and_then(|d| d.content)
                && !content.is_empty()
            {
                events.push(StreamEvent::Content(content));
            }
            if let Some(reason) = choice.finish_reason {
                events.push(StreamEvent::Finish(FinishReason::parse(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            events.push(StreamEvent::Usage(Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            }));
        }
    }
}
