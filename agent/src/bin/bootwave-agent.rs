//! `bootwave-agent`: the control agent.

use clap::Parser;

/// bootwave control agent.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("the control agent is not implemented yet")
}
