//! `make bench` (query part): the query component through the test host
//! over loopback HTTP, on a 10,000-chunk index.
//!
//! * offline (no Azure: BM25 + extractive answer) — everything measured is
//!   ragspin's own work;
//! * with the fake Azure OpenAI at zero latency (1536-dimension
//!   embeddings, extractive chat) — total time, and the fake's own compute
//!   per query measured separately so it can be subtracted;
//! * answer-cache hits;
//!
//! each at concurrency 1 and 8 (the answer cache off except for the hit
//! rows), p50 and p99; plus the CPU time of this process (host, fake and
//! client together) per query. Numbers are the test host's, not Spin's.

use std::time::{Duration, Instant};

use anyhow::Result;
use ragspin_fake_azure::FakeAzure;
use ragspin_host::{HostOptions, MemoryOutputPipe, RunningHost, captured_records};
use serde_json::{Value, json};

const CHUNKS: usize = 10_000;
const QUERIES: usize = 200;

fn corpus(rows: usize) -> String {
    let mut out = String::from("id,product_name,category,rating,price,review_text\n");
    let topics = [
        "battery", "screen", "camera", "speaker", "keyboard", "charger", "case", "strap",
    ];
    for k in 0..rows {
        out.push_str(&format!(
            "r{k},Product {},cat{},{},{}.99,\"Review {k}: the {} lasts {} hours and the {} is {}.\"\n",
            k % 500,
            k % 7,
            1 + k % 5,
            50 + k % 900,
            topics[k % topics.len()],
            4 + k % 40,
            topics[(k / 8) % topics.len()],
            ["bright", "dim", "sharp", "fine", "loud", "quiet"][k % 6]
        ));
    }
    out
}

