//! The fake's HTTP contract, over real loopback HTTP: what a client of Azure
//! OpenAI would see.

use ragspin_fake_azure::{DEFAULT_API_KEY, FakeAzure, FakeOptions, Route};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

const V: &str = "2024-10-21";

fn client() -> Client {
    Client::builder().build().unwrap()
}

fn post(fake: &FakeAzure, path: &str, body: &Value) -> Response {
    client()
        .post(format!("{}{path}", fake.endpoint()))
        .header("api-key", DEFAULT_API_KEY)
        .json(body)
        .send()
        .unwrap()
}

fn embeddings_path(deployment: &str) -> String {
    format!("/openai/deployments/{deployment}/embeddings?api-version={V}")
}

fn chat_path(deployment: &str) -> String {
    format!("/openai/deployments/{deployment}/chat/completions?api-version={V}")
}

fn error_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().unwrap();
    (status, body["error"].clone())
}

fn question() -> Value {
    json!([
        {"role": "system", "content": "Answer from the sources.\n[1] The café opens at 8. It closes at noon.\n[2] Parking is free."},
        {"role": "user", "content": "When does the café open?"}
    ])
}

#[test]
fn base64_encoding_answers_the_same_vectors_as_little_endian_f32_bytes() {
    use base64::Engine as _;
    let fake = FakeAzure::start().unwrap();
    let path = embeddings_path("text-embedding-3-small");
    let input = json!({"input": ["rotate the api key"], "dimensions": 8});
    let floats: Value = post(&fake, &path, &input).json().unwrap();
    let mut asked = input.clone();
    asked["encoding_format"] = json!("base64");
    let encoded: Value = post(&fake, &path, &asked).json().unwrap();
    let want: Vec<f32> = serde_json::from_value(floats["data"][0]["embedding"].clone()).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, want);
    asked["encoding_format"] = json!("float");
    assert_eq!(post(&fake, &path, &asked).status(), 200);
    asked["encoding_format"] = json!("binary");
    let (status, error) = error_of(post(&fake, &path, &asked));
    assert_eq!(status, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("encoding_format")
    );
}

#[test]
fn embeds_a_batch_with_indexes_usage_and_unit_vectors() {
    let fake = FakeAzure::start().unwrap();
    let response = post(
        &fake,
        &embeddings_path("text-embedding-3-small"),
        &json!({"input": ["rotate the api key", "rotating api keys", "soup on fridays"]}),
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vectors: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            serde_json::from_value(d["embedding"].clone()).unwrap()
        })
        .collect();
    assert_eq!(vectors[0].len(), 1536);
    let cos = ragspin_fake_azure::model::cosine;
    assert!(cos(&vectors[0], &vectors[1]) > cos(&vectors[0], &vectors[2]) + 0.2);
    assert_eq!(body["usage"]["prompt_tokens"], 5 + 5 + 4);
    assert_eq!(fake.stats().embedded_inputs, 3);
}

#[test]
fn honours_dimensions_only_for_text_embedding_3() {
    let fake = FakeAzure::start().unwrap();
    let ok = post(
        &fake,
        &embeddings_path("text-embedding-3-large"),
        &json!({"input": "x", "dimensions": 256}),
    );
    let body: Value = ok.json().unwrap();
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 256);
    let (status, error) = error_of(post(
        &fake,
        &embeddings_path("text-embedding-ada-002"),
        &json!({"input": "x", "dimensions": 256}),
    ));
    assert_eq!(status, 400);
    assert!(error["message"].as_str().unwrap().contains("dimensions"));
}

#[test]
fn rejects_invalid_embedding_inputs_with_400() {
    let fake = FakeAzure::start().unwrap();
    let too_many: Vec<String> = (0..2049).map(|i| i.to_string()).collect();
    let cases = [
        json!({"input": []}),
        json!({"input": too_many}),
        json!({"input": ["ok", ""]}),
        json!({"input": [[1, 2, 3]]}),
        json!({"input": "y".repeat(8192 * 4 + 1)}),
        json!({"input": "x", "temperature": 1}),
        json!({}),
    ];
    for body in cases {
        let (status, _) = error_of(post(
            &fake,
            &embeddings_path("text-embedding-3-small"),
            &body,
        ));
        assert_eq!(
            status,
            400,
            "{}",
            &body.to_string()[..60.min(body.to_string().len())]
        );
    }
    let ok = post(
        &fake,
        &embeddings_path("text-embedding-3-small"),
        &json!({"input": vec!["a"; 2048]}),
    );
    assert_eq!(ok.status(), 200);
}

