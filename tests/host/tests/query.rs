//! The compiled query component over real HTTP, with the ingest component
//! filling the index and the fake Azure OpenAI server (or a slow streaming
//! upstream written here) behind them: grounded answers with verified
//! citations, search, SSE streaming, the answer cache, every degradation
//! path, offline mode, sessions, bad input, client disconnects, and the
//! official `openai` Python SDK against `/v1/chat/completions`.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Api, app, client, read_http_message, root};
use ragspin_fake_azure::{FakeAzure, Fault, Route};
use ragspin_host::HostOptions;
use serde_json::{Value, json};

const PHONES: &str = "# Zephyr phone\n\nThe Zephyr phone has a battery life of 30 hours. \
It charges fully in 45 minutes with the included charger.\n\n# Warranty\n\n\
The warranty lasts two years and covers battery defects.\n";
const CAFE: &str =
    "# Café\n\nThe café opens at 8 and closes at noon. Parking is free for visitors.\n";
const BATTERY: &str = "What is the battery life of the Zephyr phone?";

/// The app with ingest + query, an index `docs` holding two documents.
fn app_with_docs(options: HostOptions) -> Api {
    let api = Api::start(options);
    let (status, body) = api.send("PUT", "/v1/indexes/docs", Some(json!({"dimensions": 256})));
    assert_eq!(status, 201, "{body}");
    for (name, text, team) in [
        ("phones.md", PHONES, "hardware"),
        ("cafe.md", CAFE, "facilities"),
    ] {
        let doc = json!({"filename": name, "content": text, "metadata": {"team": team}});
        let (status, body) = api.send("POST", "/v1/indexes/docs/documents", Some(doc));
        assert_eq!(status, 201, "{body}");
    }
    api
}

fn online(fake: &FakeAzure) -> Api {
    app_with_docs(app(&["ingest", "query"]).fake_azure(fake))
}

fn query(api: &Api, body: Value) -> (u16, Value) {
    api.send("POST", "/v1/query", Some(body))
}

/// `(event, data)` pairs of an SSE body (comments skipped).
fn sse_events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            (!data.is_empty()).then(|| (event, data.join("\n")))
        })
        .collect()
}

