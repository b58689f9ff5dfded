//! `fake-azure --listen 127.0.0.1:PORT [--api-key KEY] [--reverse-embedding-order]
//! [--embeddings-recording FILE [--recording-miss error|hashed]]`:
//! serve the fake Azure OpenAI resource until Ctrl-C. Loopback only.
//!
//! `--embeddings-recording` serves the recorded vectors of FILE under the
//! recording's deployment (see `ragspin_fake_azure::recording`); a text it
//! lacks is a 400 `RecordingMiss`, or with `--recording-miss hashed` gets
//! the fake's hashed embedding. Misses are counted in `GET /_fake/stats`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use ragspin_fake_azure::api::State;
use ragspin_fake_azure::{FakeOptions, Recording, ensure_loopback, serve};

const USAGE: &str = "usage: fake-azure --listen 127.0.0.1:PORT [--api-key KEY] \
     [--reverse-embedding-order] [--embeddings-recording FILE [--recording-miss error|hashed]]";

fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:8089".parse()?;
    let mut options = FakeOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().context(USAGE)?;
                listen = value
                    .parse()
                    .with_context(|| format!("--listen {value:?}: expected IP:PORT"))?;
            }
            "--api-key" => options.api_key = args.next().context(USAGE)?,
            "--reverse-embedding-order" => options.reverse_embedding_order = true,
            "--embeddings-recording" => {
                let path = args.next().context(USAGE)?;
                options = options.with_recording(Recording::load(&path)?);
            }
            "--recording-miss" => {
                options.on_recording_miss = args.next().context(USAGE)?.parse()?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    ensure_loopback(&listen)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        println!(
            "fake-azure listening on http://{} (api key {:?})",
            listener.local_addr()?,
            options.api_key
        );
        if let Some(recording) = &options.recording {
            println!(
                "  deployment {:?}: {} recorded {}-dimensional vectors of {} from {}",
                recording.deployment,
                recording.len(),
                recording.dimensions,
                recording.model,
                recording.origin
            );
        }
        let state = Arc::new(State::new(options));
        serve(state, listener, async {
            _ = tokio::signal::ctrl_c().await;
        })
        .await;
        anyhow::Ok(())
    })
}