#[test]
fn needs_the_api_version_on_the_deployments_surface() {
    let fake = FakeAzure::start().unwrap();
    let missing = post(
        &fake,
        "/openai/deployments/text-embedding-3-small/embeddings",
        &json!({"input": "x"}),
    );
    let (status, error) = error_of(missing);
    assert_eq!(
        (status, error["message"].as_str()),
        (404, Some("Resource not found"))
    );
    let unknown = post(
        &fake,
        "/openai/deployments/text-embedding-3-small/embeddings?api-version=2019-01-01",
        &json!({"input": "x"}),
    );
    let (status, error) = error_of(unknown);
    assert_eq!(
        (status, error["message"].as_str()),
        (400, Some("API version not supported"))
    );
}

#[test]
fn answers_401_with_azures_error_shape_for_a_wrong_or_missing_key() {
    let fake = FakeAzure::start().unwrap();
    for key in [Some("wrong"), None] {
        let mut request = client()
            .post(format!(
                "{}{}",
                fake.endpoint(),
                embeddings_path("text-embedding-3-small")
            ))
            .json(&json!({"input": "x"}));
        if let Some(key) = key {
            request = request.header("api-key", key);
        }
        let (status, error) = error_of(request.send().unwrap());
        assert_eq!(status, 401);
        assert_eq!(error["code"], "401");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("Access denied")
        );
    }
    assert_eq!(fake.stats().calls(Route::Embeddings), 2);
}

#[test]
fn accepts_a_bearer_token_too() {
    let fake = FakeAzure::start().unwrap();
    let response = client()
        .post(format!(
            "{}{}",
            fake.endpoint(),
            embeddings_path("text-embedding-3-small")
        ))
        .bearer_auth(DEFAULT_API_KEY)
        .json(&json!({"input": "x"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn answers_deployment_not_found_for_an_unknown_deployment() {
    let fake = FakeAzure::start().unwrap();
    let (status, error) = error_of(post(
        &fake,
        &embeddings_path("nope"),
        &json!({"input": "x"}),
    ));
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("DeploymentNotFound"))
    );
    let (status, error) = error_of(post(
        &fake,
        &chat_path("text-embedding-3-small"),
        &json!({"messages": question()}),
    ));
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("OperationNotSupported"))
    );
}

#[test]
fn serves_the_openai_compatible_surface_with_the_model_in_the_body() {
    let fake = FakeAzure::start().unwrap();
    let ok = post(
        &fake,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "x"}),
    );
    assert_eq!(ok.status(), 200);
    let (status, error) = error_of(post(
        &fake,
        "/v1/embeddings",
        &json!({"model": "llama", "input": "x"}),
    ));
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, _) = error_of(post(&fake, "/v1/embeddings", &json!({"input": "x"})));
    assert_eq!(status, 400);
    let azure_v1 = post(
        &fake,
        "/openai/v1/chat/completions",
        &json!({"model": "gpt-4o-mini", "messages": question()}),
    );
    assert_eq!(azure_v1.status(), 200);
}

#[test]
fn answers_from_the_numbered_sources_with_citations() {
    let fake = FakeAzure::start().unwrap();
    let response = post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": question(), "max_tokens": 100}),
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The café opens at 8 [1]."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["prompt_filter_results"].is_array());
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn says_i_dont_know_when_the_sources_do_not_cover_the_question() {
    let fake = FakeAzure::start().unwrap();
    let messages = json!([
        {"role": "system", "content": "[1] The café opens at 8."},
        {"role": "user", "content": "Who painted the Mona Lisa?"}
    ]);
    let body: Value = post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": messages}),
    )
    .json()
    .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "I don't know.");
}

#[test]
fn rejects_unknown_or_invalid_chat_arguments_with_400() {
    let fake = FakeAzure::start().unwrap();
    let cases = [
        (
            json!({"messages": question(), "frobnicate": true}),
            "Unrecognized request argument supplied: frobnicate",
        ),
        (
            json!({"messages": question(), "stream_options": {"include_usage": true}}),
            "stream_options",
        ),
        (json!({"messages": []}), "at least one message"),
        (json!({"messages": question(), "n": 0}), "'$.n'"),
        (
            json!({"messages": question(), "stop": ["a", "b", "c", "d", "e"]}),
            "'$.stop'",
        ),
        (
            json!({"messages": question(), "temperature": 3}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "developer", "content": "hi"}]}),
            "developer",
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "hi"}]}),
            "wizard",
        ),
    ];
    for (body, why) in cases {
        let (status, error) = error_of(post(&fake, &chat_path("gpt-4o-mini"), &body));
        assert_eq!(status, 400, "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(why),
            "{body}: {error}"
        );
    }
    let newer = post(
        &fake,
        "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-01-01-preview",
        &json!({"messages": [{"role": "developer", "content": "hi"}]}),
    );
    assert_eq!(newer.status(), 200);
}

