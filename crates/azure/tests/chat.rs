//! The chat client, streamed and not, against scripted HTTP.

mod common;

use common::{KEY, NOW, azure_error, body, config, json};
use futures::executor::block_on;
use ragspin_azure::{AzureConfig, ChatClient, FinishReason, StreamEvent};
use ragspin_core::{ChatMessage, ChatModel, ChatRequest, Error, HttpResponse, Role, Usage};
use ragspin_testkit::{InstantTimer, ManualClock, ScriptedHttp};

const AZURE_STREAM: &str = include_str!("fixtures/azure-chat-stream.sse");

type Client = ChatClient<ScriptedHttp, ManualClock, InstantTimer>;

fn client(config: &AzureConfig) -> Client {
    ChatClient::new(
        config,
        ScriptedHttp::new(),
        ManualClock::new(NOW),
        InstantTimer::new(),
    )
    .with_jitter_seed(3)
}

fn question() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(
                Role::System,
                "Answer from the sources.\n[1] The café opens at 8.",
            ),
            ChatMessage::new(Role::User, "When does the café open?"),
        ],
        max_tokens: Some(200),
        temperature: None,
    }
}

fn completion(content: &str, finish: &str) -> HttpResponse {
    json(
        200,
        &serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": content},
                "content_filter_results": {}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}
        }),
    )
}

fn sse(body: &str) -> HttpResponse {
    HttpResponse::new(200, "text/event-stream", body)
}

#[test]
fn sends_only_the_options_that_are_set() {
    let client = client(&config());
    let request = client.request_for(&question(), false).unwrap();
    assert_eq!(
        request.url,
        "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some(KEY));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(
        body(&request),
        serde_json::json!({
            "messages": [
                {"role": "system", "content": "Answer from the sources.\n[1] The café opens at 8."},
                {"role": "user", "content": "When does the café open?"}
            ],
            "max_tokens": 200
        })
    );
}

#[test]
fn asks_for_server_sent_events_with_usage_when_streaming() {
    let client = client(&config());
    let request = client.request_for(&question(), true).unwrap();
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    let body = body(&request);
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["stream_options"],
        serde_json::json!({"include_usage": true})
    );
}

#[test]
fn refuses_a_conversation_without_messages() {
    let client = client(&config());
    let empty = ChatRequest {
        messages: vec![],
        max_tokens: None,
        temperature: None,
    };
    assert!(matches!(
        block_on(client.complete(&empty)),
        Err(Error::Validation { .. })
    ));
    assert!(client.http().requests().is_empty());
}

#[test]
fn completes_and_reports_usage() {
    let client = client(&config());
    client.http().push(completion("At 8 [1].", "stop"));
    let answer = block_on(client.complete(&question())).unwrap();
    assert_eq!(answer.content, "At 8 [1].");
    assert_eq!(
        answer.usage,
        Usage {
            prompt_tokens: 30,
            completion_tokens: 8
        }
    );
    let stats = client.stats();
    assert_eq!((stats.prompt_tokens, stats.completion_tokens), (30, 8));
}

#[test]
fn keeps_an_answer_cut_by_max_tokens_and_says_why() {
    let client = client(&config());
    client.http().push(completion("At", "length"));
    let answer = block_on(client.answer(&question())).unwrap();
    assert_eq!(answer.finish_reason, Some(FinishReason::Length));
    client.http().push(completion("At", "length"));
    assert_eq!(
        block_on(client.complete(&question())).unwrap().content,
        "At"
    );
}

#[test]
fn a_completion_stopped_by_the_content_filter_is_an_upstream_error() {
    let client = client(&config());
    client.http().push(completion("", "content_filter"));
    let error = block_on(client.complete(&question())).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("content filter")),
        "{error:?}"
    );
}

#[test]
fn a_prompt_rejected_by_the_content_filter_is_an_upstream_error_naming_it() {
    let client = client(&config());
    client.http().push(json(
        400,
        &serde_json::json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"violence": {"filtered": true, "severity": "high"}}}
        }}),
    ));
    let error = block_on(client.complete(&question())).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("blocked by Azure OpenAI's content filter") && m.contains("content_filter")),
        "{error:?}"
    );
    assert_eq!(client.http().requests().len(), 1);
}

