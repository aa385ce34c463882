//! ARP entries written with SIOCSARP inside a network namespace the test
//! creates (see `ops_support` for how a test thread enters one). Needs root.
#![allow(clippy::unwrap_used)]

mod ops_support;

use std::net::Ipv4Addr;

use bootwave_dataplane::neigh::{self, NeighError, NeighTable};
use ops_support::{Netns, ifindex};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 50);
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x0c];

/// A namespace with veth `na` (10.78.0.1/24) ↔ `nb`, both up.
fn lan(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&["link", "add", "na", "type", "veth", "peer", "name", "nb"]);
    ns.ip(&["addr", "add", "10.78.0.1/24", "dev", "na"]);
    ns.ip(&["link", "set", "na", "up"]);
    ns.ip(&["link", "set", "nb", "up"]);
    ns
}

fn neigh_line(ns: &Netns, ip: Ipv4Addr) -> String {
    ns.ip(&["neigh", "show", "dev", "na", "to", &ip.to_string()])
        .trim()
        .to_owned()
}

#[test]
fn entry_is_listed_with_its_mac_and_not_failed() {
    let ns = lan("nadd");
    assert_eq!(neigh_line(&ns, CLIENT), "");
    ns.run(|| NeighTable::new().unwrap().add("na", CLIENT, MAC).unwrap());
    let line = neigh_line(&ns, CLIENT);
    assert!(
        line.starts_with("10.78.0.50 lladdr 52:54:00:aa:bb:0c "),
        "{line}"
    );
    let state = line.rsplit(' ').next().unwrap();
    assert!(["STALE", "REACHABLE", "DELAY"].contains(&state), "{line}");
    assert!(!line.contains("PERMANENT"), "{line}");

    // Writing again replaces the link address; the one-off function works too.
    let other = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x0d];
    ns.run(|| neigh::add_arp_entry("na", CLIENT, other).unwrap());
    let line = neigh_line(&ns, CLIENT);
    assert!(
        line.starts_with("10.78.0.50 lladdr 52:54:00:aa:bb:0d "),
        "{line}"
    );
}

#[test]
fn one_table_writes_many_entries() {
    let ns = lan("nmany");
    ns.run(|| {
        let table = NeighTable::new().unwrap();
        for host in 10..30u8 {
            let mac = [0x52, 0x54, 0, 0, 1, host];
            table
                .add("na", Ipv4Addr::new(10, 78, 0, host), mac)
                .unwrap();
        }
    });
    let listed = ns.ip(&["neigh", "show", "dev", "na"]);
    for host in 10..30u8 {
        let want = format!("10.78.0.{host} lladdr 52:54:00:00:01:{host:02x} ");
        assert!(listed.contains(&want), "{want} missing from {listed}");
    }
}

#[test]
fn unknown_or_invalid_interface_is_an_error() {
    let ns = lan("nbad");
    ns.run(|| {
        let table = NeighTable::new().unwrap();
        let err = table.add("nosuch0", CLIENT, MAC).unwrap_err();
        assert!(
            matches!(&err, NeighError::NoSuchInterface(n) if n == "nosuch0"),
            "{err}"
        );
        let err = table.add("much-too-long-name", CLIENT, MAC).unwrap_err();
        assert!(matches!(err, NeighError::BadInterfaceName(_)), "{err}");
    });
    assert_eq!(neigh_line(&ns, CLIENT), "");
}

#[test]
fn interface_index_to_name() {
    let ns = lan("nidx");
    let na = ifindex(&ns, "na");
    let names = ns.run(|| (neigh::ifname_of(1).unwrap(), neigh::ifname_of(na).unwrap()));
    assert_eq!(names, ("lo".to_owned(), "na".to_owned()));
    let err = ns.run(|| neigh::ifname_of(999_999).unwrap_err());
    assert!(matches!(err, NeighError::NoSuchIndex(999_999)), "{err}");
}
