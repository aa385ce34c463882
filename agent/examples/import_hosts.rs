//! Streams N generated host reservations to an agent in one `ImportHosts`
//! call and prints, as one JSON line, how long the call took: it returns
//! once every data plane acknowledged the new generation (or names those
//! that did not). Used by `benches/push_hosts.py`.
//!
//! ```text
//! import_hosts --agent unix:/run/agent.sock --count 100000 --first 10.78.0.10 \
//!     [--mac-prefix 02:bb] [--label wave=a] [--profile P] [--subnet 10.78.0.0/15]
//! ```
//!
//! Host i gets MAC `<prefix>:ii:ii:ii:ii` (i in hex) and the i-th address
//! from `--first`.

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::{Context, bail};
use bootwave_proto::v1::{self, bootwave_service_client::BootwaveServiceClient};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Agent endpoint (`unix:/path` or `http://host:port`).
    #[arg(long)]
    agent: String,
    /// Hosts to import.
    #[arg(long, default_value_t = 100_000)]
    count: u32,
    /// Fixed address of the first host.
    #[arg(long)]
    first: Ipv4Addr,
    /// First two bytes of every MAC.
    #[arg(long, default_value = "02:bb")]
    mac_prefix: String,
    /// Label given to every host (`key=value`).
    #[arg(long)]
    label: Option<String>,
    /// Profile of every host.
    #[arg(long)]
    profile: Option<String>,
    /// Subnet of every host (CIDR).
    #[arg(long)]
    subnet: Option<String>,
}

fn host(args: &Args, i: u32) -> anyhow::Result<v1::Host> {
    let b = i.to_be_bytes();
    let ip = u32::from(args.first)
        .checked_add(i)
        .context("addresses run past 255.255.255.255")?;
    let labels = match &args.label {
        Some(kv) => {
            let (k, v) = kv.split_once('=').context("--label wants key=value")?;
            [(k.to_owned(), v.to_owned())].into()
        }
        None => Default::default(),
    };
    Ok(v1::Host {
        mac: format!(
            "{}:{:02x}:{:02x}:{:02x}:{:02x}",
            args.mac_prefix, b[0], b[1], b[2], b[3]
        ),
        fixed_address: Ipv4Addr::from(ip).to_string(),
        hostname: format!("node-{i}"),
        subnet: args.subnet.clone().unwrap_or_default(),
        profile: args.profile.clone().unwrap_or_default(),
        labels,
        name: String::new(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hosts = (0..args.count)
        .map(|i| host(&args, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let channel = bootwave_proto::channel::connect(&args.agent).await?;
    let mut client = BootwaveServiceClient::new(channel)
        .max_decoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES);
    let started = Instant::now();
    let reply = client
        .import_hosts(tokio_stream::iter(hosts))
        .await
        .context("ImportHosts")?
        .into_inner();
    let elapsed = started.elapsed();
    let lagging: Vec<_> = reply
        .lagging
        .iter()
        .map(|l| format!("{}: {}", l.endpoint, l.error))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "hosts": args.count,
            "generation": reply.generation,
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
            "lagging": lagging,
        })
    );
    if !lagging.is_empty() {
        bail!("data planes did not acknowledge: {lagging:?}");
    }
    Ok(())
}