#[test]
fn cuts_the_answer_at_max_tokens_and_stop_sequences() {
    let fake = FakeAzure::start().unwrap();
    let body: Value = post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": question(), "max_tokens": 2}),
    )
    .json()
    .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["choices"][0]["message"]["content"], "The caf");
    let body: Value = post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": question(), "stop": [" at"]}),
    )
    .json()
    .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "The café opens");
}

#[test]
fn refuses_a_prompt_carrying_the_content_filter_marker() {
    let fake = FakeAzure::start().unwrap();
    let messages = json!([{"role": "user", "content": "FAKE_CONTENT_FILTER_PROMPT please"}]);
    let (status, error) = error_of(post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": messages}),
    ));
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("content_filter"))
    );
    assert_eq!(error["innererror"]["code"], "ResponsibleAIPolicyViolation");
}

#[test]
fn streams_server_sent_events_in_azures_order() {
    let fake = FakeAzure::start().unwrap();
    let response = post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": question(), "stream": true, "stream_options": {"include_usage": true}}),
    );
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"], json!([]));
    assert!(chunks[0]["prompt_filter_results"].is_array());
    assert_eq!(chunks[1]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "The café opens at 8 [1].");
    let last = chunks.len() - 1;
    assert_eq!(chunks[last - 1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[last]["choices"], json!([]));
    assert!(chunks[last]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(fake.stats().chat_streams, 1);
}

#[test]
fn injects_faults_through_the_admin_endpoints() {
    let fake = FakeAzure::start().unwrap();
    let admin = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client().request(method, format!("{}{path}", fake.endpoint()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    };
    let added = admin(
        reqwest::Method::POST,
        "/_fake/faults",
        Some(json!({"route": "embeddings", "status": 429, "retry_after_ms": 50, "times": 2})),
    );
    assert_eq!(added.status(), 200);
    for _ in 0..2 {
        let response = post(
            &fake,
            &embeddings_path("text-embedding-3-small"),
            &json!({"input": "x"}),
        );
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after-ms"], "50");
        let (_, error) = error_of(response);
        assert_eq!(error["code"], "429");
    }
    let third = post(
        &fake,
        &embeddings_path("text-embedding-3-small"),
        &json!({"input": "x"}),
    );
    assert_eq!(third.status(), 200);
    let chat = post(
        &fake,
        &chat_path("gpt-4o-mini"),
        &json!({"messages": question()}),
    );
    assert_eq!(chat.status(), 200, "the fault was for embeddings only");

    let stats: Value = admin(reqwest::Method::GET, "/_fake/stats", None)
        .json()
        .unwrap();
    assert_eq!(stats["calls"], json!({"embeddings": 3, "chat": 1}));
    assert_eq!(stats["embedded_inputs"], 1);
    assert_eq!(stats["faults_applied"], 2);

    let bad = admin(
        reqwest::Method::POST,
        "/_fake/faults",
        Some(json!({"stauts": 500})),
    );
    assert_eq!(bad.status(), 400);
    let nothing = admin(
        reqwest::Method::POST,
        "/_fake/faults",
        Some(json!({"times": 1})),
    );
    assert_eq!(nothing.status(), 400);

    admin(
        reqwest::Method::POST,
        "/_fake/faults",
        Some(json!([{"status": 500, "after_calls": 1}, {"delay_ms": 10}])),
    );
    let faults: Value = admin(reqwest::Method::GET, "/_fake/faults", None)
        .json()
        .unwrap();
    assert_eq!(faults.as_array().unwrap().len(), 3);
    assert_eq!(
        admin(reqwest::Method::POST, "/_fake/reset", None).status(),
        200
    );
    assert_eq!(fake.stats(), ragspin_fake_azure::Stats::default());
    assert!(fake.stats().calls.is_empty());
}

#[test]
fn delays_answers_when_told_to() {
    let fake = FakeAzure::start().unwrap();
    fake.inject(ragspin_fake_azure::Fault::delay(150).times(1));
    let start = std::time::Instant::now();
    let response = post(
        &fake,
        &embeddings_path("text-embedding-3-small"),
        &json!({"input": "x"}),
    );
    assert_eq!(response.status(), 200);
    assert!(start.elapsed() >= std::time::Duration::from_millis(150));
}

#[test]
fn lists_embeddings_in_reverse_when_configured() {
    let fake = FakeAzure::start_with(FakeOptions {
        reverse_embedding_order: true,
        ..FakeOptions::default()
    })
    .unwrap();
    let body: Value = post(
        &fake,
        &embeddings_path("text-embedding-3-small"),
        &json!({"input": ["a", "b", "c"]}),
    )
    .json()
    .unwrap();
    let indexes: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [2, 1, 0]);
}

#[test]
fn answers_404_for_unknown_paths_and_stops_on_drop() {
    let fake = FakeAzure::start().unwrap();
    let addr = fake.addr;
    assert!(addr.ip().is_loopback());
    let (status, _) = error_of(post(&fake, "/openai/nothing", &json!({})));
    assert_eq!(status, 404);
    drop(fake);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening after drop"
    );
}

