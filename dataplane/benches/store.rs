//! Boot-file store lookup cost on the shard hot path, with 1,000 files loaded.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bootwave_dataplane::store::{FileStore, StoreOptions};
use bootwave_protocol::tftp::{ResolveRequest, Resolved, Resolver};
use criterion::{Criterion, criterion_group, criterion_main};

const FILES: usize = 1_000;

fn lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..FILES {
        let sub = dir.path().join(format!("hosts/{:02x}", i % 64));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(
            sub.join(format!("refind-{i}.conf")),
            format!("timeout {i}\n"),
        )
        .expect("write");
    }
    let store = Arc::new(FileStore::open(dir.path(), StoreOptions::default()).expect("load"));
    assert_eq!(store.report().files, FILES);
    let hit = format!("hosts/{:02x}/refind-{}.conf", 517 % 64, 517);
    let client = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 2070));

    let mut group = c.benchmark_group("store_lookup_1000_files");
    group.bench_function("hit", |b| {
        let request = ResolveRequest {
            path: &hit,
            client,
            mac: None,
        };
        b.iter(|| {
            let resolved = store.resolve(black_box(&request));
            assert!(matches!(resolved, Resolved::File(_)));
            resolved
        });
    });
    group.bench_function("miss", |b| {
        let request = ResolveRequest {
            path: "pxelinux.cfg/01-52-54-00-12-34-56",
            client,
            mac: None,
        };
        b.iter(|| {
            let resolved = store.resolve(black_box(&request));
            assert!(matches!(resolved, Resolved::NotFound));
            resolved
        });
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
