//! `AzureModels` over scripted HTTP: streamed chat is parsed piece by piece
//! as the body arrives, transient failures before the first byte are
//! retried as the server asks, and giving up names the reason the service
//! degrades with.

use std::cell::RefCell;
use std::collections::VecDeque;

use futures::executor::block_on;
use ragspin_answer::models::{AzureModels, ChatEvents, Models};
use ragspin_answer::service::chat_failure_reason;
use ragspin_azure::{AzureConfig, StreamEvent};
use ragspin_core::{
    BodyStream, ChatMessage, ChatRequest, Error, HttpClient, HttpRequest, HttpResponse, Result,
    Role, StreamingHttpClient, Usage,
};
use ragspin_index::IndexSettings;
use ragspin_testkit::{InstantTimer, ManualClock};

type Scripted = Result<(HttpResponse, Vec<Vec<u8>>)>;

/// Answers from a queue; streamed bodies come in the scripted pieces.
#[derive(Default)]
struct ScriptedStreams {
    replies: RefCell<VecDeque<Scripted>>,
    requests: RefCell<Vec<HttpRequest>>,
}

struct Pieces(VecDeque<Vec<u8>>);

impl BodyStream for Pieces {
    async fn next(&mut self) -> Option<Result<Vec<u8>>> {
        self.0.pop_front().map(Ok)
    }
}

impl ScriptedStreams {
    fn push(&self, status: u16, headers: &[(&str, &str)], pieces: &[&str]) {
        let mut head = HttpResponse::new(status, "text/event-stream", Vec::new());
        for (n, v) in headers {
            head = head.with_header(n, *v);
        }
        let pieces = pieces.iter().map(|p| p.as_bytes().to_vec()).collect();
        self.replies.borrow_mut().push_back(Ok((head, pieces)));
    }

    fn next_reply(&self, request: HttpRequest) -> Scripted {
        self.requests.borrow_mut().push(request);
        self.replies
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(Error::Upstream("no scripted reply".into())))
    }
}

impl HttpClient for ScriptedStreams {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let (mut head, pieces) = self.next_reply(request)?;
        head.body = pieces.concat();
        Ok(head)
    }
}

impl StreamingHttpClient for ScriptedStreams {
    type Body = Pieces;
    async fn open(&self, request: HttpRequest) -> Result<(HttpResponse, Pieces)> {
        let (head, pieces) = self.next_reply(request)?;
        Ok((head, Pieces(pieces.into())))
    }
}

fn models() -> AzureModels<ScriptedStreams, ManualClock, InstantTimer> {
    let config = AzureConfig::azure(
        "https://res.openai.azure.com",
        "secret-key",
        "gpt-4o-mini",
        "emb",
    );
    AzureModels::new(
        config,
        ScriptedStreams::default(),
        ManualClock::new(1_000),
        InstantTimer::new(),
    )
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, "Hi?")],
        max_tokens: Some(10),
        temperature: Some(0.0),
    }
}

fn drain(mut events: impl ChatEvents) -> Vec<StreamEvent> {
    block_on(async {
        let mut out = Vec::new();
        while let Some(e) = events.next().await {
            out.push(e);
        }
        out
    })
}

#[test]
fn streams_deltas_parsed_from_pieces_split_anywhere() {
    let m = models();
    m.http().push(
        200,
        &[],
        &[
            "data: {\"choices\":[],\"prompt_filter_results\":[]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel",
            "lo\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n",
        ],
    );
    let events = drain(block_on(m.stream(&request())).unwrap());
    assert_eq!(events[0], StreamEvent::Content("Hello".into()));
    assert!(events.contains(&StreamEvent::Usage(Usage {
        prompt_tokens: 5,
        completion_tokens: 1
    })));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    let sent = &m.http().requests.borrow()[0];
    assert!(
        sent.url
            .contains("/openai/deployments/gpt-4o-mini/chat/completions?api-version=")
    );
    assert_eq!(sent.header("api-key"), Some("secret-key"));
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn retries_a_rate_limited_stream_waiting_what_the_server_asks() {
    let m = models();
    m.http().push(429, &[("retry-after-ms", "250")], &[]);
    m.http().push(503, &[], &[]);
    m.http().push(
        200,
        &[],
        &["data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n"],
    );
    let events = drain(block_on(m.stream(&request())).unwrap());
    assert_eq!(events[0], StreamEvent::Content("ok".into()));
    assert_eq!(m.http().requests.borrow().len(), 3);
}

#[test]
fn giving_up_on_a_stream_names_the_degradation_reason() {
    let m = models();
    for _ in 0..10 {
        m.http().push(429, &[("retry-after-ms", "10")], &[]);
    }
    let Err(e) = block_on(m.stream(&request())) else {
        panic!("a stream was opened")
    };
    assert_eq!(chat_failure_reason(&e), "chat_rate_limited", "{e}");
    assert_eq!(m.http().requests.borrow().len(), 6, "the policy's attempts");

    let m = models();
    for _ in 0..10 {
        m.http().push(500, &[("retry-after-ms", "10")], &[]);
    }
    let Err(e) = block_on(m.stream(&request())) else {
        panic!()
    };
    assert_eq!(chat_failure_reason(&e), "chat_unavailable", "{e}");

    let m = models();
    m.http().push(
        400,
        &[],
        &["{\"error\":{\"code\":\"content_filter\",\"message\":\"no\"}}"],
    );
    let Err(e) = block_on(m.stream(&request())) else {
        panic!()
    };
    assert_eq!(chat_failure_reason(&e), "chat_content_filter", "{e}");
    assert!(!e.to_string().contains("secret-key"));
}

#[test]
fn embeds_with_the_index_s_deployment_and_dimensions() {
    let m = models();
    let answer = r#"{"data":[{"index":0,"embedding":[0.5,0.5]}],"usage":{"prompt_tokens":2}}"#;
    m.http().push(200, &[], &[answer]);
    let settings = IndexSettings {
        embedding_deployment: "text-embedding-3-large".into(),
        dimensions: Some(2),
        ..IndexSettings::default()
    };
    let v = block_on(m.embed(&settings, "question")).unwrap();
    assert_eq!(v, [0.5, 0.5]);
    let sent = &m.http().requests.borrow()[0];
    assert!(
        sent.url
            .contains("/deployments/text-embedding-3-large/embeddings"),
        "{}",
        sent.url
    );
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["dimensions"], 2);
    assert_eq!(
        m.embedding_deployment(&settings).as_deref(),
        Some("text-embedding-3-large@2")
    );
}
