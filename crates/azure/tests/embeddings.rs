//! The embeddings client against scripted HTTP and a timer that never waits.

mod common;

use common::{
    KEY, NOW, StallingHttp, TickingClock, azure_error, body, config, embeddings_answer, json, texts,
};
use futures::executor::block_on;
use ragspin_azure::{AzureConfig, EmbeddingsClient};
use ragspin_core::{Embedder, Error, HttpResponse, Usage};
use ragspin_testkit::{InstantTimer, ManualClock, ScriptedHttp};

type Client = EmbeddingsClient<ScriptedHttp, ManualClock, InstantTimer>;

fn client(config: &AzureConfig) -> Client {
    EmbeddingsClient::new(
        config,
        ScriptedHttp::new(),
        ManualClock::new(NOW),
        InstantTimer::new(),
    )
    .with_jitter_seed(1)
}

fn ok_for(n: usize) -> HttpResponse {
    embeddings_answer(&(0..n).collect::<Vec<_>>(), 3, n as u32)
}

#[test]
fn sends_one_request_per_2048_inputs() {
    let client = client(&config());
    for n in [2048, 2048, 904] {
        client.http().push(ok_for(n));
    }
    let vectors = block_on(client.embed(&texts(5000))).unwrap();
    assert_eq!(vectors.len(), 5000);
    let sizes: Vec<usize> = client
        .http()
        .requests()
        .iter()
        .map(|r| body(r)["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [2048, 2048, 904]);
    assert_eq!(
        vectors[2048],
        vec![0.0; 3],
        "second batch starts again at index 0"
    );
    assert_eq!(vectors[2049], vec![1.0; 3]);
}

#[test]
fn splits_batches_by_the_per_request_token_budget() {
    let mut config = config();
    config.embedding_limits.max_request_tokens = 10_000;
    let client = client(&config);
    // 4000 bytes = 1000 estimated tokens each: 10 fit a request.
    let long: Vec<String> = (0..25)
        .map(|i| format!("{i:04}{}", "x".repeat(3996)))
        .collect();
    let plan = client.plan_batches(&long).unwrap();
    assert_eq!(plan, [0..10, 10..20, 20..25]);
}

#[test]
fn a_custom_token_estimator_changes_the_batches() {
    let mut config = config();
    config.embedding_limits.max_request_tokens = 8192;
    let client = client(&config).with_token_estimator(|_| 4096);
    assert_eq!(client.plan_batches(&texts(5)).unwrap(), [0..2, 2..4, 4..5]);
}

#[test]
fn matches_vectors_to_inputs_by_index_not_by_order() {
    let client = client(&config());
    client.http().push(embeddings_answer(&[2, 0, 1], 3, 9));
    let vectors = block_on(client.embed(&texts(3))).unwrap();
    assert_eq!(vectors, [vec![0.0; 3], vec![1.0; 3], vec![2.0; 3]]);
}

#[test]
fn rejects_an_empty_text_without_sending_anything() {
    let client = client(&config());
    let mut input = texts(3);
    input[1].clear();
    let error = block_on(client.embed(&input)).unwrap_err();
    assert_eq!(
        error,
        Error::validation(
            "texts[1]",
            "must not be empty (Azure OpenAI rejects empty inputs)"
        )
    );
    assert!(client.http().requests().is_empty());
}

#[test]
fn rejects_an_input_over_the_per_input_token_limit() {
    let client = client(&config());
    let input = vec!["ok".to_owned(), "y".repeat(8192 * 4 + 1)];
    let error = block_on(client.embed(&input)).unwrap_err();
    assert!(
        matches!(&error, Error::Validation { field: Some(f), .. } if f == "texts[1]"),
        "{error:?}"
    );
    assert!(client.http().requests().is_empty());
}

#[test]
fn embeds_nothing_without_sending_a_request() {
    let client = client(&config());
    assert_eq!(block_on(client.embed(&[])).unwrap(), Vec::<Vec<f32>>::new());
    assert!(client.http().requests().is_empty());
}

#[test]
fn reports_usage_summed_over_batches_and_counts_calls() {
    let mut config = config();
    config.embedding_limits.max_inputs = 2;
    let client = client(&config);
    client.http().push(embeddings_answer(&[0, 1], 3, 7));
    client.http().push(embeddings_answer(&[0], 3, 4));
    let result = block_on(client.embed_with_usage(&texts(3))).unwrap();
    assert_eq!(
        result.usage,
        Usage {
            prompt_tokens: 11,
            completion_tokens: 0
        }
    );
    assert_eq!(result.batches, 2);
    let stats = client.stats();
    assert_eq!((stats.calls, stats.retries, stats.failures), (2, 0, 0));
    assert_eq!((stats.prompt_tokens, stats.embedded_inputs), (11, 3));
}

#[test]
fn sends_the_azure_request_shape_with_dimensions_for_text_embedding_3() {
    let mut config = config();
    config.embedding_dimensions = Some(256);
    let client = client(&config);
    let request = client.request_for(&texts(2)).unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://res.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some(KEY));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        body(&request),
        serde_json::json!({"input": ["text number 0", "text number 1"], "dimensions": 256,
            "encoding_format": "base64"})
    );
    assert_eq!(client.model(), "text-embedding-3-small@256");
}

#[test]
fn never_sends_dimensions_for_older_models() {
    let mut config = config();
    config.embedding_deployment = "ada".into();
    config.embedding_model = "text-embedding-ada-002".into();
    config.embedding_dimensions = Some(256);
    assert!(
        config.validate().is_err(),
        "the config is refused as a whole"
    );
    let client = client(&config);
    let request = client.request_for(&texts(1)).unwrap();
    assert_eq!(
        body(&request),
        serde_json::json!({"input": ["text number 0"], "encoding_format": "base64"})
    );
}

#[test]
fn names_the_model_in_the_body_for_openai_compatible_servers() {
    let config = AzureConfig::openai_compatible(
        "http://127.0.0.1:11434",
        "tok-123456",
        "llama3",
        "nomic-embed-text",
    );
    let client = client(&config);
    let request = client.request_for(&texts(1)).unwrap();
    assert_eq!(request.url, "http://127.0.0.1:11434/v1/embeddings");
    assert_eq!(request.header("authorization"), Some("Bearer tok-123456"));
    assert_eq!(
        body(&request),
        serde_json::json!({"input": ["text number 0"], "model": "nomic-embed-text",
            "encoding_format": "base64"})
    );
}

#[test]
fn waits_as_long_as_retry_after_ms_says_then_succeeds() {
    let client = client(&config());
    client.http().push(
        azure_error(429, "429", "Requests have exceeded call rate limit")
            .with_header("retry-after-ms", "1250")
            .with_header("retry-after", "2"),
    );
    client.http().push(ok_for(2));
    let vectors = block_on(client.embed(&texts(2))).unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(client.timer().sleeps(), [1250]);
    let stats = client.stats();
    assert_eq!((stats.calls, stats.retries, stats.waited_ms), (2, 1, 1250));
    let requests = client.http().requests();
    assert_eq!(
        requests[0], requests[1],
        "the retry resends the same request"
    );
}

#[test]
fn waits_retry_after_seconds_when_no_millisecond_hint_is_given() {
    let client = client(&config());
    client
        .http()
        .push(azure_error(429, "429", "slow down").with_header("Retry-After", "3"));
    client
        .http()
        .push(azure_error(503, "ServiceUnavailable", "busy").with_header("retry-after", "1"));
    client.http().push(ok_for(1));
    block_on(client.embed(&texts(1))).unwrap();
    assert_eq!(client.timer().sleeps(), [3000, 1000]);
}

#[test]
fn backs_off_exponentially_with_jitter_when_the_server_gives_no_hint() {
    let client = client(&config());
    client
        .http()
        .push(azure_error(500, "InternalServerError", "oops"));
    client
        .http()
        .push(azure_error(503, "ServiceUnavailable", "busy"));
    client
        .http()
        .push(azure_error(500, "InternalServerError", "oops"));
    client
        .http()
        .push(azure_error(502, "BadGateway", "gateway"));
    client.http().push(ok_for(1));
    block_on(client.embed(&texts(1))).unwrap();
    let sleeps = client.timer().sleeps();
    assert_eq!(sleeps.len(), 4);
    // base 100 ms, doubling: steps 100, 200, 400, 800, each jittered into [step/2, step].
    for (sleep, step) in sleeps.iter().zip([100, 200, 400, 800]) {
        assert!((step / 2..=step).contains(sleep), "{sleeps:?}");
    }
}

#[test]
fn caps_each_backoff_step() {
    let mut config = config();
    config.retry.max_attempts = 10;
    config.retry.budget_ms = 1_000_000;
    let client = client(&config);
    for _ in 0..9 {
        client
            .http()
            .push(azure_error(500, "InternalServerError", "oops"));
    }
    client.http().push(ok_for(1));
    block_on(client.embed(&texts(1))).unwrap();
    let sleeps = client.timer().sleeps();
    assert_eq!(sleeps.len(), 9);
    assert!(sleeps.iter().all(|&s| s <= 2_000), "{sleeps:?}");
    assert!(sleeps[5..].iter().all(|&s| s >= 1_000), "{sleeps:?}");
}

#[test]
fn retries_transport_errors_and_timeouts() {
    let client = client(&config());
    client
        .http()
        .push_error(Error::Upstream("connection reset".into()));
    client
        .http()
        .push_error(Error::Timeout("read timed out".into()));
    client.http().push(ok_for(1));
    block_on(client.embed(&texts(1))).unwrap();
    assert_eq!(client.stats().calls, 3);
}

#[test]
fn times_out_a_call_that_never_answers_and_retries_it() {
    let http = StallingHttp::default();
    http.stalls.store(1, std::sync::atomic::Ordering::SeqCst);
    http.then.push(ok_for(1));
    let client = EmbeddingsClient::new(&config(), http, ManualClock::new(NOW), InstantTimer::new())
        .with_jitter_seed(1);
    block_on(client.embed(&texts(1))).unwrap();
    let sleeps = client.timer().sleeps();
    assert_eq!(sleeps[0], 30_000, "the per-call timeout: {sleeps:?}");
    assert_eq!(sleeps.len(), 2, "then one backoff: {sleeps:?}");
    assert_eq!(client.stats().retries, 1);
}

#[test]
fn gives_up_with_a_timeout_error_when_every_attempt_times_out() {
    let mut config = config();
    config.embedding_timeout_ms = 1_000;
    config.retry.max_attempts = 3;
    let http = StallingHttp::default();
    http.stalls.store(99, std::sync::atomic::Ordering::SeqCst);
    let client = EmbeddingsClient::new(&config, http, ManualClock::new(NOW), InstantTimer::new());
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    let Error::Timeout(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(message.contains("no attempts left"), "{message}");
}

#[test]
fn gives_up_after_max_attempts_as_unavailable_naming_the_status() {
    let client = client(&config());
    for _ in 0..5 {
        client.http().push(azure_error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unable to process your request.",
        ));
    }
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    let Error::Unavailable(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("ServiceUnavailable"), "{message}");
    assert!(message.contains("gave up after 5 attempts"), "{message}");
    assert!(message.contains("text-embedding-3-small"), "{message}");
    assert_eq!(client.http().requests().len(), 5);
    assert_eq!(client.stats().failures, 1);
}

#[test]
fn gives_up_at_once_when_retry_after_exceeds_the_budget() {
    let client = client(&config());
    client.http().push(
        azure_error(
            429,
            "429",
            "Rate limit is exceeded. Try again in 86 seconds.",
        )
        .with_header("retry-after", "86"),
    );
    client.http().push(ok_for(1));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    let Error::Unavailable(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("rate limiting"), "{message}");
    assert!(
        message.contains("waiting 86000 ms as asked would exceed the 60000 ms budget"),
        "{message}"
    );
    assert!(client.timer().sleeps().is_empty());
    assert_eq!(client.http().requests().len(), 1);
}

#[test]
fn gives_up_when_the_waits_add_up_to_the_budget() {
    let mut config = config();
    config.retry.max_attempts = 100;
    config.retry.budget_ms = 10_000;
    let client = client(&config);
    for _ in 0..100 {
        client
            .http()
            .push(azure_error(429, "429", "slow down").with_header("retry-after-ms", "3000"));
    }
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    assert_eq!(client.timer().sleeps(), [3000, 3000, 3000]);
    assert_eq!(client.http().requests().len(), 4);
}

#[test]
fn gives_up_at_once_when_even_one_backoff_step_exceeds_the_budget() {
    let mut config = config();
    config.retry.budget_ms = 40;
    let client = client(&config);
    client
        .http()
        .push(azure_error(500, "InternalServerError", "oops"));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(
        matches!(&error, Error::Unavailable(m) if m.contains("budget")),
        "{error:?}"
    );
    assert!(client.timer().sleeps().is_empty());
}

#[test]
fn counts_time_passing_on_the_clock_against_the_budget() {
    // 20 s pass between any two readings of the clock: slow attempts.
    let client = EmbeddingsClient::new(
        &config(),
        ScriptedHttp::new(),
        TickingClock::new(NOW, 20_000),
        InstantTimer::new(),
    );
    for _ in 0..5 {
        client
            .http()
            .push(azure_error(500, "InternalServerError", "oops"));
    }
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(
        matches!(&error, Error::Unavailable(m) if m.contains("60000 ms budget") && m.contains("2 attempts")),
        "{error:?}"
    );
    assert_eq!(
        client.http().requests().len(),
        2,
        "not the 5 attempts allowed"
    );
}

#[test]
fn maps_401_to_an_upstream_error_about_credentials_without_the_key() {
    let client = client(&config());
    client.http().push(azure_error(
        401,
        "401",
        &format!("Access denied due to invalid subscription key {KEY} or wrong API endpoint."),
    ));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    let Error::Upstream(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("rejected the credentials"), "{message}");
    assert!(message.contains("Access denied"), "{message}");
    assert!(!format!("{error} {error:?}").contains(KEY), "{error:?}");
    assert_eq!(client.http().requests().len(), 1, "401 is not retried");
}

#[test]
fn maps_404_deployment_not_found_to_an_upstream_error_naming_the_code() {
    let client = client(&config());
    client.http().push(azure_error(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist.",
    ));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    let Error::Upstream(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("DeploymentNotFound"), "{message}");
    assert!(message.contains("check the deployment name"), "{message}");
    assert_eq!(client.http().requests().len(), 1);
}

#[test]
fn maps_400_to_an_upstream_error_without_retrying() {
    let client = client(&config());
    client.http().push(azure_error(
        400,
        "invalid_request_error",
        "'$.input' is invalid.",
    ));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("rejected the request") && m.contains("'$.input' is invalid.")),
        "{error:?}"
    );
    assert_eq!(client.http().requests().len(), 1);
}

