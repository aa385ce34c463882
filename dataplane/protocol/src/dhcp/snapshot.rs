//! The immutable configuration snapshot the cores read per packet.
//!
//! A writer builds a [`Snapshot`] from a validated [`Config`] and swaps it
//! into the shared [`SharedSnapshot`]; every shard loads the current one at
//! the start of each packet without locking. Lookup tables (hosts by MAC,
//! reserved addresses, subnets by specificity, pre-encoded subnet options)
//! are built here once, not per packet.

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, Host, Subnet};
use crate::dhcp::hash::{FastMap, map_with_capacity};
use crate::dhcp::options::code;
use crate::dhcp::pool;

/// The snapshot handle shared by a writer and all shards.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// A configuration with its lookup tables.
#[derive(Debug)]
pub struct Snapshot {
    config: Config,
    hosts: FastMap<[u8; 6], usize>,
    reserved: FastMap<Ipv4Addr, [u8; 6]>,
    /// Subnet indices, most specific (longest prefix) first.
    by_prefix: Vec<usize>,
    /// Per subnet: options 3, 28, 6, 15, 42, 2 as encoded TLVs.
    subnet_options: Vec<Vec<u8>>,
}

impl Snapshot {
    /// Builds the lookup tables of `config`. Should two hosts share a MAC or
    /// a fixed address (validation forbids it), the first one wins.
    pub fn new(config: Config) -> Self {
        let mut hosts = map_with_capacity(config.hosts.len());
        let mut reserved = map_with_capacity(config.hosts.len());
        for (i, h) in config.hosts.iter().enumerate() {
            hosts.entry(h.mac).or_insert(i);
            if let Some(addr) = h.fixed_address {
                reserved.entry(addr).or_insert(h.mac);
            }
        }
        let mut by_prefix: Vec<usize> = (0..config.subnets.len()).collect();
        by_prefix.sort_by_key(|&i| std::cmp::Reverse(config.subnets[i].net.prefix()));
        let subnet_options = config.subnets.iter().map(encode_subnet_options).collect();
        Self {
            config,
            hosts,
            reserved,
            by_prefix,
            subnet_options,
        }
    }

