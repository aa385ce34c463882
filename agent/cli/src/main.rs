//! `bootwave`: command-line client.
//!
//! Exit status: 0 success, 1 error, 2 usage error, 3 not found, 4 agent or
//! data plane unavailable, 5 a reboot wave ended with hosts not done (see
//! `bootwave_cli`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bootwave_cli::{self as cli, AgentCommand, Connection};
use bootwave_isc::{self as isc, FsLoader, Severity};
use clap::{CommandFactory as _, Parser, Subcommand};

/// bootwave command-line client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert another server's configuration into bootwave TOML.
    #[command(subcommand)]
    Import(Import),
    /// Commands of the control agent.
    #[command(flatten)]
    Agent(AgentCommand),
    /// Show the main job on this machine: a private network, a data plane,
    /// an agent and a simulated fleet rebooting through them (as root;
    /// touches no real interface; removes everything when done).
    Demo(cli::demo::DemoArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum Import {
    /// Convert an ISC dhcpd configuration (dhcpd.conf).
    ///
    /// Remarks go to stderr as `file:line: info|warning: …`. Exit status: 0
    /// converted, 1 unreadable or malformed input, 2 warnings with --strict
    /// (nothing is written then).
    IscDhcpd {
        /// The dhcpd.conf to convert (`include` files are read relative to it).
        file: PathBuf,
        /// TFTP root directory to write into the output.
        #[arg(long, value_name = "DIR")]
        tftp_root: Option<String>,
        /// Write the TOML here (atomically) instead of to stdout.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Treat every warning as an error.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(Import::IscDhcpd {
            file,
            tftp_root,
            output,
            strict,
        }) => import_isc(&file, tftp_root, output.as_deref(), strict),
        Command::Demo(args) => cli::demo::run(&args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "bootwave",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent(command) => return run_agent_command(command, &cli.connection),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_agent_command(command: AgentCommand, connection: &Connection) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    match runtime.block_on(cli::run(command, connection)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn import_isc(
    file: &Path,
    tftp_root: Option<String>,
    output: Option<&Path>,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let options = isc::Options { tftp_root };
    let import = isc::import(file, &options, &mut FsLoader)?;
    for d in &import.diagnostics {
        eprintln!("{d}");
    }
    if strict && import.has_warnings() {
        let count = import
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        eprintln!("error: {count} warning(s) and --strict: nothing written");
        return Ok(ExitCode::from(2));
    }
    match output {
        Some(path) => write_atomically(path, import.toml.as_bytes())?,
        None => std::io::stdout()
            .write_all(import.toml.as_bytes())
            .context("writing to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over
/// `path`, so readers see the old or the new file, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .context("writing the converted configuration")?;
    tmp.as_file()
        .sync_all()
        .context("syncing the converted configuration")?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
