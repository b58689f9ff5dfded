//! Behaviour of the fakes beyond the port contracts.

use futures::executor::block_on;
use ragspin_core::{
    ChatCompletion, ChatMessage, ChatModel, ChatRequest, Chunk, Clock, Config, Embedder, Error,
    HttpClient, HttpRequest, HttpResponse, KvStore, Retriever, Role, SearchQuery, Sql, SqlValue,
    Usage,
};
use ragspin_testkit::{
    HashEmbedder, ManualClock, MapConfig, MemoryKv, MemoryRetriever, ScriptedChat, ScriptedHttp,
    SqliteSql,
};

#[test]
fn memory_kv_fails_every_operation_while_a_failure_is_injected() {
    let kv = MemoryKv::new();
    block_on(kv.set("k", b"v")).unwrap();
    kv.fail_with(Some("boom"));
    assert_eq!(block_on(kv.get("k")), Err(Error::Storage("boom".into())));
    assert!(block_on(kv.set("k", b"w")).is_err());
    assert!(block_on(kv.delete("k")).is_err());
    assert!(block_on(kv.increment("n", 1)).is_err());
    kv.fail_with(None);
    assert_eq!(block_on(kv.get("k")).unwrap(), Some(b"v".to_vec()));
}

#[test]
fn sqlite_sql_recovers_after_an_injected_failure() {
    let db = SqliteSql::new().unwrap();
    db.fail_with(Some("locked"));
    assert_eq!(
        block_on(db.query("SELECT 1", &[])),
        Err(Error::Storage("locked".into()))
    );
    db.fail_with(None);
    let rows = block_on(db.query("SELECT 1", &[])).unwrap();
    assert_eq!(rows.rows[0].get(0), Some(&SqlValue::Integer(1)));
}

#[test]
fn map_config_fails_lookups_like_a_broken_provider_while_injected() {
    let config = MapConfig::new().with("a", "1");
    config.fail_with(Some("vault sealed"));
    assert!(matches!(
        block_on(config.get("a")),
        Err(Error::Unavailable(_))
    ));
    config.fail_with(None);
    assert_eq!(block_on(config.get("a")).unwrap().as_deref(), Some("1"));
    config.remove("a");
    assert_eq!(block_on(config.get("a")).unwrap(), None);
}

#[test]
fn manual_clock_moves_only_when_told() {
    let clock = ManualClock::new(1_000);
    assert_eq!(clock.now_unix_ms(), 1_000);
    clock.advance(500);
    assert_eq!(clock.now_unix_ms(), 1_500);
    clock.set(10);
    assert_eq!(clock.now_unix_ms(), 10);
}

#[test]
fn scripted_http_answers_in_order_and_records_requests() {
    let http = ScriptedHttp::new();
    http.push(HttpResponse::new(200, "text/plain", "one"));
    http.push_error(Error::Timeout("slow".into()));
    let first = block_on(http.send(HttpRequest::new("GET", "https://a/1"))).unwrap();
    assert_eq!(first.body, b"one");
    assert_eq!(
        block_on(http.send(HttpRequest::new("POST", "https://a/2"))),
        Err(Error::Timeout("slow".into()))
    );
    assert!(matches!(
        block_on(http.send(HttpRequest::new("GET", "https://a/3"))),
        Err(Error::Upstream(_))
    ));
    let urls: Vec<_> = http.requests().into_iter().map(|r| r.url).collect();
    assert_eq!(urls, ["https://a/1", "https://a/2", "https://a/3"]);
}

#[test]
fn hash_embedder_is_deterministic_and_normalised() {
    let embedder = HashEmbedder::new(64);
    let texts = vec![
        "Spin runs WebAssembly".to_owned(),
        "spin runs webassembly".to_owned(),
    ];
    let vectors = block_on(embedder.embed(&texts)).unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].len(), 64);
    assert_eq!(vectors[0], vectors[1], "case-insensitive and deterministic");
    let norm: f32 = vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    assert_eq!(embedder.model(), "hash-64");
}

