//! The OpenAI-compatible face of `/v1/query`: `POST /v1/chat/completions`
//! with `model` naming the index.
//!
//! Request: `messages` (string content, or an array of `{"type":"text"}`
//! parts); the last `user` message is the question, earlier user/assistant
//! pairs are the conversation (system messages are ignored: ragspin uses
//! its own grounded prompt). `stream`, `stream_options.include_usage`,
//! `max_tokens` / `max_completion_tokens` and `temperature` are honoured;
//! other OpenAI arguments are accepted and ignored. Extensions: `top_k`,
//! `filter`, `session_id`.
//!
//! Response: a standard `chat.completion` plus two extension fields:
//! `citations` (the verified citations, as in `/v1/query`) and `ragspin`
//! (`found`, `degraded`, `degraded_reason`, `dropped_citations`,
//! `retrieval`, `provenance`, `index_version`, `cached`). Streamed, the
//! chunks are standard `chat.completion.chunk`s; the first carries
//! `ragspin.sources`, the one with `finish_reason` carries `citations` and
//! `ragspin`, a usage chunk (`choices: []`) follows when
//! `stream_options.include_usage` is set, then `data: [DONE]`.

use ragspin_core::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Answer, Event};
use crate::prompt::Turn;
use crate::service::QueryParams;
use crate::text::one_line;

#[derive(Deserialize)]
struct Request {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    filter: Value,
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

fn content_text(content: &Value) -> Result<String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")),
        _ => Err(Error::bad_field(
            "messages.content",
            "must be a string or an array of text parts",
        )),
    }
}

/// A decoded chat-completions request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCall {
    pub params: QueryParams,
    pub stream: bool,
    pub include_usage: bool,
}

/// Decode the body of `POST /v1/chat/completions`.
pub fn decode(body: &[u8]) -> Result<ChatCall> {
    let request: Request = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(Error::validation("n", "only n = 1 is supported"));
    }
    let mut turns: Vec<(String, String)> = Vec::new();
    for m in &request.messages {
        let text = content_text(&m.content)?;
        match m.role.as_str() {
            "user" | "assistant" => turns.push((m.role.clone(), text)),
            "system" | "developer" | "tool" => {}
            other => {
                return Err(Error::bad_field(
                    "messages.role",
                    format!("unknown role {other:?}"),
                ));
            }
        }
    }
    let Some(pos) = turns.iter().rposition(|(role, _)| role == "user") else {
        return Err(Error::validation("messages", "must contain a user message"));
    };
    let question = turns[pos].1.clone();
    let mut history = Vec::new();
    let mut pending: Option<String> = None;
    for (role, text) in &turns[..pos] {
        match role.as_str() {
            "user" => pending = Some(text.clone()),
            _ => {
                if let Some(q) = pending.take() {
                    history.push(Turn {
                        standalone: one_line(&q),
                        question: q,
                        answer: text.clone(),
                    });
                }
            }
        }
    }
    Ok(ChatCall {
        params: QueryParams {
            index: request.model,
            question,
            top_k: request.top_k,
            filter: request.filter,
            weights: None,
            session_id: request.session_id,
            history,
            max_tokens: request.max_completion_tokens.or(request.max_tokens),
            temperature: request.temperature,
        },
        stream: request.stream,
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
    })
}

fn finish_reason(answer: &Answer) -> &str {
    match answer.finish_reason.as_str() {
        "length" => "length",
        "content_filter" => "content_filter",
        _ => "stop",
    }
}

fn extension(answer: &Answer) -> Value {
    json!({
        "found": answer.found,
        "degraded": answer.degraded,
        "degraded_reason": answer.degraded_reason,
        "dropped_citations": answer.dropped_citations,
        "retrieval": answer.retrieval,
        "provenance": answer.provenance,
        "index_version": answer.index_version,
        "cached": answer.cached,
        "session_id": answer.session_id,
        "standalone_question": answer.standalone_question,
    })
}

fn usage(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "total_tokens": answer.usage.total_tokens,
    })
}

/// The `chat.completion` for `answer`.
pub fn completion(id: &str, created: u64, answer: &Answer) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": answer.index,
        "system_fingerprint": answer.provenance.prompt_version,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.answer},
            "finish_reason": finish_reason(answer),
            "logprobs": null,
        }],
        "usage": usage(answer),
        "citations": answer.citations,
        "ragspin": extension(answer),
    })
}

/// Turns [`Event`]s into `chat.completion.chunk` SSE frames.
#[derive(Debug, Clone)]
pub struct ChunkEncoder {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
}

fn data(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

impl ChunkEncoder {
    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    }

    /// The bytes for `event`.
    pub fn encode(&self, event: &Event) -> Vec<u8> {
        match event {
            Event::Sources(s) => {
                let mut chunk =
                    self.chunk(json!({"role": "assistant", "content": ""}), Value::Null);
                chunk["ragspin"] = json!({"sources": s.sources, "retrieval": s.retrieval, "index_version": s.index_version});
                data(&chunk)
            }
            Event::Delta(text) => data(&self.chunk(json!({"content": text}), Value::Null)),
            Event::Heartbeat => crate::sse::HEARTBEAT.to_vec(),
            Event::Done(answer) => {
                let mut chunk = self.chunk(json!({}), json!(finish_reason(answer)));
                chunk["citations"] = json!(answer.citations);
                chunk["ragspin"] = extension(answer);
                let mut out = data(&chunk);
                if self.include_usage {
                    out.extend(data(&json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage(answer),
                    })));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                out
            }
            Event::Error(body) => {
                let mut out = data(&json!(body));
                out.extend_from_slice(b"data: [DONE]\n\n");
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_the_question_and_earlier_pairs_the_history() {
        let body = json!({
            "model": "docs",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "What is X?"},
                {"role": "assistant", "content": "X is a thing [1]."},
                {"role": "user", "content": [{"type": "text", "text": "And Y?"}]}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 50,
            "top_k": 3,
            "user": "ignored"
        });
        let call = decode(body.to_string().as_bytes()).unwrap();
        assert!(call.stream && call.include_usage);
        assert_eq!(call.params.index, "docs");
        assert_eq!(call.params.question, "And Y?");
        assert_eq!(call.params.history.len(), 1);
        assert_eq!(call.params.history[0].question, "What is X?");
        assert_eq!(call.params.max_tokens, Some(50));
        assert_eq!(call.params.top_k, Some(3));
    }

    #[test]
    fn rejects_requests_without_a_user_message_or_with_unknown_roles() {
        let no_user = json!({"model": "docs", "messages": [{"role": "system", "content": "x"}]});
        assert!(matches!(
            decode(no_user.to_string().as_bytes()),
            Err(Error::Validation { .. })
        ));
        let bad_role = json!({"model": "docs", "messages": [{"role": "wizard", "content": "x"}]});
        assert!(matches!(
            decode(bad_role.to_string().as_bytes()),
            Err(Error::BadRequest { .. })
        ));
        assert!(decode(b"{").is_err());
    }
}
