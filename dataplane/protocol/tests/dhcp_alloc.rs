//! The hot path allocates nothing: DISCOVER → OFFER and REQUEST → ACK run
//! under a counting global allocator, after a warm-up, on a table of 10,000
//! leases.

mod counting_alloc;
mod dhcp_support;

use std::net::Ipv4Addr;

use bootwave_protocol::dhcp::{Action, MAX_MESSAGE_LEN};
use counting_alloc::allocations;
use dhcp_support::*;

#[test]
fn discover_offer_and_request_ack_do_not_allocate() {
    let mut s = server_with_leases(10_000);
    assert_eq!(s.leases().len(), 10_000);
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    let ovmf = ovmf_discover();
    let ipxe = ipxe_discover();
    // Requests prepared up front: building them allocates, handling must not.
    let fresh: Vec<Vec<u8>> = (10_000..10_200)
        .map(|i| discover(mac_n(i)).build())
        .collect();
    let known = discover(mac_n(42)).build();
    let mut selects = Vec::with_capacity(fresh.len());

    // Warm-up: first use of the snapshot guard, tracing call sites.
    let _ = s.handle(t(1), &bcast(), &IFACE, &ovmf, &mut out);
    let _ = s.handle(t(1), &bcast(), &IFACE, &known, &mut out);

    let before = allocations();
    let mut replies = 0;
    for d in &fresh {
        let h = s.handle(t(2), &bcast(), &IFACE, d, &mut out);
        if let Action::Send(_) = h.action {
            replies += 1;
            selects.push(Ipv4Addr::new(out[16], out[17], out[18], out[19]));
        }
    }
    for d in [&ovmf, &ipxe, &known] {
        if let Action::Send(_) = s.handle(t(2), &bcast(), &IFACE, d, &mut out).action {
            replies += 1;
        }
    }
    let offers = allocations() - before;
    assert_eq!(replies, fresh.len() + 3);
    assert_eq!(offers, 0, "DISCOVER → OFFER allocated {offers} times");

    let requests: Vec<Vec<u8>> = selects
        .iter()
        .enumerate()
        .map(|(i, &a)| select(mac_n(10_000 + i as u32), a, SERVER).build())
        .collect();
    let bound = s
        .leases()
        .of_client(&mac_n(7))
        .map(|l| l.addr)
        .expect("bound");
    let renew = Msg::dhcp(3, mac_n(7)).ciaddr(bound).build();
    let before = allocations();
    let mut acks = 0;
    // A renewal comes from the client's own address.
    let from_client = unicast(bound, 68);
    let broadcast = bcast();
    for d in requests.iter().chain([&renew]) {
        let meta = if std::ptr::eq(d, &renew) {
            &from_client
        } else {
            &broadcast
        };
        if let Action::Commit(c) = s.handle(t(3), meta, &IFACE, d, &mut out).action {
            assert!(!c.records().is_empty());
            if c.persisted().is_some() {
                acks += 1;
            }
        }
    }
    let acked = allocations() - before;
    assert_eq!(acks, requests.len() + 1);
    assert_eq!(acked, 0, "REQUEST → ACK allocated {acked} times");
}
