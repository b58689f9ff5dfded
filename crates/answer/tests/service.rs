//! The query service end to end on real SQLite (testkit) with scripted
//! models: grounded answers with verified citations, nothing-found,
//! every degradation path, offline mode, the answer cache, sessions,
//! streaming (order, heartbeats, cancellation) and bad input.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures::StreamExt;
use futures::executor::block_on;
use ragspin_answer::api::{self, Call};
use ragspin_answer::model::{Answer, Event};
use ragspin_answer::service::{self, QueryParams, SearchParams};
use ragspin_answer::{Caller, ChatEvents, Ctx, Models, Offline, Settings};
use ragspin_azure::{ChatAnswer, FinishReason, StreamEvent};
use ragspin_core::{ChatRequest, Error, HttpRequest, Result, Usage};
use ragspin_index::search::Weights;
use ragspin_index::{IndexService, IndexSettings, NewDocument};
use ragspin_testkit::{HashEmbedder, InstantTimer, ManualClock, MemoryKv, SqliteSql};
use serde_json::{Value, json};

const PHONES: &str = "# Zephyr phone\n\nThe Zephyr phone has a battery life of 30 hours. \
It charges fully in 45 minutes with the included charger.\n\n# Warranty\n\n\
The warranty lasts two years and covers battery defects.\n";
const CAFE: &str =
    "# Café\n\nThe café opens at 8 and closes at noon. Parking is free for visitors.\n";

/// Scripted models over the hash embedder the documents were indexed with.
#[derive(Default)]
struct FakeModels {
    embedder: Option<HashEmbedder>,
    embed_error: RefCell<Option<Error>>,
    answers: RefCell<VecDeque<Result<ChatAnswer>>>,
    streams: RefCell<VecDeque<Result<Vec<StreamEvent>>>>,
    requests: RefCell<Vec<ChatRequest>>,
    /// Streams dropped before their end.
    cancelled: Rc<Cell<u32>>,
    /// Make each stream's first `next` pending once.
    slow_start: Cell<bool>,
}

struct FakeEvents {
    events: VecDeque<StreamEvent>,
    cancelled: Rc<Cell<u32>>,
    ended: bool,
    silent_polls: u32,
}

impl Drop for FakeEvents {
    fn drop(&mut self) {
        if !self.ended {
            self.cancelled.set(self.cancelled.get() + 1);
        }
    }
}

impl ChatEvents for FakeEvents {
    async fn next(&mut self) -> Option<StreamEvent> {
        // A silent model: pending for its first polls, whichever `next`
        // future they belong to (the stream may look for a ready event
        // before it waits, dropping that future).
        while self.silent_polls > 0 {
            std::future::poll_fn(|cx| {
                if self.silent_polls == 0 {
                    return std::task::Poll::Ready(());
                }
                self.silent_polls -= 1;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
        }
        let next = self.events.pop_front();
        if matches!(next, None | Some(StreamEvent::Done)) {
            self.ended = true;
        }
        next
    }
}

impl Models for FakeModels {
    type Events = FakeEvents;
    fn online(&self) -> bool {
        true
    }
    fn chat_deployment(&self) -> Option<String> {
        Some("gpt-test".into())
    }
    fn embedding_deployment(&self, _: &IndexSettings) -> Option<String> {
        Some("hash-64".into())
    }
    async fn embed(&self, _: &IndexSettings, text: &str) -> Result<Vec<f32>> {
        if let Some(e) = self.embed_error.borrow().clone() {
            return Err(e);
        }
        Ok(self.embedder.as_ref().unwrap().embed_one(text))
    }
    async fn complete(&self, request: &ChatRequest) -> Result<ChatAnswer> {
        self.requests.borrow_mut().push(request.clone());
        self.answers
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(Error::Upstream("no scripted answer".into())))
    }
    async fn stream(&self, request: &ChatRequest) -> Result<FakeEvents> {
        self.requests.borrow_mut().push(request.clone());
        let events = self
            .streams
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(Error::Upstream("no scripted stream".into())))?;
        Ok(FakeEvents {
            events: events.into(),
            cancelled: self.cancelled.clone(),
            ended: false,
            silent_polls: if self.slow_start.get() { 3 } else { 0 },
        })
    }
}

