//! Validated runtime configuration.
//!
//! Every value here has passed validation: networks are canonical, ranges lie
//! inside their subnet, host MACs are unique, rule file names are non-empty.
//! The DHCP and TFTP cores read only these types, never the raw TOML.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use super::profile::{MAX_LABEL_VALUE_LEN, Profile, ProfileScript, check_label_value};

/// The whole validated configuration of one data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Interfaces to serve; empty means every interface that holds an address
    /// inside a declared subnet.
    pub interfaces: Vec<String>,
    /// DHCP server behaviour shared by all subnets.
    pub dhcp: DhcpSettings,
    /// TFTP server behaviour.
    pub tftp: TftpSettings,
    /// HTTP boot-file service (off unless the file has an `[http]`
    /// section).
    pub http: HttpSettings,
    /// The lease journal.
    pub journal: JournalSettings,
    /// IPv6 on the served interfaces (router advertisements).
    pub ipv6: Ipv6Settings,
    /// Declared subnets, in file order.
    pub subnets: Vec<Subnet>,
    /// Host reservations, in file order.
    pub hosts: Vec<Host>,
    /// Declared profiles (those with a script template), in file order.
    pub profiles: Vec<Profile>,
}

/// DHCP server behaviour shared by all subnets.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpSettings {
    /// UDP port the server listens on (67).
    pub port: u16,
    /// Lease time given when the client asks for none.
    pub default_lease_time: Duration,
    /// Upper bound on any lease time, requested or not.
    pub max_lease_time: Duration,
    /// Lower bound on a lease time the client asks for.
    pub min_lease_time: Duration,
    /// How long an offered address stays reserved for the client it was
    /// offered to.
    pub offer_hold: Duration,
    /// How long a declined address stays out of use.
    pub decline_quarantine: Duration,
    /// Whether to NAK requests for addresses this server does not own
    /// (ISC dhcpd `authoritative`). Non-authoritative servers stay silent.
    pub authoritative: bool,
    /// Answer BOOTP (no message type) requests (`allow bootp`).
    pub allow_bootp: bool,
    /// Use the host declaration's name as the client host name (option 12)
    /// (`use-host-decl-names`).
    pub use_host_decl_names: bool,
    /// Probe a dynamic address with one ICMP echo before offering it.
    pub ping_check: bool,
    /// How long to wait for an echo reply.
    pub ping_timeout: Duration,
    /// Relay agents trusted to forward requests: a relayed datagram
    /// (`giaddr` set) is answered only when its source address lies in one
    /// of these networks. Empty: any relay is accepted.
    pub relays: Vec<Ipv4Net>,
}

/// TFTP server behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct TftpSettings {
    /// UDP port RRQs arrive on (69).
    pub port: u16,
    /// Directory that all file names are relative to.
    pub root: std::path::PathBuf,
    /// Largest block size granted (RFC 2348), before the MTU clamp.
    pub max_blksize: u16,
    /// Link MTU used to clamp blksize (blksize ≤ mtu − 20 − 8 − 4).
    pub mtu: u16,
    /// Largest window granted (RFC 7440).
    pub max_windowsize: u16,
    /// Retransmission timeout bounds when the client negotiates none.
    pub min_timeout: Duration,
    /// Upper bound of the adaptive retransmission timeout.
    pub max_timeout: Duration,
    /// Retransmissions of one window before the transfer is dropped.
    pub max_retries: u8,
    /// Concurrent transfers per shard.
    pub max_transfers: u32,
    /// Per-client admission of new transfers.
    pub admission: TftpAdmission,
}

/// How many transfers one client IP may hold and start (per shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TftpAdmission {
    /// Concurrent transfers of one client IP.
    pub max_transfers_per_client: u32,
    /// Token-bucket refill: read requests one client IP may make per
    /// second, sustained.
    pub new_transfers_per_second: u32,
    /// Token-bucket size: read requests one client IP may make at once.
    pub new_transfers_burst: u32,
}

