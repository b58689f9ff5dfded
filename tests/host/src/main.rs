//! `ragspin-host`: serve the app on a loopback port with the test host, for
//! `make up` on machines without Spin and for benchmarks.

use anyhow::{Context, Result, bail};
use ragspin_host::manifest::RuntimeConfig;
use ragspin_host::{Host, HostOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

const USAGE: &str = "usage: ragspin-host [--manifest spin.toml] [--listen 127.0.0.1:3000] \
[--runtime-config-file runtime-config.toml] [--state-dir .spin] [--variable name=value]...";

fn main() -> Result<()> {
    let mut manifest = PathBuf::from("spin.toml");
    let mut listen: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut runtime_config: Option<PathBuf> = None;
    let mut state_dir: Option<PathBuf> = None;
    let mut variables = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--manifest" | "-f" => manifest = value()?.into(),
            "--listen" => listen = value()?.parse().context("--listen")?,
            "--runtime-config-file" => runtime_config = Some(value()?.into()),
            "--state-dir" => state_dir = Some(value()?.into()),
            "--variable" => {
                let v = value()?;
                let (name, val) = v.split_once('=').context("--variable takes name=value")?;
                variables.push((name.to_string(), val.to_string()));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let base = manifest.parent().map(PathBuf::from).unwrap_or_default();
    let state_dir = state_dir.unwrap_or_else(|| base.join(".spin"));
    let runtime_config = match runtime_config {
        Some(path) => RuntimeConfig::load(&path, &state_dir)?,
        None => RuntimeConfig::spin_defaults(&state_dir),
    };
    let mut options = HostOptions {
        manifest,
        runtime_config,
        variables: Default::default(),
        env_variables: true,
        only_components: Vec::new(),
        stdout: ragspin_host::Stdout::Inherit,
    };
    for (name, value) in variables {
        options = options.variable(&name, &value);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let host = Arc::new(Host::new(&options)?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        eprintln!(
            "ragspin test host serving http://{}",
            listener.local_addr()?
        );
        eprintln!("(this is the dev-only wasmtime host; use Spin 4.0.x beyond a laptop)");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            _ = tokio::signal::ctrl_c().await;
            _ = tx.send(());
        });
        ragspin_host::serve(host, listener, rx).await;
        anyhow::Ok(())
    })
}
