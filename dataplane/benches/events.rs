//! What publishing boot events costs a shard: a DHCP event and a TFTP
//! transfer event with nobody watching (the common case: one atomic load),
//! with one subscriber that keeps up, and with one that never reads (the
//! bus overwrites its oldest events); and a lease-mirror update of a commit
//! group.
//!
//! Measured 2026-11-26 (2 shared cores, bench profile without LTO): DHCP
//! unwatched 8 ns, TFTP unwatched 14 ns (building and dropping the event),
//! watched with a reader 123 ns (publish + receive), watched by a reader
//! that never reads 82 ns, mirror update of 16 addresses 0.52 µs.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bootwave_dataplane::events::{EventBus, LeaseMirror};
use bootwave_protocol::dhcp::{
    Event, LeaseRecord, LeaseTable, MessageType, RecordKind, ShortBytes, UnixTime, Verdict,
};
use bootwave_protocol::tftp::{TransferEvent, TransferStarted};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn offer() -> Event {
    Event {
        message: Some(MessageType::Discover),
        xid: 7,
        mac: [2, 0, 0, 0, 0, 1],
        user_class: true,
        user_class_value: ShortBytes::new(b"iPXE"),
        boot_file: ShortBytes::new(b"refind.pxe"),
        addr: Some(Ipv4Addr::new(10, 0, 0, 5)),
        verdict: Verdict::Offered,
        ..Event::default()
    }
}

fn transfer(file: &Arc<str>) -> TransferEvent {
    TransferEvent::Started(TransferStarted {
        client: SocketAddr::from(([10, 0, 0, 5], 2000)),
        mac: Some([2, 0, 0, 0, 0, 1]),
        file: file.clone(),
        size: 1 << 20,
        blksize: 1468,
        windowsize: 8,
    })
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("events_publish");
    group.throughput(Throughput::Elements(1));
    let event = offer();
    let file: Arc<str> = Arc::from("ipxe.efi");
    let bus = EventBus::default();
    group.bench_function("dhcp_unwatched", |b| {
        b.iter(|| bus.publish_dhcp(0, black_box(&event)))
    });
    group.bench_function("tftp_unwatched", |b| {
        b.iter(|| bus.publish_tftp(0, black_box(transfer(&file))))
    });
    let mut reader = bus.subscribe();
    group.bench_function("dhcp_watched_read", |b| {
        b.iter(|| {
            bus.publish_dhcp(0, black_box(&event));
            black_box(reader.try_recv().ok());
        })
    });
    drop(reader);
    let _idle = bus.subscribe();
    group.bench_function("dhcp_watched_never_read", |b| {
        b.iter(|| bus.publish_dhcp(0, black_box(&event)))
    });
    group.finish();
}

fn mirror(c: &mut Criterion) {
    let mut table = LeaseTable::new(0, 1, 1024);
    let addrs: Vec<Ipv4Addr> = (0..256u32)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
        .collect();
    for (i, addr) in addrs.iter().enumerate() {
        table.replay(&LeaseRecord {
            kind: RecordKind::Bind,
            mac: [2, 0, 0, 0, 0, i as u8],
            addr: *addr,
            at: UnixTime::from_secs(1),
            until: UnixTime::from_secs(4_000_000_000),
        });
    }
    let mirror = LeaseMirror::new(0, 1);
    mirror.seed(&table);
    let mut group = c.benchmark_group("events_mirror_update");
    group.throughput(Throughput::Elements(16));
    let mut touched = Vec::with_capacity(256);
    group.bench_function("16_addresses", |b| {
        b.iter(|| {
            touched.extend_from_slice(&addrs[..16]);
            mirror.update(&table, &mut touched)
        })
    });
    group.finish();
}

criterion_group!(benches, publish, mirror);
criterion_main!(benches);
