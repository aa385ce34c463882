//! `bootwave-dataplane`: the data-plane server.

use std::path::PathBuf;

use anyhow::Context as _;
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let text = std::fs::read_to_string(&cli.config)
        .with_context(|| format!("reading {}", cli.config.display()))?;
    match cli.command {
        Some(Command::Check) | None => {
            println!("{}: {} bytes read", cli.config.display(), text.len());
        }
    }
    Ok(())
}
