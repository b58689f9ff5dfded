//! `fake-azure --listen 127.0.0.1:PORT [--api-key KEY] [--reverse-embedding-order]`:
//! serve the fake Azure OpenAI resource until Ctrl-C. Loopback only.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use ragspin_fake_azure::api::State;
use ragspin_fake_azure::{FakeOptions, ensure_loopback, serve};

const USAGE: &str =
    "usage: fake-azure --listen 127.0.0.1:PORT [--api-key KEY] [--reverse-embedding-order]";

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
        let state = Arc::new(State::new(options));
        serve(state, listener, async {
            _ = tokio::signal::ctrl_c().await;
        })
        .await;
        anyhow::Ok(())
    })
}