    /// A new shared handle holding a snapshot of `config`.
    pub fn shared(config: Config) -> SharedSnapshot {
        Arc::new(ArcSwap::from_pointee(Self::new(config)))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The host declared for `mac`.
    pub fn host(&self, mac: &[u8; 6]) -> Option<&Host> {
        self.hosts.get(mac).map(|&i| &self.config.hosts[i])
    }

    /// The MAC `addr` is reserved for, if any.
    pub fn reserved_for(&self, addr: Ipv4Addr) -> Option<[u8; 6]> {
        self.reserved.get(&addr).copied()
    }

    /// The index of the most specific subnet containing `addr`.
    pub fn subnet_index(&self, addr: Ipv4Addr) -> Option<usize> {
        self.by_prefix
            .iter()
            .copied()
            .find(|&i| self.config.subnets[i].net.contains(addr))
    }

    /// The subnet at `index` (from [`Snapshot::subnet_index`]).
    pub fn subnet(&self, index: usize) -> Option<&Subnet> {
        self.config.subnets.get(index)
    }

    /// The pre-encoded options 3, 28, 6, 15, 42 and 2 of subnet `index`.
    pub(crate) fn subnet_options(&self, index: usize) -> &[u8] {
        self.subnet_options.get(index).map_or(&[], Vec::as_slice)
    }

    /// How many dynamic addresses shard `shard` of `shards` owns.
    pub fn slice_len(&self, shard: u32, shards: u32) -> u64 {
        self.config
            .subnets
            .iter()
            .map(|s| pool::slice_len(s, shard, shards))
            .sum()
    }
}

/// Encodes the static per-subnet options, in the order they are sent.
/// Values longer than one option can hold are cut to whole items.
fn encode_subnet_options(s: &Subnet) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |code: u8, data: &[u8]| {
        if data.is_empty() {
            return;
        }
        let len = data.len().min(255);
        out.push(code);
        out.push(len as u8); // `len` ≤ 255 by the line above.
        out.extend_from_slice(&data[..len]);
    };
    let ips =
        |list: &[Ipv4Addr]| -> Vec<u8> { list.iter().take(63).flat_map(|a| a.octets()).collect() };
    push(code::ROUTERS, &ips(&s.routers));
    push(code::BROADCAST, &s.broadcast.octets());
    push(code::DNS_SERVERS, &ips(&s.dns_servers));
    if let Some(d) = &s.domain_name {
        push(code::DOMAIN_NAME, d.as_bytes());
    }
    push(code::NTP_SERVERS, &ips(&s.ntp_servers));
    if let Some(off) = s.time_offset {
        push(code::TIME_OFFSET, &off.to_be_bytes());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{
        AddrRange, BootRule, ClientArch, DhcpSettings, FsyncPolicy, Ipv4Net, JournalSettings,
        TftpSettings, UnknownClients,
    };
    use crate::dhcp::options::OptionIter;

    /// The guide's subnet and rules: 192.168.1.0/28, range .2–.5, router and
    /// next-server .1, arch 7/6 with user class iPXE.
    pub(crate) fn guide_config() -> Config {
        let rule = |arch: u16, uc: Option<&str>, file: &str| BootRule {
            profile: None,
            arch: vec![ClientArch(arch)],
            user_class: uc.map(str::to_owned),
            ipxe_encap: None,
            filename: file.to_owned(),
            next_server: None,
            http: false,
        };
        let net = Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 28).expect("canonical");
        Config {
            interfaces: vec![],
            dhcp: DhcpSettings {
                port: 67,
                default_lease_time: Duration::from_secs(7200),
                max_lease_time: Duration::from_secs(7200),
                min_lease_time: Duration::from_secs(60),
                offer_hold: Duration::from_secs(30),
                decline_quarantine: Duration::from_secs(3600),
                authoritative: true,
                allow_bootp: true,
                use_host_decl_names: false,
                ping_check: false,
                ping_timeout: Duration::from_secs(1),
                relays: Vec::new(),
            },
            tftp: TftpSettings {
                port: 69,
                root: "/srv/tftp".into(),
                max_blksize: 1468,
                mtu: 1500,
                max_windowsize: 8,
                min_timeout: Duration::from_secs(1),
                max_timeout: Duration::from_secs(5),
                max_retries: 5,
                max_transfers: 1024,
                admission: crate::config::TftpAdmission::DEFAULT,
            },
            journal: JournalSettings {
                dir: "/var/lib/bootwave".into(),
                fsync: FsyncPolicy::Always,
            },
            http: Default::default(),
            ipv6: Default::default(),
            subnets: vec![Subnet {
                net,
                ranges: vec![AddrRange {
                    start: Ipv4Addr::new(192, 168, 1, 2),
                    end: Ipv4Addr::new(192, 168, 1, 5),
                }],
                routers: vec![Ipv4Addr::new(192, 168, 1, 1)],
                broadcast: Ipv4Addr::new(192, 168, 1, 15),
                dns_servers: vec![],
                ntp_servers: vec![],
                domain_name: None,
                time_offset: None,
                next_server: Some(Ipv4Addr::new(192, 168, 1, 1)),
                default_lease_time: None,
                max_lease_time: None,
                unknown_clients: UnknownClients::Allow,
                dynamic_bootp: false,
                dynamic_bootp_lease_length: None,
                boot_rules: vec![
                    rule(7, Some("iPXE"), "refind.pxe"),
                    rule(7, None, "ipxe.efi"),
                    rule(6, Some("iPXE"), "refind.pxe"),
                    rule(6, None, "ipxe32.efi"),
                ],
            }],
            hosts: vec![Host {
                name: "node_1".to_owned(),
                mac: [0x52, 0x54, 0x00, 0x77, 0x00, 0x99],
                fixed_address: None,
                hostname: Some("node_1".to_owned()),
                profile: None,
                labels: Default::default(),
            }],
            profiles: Vec::new(),
        }
    }

    #[test]
    fn lookups() {
        let mut cfg = guide_config();
        let wide = Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("canonical");
        let mut outer = cfg.subnets[0].clone();
        outer.net = wide;
        cfg.subnets.insert(0, outer);
        cfg.hosts[0].fixed_address = Some(Ipv4Addr::new(192, 168, 1, 9));
        let snap = Snapshot::new(cfg);
        assert_eq!(snap.subnet_index(Ipv4Addr::new(192, 168, 1, 3)), Some(1));
        assert_eq!(snap.subnet_index(Ipv4Addr::new(192, 168, 7, 3)), Some(0));
        assert_eq!(snap.subnet_index(Ipv4Addr::new(10, 0, 0, 1)), None);
        let mac = [0x52, 0x54, 0x00, 0x77, 0x00, 0x99];
        assert_eq!(snap.host(&mac).map(|h| h.name.as_str()), Some("node_1"));
        assert_eq!(snap.reserved_for(Ipv4Addr::new(192, 168, 1, 9)), Some(mac));
        assert_eq!(snap.reserved_for(Ipv4Addr::new(192, 168, 1, 8)), None);
    }

    #[test]
    fn subnet_options_are_encoded_in_order() {
        let mut cfg = guide_config();
        cfg.subnets[0].dns_servers = vec![Ipv4Addr::new(9, 9, 9, 9)];
        cfg.subnets[0].domain_name = Some("lab".to_owned());
        cfg.subnets[0].time_offset = Some(-3600);
        let snap = Snapshot::new(cfg);
        let opts: Vec<(u8, Vec<u8>)> = OptionIter::new(snap.subnet_options(0))
            .map(|o| o.map(|(c, v)| (c, v.to_vec())).expect("well-formed"))
            .collect();
        assert_eq!(
            opts,
            vec![
                (3, vec![192, 168, 1, 1]),
                (28, vec![192, 168, 1, 15]),
                (6, vec![9, 9, 9, 9]),
                (15, b"lab".to_vec()),
                (2, (-3600i32).to_be_bytes().to_vec()),
            ]
        );
    }
}
