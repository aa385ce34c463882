//! The Router Advertisement responder inside network namespaces the tests
//! create (see `ops_support`): a solicitation on a served link gets the
//! minimal advertisement; one on a link that is not served gets nothing.
//! Needs root.
#![allow(clippy::unwrap_used)]

mod ops_support;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use bootwave_dataplane::ra::{ALL_ROUTERS, Icmp6Socket, spawn, start};
use bootwave_protocol::config::{RouterAdvertisements, ServedInterface};
use bootwave_protocol::ra::{
    ND_HOP_LIMIT, ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION, RouterAdvertisement,
};
use ops_support::{Netns, ifindex};

/// How long an advertisement may take; a silent link is given as long.
const WAIT: Duration = Duration::from_secs(2);

/// Namespace `server` holding `s<i>`, and per link a namespace holding the
/// peer `c<i>`; no duplicate address detection and no kernel
/// solicitations, so only the test's own messages are on the links.
fn topology(tag: &str, links: usize) -> (Netns, Vec<Netns>) {
    let server = Netns::new(&format!("{tag}s"));
    let quiet = |ns: &Netns| {
        for key in ["all", "default"] {
            ns.sysctl(&format!("net.ipv6.conf.{key}.accept_dad=0"));
            ns.sysctl(&format!("net.ipv6.conf.{key}.router_solicitations=0"));
        }
    };
    quiet(&server);
    let clients: Vec<Netns> = (0..links)
        .map(|i| {
            let client = Netns::new(&format!("{tag}c{i}"));
            quiet(&client);
            let (s, c) = (format!("s{i}"), format!("c{i}"));
            server.ip(&[
                "link",
                "add",
                &s,
                "type",
                "veth",
                "peer",
                "name",
                &c,
                "netns",
                client.name(),
            ]);
            server.ip(&["link", "set", &s, "up"]);
            client.ip(&["link", "set", &c, "up"]);
            client
        })
        .collect();
    (server, clients)
}

fn served(ns: &Netns, name: &str) -> ServedInterface {
    ServedInterface {
        name: name.to_owned(),
        index: ifindex(ns, name),
        addrs: Vec::new(),
    }
}

/// The MAC of `name` in `ns`, from `ip link`.
fn mac_of(ns: &Netns, name: &str) -> [u8; 6] {
    let out = ns.ip(&["-o", "link", "show", "dev", name]);
    let text = out
        .split("link/ether ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

/// Sends a solicitation (with its source link-layer address) out of `link`
/// in `ns` and returns every advertisement received there within [`WAIT`]:
/// bytes, source address and hop limit.
fn solicit(ns: &Netns, link: &str) -> Vec<(Vec<u8>, Ipv6Addr, u8)> {
    let index = ifindex(ns, link);
    let mac = mac_of(ns, link);
    ns.run(|| {
        let socket = Icmp6Socket::open(&[ROUTER_ADVERTISEMENT], Duration::from_millis(50)).unwrap();
        let mut rs = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        rs.extend_from_slice(&mac);
        socket.send(index, ALL_ROUTERS, &rs).unwrap();
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            if let Some((len, meta)) = socket.recv(&mut buf).unwrap() {
                assert_eq!(meta.ifindex, index);
                got.push((buf[..len].to_vec(), meta.src, meta.hop_limit));
            }
        }
        got
    })
}

#[test]
fn served_link_gets_a_minimal_advertisement_and_others_get_none() {
    let (server, clients) = topology("ra", 2);
    let served_link = served(&server, "s0");
    let server_mac = mac_of(&server, "s0");
    // Only s0 is served; s1 is the machine's other link.
    let handle = server.run(|| spawn(&[served_link]).unwrap());

    let answers = solicit(&clients[0], "c0");
    assert_eq!(
        answers.len(),
        1,
        "one advertisement per solicitation: {answers:?}"
    );
    let (bytes, src, hop_limit) = &answers[0];
    assert_eq!(*hop_limit, ND_HOP_LIMIT);
    assert!(
        src.is_unicast_link_local(),
        "sent from a link-local address, not {src}"
    );
    assert_eq!(bytes[0], ROUTER_ADVERTISEMENT);
    let (ra, options) = RouterAdvertisement::parse(bytes, *hop_limit).unwrap();
    assert_eq!(ra.router_lifetime, 0);
    assert!(!ra.managed && !ra.other);
    assert_eq!(ra.source_link_addr, Some(server_mac));
    let kinds: Vec<u8> = options.map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        vec![1],
        "only the source link-layer address, no prefix"
    );
    assert_eq!(bytes.len(), 24);

    let silent = solicit(&clients[1], "c1");
    assert!(silent.is_empty(), "an unserved link got {silent:?}");
    drop(handle);
}

#[test]
fn off_starts_nothing() {
    let (server, _clients) = topology("raoff", 1);
    let link = served(&server, "s0");
    let links = [link];
    assert!(
        server
            .run(|| start(RouterAdvertisements::Off, &links))
            .is_none()
    );
    assert!(
        server
            .run(|| start(RouterAdvertisements::Minimal, &[]))
            .is_none()
    );
}
