#![no_main]
//! Arbitrary bytes as ICMPv6 messages into the Router Advertisement
//! responder: the first byte picks the hop limit, the second the source
//! (host, `::` or router) and a time step; the rest is the message. Parsing
//! and the state machine may never panic, and every advertisement sent is
//! the minimal one (type 134, router lifetime 0, no flags).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use bootwave_protocol::ra::{Received, Responder, RouterAdvertisement, RouterSolicitation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [hop_limit, pick, rest @ ..] = data else {
        return;
    };
    let src = match pick & 3 {
        0 => Ipv6Addr::UNSPECIFIED,
        1 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99),
        _ => Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 1),
    };
    if let Ok(rs) = RouterSolicitation::new_checked(rest, *hop_limit, src.is_unspecified()) {
        assert!(rs.options().count() <= rest.len() / 8);
    }
    if let Ok((_, options)) = RouterAdvertisement::parse(rest, *hop_limit) {
        assert!(options.count() <= rest.len() / 8);
    }
    let mut responder = Responder::new([(1, Some([2, 0, 0, 0, 0, 1])), (2, None)]);
    let mut now = Instant::now();
    let mut out = Vec::new();
    // The same message a few times on both links, time moving on.
    for step in 0..4u32 {
        let meta = Received {
            ifindex: 1 + step % 3,
            src,
            hop_limit: *hop_limit,
        };
        responder.handle(now, &meta, rest, &mut out);
        now += Duration::from_millis(u64::from(pick >> 2) * 20);
        responder.handle_timeout(now, &mut out);
    }
    for tx in &out {
        assert!(
            tx.ifindex == 1 || tx.ifindex == 2,
            "sent on an unserved link"
        );
        let (ra, options) = RouterAdvertisement::parse(tx.payload(), 255).expect("valid RA");
        assert_eq!(ra.router_lifetime, 0);
        assert!(!ra.managed && !ra.other);
        assert!(options.count() <= 1);
    }
});