#[test]
fn streams_an_azure_answer_event_by_event() {
    let client = client(&config());
    client.http().push(sse(AZURE_STREAM));
    let mut seen = Vec::new();
    let answer = block_on(client.stream(&question(), |e| seen.push(e.clone()))).unwrap();
    assert_eq!(answer.content, "The café opens at 8 [1].");
    assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        answer.usage,
        Usage {
            prompt_tokens: 41,
            completion_tokens: 9
        }
    );
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.last(), Some(&StreamEvent::Done));
    assert_eq!(client.stats().completion_tokens, 9);
}

#[test]
fn retries_a_rate_limited_stream_before_its_first_byte() {
    let client = client(&config());
    client
        .http()
        .push(azure_error(429, "429", "limit").with_header("retry-after-ms", "40"));
    client.http().push(sse(AZURE_STREAM));
    let answer = block_on(client.stream(&question(), |_| {})).unwrap();
    assert_eq!(answer.content, "The café opens at 8 [1].");
    assert_eq!(client.timer().sleeps(), [40]);
}

#[test]
fn a_stream_cut_before_done_fails_after_delivering_what_arrived() {
    let client = client(&config());
    // Cut after the first content chunk, at an event boundary.
    let first_content = AZURE_STREAM.find("The café").unwrap();
    let cut = first_content + AZURE_STREAM[first_content..].find("\n\n").unwrap() + 2;
    client.http().push(sse(&AZURE_STREAM[..cut]));
    let mut seen = Vec::new();
    let error = block_on(client.stream(&question(), |e| seen.push(e.clone()))).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("[DONE]") && m.contains("gpt-4o-mini")),
        "{error:?}"
    );
    assert_eq!(seen[0], StreamEvent::Content("The café".into()));
    assert!(
        matches!(seen.last(), Some(StreamEvent::Failed(_))),
        "{seen:?}"
    );
    assert_eq!(client.stats().failures, 1);

    // Cut inside a chunk: also an upstream error.
    client
        .http()
        .push(sse(&AZURE_STREAM[..AZURE_STREAM.find(" opens").unwrap()]));
    let error = block_on(client.stream(&question(), |_| {})).unwrap_err();
    assert!(matches!(error, Error::Upstream(_)), "{error:?}");
}

#[test]
fn accepts_a_plain_json_answer_to_a_streaming_request() {
    let client = client(&config());
    client.http().push(completion("At 8 [1].", "stop"));
    let mut seen = Vec::new();
    let answer = block_on(client.stream(&question(), |e| seen.push(e.clone()))).unwrap();
    assert_eq!(answer.content, "At 8 [1].");
    assert_eq!(
        seen.first(),
        Some(&StreamEvent::Content("At 8 [1].".into()))
    );
    assert_eq!(seen.last(), Some(&StreamEvent::Done));
}

#[test]
fn a_streamed_content_filter_finish_is_reported_not_failed() {
    let client = client(&config());
    client.http().push(sse(concat!(
        "data: {\"choices\":[],\"prompt_filter_results\":[]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Part\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n",
        "data: [DONE]\n\n"
    )));
    let answer = block_on(client.stream(&question(), |_| {})).unwrap();
    assert_eq!(answer.finish_reason, Some(FinishReason::ContentFilter));
    assert_eq!(answer.content, "Part");
}

#[test]
fn openai_compatible_chat_names_the_model_and_uses_a_bearer() {
    let config =
        AzureConfig::openai_compatible("http://127.0.0.1:8080/", "tok-abcdef", "llama3", "nomic");
    let client = client(&config);
    let request = client.request_for(&question(), true).unwrap();
    assert_eq!(request.url, "http://127.0.0.1:8080/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer tok-abcdef"));
    assert_eq!(body(&request)["model"], "llama3");
}