impl TftpAdmission {
    /// Defaults of `max-transfers-per-client`, `new-transfers-per-second`
    /// and `new-transfers-burst`.
    pub const DEFAULT: Self = Self {
        max_transfers_per_client: 16,
        new_transfers_per_second: 20,
        new_transfers_burst: 64,
    };

    /// Limits no single client reaches (load tests, benches).
    pub const UNLIMITED: Self = Self {
        max_transfers_per_client: u32::MAX,
        new_transfers_per_second: u32::MAX,
        new_transfers_burst: u32::MAX,
    };
}

impl Default for TftpAdmission {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// HTTP boot-file service: the TFTP root and the per-host scripts over
/// HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Whether HTTP is served at all.
    pub enabled: bool,
    /// TCP port (80).
    pub port: u16,
    /// Open connections allowed from one client address.
    pub max_connections_per_client: u32,
    /// Open connections allowed in total.
    pub max_connections: u32,
    /// Longest time from the first byte of a request to the end of its
    /// header block (slow clients are cut off).
    pub header_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection, and
    /// for a client to take response bytes.
    pub idle_timeout: Duration,
    /// Largest request head (request line plus headers) in bytes.
    pub max_request_size: u32,
}

impl HttpSettings {
    /// The listen backlog of each HTTP listener: as many pending
    /// connections as the server holds open (`max-connections`), at least
    /// 1024. The kernel caps it at `net.core.somaxconn` (4096 by default),
    /// so a burst of connects that a single accept loop cannot keep up
    /// with waits in the queue instead of losing SYNs (each lost SYN costs
    /// its client a retransmission, 1 s at first).
    pub fn listen_backlog(&self) -> i32 {
        i32::try_from(self.max_connections.max(1024)).unwrap_or(i32::MAX)
    }
}

impl Default for HttpSettings {
    /// HTTP off; the other values are those an `[http]` section gets.
    fn default() -> Self {
        Self {
            enabled: false,
            port: 80,
            max_connections_per_client: 32,
            max_connections: 16_384,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_request_size: 8192,
        }
    }
}

/// The lease journal: where and how durably lease changes are recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalSettings {
    /// Directory holding the journal files.
    pub dir: std::path::PathBuf,
    /// When records reach stable storage.
    pub fsync: FsyncPolicy,
}

/// IPv6 behaviour on the served interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ipv6Settings {
    /// Whether Router Solicitations are answered.
    pub router_advertisements: RouterAdvertisements,
}

/// How the data plane answers IPv6 Router Solicitations on served
/// interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouterAdvertisements {
    /// Never send a Router Advertisement.
    Off,
    /// Answer with router lifetime 0, no prefix and no flags: ends a boot
    /// loader's IPv6 wait while configuring nothing; falls silent on an
    /// interface where a configuring IPv6 router advertises.
    #[default]
    Minimal,
}

/// When journal records are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fsync` after every commit group before any reply leaves.
    Always,
    /// `fsync` at least every given interval; replies wait for it.
    Batch(Duration),
    /// Never `fsync`; the kernel page cache decides. Survives a process
    /// crash, not a power loss.
    Never,
}

/// An IPv4 network in canonical form (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// A network from an address and a prefix length; host bits must be zero.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        if prefix > 32 {
            return None;
        }
        let net = Self { addr, prefix };
        (u32::from(addr) & !net.mask_bits() == 0).then_some(net)
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The subnet mask (option 1).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.addr)
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An inclusive range of dynamic addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address (inclusive).
    pub end: Ipv4Addr,
}

/// Whether clients without a host declaration get addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownClients {
    /// Any client may lease from the dynamic pool.
    Allow,
    /// Only declared hosts are answered.
    Deny,
}

