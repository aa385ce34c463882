//! `bootwave-dataplane`: the data-plane server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bootwave_dataplane::driver::BackendChoice;
use bootwave_dataplane::logs;
use bootwave_dataplane::runtime::{self, Options, RuntimeError};
use bootwave_protocol::config::{self, Config};
use clap::{Parser, Subcommand, ValueEnum};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// bootwave data plane: DHCPv4 + TFTP network-boot server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, global = true, default_value = "assets/bootwave.toml")]
    config: PathBuf,
    /// Shard threads (default: one per CPU).
    #[arg(long)]
    shards: Option<usize>,
    /// Shards that answer DHCP (default: one unless every dynamic pool
    /// gives each of them at least 256 addresses; see README).
    #[arg(long, value_name = "N")]
    dhcp_shards: Option<usize>,
    /// I/O backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Control socket for the agent (`unix:PATH`, or `none`).
    #[arg(long, value_name = "unix:PATH", default_value = "unix:/run/bootwave/dataplane.sock", value_parser = parse_control)]
    control: Control,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9167).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Longest wait for TFTP transfers to finish after SIGTERM/SIGINT
    /// (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    drain_timeout: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration file and print what it declares.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// io_uring when the kernel allows it, else portable.
    Auto,
    /// io_uring or fail.
    Uring,
    /// poll + recvmmsg/sendmmsg.
    Portable,
}

/// Where the control endpoint listens (`None`: nowhere).
#[derive(Debug, Clone)]
struct Control(Option<PathBuf>);

fn parse_control(value: &str) -> Result<Control, String> {
    if value == "none" {
        return Ok(Control(None));
    }
    match value.strip_prefix("unix:") {
        Some(path) if !path.is_empty() => Ok(Control(Some(PathBuf::from(path)))),
        _ => Err(format!("{value:?}: expected unix:PATH or none")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(Command::Check) = cli.command {
        return check(&cli.config);
    }
    // Before any thread starts (the log writer's is the first): every
    // thread inherits the mask, so SIGTERM, SIGINT and SIGHUP only ever
    // reach the main loop's wait and never end the process by default.
    bootwave_dataplane::sys::signals::block().context("block signals")?;
    // Also before any thread starts: each thread inherits its creator's
    // capabilities, so no thread ever holds more than the three it needs.
    let caps = bootwave_dataplane::sys::caps::restrict(bootwave_dataplane::sys::caps::KEPT)
        .context("dropping capabilities")?;
    // Lives until main returns: dropping it flushes the buffered lines.
    let _log_guard = logs::init(match cli.log_format {
        LogFormat::Human => logs::Format::Human,
        LogFormat::Json => logs::Format::Json,
    });
    log_capabilities(&caps);
    // One socket per TFTP transfer: allow as many descriptors as the hard
    // limit does (running out is counted and refused, never fatal).
    if let Err(error) = bootwave_dataplane::sys::limits::raise_nofile() {
        tracing::warn!(%error, "could not raise the open-file limit");
    }
    let options = Options {
        config: cli.config,
        shards: cli
            .shards
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        dhcp_shards: cli.dhcp_shards,
        backend: match cli.backend {
            Backend::Auto => BackendChoice::Auto,
            Backend::Uring => BackendChoice::Uring,
            Backend::Portable => BackendChoice::Portable,
        },
        control: cli.control.0,
        metrics: cli.metrics,
        drain_timeout: Duration::from_secs(cli.drain_timeout),
    };
    match runtime::run(&options) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(RuntimeError::Config(e)) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::Error::new(e).context("bootwave-dataplane")),
    }
}

/// Says which capabilities the process kept and how many it gave up.
fn log_capabilities(caps: &bootwave_dataplane::sys::caps::Restricted) {
    use bootwave_dataplane::sys::caps::Names;
    tracing::info!(
        kept = %Names(caps.now.effective),
        dropped = caps.dropped.count_ones(),
        bounding_set_shrunk = caps.bounding_shrunk,
        "capabilities"
    );
}

/// `check`: validate and print the summary.
fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path)? else {
        return Ok(ExitCode::FAILURE);
    };
    println!("{}: configuration is valid", path.display());
    println!("{}", config.summary());
    println!("{}", state_in_force(&config));
    if !config.tftp.root.is_dir() {
        eprintln!(
            "warning: tftp.root {} is not a directory",
            config.tftp.root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Which state a start with a control socket serves: the pushed state
/// persisted under the journal directory, or the file.
fn state_in_force(config: &Config) -> String {
    use bootwave_dataplane::control::persist;
    let file = persist::path(&config.journal.dir);
    match persist::load(&config.journal.dir) {
        Ok(None) => format!(
            "state in force: this file (no pushed state in {})",
            file.display()
        ),
        Ok(Some(applied)) => match applied.state.to_config_with(config) {
            Ok(pushed) => format!(
                "state in force: the {} ({} subnet(s), {} host(s), persisted in {}) on top of this file's machine-local settings; with `--control none`, this file",
                applied.origin,
                pushed.subnets.len(),
                pushed.hosts.len(),
                file.display()
            ),
            Err(err) => format!(
                "warning: the persisted {} is refused ({err}); this file is served until the agent pushes",
                applied.origin
            ),
        },
        Err(err) => {
            format!("warning: {err}; this file is served until the agent pushes")
        }
    }
}

/// Reads and validates the configuration; a rejected file is reported on
/// stderr as `file:line:column: key: reason` and yields `None`.
fn load(path: &Path) -> anyhow::Result<Option<Config>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let origin = path.display().to_string();
    let read = bootwave_dataplane::scripts::read_template;
    match config::parse_with(&text, &origin, base, &read) {
        Ok(config) => Ok(Some(config)),
        Err(e) => {
            eprintln!("{e}");
            Ok(None)
        }
    }
}