#[test]
fn rejects_answers_with_missing_duplicate_or_out_of_range_indexes() {
    for (order, why) in [
        (vec![0, 0], "appears twice"),
        (vec![0, 5], "out of range"),
        (vec![0], "1 vectors for 2 inputs"),
    ] {
        let client = client(&config());
        client.http().push(embeddings_answer(&order, 3, 1));
        let error = block_on(client.embed(&texts(2))).unwrap_err();
        assert!(
            matches!(&error, Error::Upstream(m) if m.contains("malformed") && m.contains(why)),
            "{order:?}: {error:?}"
        );
    }
}

#[test]
fn rejects_vectors_of_another_length_than_asked() {
    let mut config = config();
    config.embedding_dimensions = Some(4);
    let client = client(&config);
    client.http().push(embeddings_answer(&[0], 3, 1));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("3 dimensions at index 0, asked for 4")),
        "{error:?}"
    );
}

#[test]
fn rejects_a_success_body_that_is_not_json() {
    let client = client(&config());
    client.http().push(HttpResponse::new(
        200,
        "text/html",
        "<html>proxy login</html>",
    ));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(
        matches!(&error, Error::Upstream(m) if m.contains("malformed")),
        "{error:?}"
    );
    assert_eq!(client.stats().failures, 1);
}