fn recording(texts: &[(&str, [f32; 3])]) -> ragspin_fake_azure::Recording {
    use base64::Engine as _;
    let vectors: serde_json::Map<String, Value> = texts
        .iter()
        .map(|(text, v)| {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (
                ragspin_fake_azure::Recording::key(text),
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .into(),
            )
        })
        .collect();
    let file = json!({"model": "tiny-model", "deployment": "tiny", "dimensions": 3,
        "encoding": "f32le-base64", "vectors": vectors});
    ragspin_fake_azure::Recording::parse(&file.to_string(), "tiny.json").unwrap()
}

#[test]
fn replays_recorded_embeddings_and_refuses_texts_it_lacks() {
    let fake = FakeAzure::start_with(
        FakeOptions {
            keep_inputs: true,
            ..FakeOptions::default()
        }
        .with_recording(recording(&[
            ("alpha", [1.0, 0.0, 0.0]),
            ("beta", [0.0, 0.6, 0.8]),
        ])),
    )
    .unwrap();
    let body: Value = post(
        &fake,
        &embeddings_path("tiny"),
        &json!({"input": ["beta", "alpha"]}),
    )
    .json()
    .unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([0.0, 0.6f32, 0.8f32]));
    assert_eq!(body["data"][1]["embedding"], json!([1.0, 0.0, 0.0]));
    assert_eq!(body["model"], "tiny-model");
    assert_eq!(fake.stats().recording_misses, 0);

    let (status, error) = error_of(post(
        &fake,
        &embeddings_path("tiny"),
        &json!({"input": ["alpha", "gamma"]}),
    ));
    assert_eq!(status, 400);
    assert_eq!(error["code"], "RecordingMiss");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("tiny.json")
            && message.contains(&ragspin_fake_azure::Recording::key("gamma")),
        "{message}"
    );
    assert_eq!(fake.stats().recording_misses, 1);
    assert_eq!(fake.embedded_texts(), ["alpha", "beta", "gamma"]);

    // Other deployments keep the hashed model.
    let response = post(
        &fake,
        &embeddings_path("text-embedding-3-small"),
        &json!({"input": "gamma"}),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(fake.stats().recording_misses, 1);
}

#[test]
fn serves_hashed_embeddings_for_misses_when_told_to() {
    let fake = FakeAzure::start_with(
        FakeOptions {
            on_recording_miss: ragspin_fake_azure::OnMiss::Hashed,
            ..FakeOptions::default()
        }
        .with_recording(recording(&[("alpha", [1.0, 0.0, 0.0])])),
    )
    .unwrap();
    let body: Value = post(
        &fake,
        &embeddings_path("tiny"),
        &json!({"input": ["alpha", "unknown text"]}),
    )
    .json()
    .unwrap();
    let fallback: Vec<f32> = serde_json::from_value(body["data"][1]["embedding"].clone()).unwrap();
    assert_eq!(
        fallback,
        ragspin_fake_azure::model::embed("unknown text", 3)
    );
    assert_eq!(fake.stats().recording_misses, 1);
    let stats: Value = client()
        .get(format!("{}/_fake/stats", fake.endpoint()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["recording_misses"], 1);
}
