//! Shared helpers of the DHCP integration tests: configurations, request
//! builders, the captured DISCOVERs and a driver stand-in that persists
//! records before taking the reply.
#![allow(dead_code)]

pub(crate) mod captures;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bootwave_protocol::config::{
    AddrRange, BootRule, ClientArch, Config, DhcpSettings, FsyncPolicy, Host, Ipv4Net,
    JournalSettings, Subnet, TftpSettings, UnknownClients,
};
use bootwave_protocol::dhcp::{
    Action, DhcpServer, Event, Handled, LeaseRecord, MAX_MESSAGE_LEN, Snapshot, Transmit, UnixTime,
};
use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::shard::shard_of;
use dhcproto::{Decodable, Decoder, v4};

/// The server's address on the client link (also next-server and router).
pub(crate) const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
/// The ingress interface's addresses.
pub(crate) const IFACE: [Ipv4Addr; 1] = [SERVER];
/// The MAC of both captures.
pub(crate) const CAPTURE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x77, 0x00, 0x10];
/// A reserved host with a fixed address in the lab config.
pub(crate) const FIXED_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x01];
/// Its address.
pub(crate) const FIXED_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 50);
/// A declared host without a fixed address (profile `rescue`).
pub(crate) const KNOWN_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x02];
/// The relay of the lab's second subnet.
pub(crate) const RELAY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);

pub(crate) fn hex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub(crate) fn ovmf_discover() -> Vec<u8> {
    hex(captures::OVMF_DISCOVER_HEX)
}

pub(crate) fn ipxe_discover() -> Vec<u8> {
    hex(captures::IPXE_DISCOVER_HEX)
}

pub(crate) fn rule(arch: u16, user_class: Option<&str>, file: &str) -> BootRule {
    BootRule {
        profile: None,
        arch: vec![ClientArch(arch)],
        user_class: user_class.map(str::to_owned),
        ipxe_encap: None,
        filename: file.to_owned(),
        next_server: None,
        http: false,
    }
}

/// The guide's rules: arch 7 → iPXE? refind.pxe : ipxe.efi; arch 6 → iPXE?
/// refind.pxe : ipxe32.efi.
pub(crate) fn guide_rules() -> Vec<BootRule> {
    vec![
        rule(7, Some("iPXE"), "refind.pxe"),
        rule(7, None, "ipxe.efi"),
        rule(6, Some("iPXE"), "refind.pxe"),
        rule(6, None, "ipxe32.efi"),
    ]
}

pub(crate) fn settings() -> DhcpSettings {
    DhcpSettings {
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
    }
}

pub(crate) fn subnet(net: [u8; 4], prefix: u8, first: [u8; 4], last: [u8; 4]) -> Subnet {
    let net = Ipv4Net::new(Ipv4Addr::from(net), prefix).expect("canonical");
    Subnet {
        net,
        ranges: vec![AddrRange {
            start: Ipv4Addr::from(first),
            end: Ipv4Addr::from(last),
        }],
        routers: vec![],
        broadcast: net.broadcast(),
        dns_servers: vec![],
        ntp_servers: vec![],
        domain_name: None,
        time_offset: None,
        next_server: None,
        default_lease_time: None,
        max_lease_time: None,
        unknown_clients: UnknownClients::Allow,
        dynamic_bootp: false,
        dynamic_bootp_lease_length: None,
        boot_rules: guide_rules(),
    }
}

fn base_config(subnets: Vec<Subnet>, hosts: Vec<Host>) -> Config {
    Config {
        interfaces: vec![],
        dhcp: settings(),
        tftp: TftpSettings {
            port: 69,
            root: "/srv/tftp".into(),
            max_blksize: 1468,
            mtu: 1500,
            max_windowsize: 8,
            min_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(5),
            max_retries: 5,
            max_transfers: 64,
            admission: bootwave_protocol::config::TftpAdmission::DEFAULT,
        },
        journal: JournalSettings {
            dir: "/var/lib/bootwave".into(),
            fsync: FsyncPolicy::Always,
        },
        http: Default::default(),
        ipv6: Default::default(),
        subnets,
        hosts,
        profiles: Vec::new(),
    }
}

/// The guide's configuration: 192.168.1.0/28, range .2–.5, router and
/// next-server .1, broadcast .15, host `node_1` without fixed address.
pub(crate) fn guide_config() -> Config {
    let mut s = subnet([192, 168, 1, 0], 28, [192, 168, 1, 2], [192, 168, 1, 5]);
    s.routers = vec![SERVER];
    s.broadcast = Ipv4Addr::new(192, 168, 1, 15);
    s.next_server = Some(SERVER);
    let host = Host {
        name: "node_1".to_owned(),
        mac: [0x52, 0x54, 0x00, 0x77, 0x00, 0x99],
        fixed_address: None,
        hostname: Some("node_1".to_owned()),
        profile: None,
        labels: Default::default(),
    };
    base_config(vec![s], vec![host])
}

