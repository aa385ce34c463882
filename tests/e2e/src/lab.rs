//! [`Lab`]: the standard layout — a server namespace and N client
//! namespaces joined by a bridge in a switch namespace.
//!
//! ```text
//!  server ns                 switch ns                    client ns i
//!  srv0 10.77.0.1/24 ─veth─ sw-srv ┐
//!                                   br0 ── sw-c<i> ─veth─ eth0 (no address)
//! ```
//! Addresses exist only inside these namespaces.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::dhcp_probe::DhcpProbe;
use crate::error::Result;
use crate::link::{Bridge, VethPair};
use crate::netns::Netns;
use crate::servers::{JournalSync, ServeSpec};

/// The lab network.
pub const LAB_NET: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
/// Its prefix length.
pub const LAB_PREFIX: u8 = 24;
/// The server's address (also router and next-server).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// An address for clients that need one (perfdhcp's relay address).
pub const RELAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// First address of the dynamic pool.
pub const POOL_START: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
/// Last address of the dynamic pool.
pub const POOL_END: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 250);
/// The server's interface name inside the server namespace.
pub const SERVER_IF: &str = "srv0";
/// Prefix length of the wide layout ([`Lab::star_wide`]).
pub const WIDE_PREFIX: u8 = 16;
/// Pool of the wide layout: 10.77.1.0 – 10.77.8.255 (2048 addresses).
pub const WIDE_POOL: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 77, 1, 0), Ipv4Addr::new(10, 77, 8, 255));
/// Each client's interface name inside its own namespace.
pub const CLIENT_IF: &str = "eth0";

/// One client namespace of a [`Lab`].
#[derive(Debug)]
pub struct LabClient {
    /// The client's namespace.
    pub ns: Netns,
    /// Its interface toward the switch ([`CLIENT_IF`]), without an address.
    pub ifname: String,
}

/// Server, switch and clients, all removed on drop.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: links first, then the namespaces.
    _links: Vec<VethPair>,
    _bridge: Bridge,
    /// The client namespaces.
    pub clients: Vec<LabClient>,
    /// The server namespace; [`SERVER_IF`] holds [`SERVER_ADDR`].
    pub server: Netns,
    _switch: Netns,
    prefix: u8,
}

impl Lab {
    /// Builds the layout with `n_clients` client namespaces.
    pub fn star(n_clients: usize) -> Result<Self> {
        Self::build(n_clients, LAB_PREFIX)
    }

    /// The same layout on 10.77.0.0/16 with a pool of 2048 addresses
    /// ([`WIDE_POOL`]), for runs of a thousand clients.
    pub fn star_wide(n_clients: usize) -> Result<Self> {
        Self::build(n_clients, WIDE_PREFIX)
    }

    fn build(n_clients: usize, prefix: u8) -> Result<Self> {
        let server = Netns::create("srv")?;
        let switch = Netns::create("sw")?;
        let bridge = Bridge::create(&switch, "br0")?;
        let mut links = Vec::with_capacity(n_clients + 1);
        links.push(VethPair::create(&switch, "sw-srv", &server, SERVER_IF)?);
        bridge.attach("sw-srv")?;
        server.add_addr(SERVER_IF, SERVER_ADDR, prefix)?;
        let mut clients = Vec::with_capacity(n_clients);
        for i in 0..n_clients {
            let ns = Netns::create(&format!("c{i}"))?;
            let port = format!("sw-c{i}");
            links.push(VethPair::create(&switch, &port, &ns, CLIENT_IF)?);
            bridge.attach(&port)?;
            clients.push(LabClient {
                ns,
                ifname: CLIENT_IF.to_owned(),
            });
        }
        Ok(Self {
            _links: links,
            _bridge: bridge,
            clients,
            server,
            _switch: switch,
            prefix,
        })
    }

    /// The layout's prefix length ([`LAB_PREFIX`] or [`WIDE_PREFIX`]).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// A broadcast [`DhcpProbe`] on the first client's interface.
    pub fn broadcast_probe(&self) -> Result<DhcpProbe> {
        let client = &self.clients[0];
        client
            .ns
            .run_inside(|| DhcpProbe::broadcast(&client.ifname))?
    }

    /// A relay-style [`DhcpProbe`] in the first client's namespace, which
    /// then holds [`RELAY_ADDR`] (broadcasts from it leave with that
    /// source address).
    pub fn relay_probe(&self) -> Result<DhcpProbe> {
        let client = &self.clients[0];
        client
            .ns
            .add_addr(&client.ifname, RELAY_ADDR, self.prefix)?;
        client
            .ns
            .run_inside(|| DhcpProbe::relay(RELAY_ADDR, SERVER_ADDR))?
    }

    /// The serving parameters that fit this layout.
    pub fn spec(&self, tftp_root: Option<PathBuf>, boot_file: Option<&str>) -> ServeSpec {
        ServeSpec {
            interface: SERVER_IF.to_owned(),
            server_addr: SERVER_ADDR,
            prefix: self.prefix,
            pool: if self.prefix == WIDE_PREFIX {
                WIDE_POOL
            } else {
                (POOL_START, POOL_END)
            },
            lease_secs: 3600,
            boot_file: boot_file.map(str::to_owned),
            tftp_root,
            boot_rules: Vec::new(),
            hosts: Vec::new(),
            state_dir: None,
            journal_sync: JournalSync::Batch,
            tftp_admission: None,
            ping_timeout: None,
            extra_toml: String::new(),
            subnet_toml: String::new(),
            dhcp_toml: String::new(),
            shards: None,
            metrics: None,
        }
    }
}
