//! Malformed and hostile input: always dropped, counted, never a panic.
//! Random bytes and mutated captures are thrown at a server here, so the
//! fuzz target's property also runs with the ordinary tests.

mod dhcp_support;

use bootwave_protocol::dhcp::{
    Action, DhcpServer, DropReason, MAX_MESSAGE_LEN, Packet, Snapshot, Verdict,
};
use dhcp_support::*;
use proptest::prelude::*;

fn dropped_for(datagram: &[u8], reason: DropReason) {
    let mut s = server(guide_config());
    let step = run(&mut s, t(0), &bcast(), datagram);
    assert_eq!(step.handled.action, Did::Nothing, "{reason:?}");
    assert_eq!(step.handled.event.verdict, Verdict::Dropped(reason));
    assert_eq!(s.counters().get(reason), 1, "{reason:?} counted");
    assert_eq!(s.counters().total(), 1);
}

#[test]
fn truncated_messages() {
    let d = ovmf_discover();
    dropped_for(&d[..0], DropReason::Truncated);
    dropped_for(&d[..100], DropReason::Truncated);
    dropped_for(&d[..239], DropReason::Truncated);
    // Cut inside option 55 (its length says 35 bytes).
    dropped_for(&d[..0xf0 + 20], DropReason::OptionOverrun);
    // Cut right after the length byte of option 53.
    dropped_for(&d[..0xf0 + 2], DropReason::OptionOverrun);
}

#[test]
fn oversized_message() {
    let mut d = ovmf_discover();
    d.resize(MAX_MESSAGE_LEN + 1, 0);
    dropped_for(&d, DropReason::Oversized);
}

#[test]
fn bad_cookie() {
    let mut d = ovmf_discover();
    d[236] = 0x62;
    dropped_for(&d, DropReason::BadCookie);
}

#[test]
fn bad_hlen_and_op() {
    let mut d = ovmf_discover();
    d[2] = 0;
    dropped_for(&d, DropReason::BadHlen);
    d[2] = 17;
    dropped_for(&d, DropReason::BadHlen);
    let mut d = ovmf_discover();
    d[0] = 0;
    dropped_for(&d, DropReason::BadOp);
    d[0] = 2;
    dropped_for(&d, DropReason::NotRequest);
    // Not Ethernet.
    let mut d = ovmf_discover();
    d[2] = 8;
    dropped_for(&d, DropReason::UnsupportedHardware);
}

#[test]
fn option_overruns() {
    dropped_for(
        &Msg::dhcp(1, [2; 6]).build()[..242],
        DropReason::OptionOverrun,
    );
    let mut d = Msg::dhcp(1, [2; 6]).build();
    d.pop(); // END
    d.extend_from_slice(&[12, 40, b'x']);
    dropped_for(&d, DropReason::OptionOverrun);
}

#[test]
fn looping_and_malformed_overloads() {
    // Option 52 in `file` pointing at `file` again.
    let mut d = Msg::dhcp(1, [2; 6]).opt(52, &[1]).build();
    d[108..111].copy_from_slice(&[52, 1, 1]);
    dropped_for(&d, DropReason::NestedOverload);
    // Option 52 in `sname` pointing at both fields.
    let mut d = Msg::dhcp(1, [2; 6]).opt(52, &[2]).build();
    d[44..47].copy_from_slice(&[52, 1, 3]);
    dropped_for(&d, DropReason::NestedOverload);
    dropped_for(
        &Msg::dhcp(1, [2; 6]).opt(52, &[7]).build(),
        DropReason::BadOverload,
    );
    dropped_for(
        &Msg::dhcp(1, [2; 6]).opt(52, &[1]).opt(52, &[1]).build(),
        DropReason::BadOverload,
    );
}

#[test]
fn options_found_through_an_overload_are_used() {
    // The message type lives in `file`.
    let mut d = Msg::bootp([2, 0, 0, 0, 0, 1]).opt(52, &[1]).build();
    d[108..112].copy_from_slice(&[53, 1, 1, 255]);
    let mut s = server(guide_config());
    let step = run(&mut s, t(0), &bcast(), &d);
    assert_eq!(step.handled.event.verdict, Verdict::Offered);
}

#[test]
fn unknown_and_server_message_types() {
    dropped_for(
        &Msg::dhcp(0, [2; 6]).build(),
        DropReason::UnknownMessageType,
    );
    dropped_for(
        &Msg::dhcp(9, [2; 6]).build(),
        DropReason::UnknownMessageType,
    );
    for server_type in [2, 5, 6] {
        dropped_for(
            &Msg::dhcp(server_type, [2; 6]).build(),
            DropReason::NotRequest,
        );
    }
}

#[test]
fn no_interface_address_or_subnet() {
    let mut s = server(guide_config());
    let mut out = [0u8; 1500];
    let h = s.handle(t(0), &bcast(), &[], &ovmf_discover(), &mut out);
    assert_eq!(
        h.event.verdict,
        Verdict::Dropped(DropReason::NoServerAddress)
    );
    let other = [std::net::Ipv4Addr::new(10, 1, 1, 1)];
    let h = s.handle(t(0), &bcast(), &other, &ovmf_discover(), &mut out);
    assert_eq!(h.event.verdict, Verdict::Dropped(DropReason::NoSubnet));
    let h = s.handle(t(0), &bcast(), &IFACE, &ovmf_discover(), &mut out[..200]);
    assert_eq!(
        h.event.verdict,
        Verdict::Dropped(DropReason::BufferTooSmall)
    );
}

/// Runs `datagram` through a two-shard server pair; whatever comes back
/// must parse with our own parser and decode with the oracle.
fn survive(shards: &mut [DhcpServer], datagram: &[u8]) {
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    for s in shards.iter_mut() {
        for meta in [bcast(), unicast(SERVER, 68)] {
            let h = s.handle(t(0), &meta, &IFACE, datagram, &mut out);
            let tx = match h.action {
                Action::Send(tx) => Some(tx),
                Action::Commit(c) => c.persisted(),
                Action::None | Action::Probe(_) => None,
            };
            if let Some(tx) = tx {
                let reply = &out[..tx.len];
                let p = Packet::new_checked(reply).expect("our reply parses");
                assert!(p.options().all(|o| o.is_ok()), "our options scan");
                decode(reply);
            }
        }
    }
}

fn pair() -> Vec<DhcpServer> {
    let mut cfg = lab_config();
    cfg.dhcp.ping_check = false;
    let snap = Snapshot::shared(cfg);
    (0..2)
        .map(|i| DhcpServer::new(snap.clone(), i, 2))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        survive(&mut pair(), &bytes);
    }

    #[test]
    fn random_options_after_a_valid_header(
        mac in any::<[u8; 6]>(),
        options in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut d = Msg::bootp(mac).build();
        d.truncate(240);
        d.extend_from_slice(&options);
        survive(&mut pair(), &d);
    }

    #[test]
    fn mutated_captures_never_panic(
        ipxe in any::<bool>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..12),
        cut in any::<u16>(),
    ) {
        let mut d = if ipxe { ipxe_discover() } else { ovmf_discover() };
        for (at, v) in edits {
            let at = usize::from(at) % d.len();
            d[at] = v;
        }
        let keep = d.len() - usize::from(cut) % 40;
        d.truncate(keep);
        survive(&mut pair(), &d);
    }
}
