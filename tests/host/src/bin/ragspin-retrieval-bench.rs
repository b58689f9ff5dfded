//! `make bench` (retrieval part): vector retrieval through the compiled
//! query component at 1k, 10k and 100k chunks of 1,536 dimensions —
//! latency on a warm instance (its decoded vector blocks cached) and on a
//! fresh one (after Spin's 1 s idle timeout dropped the instance), and
//! recall@10 against exact search.
//!
//! The index is filled natively (`ragspin_index::IndexService` on a SQLite
//! file, the same code the ingest component runs), then the test host serves
//! that file. Queries send their own vector (`/v1/search` `vector`, vector
//! weight only), so no embedding call is in the measurement. Vectors are
//! clustered like text embeddings (documents gather around topics); one
//! 10k row uses uniform random vectors, the hard case for sign-bit codes.
//! Latency is the component's own (its log line), plus the HTTP round trip.
//!
//! `RAGSPIN_BENCH_SIZES=1000,10000` picks sizes. `RAGSPIN_BENCH_DIR=path`
//! keeps the filled databases there and reuses them on the next run (delete
//! them after a change to the storage layout); by default they go to a
//! temporary folder and are removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ragspin_core::{Embedder, Embedding};
use ragspin_host::manifest::Backing;
use ragspin_host::{HostOptions, RunningHost, captured_records};
use ragspin_index::{IndexService, IndexSettings, NewDocument};
use ragspin_testkit::{ManualClock, SqliteSql};
use serde_json::{Value, json};

const DIMS: usize = 1536;
const WARM_QUERIES: usize = 100;
const FRESH_QUERIES: usize = 30;
const PASSWORD: &str = "bench-admin-password";

/// splitmix64 → uniform and Gaussian samples; deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) as f32
    }
    fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-9), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

#[derive(Clone, Copy, PartialEq)]
enum Data {
    Clustered,
    Random,
}

/// `n` vectors, then `queries` query vectors from the same distribution
/// (new points, not copies of stored ones).
fn vectors(data: Data, n: usize, queries: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = Rng(seed);
    let topics = (n / 100).max(10);
    let centres: Vec<Vec<f32>> = (0..topics)
        .map(|_| normalise((0..DIMS).map(|_| rng.gaussian()).collect()))
        .collect();
    let sample = |rng: &mut Rng| -> Vec<f32> {
        match data {
            Data::Random => normalise((0..DIMS).map(|_| rng.uniform() * 2.0 - 1.0).collect()),
            Data::Clustered => {
                let c = &centres[(rng.next() % topics as u64) as usize];
                // Noise about as large as the topic direction: neighbours
                // share a topic but are far from identical.
                let sigma = 1.0 / (DIMS as f32).sqrt();
                normalise(c.iter().map(|x| x + sigma * rng.gaussian()).collect())
            }
        }
    };
    let docs = (0..n).map(|_| sample(&mut rng)).collect();
    let qs = (0..queries).map(|_| sample(&mut rng)).collect();
    (docs, qs)
}

fn exact_top10(docs: &[Vec<f32>], q: &[f32]) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.iter().zip(q).map(|(a, b)| a * b).sum(), i))
        .collect();
    scored.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(10);
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Serves the pre-made vectors: chunk text `row {k}` gets vector `k`.
struct Table<'a>(&'a [Vec<f32>]);

impl Embedder for Table<'_> {
    fn model(&self) -> &str {
        "bench-table"
    }
    async fn embed(&self, texts: &[String]) -> ragspin_core::Result<Vec<Embedding>> {
        texts
            .iter()
            .map(|t| {
                let k: usize = t
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .map_err(|_| ragspin_core::Error::Internal(format!("no row in {t:?}")))?;
                Ok(self.0[k].clone())
            })
            .collect()
    }
}

