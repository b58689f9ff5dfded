//! `ragspin-azure`'s clients against the fake over real loopback HTTP
//! (testkit's `NativeHttp`), with a timer that really waits.

use std::time::{Duration, Instant};

use futures::executor::block_on;
use ragspin_azure::{AzureConfig, ChatClient, EmbeddingsClient, FinishReason, StreamEvent};
use ragspin_core::{ChatMessage, ChatModel, ChatRequest, Embedder, Error, Role};
use ragspin_fake_azure::{FakeAzure, FakeOptions, Fault, Route, model::cosine};
use ragspin_testkit::{ManualClock, NativeHttp, RealTimer};

type Embeddings = EmbeddingsClient<NativeHttp, ManualClock, RealTimer>;
type Chat = ChatClient<NativeHttp, ManualClock, RealTimer>;

fn config(fake: &FakeAzure) -> AzureConfig {
    let mut config = AzureConfig::azure(
        &fake.endpoint(),
        fake.api_key(),
        "gpt-4o-mini",
        "text-embedding-3-small",
    );
    config.retry.base_delay_ms = 5;
    config.retry.max_delay_ms = 50;
    config
}

fn embeddings(config: &AzureConfig) -> Embeddings {
    EmbeddingsClient::new(
        config,
        NativeHttp::new().unwrap(),
        ManualClock::new(1_750_000_000_000),
        RealTimer,
    )
}

fn chat(config: &AzureConfig) -> Chat {
    ChatClient::new(
        config,
        NativeHttp::new().unwrap(),
        ManualClock::new(1_750_000_000_000),
        RealTimer,
    )
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn question() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(
                Role::System,
                "Answer only from the sources and cite them as [n].\n[1] The café opens at 8. It closes at noon.\n[2] Parking is free.",
            ),
            ChatMessage::new(Role::User, "When does the café open?"),
        ],
        max_tokens: Some(100),
        temperature: Some(0.0),
    }
}

#[test]
fn embeds_through_the_fake_with_the_requested_dimensions() {
    let fake = FakeAzure::start().unwrap();
    let mut config = config(&fake);
    config.embedding_dimensions = Some(256);
    let client = embeddings(&config);
    let vectors = block_on(client.embed(&texts(&[
        "how to rotate the api key",
        "rotate api keys every 90 days",
        "the cafeteria serves soup",
    ])))
    .unwrap();
    assert!(vectors.iter().all(|v| v.len() == 256));
    assert!(cosine(&vectors[0], &vectors[1]) > cosine(&vectors[0], &vectors[2]) + 0.2);
    assert_eq!(fake.stats().embedded_inputs, 3);
    assert!(client.stats().prompt_tokens > 0);
}

#[test]
fn batches_a_large_ingest_into_requests_the_fake_accepts() {
    let fake = FakeAzure::start().unwrap();
    let mut config = config(&fake);
    config.embedding_limits.max_inputs = 100;
    let client = embeddings(&config);
    let input: Vec<String> = (0..250)
        .map(|i| format!("chunk {i} of the handbook"))
        .collect();
    let vectors = block_on(client.embed(&input)).unwrap();
    assert_eq!(vectors.len(), 250);
    assert_eq!(fake.stats().calls(Route::Embeddings), 3);
    assert_eq!(fake.stats().embedded_inputs, 250);
    // Each vector belongs to its own text, across batches.
    let again = block_on(client.embed(&input[199..201])).unwrap();
    assert_eq!(again, vectors[199..201]);
}

#[test]
fn matches_vectors_by_index_when_the_fake_lists_them_in_reverse() {
    let fake = FakeAzure::start_with(FakeOptions {
        reverse_embedding_order: true,
        ..FakeOptions::default()
    })
    .unwrap();
    let client = embeddings(&config(&fake));
    let input = texts(&["alpha", "beta", "gamma"]);
    let vectors = block_on(client.embed(&input)).unwrap();
    let one = block_on(client.embed(&input[..1])).unwrap();
    assert_eq!(vectors[0], one[0]);
    assert_ne!(vectors[0], vectors[2]);
}

#[test]
fn waits_out_a_rate_limit_as_the_fake_asks_and_then_succeeds() {
    let fake = FakeAzure::start().unwrap();
    fake.inject(
        Fault::status(429)
            .on(Route::Embeddings)
            .retry_after_ms(60)
            .times(2),
    );
    let client = embeddings(&config(&fake));
    let start = Instant::now();
    block_on(client.embed(&texts(&["x"]))).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(120),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.stats().calls(Route::Embeddings), 3);
    let stats = client.stats();
    assert_eq!((stats.calls, stats.retries, stats.waited_ms), (3, 2, 120));
}

#[test]
fn honours_retry_after_in_seconds_from_the_fake() {
    let fake = FakeAzure::start().unwrap();
    fake.inject(Fault::status(503).retry_after_s(1).times(1));
    let client = embeddings(&config(&fake));
    let start = Instant::now();
    block_on(client.embed(&texts(&["x"]))).unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(client.stats().waited_ms, 1000);
}