/// A larger lab: 192.168.1.0/24 (range .10–.200, DNS, NTP, domain, time
/// offset) on the link, 10.20.0.0/16 behind a relay, a fixed-address host
/// and a known host without one.
pub(crate) fn lab_config() -> Config {
    let mut local = subnet([192, 168, 1, 0], 24, [192, 168, 1, 10], [192, 168, 1, 200]);
    local.routers = vec![SERVER];
    local.next_server = Some(SERVER);
    local.dns_servers = vec![Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 3)];
    local.ntp_servers = vec![Ipv4Addr::new(192, 168, 1, 4)];
    local.domain_name = Some("lab.example".to_owned());
    local.time_offset = Some(3600);
    let mut relayed = subnet([10, 20, 0, 0], 16, [10, 20, 1, 0], [10, 20, 1, 255]);
    relayed.routers = vec![RELAY];
    relayed.next_server = Some(SERVER);
    let hosts = vec![
        Host {
            name: "web1".to_owned(),
            mac: FIXED_MAC,
            fixed_address: Some(FIXED_ADDR),
            hostname: None,
            profile: None,
            labels: Default::default(),
        },
        Host {
            name: "node_2".to_owned(),
            mac: KNOWN_MAC,
            fixed_address: None,
            hostname: Some("node-two".to_owned()),
            profile: Some("rescue".to_owned()),
            labels: Default::default(),
        },
    ];
    base_config(vec![local, relayed], hosts)
}

pub(crate) fn server(cfg: Config) -> DhcpServer {
    DhcpServer::new(Snapshot::shared(cfg), 0, 1)
}

pub(crate) fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(1_800_000_000 + secs)
}

/// A broadcast from an unconfigured client.
pub(crate) fn bcast() -> RecvMeta {
    RecvMeta {
        src: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)),
        dst_ip: IpAddr::V4(Ipv4Addr::BROADCAST),
        local_port: 67,
        ifindex: 2,
    }
}

/// A broadcast from a configured client (REBINDING, INFORM): the IP
/// source is its address.
pub(crate) fn bcast_from(src: Ipv4Addr) -> RecvMeta {
    RecvMeta {
        src: SocketAddr::from((src, 68)),
        ..bcast()
    }
}

/// A unicast to the server from `src` (a bound client or a relay).
pub(crate) fn unicast(src: Ipv4Addr, port: u16) -> RecvMeta {
    RecvMeta {
        src: SocketAddr::from((src, port)),
        dst_ip: IpAddr::V4(SERVER),
        local_port: 67,
        ifindex: 2,
    }
}

/// A request under construction.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    mac: [u8; 6],
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    options: Vec<u8>,
}

impl Msg {
    /// A message of DHCP type `kind` (option 53 first).
    pub(crate) fn dhcp(kind: u8, mac: [u8; 6]) -> Self {
        Self::bootp(mac).opt(53, &[kind])
    }

    /// A BOOTP request (no option 53).
    pub(crate) fn bootp(mac: [u8; 6]) -> Self {
        Self {
            mac,
            xid: 0xfeed_0001,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            options: Vec::new(),
        }
    }

    pub(crate) fn opt(mut self, code: u8, data: &[u8]) -> Self {
        self.options.push(code);
        self.options
            .push(u8::try_from(data.len()).expect("short option"));
        self.options.extend_from_slice(data);
        self
    }

    pub(crate) fn ip_opt(self, code: u8, ip: Ipv4Addr) -> Self {
        self.opt(code, &ip.octets())
    }

    pub(crate) fn ciaddr(mut self, ip: Ipv4Addr) -> Self {
        self.ciaddr = ip;
        self
    }

    pub(crate) fn giaddr(mut self, ip: Ipv4Addr) -> Self {
        self.giaddr = ip;
        self
    }

    pub(crate) fn xid(mut self, xid: u32) -> Self {
        self.xid = xid;
        self
    }

    pub(crate) fn broadcast(mut self) -> Self {
        self.flags = 0x8000;
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut m = vec![0u8; 240];
        m[0] = 1;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&self.xid.to_be_bytes());
        m[10..12].copy_from_slice(&self.flags.to_be_bytes());
        m[12..16].copy_from_slice(&self.ciaddr.octets());
        m[24..28].copy_from_slice(&self.giaddr.octets());
        m[28..34].copy_from_slice(&self.mac);
        m[236..240].copy_from_slice(&[99, 130, 83, 99]);
        m.extend_from_slice(&self.options);
        m.push(255);
        m
    }
}

