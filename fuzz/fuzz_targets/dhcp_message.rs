//! Arbitrary bytes into the DHCP parser and into a server core with a small
//! configuration: nothing may panic, and every reply the server writes must
//! parse with our own parser.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bootwave_protocol::config::{
    AddrRange, BootRule, ClientArch, Config, DhcpSettings, FsyncPolicy, Host, Ipv4Net,
    JournalSettings, Subnet, TftpSettings, UnknownClients,
};
use bootwave_protocol::dhcp::{Action, DhcpServer, MAX_MESSAGE_LEN, Packet, Snapshot, UnixTime};
use bootwave_protocol::net::RecvMeta;
use libfuzzer_sys::fuzz_target;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

fn config(ping_check: bool, authoritative: bool) -> Config {
    let net = Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 24).expect("canonical");
    let relayed = Ipv4Net::new(Ipv4Addr::new(10, 20, 0, 0), 16).expect("canonical");
    let rule = |arch: u16, uc: Option<&str>, file: &str| BootRule {
        profile: None,
        arch: vec![ClientArch(arch)],
        user_class: uc.map(str::to_owned),
        ipxe_encap: None,
        filename: file.to_owned(),
        next_server: None,
        http: false,
    };
    let subnet = |net: Ipv4Net, start: [u8; 4], end: [u8; 4]| Subnet {
        net,
        ranges: vec![AddrRange {
            start: Ipv4Addr::from(start),
            end: Ipv4Addr::from(end),
        }],
        routers: vec![SERVER],
        broadcast: net.broadcast(),
        dns_servers: vec![SERVER],
        ntp_servers: vec![SERVER],
        domain_name: Some("fuzz.example".to_owned()),
        time_offset: Some(0),
        next_server: Some(SERVER),
        default_lease_time: None,
        max_lease_time: None,
        unknown_clients: UnknownClients::Allow,
        dynamic_bootp: false,
        dynamic_bootp_lease_length: None,
        boot_rules: vec![
            BootRule {
                http: true,
                ..rule(16, None, "efi/ipxe.efi")
            },
            rule(7, Some("iPXE"), "refind.pxe"),
            rule(7, None, "ipxe.efi"),
            rule(6, None, "ipxe32.efi"),
        ],
    };
    Config {
        interfaces: vec![],
        dhcp: DhcpSettings {
            port: 67,
            default_lease_time: Duration::from_secs(600),
            max_lease_time: Duration::from_secs(7200),
            min_lease_time: Duration::from_secs(60),
            offer_hold: Duration::from_secs(30),
            decline_quarantine: Duration::from_secs(600),
            authoritative,
            allow_bootp: true,
            use_host_decl_names: true,
            ping_check,
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
            max_transfers: 8,
            admission: bootwave_protocol::config::TftpAdmission::DEFAULT,
        },
        http: Default::default(),
        journal: JournalSettings {
            dir: "/tmp".into(),
            fsync: FsyncPolicy::Never,
        },
        ipv6: Default::default(),
        subnets: vec![
            subnet(net, [192, 168, 1, 10], [192, 168, 1, 20]),
            subnet(relayed, [10, 20, 1, 0], [10, 20, 1, 9]),
        ],
        hosts: vec![Host {
            name: "fixed".to_owned(),
            mac: [0x52, 0x54, 0, 0, 0, 1],
            fixed_address: Some(Ipv4Addr::new(192, 168, 1, 50)),
            hostname: None,
            profile: None,
            labels: Default::default(),
        }],
        profiles: Vec::new(),
    }
}

fn check_reply(reply: &[u8]) {
    let p = Packet::new_checked(reply).expect("our reply parses");
    assert_eq!(p.op(), 2);
    for o in p.options() {
        o.expect("our options scan");
    }
}

fuzz_target!(|data: &[u8]| {
    // The parser alone.
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (
            p.xid(),
            p.ciaddr(),
            p.giaddr(),
            p.chaddr(),
            p.ethernet_addr(),
        );
        for o in p.options() {
            if o.is_err() {
                break;
            }
        }
    }
    // A server core; the first byte picks the settings.
    let flags = data.first().copied().unwrap_or(0);
    let snap = Snapshot::shared(config(flags & 1 != 0, flags & 2 != 0));
    let mut server = DhcpServer::with_capacity(snap, 0, 1, 32);
    let now = UnixTime::from_secs(1_800_000_000);
    let metas = [
        RecvMeta {
            src: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)),
            dst_ip: IpAddr::V4(Ipv4Addr::BROADCAST),
            local_port: 67,
            ifindex: 1,
        },
        RecvMeta {
            src: SocketAddr::from((Ipv4Addr::new(10, 20, 0, 1), 67)),
            dst_ip: IpAddr::V4(SERVER),
            local_port: 67,
            ifindex: 1,
        },
    ];
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    for meta in &metas {
        let handled = server.handle(now, meta, &[SERVER], data, &mut out);
        let tx = match handled.action {
            Action::None => None,
            Action::Send(tx) => Some(tx),
            Action::Commit(c) => c.persisted(),
            Action::Probe(p) => {
                // Answered on the wire, never sent, or silent until the
                // core's own deadline.
                let h = match flags & 12 {
                    4 => server.probe_answered(now, p.addr, &mut out),
                    8 => Some(server.probe_not_sent(now, p.token, &mut out)),
                    _ => server.poll_timeout().and_then(|at| {
                        server.next_timed_out_probe(at.max(now), &mut out)
                    }),
                };
                match h.map(|h| h.action) {
                    Some(Action::Send(tx)) => Some(tx),
                    _ => None,
                }
            }
        };
        if let Some(tx) = tx {
            check_reply(&out[..tx.len]);
        }
    }
    let mut records = Vec::new();
    server.handle_timeout(UnixTime::from_secs(1_900_000_000), &mut records);
});