fn said(content: &str) -> Result<ChatAnswer> {
    Ok(ChatAnswer {
        content: content.into(),
        finish_reason: Some(FinishReason::Stop),
        usage: Usage {
            prompt_tokens: 100,
            completion_tokens: 20,
        },
    })
}

type TestCtx<M> = Ctx<SqliteSql, MemoryKv, ManualClock, InstantTimer, M>;

fn indexed_db(embedder: Option<&HashEmbedder>) -> (SqliteSql, ManualClock) {
    let sql = SqliteSql::new().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    block_on(svc.migrate()).unwrap();
    block_on(svc.put_index("docs", IndexSettings::default())).unwrap();
    for (name, text) in [("phones.md", PHONES), ("cafe.md", CAFE)] {
        let doc = NewDocument {
            filename: name.into(),
            content_type: Some("text/markdown".into()),
            content: text.as_bytes().to_vec(),
            ..Default::default()
        };
        block_on(svc.ingest("docs", doc, embedder, u64::MAX)).unwrap();
    }
    (sql, clock)
}

fn online() -> TestCtx<FakeModels> {
    let embedder = HashEmbedder::new(64);
    let (sql, clock) = indexed_db(Some(&embedder));
    Ctx {
        sql,
        kv: MemoryKv::new(),
        clock,
        timer: InstantTimer::new(),
        models: FakeModels {
            embedder: Some(embedder),
            ..FakeModels::default()
        },
        settings: Settings::default(),
    }
}

fn offline() -> TestCtx<Offline> {
    let (sql, clock) = indexed_db(None::<&HashEmbedder>);
    Ctx {
        sql,
        kv: MemoryKv::new(),
        clock,
        timer: InstantTimer::new(),
        models: Offline,
        settings: Settings::default(),
    }
}

fn question(q: &str) -> QueryParams {
    QueryParams {
        index: "docs".into(),
        question: q.into(),
        ..QueryParams::default()
    }
}

fn ask<M: Models>(ctx: &TestCtx<M>, params: QueryParams) -> Answer {
    let prepared = block_on(service::prepare(ctx, &Caller::anonymous(), params)).unwrap();
    block_on(service::answer(ctx, prepared))
}

const BATTERY: &str = "What is the battery life of the Zephyr phone?";

#[test]
fn answers_with_citations_verified_against_the_retrieved_sources() {
    let ctx = online();
    ctx.models
        .answers
        .borrow_mut()
        .push_back(said("The Zephyr phone lasts 30 hours on a battery [1][7]."));
    let a = ask(&ctx, question(BATTERY));
    assert_eq!(
        a.answer,
        "The Zephyr phone lasts 30 hours on a battery [1]."
    );
    assert_eq!(a.citations.len(), 1);
    assert_eq!(a.citations[0].filename, "phones.md");
    assert!(
        a.citations[0].snippet.contains("30 hours"),
        "{:?}",
        a.citations[0]
    );
    assert_eq!(a.dropped_citations.len(), 1);
    assert_eq!(a.dropped_citations[0].source, 7);
    assert_eq!(a.dropped_citations[0].reason, "unknown_source");
    assert!(!a.degraded && a.found);
    assert_eq!(a.retrieval.mode, "hybrid");
    assert_eq!(a.usage.total_tokens, 120);
    assert_eq!(a.provenance.chat_deployment.as_deref(), Some("gpt-test"));
    assert_eq!(
        a.provenance.embedding_deployment.as_deref(),
        Some("hash-64")
    );
    assert_eq!(
        a.provenance.prompt_version,
        ragspin_answer::prompt::PROMPT_VERSION
    );
    assert_eq!(a.index_version, 1);
    let prompt = &ctx.models.requests.borrow()[0].messages[0].content;
    assert!(prompt.contains("[1] "), "{prompt}");
    assert!(prompt.contains("30 hours"), "{prompt}");
}