/// DISCOVER from `mac` asking for the usual PXE parameters.
pub(crate) fn discover(mac: [u8; 6]) -> Msg {
    Msg::dhcp(1, mac).opt(55, &[1, 3, 6, 12, 15, 28, 42, 66, 67])
}

/// SELECTING REQUEST for `addr` from `server_id`.
pub(crate) fn select(mac: [u8; 6], addr: Ipv4Addr, server_id: Ipv4Addr) -> Msg {
    Msg::dhcp(3, mac).ip_opt(50, addr).ip_opt(54, server_id)
}

/// What a driver saw after one call: the reply bytes (only after the
/// records were "persisted"), the records, and the event.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) handled: Seen,
    pub(crate) records: Vec<LeaseRecord>,
    pub(crate) transmit: Option<Transmit>,
    pub(crate) reply: Option<Vec<u8>>,
}

/// A [`Handled`] once its action was carried out (a `Commit` is consumed
/// by doing so): the kind of action, and the event.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) action: Did,
    pub(crate) event: Event,
}

/// What kind of action a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Did {
    Nothing,
    Sent,
    Committed,
    Probed,
}

impl Step {
    pub(crate) fn from(handled: Handled, out: &[u8]) -> Self {
        let Handled { action, event } = handled;
        let (did, records, transmit) = match action {
            Action::None => (Did::Nothing, Vec::new(), None),
            Action::Probe(_) => (Did::Probed, Vec::new(), None),
            Action::Send(tx) => (Did::Sent, Vec::new(), Some(tx)),
            Action::Commit(c) => {
                let records = c.records().to_vec();
                (Did::Committed, records, c.persisted())
            }
        };
        let handled = Seen { action: did, event };
        let reply = transmit.map(|tx| out[..tx.len].to_vec());
        Self {
            handled,
            records,
            transmit,
            reply,
        }
    }

    /// The reply decoded by the `dhcproto` oracle.
    pub(crate) fn decoded(&self) -> v4::Message {
        decode(self.reply.as_deref().expect("a reply"))
    }
}

pub(crate) fn run(
    server: &mut DhcpServer,
    now: UnixTime,
    meta: &RecvMeta,
    datagram: &[u8],
) -> Step {
    let mut out = vec![0xa5u8; MAX_MESSAGE_LEN];
    let handled = server.handle(now, meta, &IFACE, datagram, &mut out);
    Step::from(handled, &out)
}

pub(crate) fn decode(bytes: &[u8]) -> v4::Message {
    v4::Message::decode(&mut Decoder::new(bytes)).expect("the oracle decodes the reply")
}

/// The `n`-th MAC (in a fixed sequence) that `shard_of` gives to `shard`.
pub(crate) fn mac_of_shard(shard: u32, shards: u32, n: usize) -> [u8; 6] {
    (0u32..)
        .map(|i| {
            let b = i.to_be_bytes();
            [0x02, 0x00, b[0], b[1], b[2], b[3]]
        })
        .filter(|m| shard_of(m, shards) == shard)
        .nth(n)
        .expect("the sequence is endless")
}

/// 192.168.0.0/16 with the guide's rules and a pool of 64,000 addresses
/// (192.168.2.0 onwards), for tables of thousands of leases.
pub(crate) fn big_config() -> Config {
    let mut s = subnet([192, 168, 0, 0], 16, [192, 168, 2, 0], [192, 168, 251, 255]);
    s.routers = vec![SERVER];
    s.next_server = Some(SERVER);
    s.dns_servers = vec![SERVER];
    base_config(vec![s], Vec::new())
}

/// A server on `big_config` with `n` clients bound (MACs `mac_n(0..n)`).
pub(crate) fn server_with_leases(n: u32) -> DhcpServer {
    let mut s = server(big_config());
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    for i in 0..n {
        let mac = mac_n(i);
        let h = s.handle(t(0), &bcast(), &IFACE, &discover(mac).build(), &mut out);
        let Action::Send(tx) = h.action else {
            panic!("no offer: {h:?}")
        };
        let yiaddr = Ipv4Addr::new(out[16], out[17], out[18], out[19]);
        assert!(tx.len > 0);
        let h = s.handle(
            t(0),
            &bcast(),
            &IFACE,
            &select(mac, yiaddr, SERVER).build(),
            &mut out,
        );
        assert!(matches!(h.action, Action::Commit(_)), "no ack: {h:?}");
    }
    s
}

/// The `i`-th client MAC of the big tables.
pub(crate) fn mac_n(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x52, 0x54, b[0], b[1], b[2], b[3]]
}
