//! `bootwave-dataplane`: the data-plane server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bootwave_protocol::config::{self, Config};
use clap::{Parser, Subcommand};

/// bootwave data plane: DHCPv4 + TFTP network-boot server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, global = true, default_value = "assets/bootwave.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration file and print what it declares.
    Check,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let Some(config) = load(&cli.config)? else {
        return Ok(ExitCode::FAILURE);
    };
    println!("{}: configuration is valid", cli.config.display());
    println!("{}", config.summary());
    if !config.tftp.root.is_dir() {
        eprintln!(
            "warning: tftp.root {} is not a directory",
            config.tftp.root.display()
        );
    }
    match cli.command {
        Some(Command::Check) => {}
        None => println!("serving starts with the data-plane runtime; nothing is served yet"),
    }
    Ok(ExitCode::SUCCESS)
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
    match config::parse(&text, &path.display().to_string(), base) {
        Ok(config) => Ok(Some(config)),
        Err(e) => {
            eprintln!("{e}");
            Ok(None)
        }
    }
}