#[test]
fn does_not_retry_an_internal_error_of_the_http_port() {
    let client = client(&config());
    client
        .http()
        .push_error(Error::Internal("invalid outbound request".into()));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(matches!(error, Error::Internal(_)));
    assert_eq!(client.http().requests().len(), 1);
}

#[test]
fn retries_then_reports_rate_limiting_in_the_give_up_error() {
    let mut config = config();
    config.retry.max_attempts = 2;
    let client = client(&config);
    client.http().push(json(
        429,
        &serde_json::json!({"error": {"code": "429", "message": "limit"}}),
    ));
    client.http().push(json(
        429,
        &serde_json::json!({"error": {"code": "429", "message": "limit"}}),
    ));
    let error = block_on(client.embed(&texts(1))).unwrap_err();
    assert!(
        matches!(&error, Error::Unavailable(m) if m.contains("rate limiting") && m.contains("2 attempts")),
        "{error:?}"
    );
}

#[test]
fn decodes_base64_vectors_and_numbers_alike_and_rejects_broken_base64() {
    use base64::Engine as _;
    let b64 = |v: &[f32]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let client = client(&config());
    // One item as base64 (what we ask for), one as numbers (a server that
    // ignores `encoding_format`).
    client.http().push(json(
        200,
        &serde_json::json!({"object": "list", "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5, -2.0]},
            {"object": "embedding", "index": 0, "embedding": b64(&[1.25, -0.0])},
        ], "usage": {"prompt_tokens": 4, "total_tokens": 4}}),
    ));
    let vectors = block_on(client.embed(&texts(2))).unwrap();
    assert_eq!(vectors, vec![vec![1.25, -0.0], vec![0.5, -2.0]]);
    for broken in ["not base64!", "AAAA"] {
        let client = self::client(&config());
        client.http().push(json(
            200,
            &serde_json::json!({"object": "list", "data": [
                {"object": "embedding", "index": 0, "embedding": broken}]}),
        ));
        match block_on(client.embed(&texts(1))) {
            Err(Error::Upstream(message)) => {
                assert!(message.contains("index 0"), "{message}")
            }
            other => panic!("{broken:?}: {other:?}"),
        }
    }
}