#[test]
fn gives_up_when_the_fake_fails_every_call_after_the_first_two() {
    let fake = FakeAzure::start().unwrap();
    fake.inject(Fault::status(500).after_calls(2));
    let mut config = config(&fake);
    config.retry.max_attempts = 3;
    let client = embeddings(&config);
    block_on(client.embed(&texts(&["one"]))).unwrap();
    block_on(client.embed(&texts(&["two"]))).unwrap();
    let error = block_on(client.embed(&texts(&["three"]))).unwrap_err();
    let Error::Unavailable(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("InternalServerError"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert_eq!(fake.stats().calls(Route::Embeddings), 5);
}

#[test]
fn times_out_a_slow_answer_and_retries_it() {
    let fake = FakeAzure::start().unwrap();
    fake.inject(Fault::delay(3_000).times(1));
    let client = EmbeddingsClient::new(
        &config(&fake),
        NativeHttp::with_timeout(Duration::from_millis(500)).unwrap(),
        ManualClock::new(1_750_000_000_000),
        RealTimer,
    );
    let vectors = block_on(client.embed(&texts(&["x"]))).unwrap();
    assert_eq!(vectors.len(), 1);
    assert_eq!(client.stats().retries, 1);
    assert_eq!(fake.stats().calls(Route::Embeddings), 2);
}

#[test]
fn reports_a_wrong_key_as_an_upstream_error_that_does_not_contain_it() {
    let fake = FakeAzure::start().unwrap();
    let mut config = config(&fake);
    let wrong = "wrong-key-0123456789";
    config.provider = ragspin_azure::Provider::Azure {
        endpoint: fake.endpoint(),
        api_key: wrong.into(),
    };
    let error = block_on(embeddings(&config).embed(&texts(&["x"]))).unwrap_err();
    let Error::Upstream(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("rejected the credentials"), "{message}");
    assert!(message.contains("Access denied"), "{message}");
    assert!(!format!("{error:?}").contains(wrong));
    assert_eq!(fake.stats().calls(Route::Embeddings), 1, "not retried");
}

#[test]
fn reports_an_unknown_deployment_by_its_azure_code() {
    let fake = FakeAzure::start().unwrap();
    let mut config = config(&fake);
    config.chat_deployment = "gpt-5-nano".into();
    let error = block_on(chat(&config).complete(&question())).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("DeploymentNotFound") && m.contains("gpt-5-nano")),
        "{error:?}"
    );
}

#[test]
fn completes_a_grounded_answer() {
    let fake = FakeAzure::start().unwrap();
    let client = chat(&config(&fake));
    let answer = block_on(client.complete(&question())).unwrap();
    assert_eq!(answer.content, "The café opens at 8 [1].");
    assert!(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0);
}

#[test]
fn streams_a_chat_answer_end_to_end() {
    let fake = FakeAzure::start().unwrap();
    let client = chat(&config(&fake));
    let mut pieces = Vec::new();
    let mut last = None;
    let answer = block_on(client.stream(&question(), |event| {
        if let StreamEvent::Content(piece) = event {
            pieces.push(piece.clone());
        }
        last = Some(event.clone());
    }))
    .unwrap();
    assert_eq!(answer.content, "The café opens at 8 [1].");
    assert_eq!(pieces.concat(), answer.content);
    assert!(pieces.len() > 3, "{pieces:?}");
    assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
    assert!(
        answer.usage.completion_tokens > 0,
        "the usage chunk arrived"
    );
    assert_eq!(last, Some(StreamEvent::Done));
    assert_eq!(fake.stats().chat_streams, 1);
}

#[test]
fn streams_a_content_filtered_completion_with_its_finish_reason() {
    let fake = FakeAzure::start().unwrap();
    let client = chat(&config(&fake));
    let mut request = question();
    request.messages[1].content = "When does the café open? FAKE_CONTENT_FILTER_COMPLETION".into();
    let answer = block_on(client.stream(&request, |_| {})).unwrap();
    assert_eq!(answer.finish_reason, Some(FinishReason::ContentFilter));
    let error = block_on(client.complete(&request)).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("content filter")),
        "{error:?}"
    );
}

#[test]
fn reports_a_filtered_prompt_without_retrying() {
    let fake = FakeAzure::start().unwrap();
    let client = chat(&config(&fake));
    let mut request = question();
    request.messages[1].content = "FAKE_CONTENT_FILTER_PROMPT".into();
    let error = block_on(client.complete(&request)).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("content_filter")),
        "{error:?}"
    );
    assert_eq!(fake.stats().calls(Route::Chat), 1);
}

#[test]
fn retries_a_stream_that_failed_before_its_first_byte() {
    let fake = FakeAzure::start().unwrap();
    fake.inject(Fault::status(503).on(Route::Chat).times(1));
    let client = chat(&config(&fake));
    let answer = block_on(client.stream(&question(), |_| {})).unwrap();
    assert_eq!(answer.content, "The café opens at 8 [1].");
    assert_eq!(fake.stats().calls(Route::Chat), 2);
}

#[test]
fn talks_to_the_openai_compatible_surface() {
    let fake = FakeAzure::start().unwrap();
    let config = AzureConfig::openai_compatible(
        &fake.endpoint(),
        fake.api_key(),
        "gpt-4o-mini",
        "text-embedding-3-small",
    );
    let vectors = block_on(embeddings(&config).embed(&texts(&["x", "y"]))).unwrap();
    assert_eq!(vectors.len(), 2);
    let mut seen_done = false;
    let answer = block_on(chat(&config).stream(&question(), |e| {
        seen_done |= *e == StreamEvent::Done;
    }))
    .unwrap();
    assert_eq!(answer.content, "The café opens at 8 [1].");
    assert!(seen_done);
}

#[test]
fn the_embeddings_client_honours_the_embedder_contract_over_several_requests() {
    let fake = FakeAzure::start().unwrap();
    let mut config = config(&fake);
    config.embedding_dimensions = Some(64);
    // A small token budget, so the plan takes several requests.
    config.embedding_limits.max_request_tokens = 200;
    let client = embeddings(&config);
    let texts: Vec<String> = (0..40)
        .map(|k| format!("document {k} talks about topic {} at some length", k % 5))
        .collect();
    let plan = client.plan(&texts).unwrap();
    assert!(plan.len() > 2, "{plan:?}");
    block_on(ragspin_testkit::contract::embedder(&client, &texts)).unwrap();
}
