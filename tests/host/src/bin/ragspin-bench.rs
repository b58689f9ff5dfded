//! `make bench`: latency of the app's routes through the test host on
//! loopback. Bounded: a fixed number of sequential requests per route.
//! Numbers are the wasmtime host's, not Spin's; compare runs on one machine.

use anyhow::Result;
use ragspin_fake_azure::FakeAzure;
use ragspin_host::{HostOptions, MemoryOutputPipe, RunningHost, captured_records};
use std::time::{Duration, Instant};

const REQUESTS: usize = 300;
const WARMUP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    println!("{}", ragspin_host::reference::measure()?);
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
    if let Ok(dirs) = std::env::var("RAGSPIN_BENCH_AB") {
        let rounds = std::env::var("RAGSPIN_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(4);
        let azure = part("azure") || !part("offline");
        return ab(&dirs, rounds, azure, corpora == (false, true));
    }
    ingest(part("azure"), part("offline"), corpora)
}

fn routes() -> Result<()> {
    let mut options = HostOptions::for_tests(root().join("spin.toml"));
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

fn salt_text(salt: usize) -> String {
    if salt == 0 {
        String::new()
    } else {
        format!("r{salt}")
    }
}

/// A deterministic Markdown corpus of about `bytes` bytes; a `salt` other
/// than 0 changes every sentence (so no chunk is in the embedding cache).
fn markdown_corpus(bytes: usize, salt: usize) -> String {
    let salt = salt_text(salt);
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
                    "Sentence {s} of paragraph {p} in section {n}{salt} covers {} and {} with {} detail. ",
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

/// `salt` as [`markdown_corpus`] takes it.
fn csv_corpus(rows: usize, salt: usize) -> String {
    let salt = salt_text(salt);
    let mut out = String::from("id,product_name,category,rating,price,review_text\n");
    for k in 0..rows {
        out.push_str(&format!(
            "r{k},Product {},cat{},{},{}.99,\"Review {k}{salt}: battery lasts {} hours and the screen is {}.\"\n",
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
    println!("{HEADER}");
    let root = root();
    if azure {
        ingest_corpora(&root.join("spin.toml"), Some(&FakeAzure::start()?), corpora)?;
    }
    if offline {
        ingest_corpora(&root.join("spin.toml"), None, corpora)?;
    }
    Ok(())
}

const HEADER: &str = "ingest                                    bytes    chunks   seconds   MB/s   embed calls   wait s   MB/s excl. wait";

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The two corpora: label, file name, content (see [`markdown_corpus`] for
/// `salt`) and index settings.
fn cases(salt: usize) -> [(&'static str, &'static str, String, serde_json::Value); 2] {
    [
        (
            "markdown 10 MB",
            "corpus.md",
            markdown_corpus(10 * 1024 * 1024, salt),
            serde_json::json!({"dimensions": 256}),
        ),
        (
            "csv 50,000 rows",
            "reviews.csv",
            csv_corpus(50_000, salt),
            serde_json::json!({"dimensions": 256, "fields": {"text_fields": ["product_name", "review_text"], "metadata_fields": ["rating", "price", "category"]}}),
        ),
    ]
}

/// A host running the ingest component of `manifest`, with the fake Azure
/// at zero latency or offline (`None`: chunks stored, vectors pending).
struct IngestApp<'a> {
    host: RunningHost,
    token: String,
    logs: MemoryOutputPipe,
    client: reqwest::blocking::Client,
    fake: Option<&'a FakeAzure>,
    runs: usize,
}

/// One document ingested: seconds in all, and waiting on the fake.
struct IngestRun {
    counters: ProcessCounters,
    chunks: i64,
    calls: u64,
    seconds: f64,
    wait: f64,
}

impl IngestRun {
    /// MB/s of `bytes` excluding the wait on the fake.
    fn excl_wait(&self, bytes: usize) -> f64 {
        bytes as f64 / 1_048_576.0 / (self.seconds - self.wait)
    }
}

impl<'a> IngestApp<'a> {
    fn start(manifest: &std::path::Path, fake: Option<&'a FakeAzure>) -> Result<Self> {
        let password = "bench-admin-password";
        let mut options = HostOptions::for_tests(manifest)
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
        Ok(Self {
            host,
            token,
            logs,
            client,
            fake,
            runs: 0,
        })
    }

    /// Ingests `content` as one document into a new index.
    fn run(
        &mut self,
        filename: &str,
        content: &str,
        settings: &serde_json::Value,
    ) -> Result<IngestRun> {
        self.runs += 1;
        let index = format!("bench{}", self.runs);
        let res = self
            .client
            .put(self.host.url(&format!("/v1/indexes/{index}")))
            .bearer_auth(&self.token)
            .json(settings)
            .send()?;
        anyhow::ensure!(
            res.status().as_u16() == 201,
            "create index: {}",
            res.text()?
        );
        let calls = || {
            self.fake.map_or(0, |f| {
                f.stats().calls(ragspin_fake_azure::Route::Embeddings)
            })
        };
        let calls_before = calls();
        let request_id = format!("bench-ingest-{index}");
        // The client's JSON encoding of the 10 MB body is not timed.
        let body =
            serde_json::to_vec(&serde_json::json!({"filename": filename, "content": content}))?;
        // Earlier runs' dirty pages are written back first: on this 2-core VM
        // the kernel's writeback of ≈ 100 MB otherwise competes with the
        // next run (a second run on a reused instance measured 25 % slower).
        let _ = std::process::Command::new("sync").status();
        let before = ProcessCounters::read();
        let start = Instant::now();
        let res = self
            .client
            .post(self.host.url(&format!("/v1/indexes/{index}/documents")))
            .bearer_auth(&self.token)
            .header("x-request-id", &request_id)
            .header("content-type", "application/json")
            .body(body)
            .send()?;
        let seconds = start.elapsed().as_secs_f64();
        let counters = ProcessCounters::read().since(&before);
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json()?;
        anyhow::ensure!(status == 201, "{filename}: {status} {body}");
        let wait = captured_records(&self.logs)
            .iter()
            .find(|v| v["request_id"] == request_id.as_str())
            .and_then(|v| v["embedding_ms"].as_f64())
            .unwrap_or(0.0)
            / 1000.0;
        Ok(IngestRun {
            counters,
            chunks: body["document"]["chunks"].as_i64().unwrap_or(0),
            calls: calls() - calls_before,
            seconds,
            wait,
        })
    }
}

/// Each corpus through a host of its own, on a new and then a reused instance.
/// "wait" is the time the component spent
/// waiting on the fake (its log line's `embedding_ms`): the fake's own
/// embedding work, loopback HTTP and JSON.
fn ingest_corpora(
    manifest: &std::path::Path,
    fake: Option<&FakeAzure>,
    (markdown, csv): (bool, bool),
) -> Result<()> {
    let mode = if fake.is_some() { "fake" } else { "offline" };
    // Each corpus twice: first on a new instance (its memory grows from
    // nothing), then new text of the same size on the instance Spin reuses
    // (within its 1 s idle timeout: both texts are made before either run).
    let texts = [cases(0), cases(1)];
    for k in 0..2 {
        if !(if k == 0 { markdown } else { csv }) {
            continue;
        }
        let mut app = IngestApp::start(manifest, fake)?;
        for (run_no, case) in texts.iter().map(|c| &c[k]).enumerate() {
            let (label, filename, content, settings) = case;
            let bytes = content.len();
            let run = app.run(filename, content, settings)?;
            let instance = if run_no == 0 { "new" } else { "reused" };
            println!(
                "{:<38} {bytes:>9} {:>9} {:>9.2} {:>6.2} {:>13} {:>8.2} {:>17.2}",
                format!("{label}, {mode}, {instance}"),
                run.chunks,
                run.seconds,
                bytes as f64 / 1_048_576.0 / run.seconds,
                run.calls,
                run.wait,
                run.excl_wait(bytes)
            );
        }
    }
    Ok(())
}

/// `RAGSPIN_BENCH_AB=dirA,dirB`: two hosts in this process, one on the
/// `.wasm` files in each folder, ingesting the first corpus named in
/// `RAGSPIN_BENCH_PARTS` (Markdown unless only `csv` is; new text each
/// round) in turn, the order flipping every round, so both see the same machine (this VM's
/// speed drifts by up to 40 % between minutes). With the fake Azure unless
/// only `offline` is named. Prints each run's MB/s excluding the wait and
/// the median ratio B / A of the pairs. `RAGSPIN_BENCH_ROUNDS` (default 4).
fn ab(dirs: &str, rounds: usize, azure: bool, csv: bool) -> Result<()> {
    use ragspin_fake_azure::FakeAzure;
    let Some((a, b)) = dirs.split_once(',') else {
        anyhow::bail!("RAGSPIN_BENCH_AB wants two folders: dirA,dirB");
    };
    let fake = if azure {
        Some(FakeAzure::start()?)
    } else {
        None
    };
    let mut apps = Vec::new();
    for dir in [a, b] {
        let manifest = ragspin_host::manifest_for_build(&root().join("spin.toml"), dir.as_ref())?;
        apps.push(IngestApp::start(&manifest, fake.as_ref())?);
    }
    let mut ratios = Vec::new();
    let mut user: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // New text each round: the apps' embedding caches hold the last.
        let (label, filename, content, settings) =
            cases(round + 1).into_iter().nth(usize::from(csv)).unwrap();
        let bytes = content.len();
        let mut runs = [None, None];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            runs[side] = Some(apps[side].run(filename, &content, &settings)?);
        }
        let [Some(a), Some(b)] = runs else {
            unreachable!("both sides ran")
        };
        let ratio = b.excl_wait(bytes) / a.excl_wait(bytes);
        ratios.push(ratio);
        let side = |r: &IngestRun| {
            format!(
                "{:.2} ({:.2} s, wait {:.2}; cpu user {:.2} s, sys {:.2} s; written {:.1} MB)",
                r.excl_wait(bytes),
                r.seconds,
                r.wait,
                r.counters.user_s,
                r.counters.sys_s,
                r.counters.written_mb
            )
        };
        println!(
            "{label} round {round}: MB/s excl. wait A {}, B {}, B / A {ratio:.3}",
            side(&a),
            side(&b)
        );
        for (all, run) in user.iter_mut().zip([&a, &b]) {
            all.push(run.counters.user_s);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [user_a, user_b] = user;
    println!(
        "median B / A {:.3} ({rounds} pairs); median user CPU A {:.2} s, B {:.2} s",
        median(ratios),
        median(user_a),
        median(user_b)
    );
    Ok(())
}

/// This process's CPU time and bytes written through system calls (SQLite's
/// files and the sockets: the benchmark's client, the host, the fake), from
/// `/proc/self`; zero where it cannot be read. Less noisy than wall-clock
/// time on this VM, whose sys time for the same work varies up to 5x.
#[derive(Default)]
struct ProcessCounters {
    user_s: f64,
    sys_s: f64,
    written_mb: f64,
}

impl ProcessCounters {
    fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name: utime and stime are the 12th and
        // 13th, in clock ticks (100 per second on Linux).
        let fields: Vec<f64> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let tick = |k: usize| fields.get(k).copied().unwrap_or(0.0) / 100.0;
        let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let wchar = io
            .lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        Self {
            user_s: tick(11),
            sys_s: tick(12),
            written_mb: wchar / 1e6,
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            user_s: self.user_s - before.user_s,
            sys_s: self.sys_s - before.sys_s,
            written_mb: self.written_mb - before.written_mb,
        }
    }
}