#[test]
fn says_the_documents_do_not_contain_it_and_cites_nothing_when_nothing_is_relevant() {
    let ctx = online();
    let a = ask(&ctx, question("Who won the 1998 football world cup?"));
    assert!(!a.found);
    assert_eq!(a.answer, service::NOT_FOUND_ANSWER);
    assert!(a.citations.is_empty());
    assert!(
        ctx.models.requests.borrow().is_empty(),
        "the model was not asked"
    );
}

#[test]
fn one_shared_word_is_not_enough_for_a_question_of_three_or_more_content_words() {
    // Offline (no vector scores): relevance is lexical only. "phone" is in
    // the phones document, nothing else of the question is.
    let ctx = offline();
    let a = ask(
        &ctx,
        question("Which arctic birds migrate past the phone mast?"),
    );
    assert!(!a.found, "{}", a.answer);
    assert!(a.citations.is_empty());
    // Two shared words make a source relevant.
    let a = ask(
        &ctx,
        question("How long does the phone battery last in arctic cold?"),
    );
    assert!(a.found, "{}", a.answer);
}

#[test]
fn degrades_to_an_extractive_answer_on_each_chat_failure() {
    let cases = [
        (Error::Timeout("slow".into()), "chat_timeout"),
        (
            Error::Unavailable("chat: Azure OpenAI is rate limiting (429); gave up".into()),
            "chat_rate_limited",
        ),
        (
            Error::Unavailable("chat: Azure OpenAI failed (500); gave up".into()),
            "chat_unavailable",
        ),
        (Error::Upstream("chat: rejected (401)".into()), "chat_error"),
    ];
    for (error, reason) in cases {
        let ctx = online();
        ctx.models.answers.borrow_mut().push_back(Err(error));
        let a = ask(&ctx, question(BATTERY));
        assert!(a.degraded, "{reason}");
        assert_eq!(a.degraded_reason.as_deref(), Some(reason));
        assert!(a.answer.contains("30 hours [1]"), "{reason}: {}", a.answer);
        assert_eq!(a.citations[0].filename, "phones.md");
        assert_eq!(a.provenance.chat_deployment, None);
    }
}

#[test]
fn a_content_filtered_completion_becomes_an_extractive_answer() {
    let ctx = online();
    ctx.models.answers.borrow_mut().push_back(Ok(ChatAnswer {
        content: "partial".into(),
        finish_reason: Some(FinishReason::ContentFilter),
        usage: Usage::default(),
    }));
    let a = ask(&ctx, question(BATTERY));
    assert_eq!(a.degraded_reason.as_deref(), Some("chat_content_filter"));
    assert!(a.answer.contains("30 hours"));
}

#[test]
fn falls_back_to_bm25_flagged_when_the_question_cannot_be_embedded() {
    let ctx = online();
    *ctx.models.embed_error.borrow_mut() = Some(Error::Unavailable("embeddings down".into()));
    ctx.models
        .answers
        .borrow_mut()
        .push_back(said("It lasts 30 hours [1]."));
    let a = ask(&ctx, question(BATTERY));
    assert_eq!(a.retrieval.mode, "bm25");
    assert_eq!(
        a.retrieval.degraded_reason.as_deref(),
        Some("embeddings_unavailable")
    );
    assert!(a.degraded);
    assert_eq!(
        a.degraded_reason, None,
        "the answer itself came from the model"
    );
    assert_eq!(a.provenance.embedding_deployment, None);
    assert_eq!(a.citations.len(), 1);
}

#[test]
fn offline_mode_retrieves_with_bm25_and_answers_extractively() {
    let ctx = offline();
    let a = ask(&ctx, question("When does the café open?"));
    assert_eq!(a.retrieval.mode, "bm25");
    assert_eq!(a.degraded_reason.as_deref(), Some("offline"));
    assert!(a.answer.contains("opens at 8"), "{}", a.answer);
    assert_eq!(a.citations[0].filename, "cafe.md");
    assert_eq!(a.provenance.chat_deployment, None);
}

