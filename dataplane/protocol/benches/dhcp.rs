//! DHCP hot path: DISCOVER → OFFER and REQUEST → ACK per reply on a table of
//! 10,000 leases (target: under 500 ns), next to `dhcproto`'s owned decode
//! and encode of the same OFFER as a reference.

#[path = "../tests/dhcp_support/mod.rs"]
mod dhcp_support;

use std::hint::black_box;

use bootwave_protocol::dhcp::{Action, MAX_MESSAGE_LEN};
use criterion::{Criterion, criterion_group, criterion_main};
use dhcp_support::*;
use dhcproto::{Decodable, Decoder, Encodable, v4};

fn hot_path(c: &mut Criterion) {
    let mut s = server_with_leases(10_000);
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    let meta = bcast();
    let ovmf = ovmf_discover();
    let ipxe = ipxe_discover();

    let mut group = c.benchmark_group("dhcp");
    group.bench_function("discover_offer_ovmf", |b| {
        b.iter(|| {
            let h = s.handle(t(1), &meta, &IFACE, black_box(&ovmf), &mut out);
            black_box(h.action)
        })
    });
    group.bench_function("discover_offer_ipxe", |b| {
        b.iter(|| {
            let h = s.handle(t(1), &meta, &IFACE, black_box(&ipxe), &mut out);
            black_box(h.action)
        })
    });
    let mac = mac_n(4242);
    let addr = s.leases().of_client(&mac).map(|l| l.addr).expect("bound");
    let request = select(mac, addr, SERVER)
        .opt(55, &[1, 3, 6, 12, 15, 28, 42, 66, 67])
        .build();
    group.bench_function("request_ack", |b| {
        b.iter(|| {
            let h = s.handle(t(2), &meta, &IFACE, black_box(&request), &mut out);
            match h.action {
                Action::Commit(c) => {
                    black_box(c.records().len() + c.persisted().map_or(0, |t| t.len))
                }
                _ => unreachable!("an ACK"),
            }
        })
    });

    // The reference: the same OFFER through dhcproto's owned types.
    let offer = match s.handle(t(1), &meta, &IFACE, &ovmf, &mut out).action {
        Action::Send(tx) => out[..tx.len].to_vec(),
        other => unreachable!("an OFFER, got {other:?}"),
    };
    group.bench_function("dhcproto_decode_encode_offer", |b| {
        b.iter(|| {
            let m = v4::Message::decode(&mut Decoder::new(black_box(&offer))).expect("decodes");
            black_box(m.to_vec().expect("encodes"))
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