#[test]
fn answers_with_citations_verified_against_what_was_retrieved() {
    let fake = FakeAzure::start().unwrap();
    let api = online(&fake);
    let (status, a) = query(&api, json!({"index": "docs", "question": BATTERY}));
    assert_eq!(status, 200, "{a}");
    assert!(
        a["answer"].as_str().unwrap().contains("30 hours [1]"),
        "{a}"
    );
    assert_eq!(a["degraded"], false, "{a}");
    assert_eq!(a["found"], true);
    assert_eq!(a["index_version"], 1);
    assert_eq!(a["retrieval"]["mode"], "hybrid");
    let citation = &a["citations"][0];
    assert_eq!(citation["filename"], "phones.md");
    assert!(
        citation["snippet"].as_str().unwrap().contains("30 hours"),
        "{citation}"
    );
    assert!(citation["chunk_id"].as_i64().is_some());
    assert_eq!(a["dropped_citations"], json!([]));
    assert!(a["usage"]["total_tokens"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(a["provenance"]["chat_deployment"], "gpt-4o-mini");
    assert_eq!(
        a["provenance"]["embedding_deployment"],
        "text-embedding-3-small@256"
    );
    assert!(
        a["provenance"]["prompt_version"]
            .as_str()
            .unwrap()
            .starts_with("ragspin-")
    );
    assert_eq!(fake.stats().calls(Route::Chat), 1);

    let (status, none) = query(
        &api,
        json!({"index": "docs", "question": "Who won the 1998 football world cup?"}),
    );
    assert_eq!(status, 200);
    assert_eq!(none["found"], false, "{none}");
    assert_eq!(none["citations"], json!([]));
    assert_eq!(
        fake.stats().calls(Route::Chat),
        1,
        "nothing relevant: the model was not asked"
    );
}

#[test]
fn search_ranks_hits_with_per_method_scores_and_filters_inside_retrieval() {
    let fake = FakeAzure::start().unwrap();
    let api = online(&fake);
    let (status, r) = api.send(
        "POST",
        "/v1/search",
        Some(json!({"index": "docs", "query": "battery charger", "top_k": 3})),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["retrieval"]["mode"], "hybrid");
    let hits = r["hits"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3);
    assert_eq!(hits[0]["filename"], "phones.md");
    assert!(
        hits[0]["scores"]["bm25"].is_number() && hits[0]["scores"]["vector"].is_number(),
        "{r}"
    );
    assert!(hits[0]["heading_path"].is_array());
    let (_, filtered) = api.send(
        "POST",
        "/v1/search",
        Some(
            json!({"index": "docs", "query": "battery parking", "filter": {"team": "facilities"}}),
        ),
    );
    let hits = filtered["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{filtered}");
    assert!(
        hits.iter().all(|h| h["metadata"]["team"] == "facilities"),
        "{filtered}"
    );
}

#[test]
fn a_streamed_answer_sends_sources_then_deltas_then_verified_citations() {
    let fake = FakeAzure::start().unwrap();
    let api = online(&fake);
    let res = api
        .request("POST", "/v1/query")
        .json(&json!({"index": "docs", "question": BATTERY, "stream": true}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = sse_events(&res.text().unwrap());
    assert_eq!(events[0].0, "sources", "{events:?}");
    let sources: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(sources["sources"][0]["filename"], "phones.md");
    let deltas: Vec<Value> = events
        .iter()
        .filter(|e| e.0 == "delta")
        .map(|e| serde_json::from_str(&e.1).unwrap())
        .collect();
    assert!(
        deltas.len() > 3,
        "the fake streams word by word: {events:?}"
    );
    let text: String = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    let done: Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["answer"].as_str().unwrap(), text.trim(), "{done}");
    assert_eq!(done["citations"][0]["filename"], "phones.md");
    assert!(
        done["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{done}"
    );
    assert_eq!(fake.stats().chat_streams, 1);
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[test]
fn a_repeated_question_is_answered_from_the_cache_in_a_few_milliseconds() {
    let fake = FakeAzure::start().unwrap();
    let api = online(&fake);
    let body = json!({"index": "docs", "question": BATTERY});
    let (_, first) = query(&api, body.clone());
    assert_eq!(first["cached"], false);
    let (_, second) = query(
        &api,
        json!({"index": "docs", "question": "what is the battery life of the zephyr phone"}),
    );
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(second["answer"], first["answer"]);
    assert_eq!(second["citations"], first["citations"]);
    assert_eq!(fake.stats().calls(Route::Chat), 1);
    let calls = fake.stats().calls(Route::Embeddings);
    // Latency: cache hits against the cheapest request the component
    // answers (a 400 after decoding), same connection pool, warm instance.
    let time = |body: &Value| {
        let start = Instant::now();
        let res = api.request("POST", "/v1/query").json(body).send().unwrap();
        let status = res.status().as_u16();
        res.bytes().unwrap();
        (status, start.elapsed().as_secs_f64() * 1000.0)
    };
    let mut hits = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..30 {
        let (status, ms) = time(&body);
        assert_eq!(status, 200);
        hits.push(ms);
        let (status, ms) = time(&json!({"index": "docs"}));
        assert_eq!(status, 400);
        floor.push(ms);
    }
    let (hit, base) = (median_ms(hits), median_ms(floor));
    eprintln!(
        "cache hit p50 {hit:.2} ms; decode-only request p50 {base:.2} ms; added {:.2} ms",
        hit - base
    );
    assert!(hit - base < 5.0, "a cache hit added {:.1} ms", hit - base);
    assert_eq!(
        fake.stats().calls(Route::Embeddings),
        calls,
        "a hit embeds nothing"
    );
    assert_eq!(fake.stats().calls(Route::Chat), 1);
    // A new document changes the index generation: the next ask is a miss.
    let doc = json!({"filename": "more.md", "content": "# More\n\nThe Zephyr phone case is blue."});
    assert_eq!(
        api.send("POST", "/v1/indexes/docs/documents", Some(doc)).0,
        201
    );
    let (_, after) = query(&api, body);
    assert_eq!(after["cached"], false);
}

#[test]
fn chat_failures_degrade_to_extractive_answers_with_the_reason() {
    let fake = FakeAzure::start().unwrap();
    let api = online_with(&fake, "700");
    let cases = [
        (
            Fault::status(500).on(Route::Chat).retry_after_ms(10),
            "chat_unavailable",
        ),
        (
            Fault::status(429).on(Route::Chat).retry_after_ms(10),
            "chat_rate_limited",
        ),
        (Fault::delay(3_000).on(Route::Chat), "chat_timeout"),
    ];
    for (fault, reason) in cases {
        fake.reset();
        fake.inject(fault);
        for stream in [false, true] {
            let body = json!({"index": "docs", "question": BATTERY, "stream": stream});
            let res = api.request("POST", "/v1/query").json(&body).send().unwrap();
            assert_eq!(res.status().as_u16(), 200, "{reason}");
            let text = res.text().unwrap();
            let a: Value = if stream {
                let events = sse_events(&text);
                assert_eq!(events[0].0, "sources");
                serde_json::from_str(&events.last().unwrap().1).unwrap()
            } else {
                serde_json::from_str(&text).unwrap()
            };
            assert_eq!(a["degraded"], true, "{reason}: {a}");
            assert_eq!(a["degraded_reason"], reason, "{a}");
            assert!(
                a["answer"].as_str().unwrap().contains("30 hours [1]"),
                "{reason}: {a}"
            );
            assert_eq!(a["citations"][0]["filename"], "phones.md");
        }
    }
    // Embeddings down: BM25 only, flagged; the answer still comes from chat.
    fake.reset();
    fake.inject(Fault::status(500).on(Route::Embeddings).retry_after_ms(10));
    let (_, a) = query(&api, json!({"index": "docs", "question": BATTERY}));
    assert_eq!(a["retrieval"]["mode"], "bm25", "{a}");
    assert_eq!(a["retrieval"]["degraded_reason"], "embeddings_unavailable");
    assert_eq!(a["degraded"], true);
    assert!(a["degraded_reason"].is_null(), "{a}");
    assert!(a["answer"].as_str().unwrap().contains("30 hours"), "{a}");
}

fn online_with(fake: &FakeAzure, chat_timeout_ms: &str) -> Api {
    app_with_docs(
        app(&["ingest", "query"])
            .fake_azure(fake)
            .variable("chat_timeout_ms", chat_timeout_ms),
    )
}

#[test]
fn offline_mode_answers_extractively_from_bm25() {
    let api = app_with_docs(app(&["ingest", "query"]));
    let (status, a) = query(
        &api,
        json!({"index": "docs", "question": "When does the café open?"}),
    );
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["degraded_reason"], "offline");
    assert_eq!(a["retrieval"]["mode"], "bm25");
    assert!(a["answer"].as_str().unwrap().contains("opens at 8"), "{a}");
    assert_eq!(a["citations"][0]["filename"], "cafe.md");
    assert!(a["provenance"]["chat_deployment"].is_null());
}

#[test]
fn session_follow_ups_are_condensed_into_standalone_questions() {
    let fake = FakeAzure::start().unwrap();
    let api = online(&fake);
    let (_, first) = query(
        &api,
        json!({"index": "docs", "question": BATTERY, "session_id": "chat-1"}),
    );
    assert_eq!(first["session_id"], "chat-1");
    let (_, follow) = query(
        &api,
        json!({"index": "docs", "question": "How long does it take to charge it?", "session_id": "chat-1"}),
    );
    let standalone = follow["standalone_question"].as_str().unwrap();
    assert!(standalone.contains("Zephyr"), "{follow}");
    assert!(
        follow["answer"].as_str().unwrap().contains("45 minutes"),
        "{follow}"
    );
    assert_eq!(follow["citations"][0]["filename"], "phones.md");
    // Without the session, the same words find nothing about the phone.
    let (_, alone) = query(
        &api,
        json!({"index": "docs", "question": "How long does it take to charge it?"}),
    );
    assert!(alone["standalone_question"].is_null());
    let (status, conflict) = query(
        &api,
        json!({"index": "other", "question": "x", "session_id": "chat-1"}),
    );
    assert_eq!(status, 404, "{conflict}");
}

#[test]
fn bad_input_is_answered_with_the_documented_status() {
    let api = app_with_docs(app(&["ingest", "query"]));
    let long = "why ".repeat(1500);
    let cases = [
        (
            "/v1/query",
            json!({"index": "missing", "question": "x"}),
            404,
            "not_found",
            "",
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": ""}),
            422,
            "validation_failed",
            "question",
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": long}),
            422,
            "validation_failed",
            "question",
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "filter": {"price": {"around": 3}}}),
            400,
            "bad_request",
            "filter.price",
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "top_k": 0}),
            422,
            "validation_failed",
            "top_k",
        ),
        (
            "/v1/search",
            json!({"index": "docs", "query": "x", "top_k": 500}),
            422,
            "validation_failed",
            "top_k",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "missing", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found",
            "",
        ),
    ];
    for (path, body, status, code, field) in cases {
        let (got, err) = api.send("POST", path, Some(body.clone()));
        assert_eq!(got, status, "{path} {body}: {err}");
        assert_eq!(err["error"]["code"], code, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
    let res = api.request("GET", "/v1/query").send().unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["allow"], "POST");
}

/// A slow OpenAI-compatible-enough Azure stand-in: embeddings at once (the
/// fake's model), chat as one SSE chunk every 100 ms for 10 s, noting when
/// the connection is closed under it.
struct SlowUpstream {
    addr: std::net::SocketAddr,
    closed_after_ms: Arc<AtomicU64>,
    chat_started: Arc<AtomicBool>,
}

fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let (line, body) = read_http_message(&mut reader)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    Some((path, body))
}

