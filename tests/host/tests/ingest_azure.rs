//! The compiled ingest component against the fake Azure OpenAI server on
//! loopback: embeddings are cached, retried, and a failure mid-ingest leaves
//! no partial document while a retry resumes without re-embedding.

mod common;

use common::{Api, app};
use ragspin_fake_azure::{FakeAzure, Fault, Route};
use serde_json::json;

fn host_for(fake: &FakeAzure) -> Api {
    Api::start(app(&["ingest"]).fake_azure(fake))
}

/// Markdown with `n` sections of unique sentences.
fn corpus(n: usize, tag: &str) -> String {
    (0..n)
        .map(|k| {
            let body: String = (0..12)
                .map(|j| format!("Section {k} sentence {j} of {tag} explains a distinct idea about topic {k}. "))
                .collect();
            format!("# Part {k}\n\n{body}\n\n")
        })
        .collect()
}

#[test]
fn embeddings_are_cached_so_unchanged_content_costs_nothing_and_edits_cost_little() {
    let fake = FakeAzure::start().unwrap();
    let api = host_for(&fake);
    let settings = json!({"chunking": {"max_tokens": 64, "overlap_tokens": 8}, "dimensions": 256});
    assert_eq!(api.send("PUT", "/v1/indexes/kb", Some(settings)).0, 201);
    let text = corpus(6, "guide");
    let doc = json!({"id": "guide", "filename": "guide.md", "content": text});
    let (status, first) = api.send("POST", "/v1/indexes/kb/documents", Some(doc.clone()));
    assert_eq!(status, 201, "{first}");
    let chunks = first["document"]["chunks"].as_u64().unwrap();
    let stats = fake.stats();
    assert!(stats.calls(Route::Embeddings) >= 1);
    assert_eq!(
        stats.embedded_inputs,
        first["embedding_calls"]
            .as_u64()
            .map(|_| stats.embedded_inputs)
            .unwrap()
    );
    let (_, index) = api.send("GET", "/v1/indexes/kb", None);
    assert_eq!(index["stats"]["vectors_pending"], 0, "{index}");

    let (status, again) = api.send("POST", "/v1/indexes/kb/documents", Some(doc));
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        fake.stats().embedded_inputs,
        stats.embedded_inputs,
        "unchanged content was embedded again"
    );

    let edited = text.replacen(
        "Section 3 sentence 4 of guide",
        "Section 3 sentence 4 of guide, now revised,",
        1,
    );
    let (status, replaced) = api.send(
        "PUT",
        "/v1/indexes/kb/documents/guide",
        Some(json!({"filename": "guide.md", "content": edited})),
    );
    assert_eq!(status, 200, "{replaced}");
    let re_embedded = fake.stats().embedded_inputs - stats.embedded_inputs;
    assert!(
        re_embedded >= 1 && re_embedded < chunks,
        "re-embedded {re_embedded} of {chunks}"
    );
}

#[test]
fn a_failure_mid_ingest_leaves_no_partial_document_and_a_retry_resumes() {
    let fake = FakeAzure::start().unwrap();
    let api = host_for(&fake);
    let settings = json!({"chunking": {"max_tokens": 40, "overlap_tokens": 4}, "dimensions": 64});
    assert_eq!(api.send("PUT", "/v1/indexes/big", Some(settings)).0, 201);
    // About 2,400 chunks: two requests (the client sends up to 2,048
    // inputs each, and the service commits each request's vectors).
    let doc = json!({"id": "big", "filename": "big.md", "content": corpus(400, "big")});
    // The second embeddings call and every retry of it fail.
    fake.inject(
        Fault::status(500)
            .on(Route::Embeddings)
            .after_calls(1)
            .times(1000),
    );
    let (status, err) = api.send("POST", "/v1/indexes/big/documents", Some(doc.clone()));
    assert!(status >= 500, "{status} {err}");
    assert!(err["error"]["code"].is_string(), "{err}");
    let (_, got) = api.send("GET", "/v1/indexes/big/documents/big", None);
    assert_eq!(got["status"]["stage"], "failed", "{got}");
    assert_eq!(got["chunks"], 0);
    let (_, index) = api.send("GET", "/v1/indexes/big", None);
    assert_eq!(
        index["stats"]["chunks"], 0,
        "a partial document was left behind: {index}"
    );
    let embedded_before = fake.stats().embedded_inputs;
    assert!(embedded_before > 0);

    fake.reset();
    let (status, ok) = api.send("POST", "/v1/indexes/big/documents", Some(doc));
    assert_eq!(status, 201, "{ok}");
    assert_eq!(ok["document"]["status"]["stage"], "indexed");
    let chunks = ok["document"]["chunks"].as_u64().unwrap();
    assert_eq!(ok["cached_embeddings"].as_u64().unwrap(), embedded_before);
    assert_eq!(
        fake.stats().embedded_inputs + embedded_before,
        chunks,
        "finished embeddings were repeated"
    );
}

#[test]
fn rate_limits_are_retried_after_the_servers_delay() {
    let fake = FakeAzure::start().unwrap();
    let api = host_for(&fake);
    assert_eq!(
        api.send("PUT", "/v1/indexes/rl", Some(json!({"dimensions": 32})))
            .0,
        201
    );
    fake.inject(
        Fault::status(429)
            .on(Route::Embeddings)
            .retry_after_ms(50)
            .times(2),
    );
    let doc = json!({"filename": "a.md", "content": "# A\n\nRate limited but patient."});
    let (status, body) = api.send("POST", "/v1/indexes/rl/documents", Some(doc));
    assert_eq!(status, 201, "{body}");
    let stats = fake.stats();
    assert_eq!(stats.calls(Route::Embeddings), 3, "{stats:?}");
    assert_eq!(stats.faults_applied, 2);
}