#[test]
fn a_repeated_question_is_served_from_the_cache_until_the_index_changes() {
    let ctx = online();
    ctx.models
        .answers
        .borrow_mut()
        .extend([said("It lasts 30 hours [1]."), said("Now 30 hours [1].")]);
    let first = ask(&ctx, question(BATTERY));
    assert!(!first.cached);
    let again = ask(
        &ctx,
        question("  what is the battery life of the zephyr PHONE "),
    );
    assert!(again.cached);
    assert_eq!(again.answer, first.answer);
    assert_eq!(again.citations, first.citations);
    assert_eq!(
        ctx.models.requests.borrow().len(),
        1,
        "the model was asked once"
    );
    // Another filter, or another caller scope, is another entry.
    let mut filtered = question(BATTERY);
    filtered.filter = json!({"lang": "en"});
    let prepared = block_on(service::prepare(&ctx, &Caller::anonymous(), filtered)).unwrap();
    assert!(prepared.cached.is_none());
    let other = Caller {
        principal: "bob".into(),
        scope: "user:bob".into(),
    };
    let prepared = block_on(service::prepare(&ctx, &other, question(BATTERY))).unwrap();
    assert!(prepared.cached.is_none());
    // A write to the index bumps its generation: a miss by construction.
    let svc = IndexService::new(&ctx.sql, &ctx.clock);
    let doc = NewDocument {
        filename: "more.md".into(),
        content: b"# More\n\nUnrelated text about tea.".to_vec(),
        ..Default::default()
    };
    block_on(svc.ingest("docs", doc, ctx.models.embedder.as_ref(), u64::MAX)).unwrap();
    let after = ask(&ctx, question(BATTERY));
    assert!(!after.cached);
    assert_eq!(ctx.models.requests.borrow().len(), 2);
}

#[test]
fn degraded_answers_are_not_cached() {
    let ctx = online();
    ctx.models.answers.borrow_mut().extend([
        Err(Error::Timeout("slow".into())),
        said("It lasts 30 hours [1]."),
    ]);
    assert!(ask(&ctx, question(BATTERY)).degraded);
    let second = ask(&ctx, question(BATTERY));
    assert!(!second.cached && !second.degraded);
}

#[test]
fn a_follow_up_in_a_session_is_condensed_and_sees_the_conversation() {
    let ctx = online();
    ctx.models.answers.borrow_mut().extend([
        said("The battery lasts 30 hours [1]."),
        said("It charges fully in 45 minutes [1]."),
    ]);
    let mut first = question(BATTERY);
    first.session_id = Some("s-1".into());
    let a = ask(&ctx, first);
    assert_eq!(a.session_id.as_deref(), Some("s-1"));
    assert_eq!(a.standalone_question, None);
    let mut follow = question("How long does it take to charge?");
    follow.session_id = Some("s-1".into());
    let b = ask(&ctx, follow);
    let standalone = b.standalone_question.clone().unwrap();
    assert!(standalone.contains("Zephyr"), "{standalone}");
    assert!(!b.cached, "follow-ups depend on the conversation");
    assert_eq!(b.citations[0].filename, "phones.md");
    let request = &ctx.models.requests.borrow()[1];
    let texts: Vec<&str> = request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(texts[1], BATTERY);
    assert_eq!(
        texts[2], "The battery lasts 30 hours.",
        "history without markers"
    );
    assert_eq!(*texts.last().unwrap(), standalone);
    // The session is bounded and kept under the caller's key.
    let keys: Vec<String> = ctx.kv.snapshot().keys().cloned().collect();
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("query:session:"))
            .count(),
        1
    );
    // Another principal does not see it.
    let stranger = Caller {
        principal: "mallory".into(),
        scope: "*".into(),
    };
    let mut guess = question("How long does it take to charge?");
    guess.session_id = Some("s-1".into());
    let prepared = block_on(service::prepare(&ctx, &stranger, guess)).unwrap();
    assert!(prepared.history.is_empty());
}