impl SlowUpstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let closed_after_ms = Arc::new(AtomicU64::new(0));
        let chat_started = Arc::new(AtomicBool::new(false));
        let (closed, started) = (closed_after_ms.clone(), chat_started.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let (closed, started) = (closed.clone(), started.clone());
                std::thread::spawn(move || {
                    while let Some((path, body)) = read_request(&mut stream) {
                        if path.contains("/embeddings") {
                            let request: Value = serde_json::from_slice(&body).unwrap();
                            let inputs: Vec<String> = match &request["input"] {
                                Value::String(s) => vec![s.clone()],
                                Value::Array(a) => {
                                    a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
                                }
                                _ => vec![],
                            };
                            let dims = request["dimensions"].as_u64().unwrap_or(1536) as usize;
                            let data: Vec<Value> = inputs
                                .iter()
                                .enumerate()
                                .map(|(i, t)| json!({"index": i, "embedding": ragspin_fake_azure::model::embed(t, dims)}))
                                .collect();
                            let out = json!({"data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}).to_string();
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                                out.len()
                            );
                            if stream
                                .write_all(head.as_bytes())
                                .and_then(|_| stream.write_all(out.as_bytes()))
                                .is_err()
                            {
                                return;
                            }
                            continue;
                        }
                        started.store(true, Ordering::SeqCst);
                        let begin = Instant::now();
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                        if stream.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        for k in 0..100 {
                            let event = format!(
                                "data: {}\n\n",
                                json!({"choices": [{"index": 0, "delta": {"content": format!("word{k} ")}}]})
                            );
                            let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                            if stream
                                .write_all(chunk.as_bytes())
                                .and_then(|_| stream.flush())
                                .is_err()
                            {
                                closed.store(
                                    begin.elapsed().as_millis().max(1) as u64,
                                    Ordering::SeqCst,
                                );
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        _ = stream.write_all(b"0\r\n\r\n");
                        return;
                    }
                });
            }
        });
        Self {
            addr,
            closed_after_ms,
            chat_started,
        }
    }
}

