//! `make bench`: latency of the app's routes through the test host on
//! loopback. Bounded: a fixed number of sequential requests per route.
//! Numbers are the wasmtime host's, not Spin's; compare runs on one machine.

use anyhow::{Context, Result};
use ragspin_host::{HostOptions, RunningHost};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const REQUESTS: usize = 300;
const WARMUP: usize = 20;

fn get(stream: &mut TcpStream, path: &str) -> Result<u16> {
    write!(stream, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")?;
    // Read the head, then exactly content-length bytes (keep-alive).
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let status: u16 = head[9..12].parse()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse())
        .transpose()?
        .context("response without content-length")?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(status)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut options = HostOptions::for_tests(root.join("spin.toml"));
    options.only_components = vec!["health".into()];
    let host = RunningHost::start(options, "127.0.0.1:0".parse()?)?;
    println!("route       requests   p50 ms   p95 ms   p99 ms   req/s");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let mut stream = TcpStream::connect(host.addr)?;
        stream.set_nodelay(true)?;
        for _ in 0..WARMUP {
            get(&mut stream, path)?;
        }
        let mut times = Vec::with_capacity(REQUESTS);
        let start = Instant::now();
        for _ in 0..REQUESTS {
            let t = Instant::now();
            let status = get(&mut stream, path)?;
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
