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
//! - [`Server`]: dnsmasq or bootwave behind one `start`, so a test runs
//!   against each server in a list.
//! - [`require_root_and_tools`]: panics when root or a tool is missing; the
//!   tests never pass by skipping. `tests/run` installs [`PACKAGES`].
//!
//! Safety of the network: every address used lives inside namespaces made
//! here; no server ever binds in the machine's own namespace. Namespaces of
//! crashed runs (their PID is gone) are swept before the first new one.

mod child;
mod clients;
mod error;
mod lab;
mod link;
mod naming;
mod netns;
mod perfdhcp;
mod servers;
mod tools;
mod wait;

pub use child::ChildGuard;
pub use clients::{Lease, TftpClient, udhcpc_lease};
pub use error::{HarnessError, Result};
pub use lab::{
    CLIENT_IF, LAB_NET, LAB_PREFIX, Lab, LabClient, POOL_END, POOL_START, RELAY_ADDR, SERVER_ADDR,
    SERVER_IF,
};
pub use link::{Bridge, VethPair};
pub use naming::{PREFIX, sweep_stale};
pub use netns::Netns;
pub use perfdhcp::{ExchangeStats, PerfdhcpReport, PerfdhcpRun, run_relay};
pub use servers::{RunningServer, ServeSpec, Server, bootwave_binary, bootwave_toml, dnsmasq_args};
pub use tools::{PACKAGES, Tools, find_tool, require_root_and_tools};
pub use wait::wait_udp_bound;