fn questions() -> Vec<String> {
    let topics = [
        "battery", "screen", "camera", "speaker", "keyboard", "charger", "case", "strap",
    ];
    (0..QUERIES)
        .map(|k| {
            format!(
                "How long does the {} of product {} last? ({k})",
                topics[k % 8],
                k % 500
            )
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (Linux /proc).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

struct Row {
    p50: f64,
    p99: f64,
    /// Total minus the time the component spent waiting on Azure
    /// (`embedding_ms` + `llm_ms` of its log line).
    overhead_p50: f64,
    overhead_p99: f64,
    cpu_ms: f64,
}

/// `QUERIES` questions split over `concurrency` threads, each with its own
/// keep-alive client; every answer must be a 200.
fn run(
    url: &str,
    token: &str,
    logs: &MemoryOutputPipe,
    bodies: &[Value],
    concurrency: usize,
) -> Result<Row> {
    let cpu = cpu_seconds();
    let chunks: Vec<Vec<Value>> = bodies
        .chunks(bodies.len().div_ceil(concurrency))
        .map(<[Value]>::to_vec)
        .collect();
    let run_id = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let timed: Vec<(String, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .enumerate()
            .map(|(thread, part)| {
                s.spawn(move || -> Result<Vec<(String, Duration)>> {
                    let client = reqwest::blocking::Client::new();
                    let mut out = Vec::new();
                    for (n, body) in part.into_iter().enumerate() {
                        let id = format!("bench-{run_id}-{thread}-{n}");
                        let took = timed_query(&client, url, token, &id, &body)?;
                        out.push((id, took));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect::<Result<Vec<_>>>()
            .map(|v| v.concat())
    })?;
    let cpu_ms = (cpu_seconds() - cpu) * 1000.0 / timed.len() as f64;
    // A streamed answer's line is written when its body is dropped: wait a moment.
    std::thread::sleep(Duration::from_millis(200));
    let waits = waits_ms(logs);
    let mut times: Vec<Duration> = timed.iter().map(|(_, d)| *d).collect();
    let mut overheads: Vec<Duration> = timed
        .iter()
        .map(|(id, d)| {
            let wait = waits.get(id).copied().unwrap_or(0.0);
            d.saturating_sub(Duration::from_secs_f64(wait / 1000.0))
        })
        .collect();
    times.sort();
    overheads.sort();
    Ok(Row {
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        overhead_p50: percentile(&overheads, 0.5),
        overhead_p99: percentile(&overheads, 0.99),
        cpu_ms,
    })
}

/// One query, tagged `id`, timed from send to the end of its body; it
/// must answer 200.
fn timed_query(
    client: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    id: &str,
    body: &Value,
) -> Result<Duration> {
    let t = Instant::now();
    let res = client
        .post(url)
        .bearer_auth(token)
        .header("x-request-id", id)
        .json(body)
        .send()?;
    let status = res.status().as_u16();
    let text = res.text()?;
    anyhow::ensure!(status == 200, "{status}: {text}");
    Ok(t.elapsed())
}

/// Per request id, the ms its log line says the component waited on Azure
/// (`embedding_ms` + `llm_ms`).
fn waits_ms(logs: &MemoryOutputPipe) -> std::collections::HashMap<String, f64> {
    captured_records(logs)
        .iter()
        .filter_map(|v| {
            let wait =
                v["llm_ms"].as_f64().unwrap_or(0.0) + v["embedding_ms"].as_f64().unwrap_or(0.0);
            Some((v["request_id"].as_str()?.to_string(), wait))
        })
        .collect()
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start(
    online: Option<&FakeAzure>,
    cache: bool,
) -> Result<(RunningHost, String, MemoryOutputPipe)> {
    start_app(&root().join("spin.toml"), online, cache)
}

fn start_app(
    manifest: &std::path::Path,
    online: Option<&FakeAzure>,
    cache: bool,
) -> Result<(RunningHost, String, MemoryOutputPipe)> {
    let password = "bench-admin-password";
    let options = HostOptions::for_tests(manifest)
        .admin(password)?
        .variable("ingest_time_budget_ms", "600000")
        .variable("rate_limit_per_minute", "0")
        .variable("answer_cache_ttl_s", if cache { "86400" } else { "0" });
    let (mut options, logs) = options.capturing_stdout();
    if let Some(fake) = online {
        options = options.fake_azure(fake);
    }
    options.only_components = vec!["ingest".into(), "auth".into(), "query".into()];
    let host = RunningHost::start(options, "127.0.0.1:0".parse()?)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()?;
    let token = host.login(password)?;
    let settings = json!({"fields": {"text_fields": ["product_name", "review_text"], "metadata_fields": ["rating", "price", "category"]}});
    let res = client
        .put(host.url("/v1/indexes/bench"))
        .bearer_auth(&token)
        .json(&settings)
        .send()?;
    anyhow::ensure!(
        res.status().as_u16() == 201,
        "create index: {}",
        res.text()?
    );
    let t = Instant::now();
    let res = client
        .post(host.url("/v1/indexes/bench/documents"))
        .bearer_auth(&token)
        .json(&json!({"filename": "reviews.csv", "content": corpus(CHUNKS)}))
        .send()?;
    let status = res.status().as_u16();
    let body: Value = res.json()?;
    anyhow::ensure!(status == 201, "ingest: {status} {body}");
    eprintln!(
        "  indexed {} chunks in {:.1} s",
        body["document"]["chunks"],
        t.elapsed().as_secs_f64()
    );
    Ok((host, token, logs))
}

/// The fake's own compute for one query (embedding the question, the
/// extractive chat answer over five sources), measured in-process.
fn fake_compute_ms(questions: &[String]) -> f64 {
    use ragspin_fake_azure::model::{Message, answer, embed};
    let source = "[1] Review 12: the battery lasts 16 hours and the screen is sharp.";
    let t = Instant::now();
    for q in questions {
        std::hint::black_box(embed(q, 1536));
        let messages = [
            Message {
                role: "system".into(),
                content: [source; 5].join("\n"),
            },
            Message {
                role: "user".into(),
                content: q.clone(),
            },
        ];
        std::hint::black_box(answer(&messages));
    }
    t.elapsed().as_secs_f64() * 1000.0 / questions.len() as f64
}

/// `RAGSPIN_BENCH_AB=dirA,dirB`: two apps in this process, one on the
/// `.wasm` files in each folder, queried in turn (the order flipping every
/// question) so both see the same machine: this VM's speed drifts by up to
/// 40 % between minutes, far more than most changes being compared.
/// Prints each side's overhead p50 and the median of the paired
/// differences (B − A), per round and over all rounds.
/// `RAGSPIN_BENCH_ROUNDS` (default 3) rounds of the 200 questions;
/// `RAGSPIN_BENCH_STREAM=1` asks for streamed answers.
fn ab(dirs: &str, rounds: usize) -> Result<()> {
    let Some((a, b)) = dirs.split_once(',') else {
        anyhow::bail!("RAGSPIN_BENCH_AB wants two folders: dirA,dirB");
    };
    let fake = FakeAzure::start()?;
    let mut apps = Vec::new();
    for dir in [a, b] {
        let manifest = ragspin_host::manifest_for_build(&root().join("spin.toml"), dir.as_ref())?;
        apps.push(start_app(&manifest, Some(&fake), false)?);
    }
    let client = reqwest::blocking::Client::new();
    let questions = questions();
    // `RAGSPIN_BENCH_STREAM=1`: streamed answers (SSE) instead of plain ones.
    let stream = std::env::var_os("RAGSPIN_BENCH_STREAM").is_some();
    let (mut all_a, mut all_b, mut all_d) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut timed: [Vec<(String, Duration)>; 2] = [Vec::new(), Vec::new()];
        for (n, q) in questions.iter().enumerate() {
            let body = json!({"index": "bench", "question": q, "stream": stream});
            let order = if (n + round) % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let (host, token, _) = &apps[side];
                let id = format!("ab-{round}-{side}-{n}");
                let took = timed_query(&client, &host.url("/v1/query"), token, &id, &body)?;
                timed[side].push((id, took));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let overheads: Vec<Vec<f64>> = (0..2)
            .map(|side| {
                let waits = waits_ms(&apps[side].2);
                timed[side]
                    .iter()
                    .map(|(id, d)| d.as_secs_f64() * 1000.0 - waits.get(id).copied().unwrap_or(0.0))
                    .collect()
            })
            .collect();
        let diffs: Vec<f64> = overheads[0]
            .iter()
            .zip(&overheads[1])
            .map(|(a, b)| b - a)
            .collect();
        println!(
            "round {round}: overhead p50 A {:.3} ms, B {:.3} ms, paired median B − A {:+.3} ms",
            median(overheads[0].clone()),
            median(overheads[1].clone()),
            median(diffs.clone())
        );
        all_a.extend(&overheads[0]);
        all_b.extend(&overheads[1]);
        all_d.extend(diffs);
    }
    println!(
        "all: overhead p50 A {:.3} ms, B {:.3} ms, paired median B − A {:+.3} ms ({} pairs)",
        median(all_a),
        median(all_b),
        median(all_d.clone()),
        all_d.len()
    );
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    println!("{}", ragspin_host::reference::measure()?);
    if let Ok(dirs) = std::env::var("RAGSPIN_BENCH_AB") {
        let rounds = std::env::var("RAGSPIN_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        return ab(&dirs, rounds);
    }
    // `RAGSPIN_BENCH_PARTS=offline,azure,cache` (the default: all three).
    let parts =
        std::env::var("RAGSPIN_BENCH_PARTS").unwrap_or_else(|_| "offline,azure,cache".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    let questions = questions();
    let bodies = |stream: bool| -> Vec<Value> {
        questions
            .iter()
            .map(|q| json!({"index": "bench", "question": q, "stream": stream}))
            .collect()
    };
    println!(
        "query ({CHUNKS} chunks, {QUERIES} questions)       conc   p50 ms   p99 ms   overhead p50   p99   CPU ms/query"
    );
    let print = |label: &str, c: usize, r: &Row| {
        println!(
            "{label:<42} {c:>4} {:>8.2} {:>8.2} {:>14.2} {:>6.2} {:>14.2}",
            r.p50, r.p99, r.overhead_p50, r.overhead_p99, r.cpu_ms
        );
    };

    if part("offline") {
        let (host, token, logs) = start(None, false)?;
        let url = host.url("/v1/query");
        for c in [1, 8] {
            print(
                "offline: BM25 + extractive",
                c,
                &run(&url, &token, &logs, &bodies(false), c)?,
            );
        }
    }
    let fake = FakeAzure::start()?;
    if part("azure") {
        let (host, token, logs) = start(Some(&fake), false)?;
        let url = host.url("/v1/query");
        for c in [1, 8] {
            print(
                "fake Azure: hybrid + chat",
                c,
                &run(&url, &token, &logs, &bodies(false), c)?,
            );
            print(
                "fake Azure: hybrid + chat, streamed",
                c,
                &run(&url, &token, &logs, &bodies(true), c)?,
            );
        }
        println!(
            "  the fake's own compute per query: {:.2} ms",
            fake_compute_ms(&questions)
        );
    }
    if !part("cache") {
        return Ok(());
    }
    let (host, token, logs) = start(Some(&fake), true)?;
    let url = host.url("/v1/query");
    run(&url, &token, &logs, &bodies(false), 8)?; // fill the cache
    for c in [1, 8] {
        print(
            "answer-cache hits",
            c,
            &run(&url, &token, &logs, &bodies(false), c)?,
        );
    }
    Ok(())
}
