//! The running binary answers DHCP over a relay on loopback, journals its
//! leases across restarts and picks up reservations on SIGHUP.

mod runtime_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use runtime_support::{Relay, Running, config_text, discover, free_ports, test_dir};

fn dora(backend: &str) {
    let dir = test_dir(&[]);
    let (dhcp, tftp) = free_ports();
    let server = Running::start(
        dir.path(),
        &config_text(dhcp, tftp, ""),
        dhcp,
        tftp,
        &["--backend", backend, "--shards", "2"],
    );
    let relay = Relay::new(dhcp);
    let offer = relay
        .exchange(
            &discover([2, 0, 0, 0, 0, 0x41], 0x1000),
            runtime_support::REPLY_LIMIT,
        )
        .unwrap_or_else(|| panic!("no OFFER\n{}", server.stderr()));
    assert_eq!(offer.message_type, 2);
    assert_eq!(offer.file, "ipxe.efi", "boot rule for arch 7");
    let octets = offer.yiaddr.octets();
    assert_eq!(&octets[..3], &[127, 0, 10], "from the pool: {offer:?}");
    // Clients on both shards get distinct addresses.
    let a = relay.lease([2, 0, 0, 0, 0, 0x41], 0x2000);
    let b = relay.lease([2, 0, 0, 0, 1, 0x42], 0x3000);
    let c = relay.lease([2, 0, 0, 7, 1, 0x43], 0x4000);
    assert_eq!(a, offer.yiaddr);
    assert!(a != b && b != c && a != c, "{a} {b} {c}");
    assert!(server.stop().success());
}

#[test]
fn dora_over_a_relay_with_the_uring_backend() {
    dora("uring");
}

#[test]
fn dora_over_a_relay_with_the_portable_backend() {
    dora("portable");
}

