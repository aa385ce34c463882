//! The one-screen account printed at start: what is served, and where.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use bootwave_protocol::config::{Config, FsyncPolicy};

use super::interfaces::Served;
use super::leases::Prepared;
use super::service::ShardService;
use crate::driver::ShardGroup;
use crate::store::FileStore;

/// What is known before the shards start.
#[derive(Debug)]
pub(super) struct Startup {
    text: String,
}

impl Startup {
    /// Collects the configuration, interfaces, files and journals.
    pub(super) fn new(
        path: &Path,
        config: &Config,
        served: &Served,
        store: &FileStore,
        prepared: &Prepared,
        shards: usize,
        ping: &str,
    ) -> Self {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "bootwave-dataplane {} serving {}",
            env!("CARGO_PKG_VERSION"),
            path.display()
        );
        if served.interfaces.is_empty() {
            let reason = served
                .idle_reason
                .as_deref()
                .unwrap_or("no interface selected");
            let _ = writeln!(text, "  interfaces  NONE: DHCP is idle ({reason})");
        }
        for iface in &served.interfaces {
            let addrs: Vec<String> = iface
                .addrs
                .iter()
                .map(|(ip, net)| format!("{ip} in {net}"))
                .collect();
            let addrs = if addrs.is_empty() {
                "no address in a declared subnet (relayed clients only)".to_owned()
            } else {
                addrs.join(", ")
            };
            let _ = writeln!(
                text,
                "  interface   {} (index {}): {addrs}",
                iface.name, iface.index
            );
        }
        let hosts = config.hosts.len();
        let _ = writeln!(
            text,
            "  dhcp        udp port {}, {} subnet(s), {hosts} host(s), ping-check {ping}",
            config.dhcp.port,
            config.subnets.len(),
        );
        if let Some(warning) = neighbour_warning(config) {
            tracing::warn!("{warning}");
            let _ = writeln!(text, "  neighbours  WARNING: {warning}");
        }
        let report = store.report();
        let _ = writeln!(
            text,
            "  tftp        udp port {}, root {} ({} files, {} bytes)",
            config.tftp.port,
            config.tftp.root.display(),
            report.files,
            report.bytes
        );
        let fsync = match config.journal.fsync {
            FsyncPolicy::Always => "fsync always".to_owned(),
            FsyncPolicy::Batch(d) => format!("fsync every {d:?}"),
            FsyncPolicy::Never => "fsync never".to_owned(),
        };
        let live: usize = prepared.servers.iter().map(|s| s.leases().len()).sum();
        let _ = writeln!(
            text,
            "  journal     {} ({fsync}; {} records replayed, {live} leases across shards{})",
            config.journal.dir.display(),
            prepared.replayed,
            if prepared.retired.is_empty() {
                String::new()
            } else {
                format!("; retired {}", prepared.retired.join(", "))
            }
        );
        let _ = write!(
            text,
            "  shards      {shards} ({} answering DHCP)",
            prepared.servers.len()
        );
        Self { text }
    }

    /// Says which state is in force, below the first line.
    pub(super) fn with_state(mut self, state: &str) -> Self {
        let at = self.text.find('\n').map_or(self.text.len(), |i| i + 1);
        self.text
            .insert_str(at, &format!("  state       {state}\n"));
        self
    }

    /// Adds what the running shard group reports.
    pub(super) fn finish(
        mut self,
        group: &ShardGroup<ShardService>,
        metrics: Option<SocketAddr>,
    ) -> String {
        let _ = writeln!(
            self.text,
            ", backend {:?}{}",
            group.backend(),
            if group.gso() { " with UDP GSO" } else { "" }
        );
        let _ = writeln!(
            self.text,
            "  tftp data   a random ephemeral port per transfer"
        );
        match metrics {
            Some(addr) => {
                let _ = write!(self.text, "  metrics     http://{addr}/metrics");
            }
            None => {
                let _ = write!(self.text, "  metrics     off (--metrics ADDR)");
            }
        }
        self.text
    }
}

/// The neighbour-table warning for the served pools, if they can outgrow
/// the kernel's limits (an unreadable limit is no warning: the kernel may
/// not be Linux-like here).
fn neighbour_warning(config: &Config) -> Option<String> {
    let pooled: u64 = config
        .subnets
        .iter()
        .flat_map(|s| &s.ranges)
        .map(|r| u64::from(u32::from(r.end).saturating_sub(u32::from(r.start))) + 1)
        .sum();
    let clients = pooled + config.hosts.len() as u64;
    let thresholds = crate::neigh::gc_thresholds()
        .inspect_err(|err| tracing::debug!(%err, "neighbour-table limits not read"))
        .ok()?;
    crate::neigh::capacity_warning(clients, thresholds)
}
