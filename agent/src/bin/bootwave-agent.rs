//! `bootwave-agent`: the control agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bootwave_agent::config::{self, AgentFile, LogFormat, TlsFiles};
use bootwave_agent::server::{self, AgentConfig, Listen, Listener, ServeOptions};
use clap::Parser;

/// Default of `--resync-ms`.
const DEFAULT_RESYNC_MS: u64 = 2000;

/// bootwave control agent: keeps the desired state (hosts, subnets,
/// profiles) durably and pushes every generation to the data planes.
///
/// Settings come from `--config FILE` (TOML) and the flags; a flag wins
/// over the file.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML); flags override its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the state database.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Listen on `HOST:PORT` (bearer token or mutual TLS required) or `unix:PATH` (mode 0600).
    #[arg(long, value_name = "ADDR|unix:PATH")]
    listen: Option<Listen>,
    /// A data plane's control endpoint (`unix:/path` or `http://host:port`); repeatable.
    #[arg(long = "dataplane", value_name = "ENDPOINT")]
    dataplanes: Vec<String>,
    /// File holding the bearer token (else BOOTWAVE_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// TLS certificate chain of the agent (PEM); needs --tls-key and --tls-client-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_client_ca"])]
    tls_cert: Option<PathBuf>,
    /// TLS private key of the agent (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that signs the client certificates the agent accepts.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics on `HOST:PORT` (`GET /metrics`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Log line format.
    #[arg(long, value_name = "human|json")]
    log_format: Option<LogFormat>,
    /// How often data planes are checked and re-synced, in milliseconds
    /// (default 2000).
    #[arg(long, value_name = "MS")]
    resync_ms: Option<u64>,
}

/// The settings in force: the flags over the file.
#[derive(Debug)]
struct Settings {
    state: PathBuf,
    listen: Listen,
    dataplanes: Vec<String>,
    token_file: Option<PathBuf>,
    tls: Option<TlsFiles>,
    metrics: Option<SocketAddr>,
    log_format: LogFormat,
    resync_ms: u64,
}

impl Cli {
    fn settings(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => config::load(path)?,
            None => AgentFile::default(),
        };
        let tls = match (self.tls_cert, self.tls_key, self.tls_client_ca) {
            (Some(cert), Some(key), Some(client_ca)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            _ => file.tls,
        };
        let dataplanes = if self.dataplanes.is_empty() {
            file.dataplanes
        } else {
            self.dataplanes
        };
        Ok(Settings {
            state: self
                .state
                .or(file.state)
                .context("--state DIR (or `state` in --config) is required")?,
            listen: self
                .listen
                .or(file.listen)
                .context("--listen ADDR (or `listen` in --config) is required")?,
            dataplanes,
            token_file: self.token_file.or(file.token_file),
            tls,
            metrics: self.metrics.or(file.metrics),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            resync_ms: self
                .resync_ms
                .or(file.resync_ms)
                .unwrap_or(DEFAULT_RESYNC_MS),
        })
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Cli::parse().settings()?;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, never into a file
        // or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let token = read_token(settings.token_file.as_deref())?;
    let config = AgentConfig {
        state_dir: settings.state,
        dataplanes: settings.dataplanes,
        token,
        resync_interval: Duration::from_millis(settings.resync_ms.max(10)),
    };
    let options = ServeOptions {
        tls: settings.tls,
        metrics: settings.metrics,
        ..ServeOptions::default()
    };
    let listen = settings.listen;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = Listener::bind(&listen).await?;
            match listener.local_addr() {
                Some(addr) => tracing::info!("listening on {addr}"),
                None => tracing::info!("listening on {listen:?}"),
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
            server::serve_with(config, options, listener, shutdown).await
        })
}

/// The bearer token from `file` (one trailing line end and surrounding
/// blanks trimmed), else from `BOOTWAVE_TOKEN`; an empty one is refused,
/// since it would authenticate anyone.
fn read_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let (token, origin) = match file {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            f.display().to_string(),
        ),
        None => match std::env::var("BOOTWAVE_TOKEN") {
            Ok(t) => (t, "BOOTWAVE_TOKEN".to_owned()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(e) => anyhow::bail!("BOOTWAVE_TOKEN: {e}"),
        },
    };
    let token = token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "{origin}: the bearer token is empty; an empty token would let anyone call. Write a \
         secret into it (e.g. `head -c 32 /dev/urandom | base64 > FILE`), or unset it to \
         listen on a unix socket only"
    );
    Ok(Some(token.to_owned()))
}