#[test]
fn journal_replay_keeps_leases_across_restarts() {
    let dir = test_dir(&[]);
    let (dhcp, tftp) = free_ports();
    let config = config_text(dhcp, tftp, "");
    let macs: Vec<[u8; 6]> = (0..6u8).map(|i| [2, 0, 0, 0x10, i, 0x99]).collect();
    let first: Vec<Ipv4Addr> = {
        let server = Running::start(
            dir.path(),
            &config,
            dhcp,
            tftp,
            &["--shards", "2", "--dhcp-shards", "2"],
        );
        let relay = Relay::new(dhcp);
        let leased = macs
            .iter()
            .enumerate()
            .map(|(i, mac)| relay.lease(*mac, 0x100 * (i as u32 + 1)))
            .collect();
        assert!(server.stop().success());
        leased
    };
    // Same layout: every client gets its address back.
    let server = Running::start(
        dir.path(),
        &config,
        dhcp,
        tftp,
        &["--shards", "2", "--dhcp-shards", "2"],
    );
    let relay = Relay::new(dhcp);
    // Ask in reverse order so a forgetful server would hand out the
    // addresses differently.
    for (i, mac) in macs.iter().enumerate().rev() {
        let again = relay.lease(*mac, 0x9000 + 0x10 * i as u32);
        assert_eq!(again, first[i], "client {i} kept its address");
    }
    assert!(
        server.summary.contains("records replayed"),
        "{}",
        server.summary
    );
    assert!(server.stop().success());
    // Another shard count: pool slices move, so a client whose address left
    // its shard's slice gets a new one, but never an address still bound to
    // another client.
    let server = Running::start(
        dir.path(),
        &config,
        dhcp,
        tftp,
        &["--shards", "3", "--dhcp-shards", "3"],
    );
    let relay = Relay::new(dhcp);
    for (i, mac) in macs.iter().enumerate().rev() {
        let again = relay.lease(*mac, 0xa000 + 0x10 * i as u32);
        assert!(
            again == first[i] || !first.contains(&again),
            "client {i} got {again}, still bound to another client"
        );
    }
    assert!(server.stop().success());
    let journals: Vec<String> = std::fs::read_dir(dir.path().join("state"))
        .expect("journal dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    let mut journals = journals;
    journals.sort();
    assert_eq!(
        journals,
        ["shard-0-of-3.log", "shard-1-of-3.log", "shard-2-of-3.log"],
        "the 2-shard layout was retired"
    );
}

#[test]
fn sighup_picks_up_a_new_reservation() {
    let mac = [2, 0, 0, 0x20, 0, 0x01];
    let fixed = Ipv4Addr::new(127, 0, 20, 7);
    let Unreserved {
        dir,
        dhcp,
        tftp,
        server,
        relay,
    } = Unreserved::start(mac, fixed);
    let host = format!(
        "[[hosts]]\nname = \"pinned\"\nmac = \"02:00:00:20:00:01\"\nfixed-address = \"{fixed}\"\n"
    );
    std::fs::write(
        dir.path().join("bootwave.toml"),
        config_text(dhcp, tftp, &host),
    )
    .expect("write");
    server.signal(libc::SIGHUP);
    let mut after = None;
    for attempt in 0..50u32 {
        std::thread::sleep(Duration::from_millis(100));
        let reply = relay.exchange(&discover(mac, 0x60 + attempt), Duration::from_millis(500));
        if reply.as_ref().is_some_and(|r| r.yiaddr == fixed) {
            after = reply;
            break;
        }
    }
    assert!(
        after.is_some(),
        "reservation not applied:\n{}",
        server.stderr()
    );
    assert!(
        server
            .stderr_when(|log| log.contains("reload: configuration swapped"))
            .contains("reload: configuration swapped")
    );
    // A broken file is refused and the running configuration stays.
    std::fs::write(dir.path().join("bootwave.toml"), "this is not toml [").expect("write");
    server.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let still = relay
        .exchange(&discover(mac, 0x99), runtime_support::REPLY_LIMIT)
        .expect("still answering");
    assert_eq!(still.yiaddr, fixed);
    assert!(
        server
            .stderr_when(|log| log.contains("keeping the running configuration"))
            .contains("keeping the running configuration")
    );
    assert!(server.stop().success());
}

#[test]
fn a_pushed_state_changes_reservations_without_a_restart() {
    use bootwave_proto::v1;
    use bootwave_proto::v1::dataplane_control_client::DataplaneControlClient;

    let mac = [2, 0, 0, 0x30, 0, 0x01];
    let fixed = Ipv4Addr::new(127, 0, 30, 9);
    let Unreserved {
        dir, server, relay, ..
    } = Unreserved::start(mac, fixed);
    let state = v1::DesiredState {
        subnets: vec![v1::Subnet {
            network: "127.0.0.0/8".into(),
            ranges: vec![v1::AddrRange {
                start: "127.0.10.1".into(),
                end: "127.0.10.200".into(),
            }],
            next_server: "127.0.0.1".into(),
            ..Default::default()
        }],
        hosts: vec![v1::Host {
            mac: "02:00:00:30:00:01".into(),
            fixed_address: fixed.to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let socket = format!("unix:{}", dir.path().join("control.sock").display());
    let acked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let channel = bootwave_proto::channel::connect(&socket)
                .await
                .expect("control socket");
            DataplaneControlClient::new(channel)
                .apply(v1::ApplyRequest {
                    generation: 7,
                    full: Some(state),
                    ..Default::default()
                })
                .await
                .expect("applied")
                .into_inner()
                .generation
        });
    assert_eq!(acked, 7);
    // The swap is done when Apply returns: the very next DISCOVER sees it.
    let after = relay
        .exchange(&discover(mac, 0x72), runtime_support::REPLY_LIMIT)
        .expect("an OFFER after the push");
    assert_eq!(after.yiaddr, fixed);
    assert!(server.stop().success());
}

/// A data plane serving a pool on loopback, with `mac` not reserved yet:
/// its first DISCOVER is offered a pool address other than `fixed`.
struct Unreserved {
    dir: tempfile::TempDir,
    dhcp: u16,
    tftp: u16,
    server: Running,
    relay: Relay,
}

impl Unreserved {
    fn start(mac: [u8; 6], fixed: Ipv4Addr) -> Self {
        let dir = test_dir(&[]);
        let (dhcp, tftp) = free_ports();
        let server = Running::start(dir.path(), &config_text(dhcp, tftp, ""), dhcp, tftp, &[]);
        let relay = Relay::new(dhcp);
        let before = relay
            .exchange(&discover(mac, 0x51), runtime_support::REPLY_LIMIT)
            .expect("an OFFER");
        assert_ne!(before.yiaddr, fixed);
        Self {
            dir,
            dhcp,
            tftp,
            server,
            relay,
        }
    }
}
