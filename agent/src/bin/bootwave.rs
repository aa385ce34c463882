//! `bootwave`: command-line client.

use clap::Parser;

/// bootwave command-line client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