#[test]
fn a_client_that_disconnects_mid_stream_stops_the_upstream_call() {
    let upstream = SlowUpstream::start();
    let api = app_with_docs(
        app(&["ingest", "query"]).azure(&format!("http://{}", upstream.addr), "slow-key"),
    );
    let mut res = api
        .request("POST", "/v1/query")
        .json(&json!({"index": "docs", "question": BATTERY, "stream": true}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // Read until the first delta arrives, then hang up.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: delta") {
        let n = res.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(upstream.chat_started.load(Ordering::SeqCst));
    let hung_up = Instant::now();
    drop(res);
    while upstream.closed_after_ms.load(Ordering::SeqCst) == 0
        && hung_up.elapsed() < Duration::from_secs(8)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = upstream.closed_after_ms.load(Ordering::SeqCst);
    assert!(
        closed > 0,
        "the upstream stream was still being read 8 s after the client left"
    );
    eprintln!(
        "upstream connection closed {} ms after the client hung up",
        hung_up.elapsed().as_millis()
    );
    assert!(closed < 9_000, "closed after {closed} ms of a 10 s stream");
}

/// Spin pools outbound HTTP connections per destination and shares the pool
/// between instances; `[outbound_http] connection_pooling = false` turns it
/// off. Each query makes two Azure calls (embeddings, chat).
#[test]
fn outbound_connections_to_azure_are_kept_alive_unless_pooling_is_turned_off() {
    for pooling in [true, false] {
        let fake = FakeAzure::start().unwrap();
        let mut options = app(&["ingest", "query"]).fake_azure(&fake);
        options.runtime_config.connection_pooling = pooling;
        let api = app_with_docs(options);
        fake.reset();
        for k in 0..4 {
            let question = format!("{BATTERY} ({k})");
            let (status, body) = query(&api, json!({"index": "docs", "question": question}));
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["degraded"], false, "{body}");
        }
        let stats = fake.stats();
        let calls = stats.calls(Route::Embeddings) + stats.calls(Route::Chat);
        assert_eq!(calls, 8, "{stats:?}");
        if pooling {
            // At most one new connection (ingest's may still be open).
            assert!(stats.connections <= 1, "kept-alive connections: {stats:?}");
        } else {
            assert_eq!(stats.connections, calls, "a connection per call: {stats:?}");
        }
    }
}

/// The official `openai` Python SDK (installed from PyPI on demand) against
/// `/v1/chat/completions`: plain and streamed answers, the `citations`
/// extension, usage, and a 404 for an unknown model (index).
#[test]
fn the_official_openai_python_sdk_works_against_chat_completions() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        let install = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "openai",
            ])
            .status()
            .expect("python3 runs");
        assert!(install.success(), "pip install openai failed");
    }
    let fake = FakeAzure::start().unwrap();
    let api = online(&fake);
    let script = root().join("tests/host/tests/openai_sdk.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(api.url("/v1"))
        .arg(&api.token)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai SDK script failed:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        report["plain"].as_str().unwrap().contains("30 hours"),
        "{report}"
    );
    assert_eq!(report["plain_citation"], "phones.md");
    assert!(
        report["streamed"].as_str().unwrap().contains("30 hours"),
        "{report}"
    );
    assert_eq!(report["streamed_citation"], "phones.md");
    assert!(report["usage_total"].as_u64().unwrap() > 0);
    assert_eq!(report["missing_status"], 404);
}

#[test]
fn query_routes_require_a_caller_with_access_to_the_index() {
    let api = common::Api::start(app(&["ingest", "query"]));
    let body = serde_json::json!({"index": "docs", "query": "anything"});
    let res = client()
        .post(api.url("/v1/search"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers().get("www-authenticate").is_some());
    let res = client()
        .post(api.url("/v1/query"))
        .bearer_auth("not-a-token")
        .json(&serde_json::json!({"index": "docs", "question": "anything"}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let err: serde_json::Value = res.json().unwrap();
    assert_eq!(err["error"]["code"], "unauthorized");
}
