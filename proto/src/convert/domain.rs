//! The validated desired state the agent stores and the data planes run.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bootwave_protocol::config::{
    AddrRange, BootRule, DEFAULT_DECLINE_QUARANTINE, DEFAULT_LEASE_TIME, DEFAULT_MAX_LEASE_TIME,
    DEFAULT_OFFER_HOLD, DEFAULT_PING_TIMEOUT, Ipv4Net, UnknownClients,
};

/// The whole desired state: global DHCP settings, subnets, hosts, profiles.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Global DHCP settings.
    pub dhcp: DhcpSpec,
    /// Subnets by network.
    pub subnets: BTreeMap<Ipv4Net, SubnetSpec>,
    /// Hosts by MAC.
    pub hosts: BTreeMap<[u8; 6], HostSpec>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, ProfileSpec>,
}

/// Global DHCP settings, every value explicit.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpSpec {
    /// Lease time when the client asks for none.
    pub default_lease_time: Duration,
    /// Upper bound of any lease.
    pub max_lease_time: Duration,
    /// Lower bound of a requested lease.
    pub min_lease_time: Duration,
    /// How long an offer holds its address.
    pub offer_hold: Duration,
    /// How long a declined address stays out of the pool.
    pub decline_quarantine: Duration,
    /// NAK requests for foreign addresses.
    pub authoritative: bool,
    /// Answer BOOTP.
    pub allow_bootp: bool,
    /// Send a host's declaration name as option 12.
    pub use_host_decl_names: bool,
    /// Probe an address before offering it.
    pub ping_check: bool,
    /// How long to wait for the probe's echo.
    pub ping_timeout: Duration,
    /// Default policy of subnets for unknown clients (`None`: allow).
    pub unknown_clients: Option<UnknownClients>,
    /// Relay agents whose relayed requests are answered (empty: any).
    pub relays: Vec<Ipv4Net>,
}

impl Default for DhcpSpec {
    fn default() -> Self {
        Self {
            default_lease_time: DEFAULT_LEASE_TIME,
            max_lease_time: DEFAULT_MAX_LEASE_TIME,
            min_lease_time: Duration::ZERO,
            offer_hold: DEFAULT_OFFER_HOLD,
            decline_quarantine: DEFAULT_DECLINE_QUARANTINE,
            authoritative: true,
            allow_bootp: true,
            use_host_decl_names: false,
            ping_check: false,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            unknown_clients: None,
            relays: Vec::new(),
        }
    }
}

/// One subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetSpec {
    /// The network.
    pub net: Ipv4Net,
    /// Dynamic pools.
    pub ranges: Vec<AddrRange>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 28 (`None`: the network's broadcast address).
    pub broadcast: Option<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 2.
    pub time_offset: Option<i32>,
    /// Lease time override.
    pub default_lease_time: Option<Duration>,
    /// Maximum lease time override.
    pub max_lease_time: Option<Duration>,
    /// siaddr when no rule names one.
    pub next_server: Option<Ipv4Addr>,
    /// Policy for unknown clients (`None`: the global one).
    pub unknown_clients: Option<UnknownClients>,
    /// BOOTP clients without a fixed address get a pool address.
    pub dynamic_bootp: bool,
    /// How long such a binding lasts (`None`: the default lease time).
    pub dynamic_bootp_lease_length: Option<Duration>,
    /// The subnet's own rules, tried after every profile's.
    pub boot_rules: Vec<BootRule>,
}

/// One host reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    /// Hardware address.
    pub mac: [u8; 6],
    /// Declaration name (unique).
    pub name: String,
    /// Fixed address.
    pub fixed_address: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// The subnet the host boots in (`None`: the one holding its address).
    pub subnet: Option<Ipv4Net>,
    /// Boot profile (`None`: `default`).
    pub profile: Option<String>,
    /// Selection labels.
    pub labels: BTreeMap<String, String>,
}

/// A named boot profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSpec {
    /// The name hosts refer to.
    pub name: String,
    /// Ordered rules; each matches only hosts with this profile.
    pub rules: Vec<BootRule>,
    /// iPXE script template.
    pub ipxe_script: Option<String>,
    /// TFTP path the rendered script is served at (`None`: `NAME.ipxe`).
    pub script_path: Option<String>,
}

/// Where an effective boot rule comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// A profile's rule (profiles come first, in name order).
    Profile(String),
    /// The subnet's own rule.
    Subnet,
}

impl std::fmt::Display for RuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Profile(name) => write!(f, "profile {name}"),
            Self::Subnet => f.write_str("subnet"),
        }
    }
}

impl State {
    /// The rules a subnet runs, in order, with where each comes from: every
    /// profile's rules (restricted to that profile), then the subnet's own.
    pub fn effective_rules(&self, subnet: &SubnetSpec) -> Vec<(RuleSource, BootRule)> {
        let profile_rules = self.profiles.values().flat_map(|p| {
            p.rules.iter().map(|r| {
                let rule = BootRule {
                    profile: Some(p.name.clone()),
                    ..r.clone()
                };
                (RuleSource::Profile(p.name.clone()), rule)
            })
        });
        let own = subnet
            .boot_rules
            .iter()
            .map(|r| (RuleSource::Subnet, r.clone()));
        profile_rules.chain(own).collect()
    }

    /// The subnet a host boots in: the one it names, else the one holding
    /// its fixed address, else the only subnet.
    pub fn host_subnet(&self, host: &HostSpec) -> Option<&SubnetSpec> {
        if let Some(net) = host.subnet {
            return self.subnets.get(&net);
        }
        if let Some(ip) = host.fixed_address {
            return self.subnets.values().find(|s| s.net.contains(ip));
        }
        let mut all = self.subnets.values();
        match (all.next(), all.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }
}

/// The declaration name given to a host that has none: `mac-aabbccddeeff`.
pub(crate) fn default_host_name(mac: &[u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("mac-{hex}")
}
