//! `make bench`: latency of the app's routes through the test host on
//! loopback. Bounded: a fixed number of sequential requests per route.
//! Numbers are the wasmtime host's, not Spin's; compare runs on one machine.

use anyhow::Result;
use ragspin_host::{HostOptions, RunningHost, captured_records};
use std::time::{Duration, Instant};

const REQUESTS: usize = 300;
const WARMUP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    // `RAGSPIN_BENCH_PARTS=routes,azure,offline,markdown,csv` (the default:
    // all); ingest runs the corpora named, or both when none is.
    let parts = std::env::var("RAGSPIN_BENCH_PARTS")
        .unwrap_or_else(|_| "routes,azure,offline,markdown,csv".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    if part("routes") {
        routes()?;
    }
    let corpora = match (part("markdown"), part("csv")) {
        (false, false) => (true, true),
        both => both,
    };
    ingest(part("azure"), part("offline"), corpora)
}

fn routes() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut options = HostOptions::for_tests(root.join("spin.toml"));
    options.only_components = vec!["health".into()];
    let host = RunningHost::start(options, "127.0.0.1:0".parse()?)?;
    println!("route       requests   p50 ms   p95 ms   p99 ms   req/s");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let client = reqwest::blocking::Client::new();
        let url = host.url(path);
        let get = || -> Result<u16> {
            let res = client.get(&url).send()?;
            let status = res.status().as_u16();
            res.bytes()?;
            Ok(status)
        };
        for _ in 0..WARMUP {
            get()?;
        }
        let mut times = Vec::with_capacity(REQUESTS);
        let start = Instant::now();
        for _ in 0..REQUESTS {
            let t = Instant::now();
            let status = get()?;
            anyhow::ensure!(status == 200, "{path} answered {status}");
            times.push(t.elapsed());
        }
        let total = start.elapsed();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{path:<10} {REQUESTS:>9} {:>8.3} {:>8.3} {:>8.3} {:>7.0}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(percentile(&times, 0.99)),
            REQUESTS as f64 / total.as_secs_f64()
        );
    }
    Ok(())
}

/// A deterministic Markdown corpus of about `bytes` bytes.
fn markdown_corpus(bytes: usize) -> String {
    let words = [
        "battery", "screen", "latency", "index", "vector", "review", "policy", "install",
        "network", "storage", "quality", "budget", "travel", "camera", "release", "cluster",
        "memory", "report",
    ];
    let mut out = String::with_capacity(bytes + 1024);
    let mut n: usize = 0;
    while out.len() < bytes {
        out.push_str(&format!("\n## Section {n}\n\n"));
        for p in 0..4 {
            for s in 0..6 {
                let w = |k: usize| words[(n * 31 + p * 7 + s * 3 + k) % words.len()];
                out.push_str(&format!(
                    "Sentence {s} of paragraph {p} in section {n} covers {} and {} with {} detail. ",
                    w(0),
                    w(1),
                    w(2)
                ));
            }
            out.push_str("\n\n");
        }
        n += 1;
    }
    out
}

fn csv_corpus(rows: usize) -> String {
    let mut out = String::from("id,product_name,category,rating,price,review_text\n");
    for k in 0..rows {
        out.push_str(&format!(
            "r{k},Product {},cat{},{},{}.99,\"Review {k}: battery lasts {} hours and the screen is {}.\"\n",
            k % 500,
            k % 7,
            1 + k % 5,
            50 + k % 900,
            4 + k % 40,
            ["bright", "dim", "sharp", "fine"][k % 4]
        ));
    }
    out
}

