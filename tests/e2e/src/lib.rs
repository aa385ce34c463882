//! End-to-end test harness for bootwave: real servers and real clients in
//! network namespaces that the tests create and remove.
//!
//! Building blocks:
//! - [`Netns`]: a named namespace (`bwt-<pid>-<n>-<label>`) that kills what
//!   runs inside and deletes itself on drop; [`Netns::spawn`] and
//!   [`Netns::exec`] run programs inside it.
//! - [`VethPair`] and [`Bridge`]: links between namespaces; [`Lab::star`]
//!   builds the standard layout (server, switch, N clients on 10.77.0.0/24).
//! - [`ChildGuard`]: a process stopped with SIGTERM then SIGKILL on drop,
//!   whose output tails end up in failure messages.
//! - [`wait_udp_bound`]: a server is ready once `ss -uln` shows its port.
//! - [`Server`]: dnsmasq or bootwave (on either [`Backend`]) behind one
//!   `start`, so a test runs against each server in a list;
//!   [`bootwave_toml`] writes the configuration in the schema of
//!   `assets/bootwave.toml` and [`check_bootwave_toml`] checks it with
//!   bootwave's own parser.
//! - [`DhcpProbe`]: a scripted DHCP client (broadcast or relay) for captured
//!   DISCOVERs, DECLINEs and recorded relayed exchanges.
//! - [`require_root_and_tools`]: panics when root or a tool is missing; the
//!   tests never pass by skipping. `tests/run` installs [`PACKAGES`].
//!
//! Safety of the network: every address used lives inside namespaces made
//! here; no server ever binds in the machine's own namespace. Namespaces of
//! crashed runs (their PID is gone) are swept before the first new one.

pub mod agent;
mod bootwave_config;
mod child;
mod clients;
mod dhcp_probe;
mod error;
mod lab;
mod link;
mod metrics;
mod naming;
mod netns;
mod perfdhcp;
mod servers;
mod tools;
mod wait;

pub use bootwave_config::{bootwave_toml, check_bootwave_toml};
pub use child::ChildGuard;
pub use clients::{Dhclient, DhclientLease, Lease, TftpClient, udhcpc_lease};
pub use dhcp_probe::{
    BootReply, DhcpProbe, Reply, bootp_request, capture_payload, decline, discover, inform,
    parse_boot_reply, parse_reply, release, request_init_reboot, request_renewing,
    request_selecting, test_mac,
};
pub use error::{HarnessError, Result};
pub use lab::{
    CLIENT_IF, LAB_NET, LAB_PREFIX, Lab, LabClient, POOL_END, POOL_START, RELAY_ADDR, SERVER_ADDR,
    SERVER_IF, WIDE_POOL, WIDE_PREFIX,
};
pub use link::{Bridge, VethPair};
pub use metrics::{Metrics, scrape_metrics};
pub use naming::{PREFIX, sweep_stale};
pub use netns::Netns;
pub use perfdhcp::{ExchangeStats, PerfdhcpReport, PerfdhcpRun, run_relay};
pub use servers::{
    Backend, BootRuleSpec, HostSpec, JournalSync, RunningServer, ServeSpec, Server,
    bootwave_binary, dnsmasq_args,
};
pub use tools::{PACKAGES, Tools, find_tool, require_root_and_tools};
pub use wait::wait_udp_bound;

/// Directory of DISCOVERs captured from real firmware (OVMF, iPXE) as hex
/// files: the Ethernet frame, then the UDP payload.
pub const CAPTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/captures");