/// A SQLite file holding index `bench` with `docs`, one chunk per vector.
fn fill(path: &Path, docs: &[Vec<f32>]) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let sql = SqliteSql::open(path)?;
    let clock = ManualClock::new(1_700_000_000_000);
    let svc = IndexService::new(&sql, &clock);
    futures::executor::block_on(async {
        svc.migrate().await?;
        let mut settings = IndexSettings {
            dimensions: Some(DIMS as u32),
            ..Default::default()
        };
        settings.fields.text_fields = vec!["text".into()];
        svc.put_index("bench", settings).await?;
        let mut csv = String::from("text\n");
        for k in 0..docs.len() {
            csv.push_str(&format!("row {k}\n"));
        }
        let doc = NewDocument {
            filename: "rows.csv".into(),
            content_type: Some("text/csv".into()),
            content: csv.into_bytes(),
            ..Default::default()
        };
        svc.ingest("bench", doc, Some(&Table(docs)), u64::MAX)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Measured {
    http_ms: Vec<f64>,
    component_ms: Vec<f64>,
    recall: f64,
}

fn run(
    host: &RunningHost,
    token: &str,
    logs: &ragspin_host::MemoryOutputPipe,
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
    pause: Duration,
) -> Result<Measured> {
    let client = reqwest::blocking::Client::new();
    let (mut http_ms, mut component_ms, mut found) = (Vec::new(), Vec::new(), 0usize);
    for (i, q) in queries.iter().enumerate() {
        std::thread::sleep(pause);
        let id = format!("q{i}-{}", Instant::now().elapsed().as_nanos());
        let t = Instant::now();
        let res = client
            .post(host.url("/v1/search"))
            .bearer_auth(token)
            .header("x-request-id", &id)
            .json(&json!({"index": "bench", "query": "rows", "top_k": 10,
                          "weights": {"bm25": 0.0, "vector": 1.0}, "vector": q}))
            .send()?;
        let status = res.status().as_u16();
        let body: Value = res.json()?;
        http_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(status == 200, "search: {status} {body}");
        let got: Vec<usize> = body["hits"]
            .as_array()
            .context("hits")?
            .iter()
            .filter_map(|h| {
                h["text"]
                    .as_str()?
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            })
            .collect();
        found += truth[i].iter().filter(|k| got.contains(k)).count();
        let line = captured_records(logs)
            .into_iter()
            .rev()
            .find(|v| v["request_id"] == id.as_str())
            .context("no log line")?;
        component_ms.push(line["latency_ms"].as_f64().unwrap_or(0.0));
    }
    http_ms.sort_by(f64::total_cmp);
    component_ms.sort_by(f64::total_cmp);
    Ok(Measured {
        http_ms,
        component_ms,
        recall: found as f64 / (10 * queries.len()) as f64,
    })
}

fn start(db: &Path) -> Result<(RunningHost, String, ragspin_host::MemoryOutputPipe)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (mut options, logs) = HostOptions::for_tests(root.join("spin.toml"))
        .admin(PASSWORD)?
        .variable("rate_limit_per_minute", "0")
        .capturing_stdout();
    options
        .runtime_config
        .sqlite_databases
        .insert("default".into(), Backing::File(db.to_path_buf()));
    options.only_components = vec!["auth".into(), "query".into()];
    let host = RunningHost::start(options, "127.0.0.1:0".parse()?)?;
    let token = host.login(PASSWORD)?;
    Ok((host, token, logs))
}

fn main() -> Result<()> {
    println!("{}", ragspin_host::reference::measure()?);
    let sizes: Vec<usize> = std::env::var("RAGSPIN_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("RAGSPIN_BENCH_SIZES")?;
    let keep = std::env::var_os("RAGSPIN_BENCH_DIR").map(PathBuf::from);
    let dir: PathBuf = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ragspin-retrieval-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    println!(
        "\nvector retrieval ({DIMS} d, top 10)      instance  p50 ms   p99 ms   HTTP p50   recall@10"
    );
    let mut cases: Vec<(Data, usize)> = sizes.iter().map(|n| (Data::Clustered, *n)).collect();
    if sizes.contains(&10_000) {
        cases.push((Data::Random, 10_000));
    }
    for (data, n) in cases {
        let (docs, queries) = vectors(data, n, WARM_QUERIES + FRESH_QUERIES, 7 + n as u64);
        let truth: Vec<Vec<usize>> = queries.iter().map(|q| exact_top10(&docs, q)).collect();
        let (label, file) = match data {
            Data::Clustered => (
                format!("{n} chunks, clustered"),
                format!("clustered-{n}.db"),
            ),
            Data::Random => (format!("{n} chunks, random"), format!("random-{n}.db")),
        };
        let db = dir.join(file);
        if keep.is_none() || !db.exists() {
            let t = Instant::now();
            fill(&db, &docs)?;
            eprintln!("  {label}: filled in {:.1} s", t.elapsed().as_secs_f64());
        }
        drop(docs);
        let (host, token, logs) = start(&db)?;
        // Fresh: each query after Spin's 1 s idle timeout, on a new instance.
        let fresh = run(
            &host,
            &token,
            &logs,
            &queries[..FRESH_QUERIES],
            &truth[..FRESH_QUERIES],
            Duration::from_millis(1300),
        )?;
        // Warm: one instance, blocks decoded once.
        let warm = run(
            &host,
            &token,
            &logs,
            &queries[FRESH_QUERIES..],
            &truth[FRESH_QUERIES..],
            Duration::ZERO,
        )?;
        for (name, m) in [("fresh", &fresh), ("warm", &warm)] {
            println!(
                "{label:<38} {name:<8} {:>7.2}  {:>7.2}  {:>8.2}   {:.3}",
                percentile(&m.component_ms, 0.5),
                percentile(&m.component_ms, 0.99),
                percentile(&m.http_ms, 0.5),
                m.recall
            );
        }
        drop(host);
        if keep.is_none() {
            let _ = std::fs::remove_file(&db);
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