/// Ingest throughput through the host with the fake Azure OpenAI at zero
/// latency: what bounds it is parsing, chunking, SQLite writes and the
/// wasm/host boundary, not the network.
fn ingest(azure: bool, offline: bool, corpora: (bool, bool)) -> Result<()> {
    use ragspin_fake_azure::FakeAzure;
    println!();
    println!(
        "ingest                                    bytes    chunks   seconds   MB/s   embed calls   wait s   MB/s excl. wait"
    );
    if azure {
        ingest_corpora(Some(&FakeAzure::start()?), corpora)?;
    }
    if offline {
        ingest_corpora(None, corpora)?;
    }
    Ok(())
}

/// Both corpora through a host with the fake Azure at zero latency, or
/// offline (`None`: chunks stored, vectors pending). "wait" is the time the
/// component spent waiting on the fake (its log line's `embedding_ms`):
/// the fake's own embedding work, loopback HTTP and JSON.
fn ingest_corpora(
    fake: Option<&ragspin_fake_azure::FakeAzure>,
    (markdown, csv): (bool, bool),
) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let password = "bench-admin-password";
    let mut options = HostOptions::for_tests(root.join("spin.toml"))
        .admin(password)?
        .variable("ingest_time_budget_ms", "600000");
    if let Some(fake) = fake {
        options = options.fake_azure(fake);
    }
    let (mut options, logs) = options.capturing_stdout();
    options.only_components = vec!["ingest".into(), "auth".into()];
    let host = RunningHost::start(options, "127.0.0.1:0".parse()?)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()?;
    let token = host.login(password)?;
    let mode = if fake.is_some() {
        "fake Azure"
    } else {
        "offline"
    };
    let cases: [(&str, &str, String, serde_json::Value); 2] = [
        (
            "markdown 10 MB",
            "corpus.md",
            markdown_corpus(10 * 1024 * 1024),
            serde_json::json!({"dimensions": 256}),
        ),
        (
            "csv 50,000 rows",
            "reviews.csv",
            csv_corpus(50_000),
            serde_json::json!({"dimensions": 256, "fields": {"text_fields": ["product_name", "review_text"], "metadata_fields": ["rating", "price", "category"]}}),
        ),
    ];
    for (k, (label, filename, content, settings)) in cases.into_iter().enumerate() {
        if !(if k == 0 { markdown } else { csv }) {
            continue;
        }
        let index = format!("bench{k}");
        let res = client
            .put(host.url(&format!("/v1/indexes/{index}")))
            .bearer_auth(&token)
            .json(&settings)
            .send()?;
        anyhow::ensure!(
            res.status().as_u16() == 201,
            "create index: {}",
            res.text()?
        );
        let calls = |f: Option<&ragspin_fake_azure::FakeAzure>| {
            f.map_or(0, |f| {
                f.stats().calls(ragspin_fake_azure::Route::Embeddings)
            })
        };
        let calls_before = calls(fake);
        let bytes = content.len();
        let request_id = format!("bench-ingest-{}-{k}", mode.replace(' ', "-"));
        let start = Instant::now();
        let res = client
            .post(host.url(&format!("/v1/indexes/{index}/documents")))
            .bearer_auth(&token)
            .header("x-request-id", &request_id)
            .json(&serde_json::json!({"filename": filename, "content": content}))
            .send()?;
        let elapsed = start.elapsed().as_secs_f64();
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json()?;
        anyhow::ensure!(status == 201, "{label}: {status} {body}");
        let chunks = body["document"]["chunks"].as_i64().unwrap_or(0);
        let calls = calls(fake) - calls_before;
        let wait = captured_records(&logs)
            .iter()
            .find(|v| v["request_id"] == request_id.as_str())
            .and_then(|v| v["embedding_ms"].as_f64())
            .unwrap_or(0.0)
            / 1000.0;
        let mb = bytes as f64 / 1_048_576.0;
        println!(
            "{:<38} {bytes:>9} {chunks:>9} {elapsed:>9.2} {:>6.2} {calls:>13} {wait:>8.2} {:>17.2}",
            format!("{label}, {mode}"),
            mb / elapsed,
            mb / (elapsed - wait)
        );
    }
    Ok(())
}
