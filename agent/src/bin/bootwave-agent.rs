//! `bootwave-agent`: the control agent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bootwave_agent::server::{self, AgentConfig, Listen, Listener};
use clap::Parser;

/// bootwave control agent: keeps the desired state (hosts, subnets,
/// profiles) durably and pushes every generation to the data planes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Directory of the state database.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Listen on `HOST:PORT` (bearer token required) or `unix:PATH` (mode 0600).
    #[arg(long, value_name = "ADDR|unix:PATH")]
    listen: Listen,
    /// A data plane's control endpoint (`unix:/path` or `http://host:port`); repeatable.
    #[arg(long = "dataplane", value_name = "ENDPOINT")]
    dataplanes: Vec<String>,
    /// File holding the bearer token (else BOOTWAVE_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// How often data planes are checked and re-synced, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    resync_ms: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let token = match &cli.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("BOOTWAVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let config = AgentConfig {
        state_dir: cli.state,
        dataplanes: cli.dataplanes,
        token,
        resync_interval: Duration::from_millis(cli.resync_ms.max(10)),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = Listener::bind(&cli.listen).await?;
            match listener.local_addr() {
                Some(addr) => tracing::info!("listening on {addr}"),
                None => tracing::info!("listening on {:?}", cli.listen),
            }
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("installing the SIGTERM handler")?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            };
            server::serve(config, listener, shutdown).await
        })
}