#[test]
fn hash_embedder_ranks_shared_words_above_unrelated_text() {
    let embedder = HashEmbedder::new(256);
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let q = embedder.embed_one("kubernetes spin operator");
    let related = embedder.embed_one("the spin operator runs on kubernetes clusters");
    let unrelated = embedder.embed_one("bananas are yellow fruit");
    assert!(cos(&q, &related) > cos(&q, &unrelated) + 0.3);
    assert!(embedder.embed_one("").iter().all(|x| *x == 0.0));
}

#[test]
fn scripted_chat_answers_in_order_and_records_requests() {
    let chat = ScriptedChat::new();
    chat.push(ChatCompletion {
        content: "42".into(),
        usage: Usage {
            prompt_tokens: 3,
            completion_tokens: 1,
        },
    });
    let request = ChatRequest {
        messages: vec![ChatMessage::new(Role::User, "meaning of life?")],
        max_tokens: Some(5),
        temperature: None,
    };
    assert_eq!(block_on(chat.complete(&request)).unwrap().content, "42");
    assert!(matches!(
        block_on(chat.complete(&request)),
        Err(Error::Upstream(_))
    ));
    assert_eq!(chat.requests(), vec![request.clone(), request]);
}

fn chunk(id: &str, text: &str) -> Chunk {
    Chunk {
        id: id.into(),
        document_id: "doc".into(),
        ordinal: 0,
        text: text.into(),
    }
}

#[test]
fn memory_retriever_ranks_by_shared_words_within_one_index() {
    let retriever = MemoryRetriever::new();
    retriever.insert("docs", chunk("c1", "Spin components are WebAssembly"));
    retriever.insert(
        "docs",
        chunk("c2", "Spin runs WebAssembly components on Kubernetes"),
    );
    retriever.insert("docs", chunk("c3", "unrelated bananas"));
    retriever.insert(
        "other",
        chunk("c4", "spin kubernetes webassembly components"),
    );
    let query = SearchQuery {
        index: "docs".into(),
        text: "spin kubernetes components".into(),
        top_k: 5,
    };
    let results = block_on(retriever.retrieve(&query)).unwrap();
    let ids: Vec<_> = results.iter().map(|r| r.chunk.id.as_str()).collect();
    assert_eq!(ids, ["c2", "c1"]);
    assert!(results[0].score > results[1].score);
}

#[test]
fn memory_retriever_honours_top_k_and_breaks_ties_by_id() {
    let retriever = MemoryRetriever::new();
    for id in ["b", "a", "c"] {
        retriever.insert("i", chunk(id, "same text"));
    }
    let query = SearchQuery {
        index: "i".into(),
        text: "text".into(),
        top_k: 2,
    };
    let ids: Vec<_> = block_on(retriever.retrieve(&query))
        .unwrap()
        .into_iter()
        .map(|r| r.chunk.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn instant_timer_records_each_sleep_it_was_asked_for() {
    let timer = ragspin_testkit::InstantTimer::new();
    block_on(async {
        ragspin_core::Timer::sleep(&timer, 250).await;
        ragspin_core::Timer::sleep(&timer, 0).await;
        ragspin_core::Timer::sleep(&timer, 1_000).await;
    });
    assert_eq!(timer.sleeps(), vec![250, 0, 1_000]);
    assert_eq!(timer.total_ms(), 1_250);
}

#[test]
fn instant_timer_does_not_record_a_timeout_that_never_started() {
    let timer = ragspin_testkit::InstantTimer::new();
    let got = block_on(ragspin_core::with_timeout(&timer, 500, async { Ok(1) }));
    assert_eq!(got, Ok(1));
    assert!(timer.sleeps().is_empty());
}

#[test]
fn real_timer_waits_at_least_the_requested_time() {
    let start = std::time::Instant::now();
    block_on(ragspin_core::Timer::sleep(&ragspin_testkit::RealTimer, 30));
    assert!(start.elapsed() >= std::time::Duration::from_millis(30));
}
