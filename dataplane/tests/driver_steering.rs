//! The chaddr steering program sends relayed unicast to the owning shard.
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use bootwave_dataplane::driver::{BackendChoice, Binding, Steering};
use bootwave_protocol::shard::{CHADDR_OFFSET, shard_of};
use driver_support::*;

const SHARDS: usize = 2;
const CLIENTS: usize = 200;

fn mac(n: usize) -> [u8; 6] {
    [
        0x52,
        0x54,
        0x00,
        (n >> 16) as u8,
        (n >> 8) as u8,
        (n * 7) as u8,
    ]
}

/// A 300-byte BOOTP-sized datagram with `mac` as chaddr.
fn relayed_request(mac: &[u8; 6]) -> Vec<u8> {
    let mut payload = vec![0u8; 300];
    payload[0] = 1; // BOOTREQUEST
    let at = CHADDR_OFFSET as usize;
    payload[at..at + 6].copy_from_slice(mac);
    payload
}

/// Sends `CLIENTS` relayed requests to a group of `shards` sockets and
/// checks each lands on the shard `shard_of(mac, owners)` names (none on
/// shards at or beyond `owners`).
fn steering_matches_shard_of(backend: BackendChoice, shards: usize, owners: usize) {
    let steering = if owners == shards {
        Steering::Chaddr
    } else {
        Steering::ChaddrFirst(owners)
    };
    let cfg = config(shards, backend, "127.0.0.1:0", Binding::Group(steering));
    let (group, counter) = start_probes(cfg, Reply::Silent, Duration::ZERO);
    let server = target(&group, Ipv4Addr::LOCALHOST);
    // One source ip:port, as from a relay agent: without the program the
    // kernel would send all of it to one socket.
    let relay = client();
    for n in 0..CLIENTS {
        relay.send_to(&relayed_request(&mac(n)), server).unwrap();
    }
    wait_count(&counter, CLIENTS);
    let exits = stop_and_join(group);

    let mut expected = vec![Vec::new(); shards];
    for n in 0..CLIENTS {
        expected[shard_of(&mac(n), owners as u32) as usize].push(mac(n));
    }
    assert!(
        expected[..owners].iter().all(|macs| !macs.is_empty()),
        "test MACs must cover every owning shard"
    );
    for exit in &exits {
        let at = CHADDR_OFFSET as usize;
        let got: Vec<[u8; 6]> = exit
            .service
            .seen
            .iter()
            .map(|seen| seen.data[at..at + 6].try_into().unwrap())
            .collect();
        assert_eq!(
            got, expected[exit.shard],
            "shard {} got the wrong clients",
            exit.shard
        );
    }
}

#[test]
fn uring_group_steers_by_chaddr() {
    steering_matches_shard_of(BackendChoice::Uring, SHARDS, SHARDS);
}

#[test]
fn uring_group_steers_among_the_first_sockets() {
    steering_matches_shard_of(BackendChoice::Uring, 3, 2);
}

#[test]
fn portable_group_steers_among_the_first_sockets() {
    steering_matches_shard_of(BackendChoice::Portable, 3, 2);
}

#[test]
fn portable_group_steers_by_chaddr() {
    steering_matches_shard_of(BackendChoice::Portable, SHARDS, SHARDS);
}
