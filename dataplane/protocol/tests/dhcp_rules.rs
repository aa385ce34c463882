//! Whom the server answers: offers are honoured only for their MAC, the
//! client index stays as large as the address map, forged hardware
//! addresses and untrusted relays get nothing.

mod dhcp_support;

use std::net::Ipv4Addr;

use bootwave_protocol::config::Ipv4Net;
use bootwave_protocol::dhcp::{DropReason, NakReason, Verdict};
use dhcp_support::*;

#[test]
fn selecting_request_without_an_offer_is_nacked() {
    let mut s = server(lab_config());
    let a = [2, 0, 0, 0, 9, 1];
    let b = [2, 0, 0, 0, 9, 2];
    let free = Ipv4Addr::new(192, 168, 1, 120);
    let step = run(&mut s, t(0), &bcast(), &select(a, free, SERVER).build());
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Nacked(NakReason::NotOffered)
    );
    assert!(step.records.is_empty());
    // An address offered to one MAC is not granted to another.
    let offered = run(&mut s, t(1), &bcast(), &discover(a).build())
        .decoded()
        .yiaddr();
    let step = run(&mut s, t(1), &bcast(), &select(b, offered, SERVER).build());
    assert!(matches!(step.handled.event.verdict, Verdict::Nacked(_)));
    // The MAC it was offered to gets it.
    let step = run(&mut s, t(2), &bcast(), &select(a, offered, SERVER).build());
    assert_eq!(step.handled.event.verdict, Verdict::Acked);
    assert_eq!(step.decoded().yiaddr(), offered);
}

#[test]
fn client_index_stays_flat_under_mac_churn() {
    let mut cfg = lab_config();
    for subnet in &mut cfg.subnets {
        subnet.default_lease_time = Some(std::time::Duration::from_secs(60));
        subnet.max_lease_time = Some(std::time::Duration::from_secs(60));
    }
    let mut s = server(cfg);
    let mut peak = 0;
    for round in 0..20u64 {
        for n in 0..300u32 {
            let mac = mac_n(round as u32 * 1000 + n);
            let now = t(round * 120);
            let offer = run(&mut s, now, &bcast(), &discover(mac).build());
            if offer.reply.is_none() {
                continue;
            }
            let addr = offer.decoded().yiaddr();
            let _ = run(&mut s, now, &bcast(), &select(mac, addr, SERVER).build());
        }
        assert!(s.leases().clients() <= s.leases().len());
        peak = peak.max(s.leases().clients());
    }
    assert!(
        s.leases().clients() <= s.leases().len() && peak <= s.leases().len(),
        "clients {} addresses {}",
        s.leases().clients(),
        s.leases().len()
    );
}

#[test]
fn zero_broadcast_and_multicast_chaddr_are_dropped_and_counted() {
    let mut s = server(lab_config());
    for mac in [[0; 6], [0xff; 6], [0x01, 0x00, 0x5e, 0, 0, 1]] {
        let step = run(&mut s, t(0), &bcast(), &discover(mac).build());
        assert!(step.reply.is_none(), "{mac:02x?}");
        assert_eq!(
            step.handled.event.verdict,
            Verdict::Dropped(DropReason::BadChaddr),
            "{mac:02x?}"
        );
    }
    assert_eq!(s.counters().get(DropReason::BadChaddr), 3);
}

#[test]
fn untrusted_relays_are_dropped_trusted_ones_answered() {
    let mut cfg = lab_config();
    cfg.dhcp.relays = vec![Ipv4Net::new(Ipv4Addr::new(10, 20, 0, 0), 16).expect("net")];
    let mut s = server(cfg);
    let mac = [2, 0, 0, 0, 9, 3];
    let d = discover(mac).giaddr(RELAY).build();
    let step = run(&mut s, t(0), &unicast(RELAY, 67), &d);
    assert_eq!(step.decoded().giaddr(), RELAY);
    let rogue = Ipv4Addr::new(172, 16, 0, 9);
    let d = discover(mac).giaddr(RELAY).build();
    let step = run(&mut s, t(0), &unicast(rogue, 67), &d);
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::UntrustedRelay)
    );
    assert!(step.reply.is_none());
    // No list: any relay, as before.
    let mut s = server(lab_config());
    let step = run(&mut s, t(0), &unicast(rogue, 67), &d);
    assert!(step.reply.is_some());
}

#[test]
fn pool_usage_counts_offers_bindings_and_declines_per_subnet() {
    let mut s = server(lab_config());
    let local = Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 24).expect("net");
    let mut usage = Vec::new();
    s.pool_usage(t(0), &mut usage);
    assert_eq!(usage.len(), 2, "{usage:?}");
    assert_eq!(usage[0].network, local);
    assert_eq!((usage[0].size, usage[0].free()), (191, 191));
    assert_eq!(usage[1].size, 256);
    // One offered, one bound, one declined; the reservation is not counted.
    let (a, b, c) = ([2, 0, 0, 0, 8, 1], [2, 0, 0, 0, 8, 2], [2, 0, 0, 0, 8, 3]);
    let _ = run(&mut s, t(1), &bcast(), &discover(a).build());
    for mac in [b, c] {
        let addr = run(&mut s, t(1), &bcast(), &discover(mac).build())
            .decoded()
            .yiaddr();
        let ack = run(&mut s, t(1), &bcast(), &select(mac, addr, SERVER).build());
        assert_eq!(ack.handled.event.verdict, Verdict::Acked);
        if mac == c {
            let decline = Msg::dhcp(4, c).ip_opt(50, addr).ip_opt(54, SERVER).build();
            let _ = run(&mut s, t(2), &bcast(), &decline);
        }
    }
    let _ = run(&mut s, t(2), &bcast(), &discover(FIXED_MAC).build());
    s.pool_usage(t(3), &mut usage);
    let u = usage[0];
    assert_eq!((u.offered, u.bound, u.quarantined), (1, 1, 1), "{u:?}");
    assert_eq!(u.free(), 188);
    assert_eq!(usage[1].free(), 256);
    // Once the offer's hold ends, its address is free again.
    s.pool_usage(t(3600), &mut usage);
    assert_eq!(usage[0].offered, 0, "{:?}", usage[0]);
}