fn collect(ctx: TestCtx<FakeModels>, q: &str) -> (Vec<Event>, Rc<TestCtx<FakeModels>>) {
    let ctx = Rc::new(ctx);
    let prepared = block_on(service::prepare(&ctx, &Caller::anonymous(), question(q))).unwrap();
    let events = block_on(service::answer_stream(ctx.clone(), prepared).collect::<Vec<_>>());
    (events, ctx)
}

fn streamed(pieces: &[&str]) -> Vec<StreamEvent> {
    let mut events: Vec<StreamEvent> = pieces
        .iter()
        .map(|p| StreamEvent::Content((*p).into()))
        .collect();
    events.push(StreamEvent::Finish(FinishReason::Stop));
    events.push(StreamEvent::Usage(Usage {
        prompt_tokens: 50,
        completion_tokens: 5,
    }));
    events.push(StreamEvent::Done);
    events
}

#[test]
fn a_stream_sends_sources_first_then_deltas_then_the_verified_answer() {
    let ctx = online();
    ctx.models.streams.borrow_mut().push_back(Ok(streamed(&[
        "The battery ",
        "lasts 30 hours [1]",
        "[4].",
    ])));
    let (events, ctx) = collect(ctx, BATTERY);
    let Event::Sources(sources) = &events[0] else {
        panic!("first event: {:?}", events[0])
    };
    assert_eq!(sources.sources[0].filename, "phones.md");
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, ["The battery ", "lasts 30 hours [1]", "[4]."]);
    let Some(Event::Done(done)) = events.last() else {
        panic!("last event: {:?}", events.last())
    };
    assert_eq!(done.answer, "The battery lasts 30 hours [1].");
    assert_eq!(done.citations.len(), 1);
    assert_eq!(done.dropped_citations[0].source, 4);
    assert_eq!(done.usage.total_tokens, 55);
    assert!(done.sources.is_empty(), "sources went in the first event");
    assert_eq!(ctx.models.cancelled.get(), 0);
}

#[test]
fn a_silent_model_gets_heartbeats_and_a_dropped_stream_cancels_the_model_call() {
    let ctx = online();
    ctx.models.slow_start.set(true);
    ctx.models
        .streams
        .borrow_mut()
        .push_back(Ok(streamed(&["The battery ", "lasts 30 hours [1]."])));
    let ctx = Rc::new(ctx);
    let prepared = block_on(service::prepare(
        &ctx,
        &Caller::anonymous(),
        question(BATTERY),
    ))
    .unwrap();
    let mut stream = service::answer_stream(ctx.clone(), prepared);
    let first: Vec<Event> = block_on(async {
        let mut out = Vec::new();
        while let Some(e) = stream.next().await {
            let delta = matches!(e, Event::Delta(_));
            out.push(e);
            if delta {
                break;
            }
        }
        out
    });
    assert!(matches!(first[0], Event::Sources(_)));
    assert!(first.contains(&Event::Heartbeat), "{first:?}");
    assert_eq!(ctx.models.cancelled.get(), 0);
    drop(stream); // the client went away
    assert_eq!(
        ctx.models.cancelled.get(),
        1,
        "the model stream was dropped"
    );
}

#[test]
fn a_stream_that_cannot_start_streams_the_extractive_answer_flagged() {
    let ctx = online();
    ctx.models
        .streams
        .borrow_mut()
        .push_back(Err(Error::Unavailable("rate limiting (429)".into())));
    let (events, _) = collect(ctx, BATTERY);
    assert!(matches!(events[0], Event::Sources(_)));
    assert!(
        matches!(&events[1], Event::Delta(t) if t.contains("30 hours [1]")),
        "{events:?}"
    );
    let Some(Event::Done(done)) = events.last() else {
        panic!()
    };
    assert_eq!(done.degraded_reason.as_deref(), Some("chat_rate_limited"));
}