/// One declared subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    /// The network.
    pub net: Ipv4Net,
    /// Dynamic pools.
    pub ranges: Vec<AddrRange>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 28; defaults to the network's broadcast address.
    pub broadcast: Ipv4Addr,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 42.
    pub ntp_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain_name: Option<String>,
    /// Option 2, seconds east of UTC.
    pub time_offset: Option<i32>,
    /// `siaddr` when no boot rule names one.
    pub next_server: Option<Ipv4Addr>,
    /// Per-subnet lease time overrides (`None`: use [`DhcpSettings`]).
    pub default_lease_time: Option<Duration>,
    /// Per-subnet maximum lease time override.
    pub max_lease_time: Option<Duration>,
    /// Policy for clients without a host declaration.
    pub unknown_clients: UnknownClients,
    /// Whether BOOTP clients without a fixed address get a dynamic address
    /// of the pools (ISC `range dynamic-bootp`).
    pub dynamic_bootp: bool,
    /// How long a dynamic BOOTP binding lasts (`None`: the subnet's default
    /// lease time). BOOTP clients never renew, so the binding simply ends.
    pub dynamic_bootp_lease_length: Option<Duration>,
    /// Boot rules, evaluated in order; the first match wins.
    pub boot_rules: Vec<BootRule>,
}

/// Client system architecture (option 93, RFC 4578 and the IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientArch(pub u16);

impl ClientArch {
    /// x86 BIOS.
    pub const BIOS: Self = Self(0);
    /// EFI IA32.
    pub const EFI_IA32: Self = Self(6);
    /// EFI x86-64 (EFI BC).
    pub const EFI_X64: Self = Self(7);
    /// EFI x86-64 (alternate code).
    pub const EFI_X64_ALT: Self = Self(9);
    /// EFI ARM64.
    pub const EFI_ARM64: Self = Self(11);
    /// EFI x86-64 HTTP boot.
    pub const EFI_X64_HTTP: Self = Self(16);
    /// EFI ARM64 HTTP boot.
    pub const EFI_ARM64_HTTP: Self = Self(19);
}

/// One boot rule: when every present matcher matches, the client gets
/// `filename` (and `next_server` when set).
#[derive(Debug, Clone, PartialEq)]
pub struct BootRule {
    /// Matches when the host's boot profile equals this name. Clients
    /// without a host declaration (or without a profile) have the profile
    /// `default`.
    pub profile: Option<String>,
    /// Matches when the client's option 93 is one of these; empty: any arch.
    pub arch: Vec<ClientArch>,
    /// Matches when the client's user class (option 77) equals this
    /// (`Some`), or when it has none (`Some` of empty is not allowed).
    pub user_class: Option<String>,
    /// Matches on the presence (`true`) or absence (`false`) of iPXE's
    /// encapsulated option 175.
    pub ipxe_encap: Option<bool>,
    /// The boot file name (`file` field and option 67); with `http`, the
    /// path part of the URL handed out.
    pub filename: String,
    /// `siaddr` / option 66 for this rule; falls back to the subnet's.
    pub next_server: Option<Ipv4Addr>,
    /// Hand out `filename` as `http://<next-server>[:port]/<filename>`, the
    /// port being `[http] port` (left out when 80) and the address the
    /// rule's or subnet's `next-server`, else the answering server's own.
    pub http: bool,
}

/// The profile name of clients that have none.
pub const DEFAULT_PROFILE: &str = "default";

/// A host reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The declaration's name (ISC `host NAME`).
    pub name: String,
    /// Hardware address (Ethernet).
    pub mac: [u8; 6],
    /// Fixed address, if any; otherwise the host leases from the pool but
    /// still counts as known.
    pub fixed_address: Option<Ipv4Addr>,
    /// Host name sent in option 12 (`server-name` / `option host-name`);
    /// falls back to `name` when `use_host_decl_names` is on.
    pub hostname: Option<String>,
    /// Boot profile; `None` is [`DEFAULT_PROFILE`].
    pub profile: Option<String>,
    /// Free-form labels (`{{label:KEY}}` in script templates).
    pub labels: BTreeMap<String, String>,
}