#[test]
fn a_stream_cut_short_keeps_what_came_flagged() {
    let ctx = online();
    ctx.models.streams.borrow_mut().push_back(Ok(vec![
        StreamEvent::Content("The battery lasts 30 hours [1].".into()),
        StreamEvent::Failed(Error::Upstream("stream ended without [DONE]".into())),
    ]));
    let (events, _) = collect(ctx, BATTERY);
    let Some(Event::Done(done)) = events.last() else {
        panic!()
    };
    assert_eq!(done.answer, "The battery lasts 30 hours [1].");
    assert_eq!(done.finish_reason, "error");
    assert_eq!(done.degraded_reason.as_deref(), Some("chat_error"));
}

#[test]
fn search_returns_hits_with_per_method_scores() {
    let ctx = online();
    let params = SearchParams {
        index: "docs".into(),
        query: "battery warranty".into(),
        top_k: Some(3),
        filter: Value::Null,
        weights: None,
        vector: None,
    };
    let r = block_on(service::search_index(&ctx, params)).unwrap();
    assert_eq!(r.retrieval.mode, "hybrid");
    assert!(!r.hits.is_empty() && r.hits.len() <= 3);
    assert!(
        r.hits
            .iter()
            .any(|h| h.scores.bm25.is_some() && h.scores.vector.is_some())
    );
    assert_eq!(r.hits[0].filename, "phones.md");
}

#[test]
fn weights_select_bm25_only_or_vector_only_retrieval() {
    // Issue 8: the offline evaluation compares the retrievers through these
    // weights (`{bm25: 1, vector: 0}`, `{bm25: 0, vector: 1}`).
    let ctx = online();
    let params = |bm25, vector| SearchParams {
        index: "docs".into(),
        query: "battery warranty".into(),
        top_k: Some(5),
        filter: Value::Null,
        weights: Some(Weights { bm25, vector }),
        vector: None,
    };
    // BM25 only never embeds the query: a failing embedder does not matter.
    *ctx.models.embed_error.borrow_mut() = Some(Error::Unavailable("embeddings down".into()));
    let r = block_on(service::search_index(&ctx, params(1.0, 0.0))).unwrap();
    assert_eq!(r.retrieval.mode, "bm25");
    assert!(!r.degraded, "{:?}", r.retrieval);
    assert!(!r.hits.is_empty());
    assert!(r.hits.iter().all(|h| h.scores.vector.is_none()));
    *ctx.models.embed_error.borrow_mut() = None;
    // Vector only: ranked by cosine similarity alone.
    let r = block_on(service::search_index(&ctx, params(0.0, 1.0))).unwrap();
    assert_eq!(r.retrieval.mode, "vector");
    let cosines: Vec<f64> = r.hits.iter().map(|h| h.scores.vector.unwrap()).collect();
    assert!(!cosines.is_empty());
    assert!(cosines.windows(2).all(|w| w[0] >= w[1]), "{cosines:?}");
}

#[test]
fn search_uses_a_query_vector_the_caller_supplies() {
    // Offline: nothing could embed the query, the caller's vector is used.
    let embedder = HashEmbedder::new(64);
    let ctx = offline();
    let (sql, clock) = indexed_db(Some(&embedder));
    let ctx = TestCtx { sql, clock, ..ctx };
    let vector = embedder.embed_one("The warranty lasts two years and covers battery defects.");
    let params = |vector: Vec<f32>| SearchParams {
        index: "docs".into(),
        query: "unrelated words".into(),
        top_k: Some(2),
        filter: Value::Null,
        weights: Some(Weights {
            bm25: 0.0,
            vector: 1.0,
        }),
        vector: Some(vector),
    };
    let r = block_on(service::search_index(&ctx, params(vector.clone()))).unwrap();
    assert_eq!(r.retrieval.mode, "vector");
    assert!(!r.degraded);
    assert!(r.hits[0].text.contains("warranty"), "{:?}", r.hits[0].text);
    assert!(r.hits.iter().all(|h| h.scores.bm25.is_none()));
    for bad in [vector[..10].to_vec(), Vec::new()] {
        let e = block_on(service::search_index(&ctx, params(bad))).unwrap_err();
        assert_eq!(ragspin_core::status_for(&e), 422, "{e}");
        assert!(e.to_string().contains("vector"), "{e}");
    }
}

fn call(path: &str, body: Value) -> std::result::Result<Call, Error> {
    api::decode(&HttpRequest::new("POST", path).with_body(body.to_string()))
}

fn status_of<M: Models + 'static>(ctx: &Rc<TestCtx<M>>, path: &str, body: Value) -> (u16, Value) {
    let response = match call(path, body) {
        Ok(c) => block_on(api::serve(ctx.clone(), &Caller::anonymous(), c))
            .full()
            .expect("a whole response"),
        Err(e) => ragspin_core::HttpResponse::error(&e),
    };
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap(),
    )
}

#[test]
fn bad_input_gets_the_documented_status_naming_the_problem() {
    let ctx = Rc::new(offline());
    let long = "why ".repeat(1500);
    let cases = [
        (
            "/v1/query",
            json!({"index": "nope", "question": "x"}),
            404,
            None,
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "  "}),
            422,
            Some("question"),
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": long}),
            422,
            Some("question"),
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "filter": {"price": {"between": 1}}}),
            400,
            Some("filter.price"),
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "top_k": 0}),
            422,
            Some("top_k"),
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "top_k": 51}),
            422,
            Some("top_k"),
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "colour": 1}),
            400,
            Some("colour"),
        ),
        (
            "/v1/query",
            json!({"index": "docs", "question": "x", "session_id": "a b"}),
            400,
            Some("session_id"),
        ),
        (
            "/v1/search",
            json!({"index": "docs", "query": "x", "top_k": 100}),
            422,
            Some("top_k"),
        ),
        (
            "/v1/search",
            json!({"index": "Bad Name", "query": "x"}),
            400,
            Some("index"),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            None,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "docs", "messages": []}),
            422,
            Some("messages"),
        ),
    ];
    for (path, body, status, field) in cases {
        let (got, json) = status_of(&ctx, path, body.clone());
        assert_eq!(got, status, "{path} {body}: {json}");
        if let Some(field) = field {
            assert!(
                json["error"]["message"].as_str().unwrap().contains(field),
                "{path} {body}: {json}"
            );
        }
    }
    let get = api::decode(&HttpRequest::new("GET", "/v1/query"));
    assert!(matches!(get, Err(Error::MethodNotAllowed { .. })));
}

#[test]
fn chat_completions_answer_in_openai_shape_with_citations_alongside() {
    let ctx = Rc::new(offline());
    let body = json!({"model": "docs", "messages": [{"role": "user", "content": "When does the café open?"}]});
    let (status, json) = status_of(&ctx, "/v1/chat/completions", body);
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "docs");
    assert_eq!(json["choices"][0]["message"]["role"], "assistant");
    assert!(
        json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("opens at 8")
    );
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(json["citations"][0]["filename"], "cafe.md");
    assert_eq!(json["ragspin"]["degraded_reason"], "offline");
}

#[test]
fn streamed_chat_completions_are_openai_chunks_ending_with_done() {
    let ctx = Rc::new(offline());
    let body = json!({"model": "docs", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "When does the café open?"}]});
    let c = call("/v1/chat/completions", body).unwrap();
    let api::Reply::Events(events) = block_on(api::serve(ctx, &Caller::anonymous(), c)) else {
        panic!("not a stream")
    };
    let bytes: Vec<u8> = block_on(events.collect::<Vec<_>>()).concat();
    let text = String::from_utf8(bytes).unwrap();
    let datas: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(*datas.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let finish = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"] == "stop")
        .unwrap();
    assert_eq!(finish["citations"][0]["filename"], "cafe.md");
    assert!(chunks.last().unwrap()["usage"].is_object());
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(content.contains("opens at 8"), "{content}");
}
