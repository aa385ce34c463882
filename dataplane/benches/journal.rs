//! Lease-journal throughput in a temporary directory: records per second for
//! commit groups of 1, 16 and 256 records under the `Never` and `Always`
//! sync policies, replay speed on open, and the part of a running
//! compaction that blocks the shard: capturing 32k and 64k leases (each
//! released, so two records) and encoding them as a snapshot.
//!
//! Under `Always` each commit waits for one `fdatasync`, so the figures
//! measure the disk's sync latency more than the journal.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use std::net::Ipv4Addr;

use bootwave_dataplane::journal::Journal;
use bootwave_dataplane::runtime::leases::live_records;
use bootwave_protocol::config::FsyncPolicy;
use bootwave_protocol::dhcp::{LeaseRecord, LeaseTable, RecordKind, UnixTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// A lease record of a typical size.
const RECORD: [u8; 48] = [0xa5; 48];
/// Log size at which the bench compacts (outside the timed part).
const MAX_LOG: u64 = 64 << 20;

fn commit_groups(c: &mut Criterion) {
    for (label, policy) in [
        ("never", FsyncPolicy::Never),
        ("always", FsyncPolicy::Always),
    ] {
        let mut group = c.benchmark_group(format!("journal_commit_{label}"));
        if policy == FsyncPolicy::Always {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(5));
        }
        for records in [1u64, 16, 256] {
            let dir = tempfile::tempdir().expect("temporary directory");
            let (mut journal, _) = Journal::open(dir.path(), "bench", policy).expect("open");
            group.throughput(Throughput::Elements(records));
            group.bench_function(BenchmarkId::from_parameter(records), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        if journal.log_bytes() > MAX_LOG {
                            journal.compact(std::iter::empty()).expect("compact");
                        }
                        let start = Instant::now();
                        for _ in 0..records {
                            journal.append(&RECORD).expect("append");
                        }
                        black_box(journal.commit(start).expect("commit"));
                        spent += start.elapsed();
                    }
                    spent
                });
            });
        }
        group.finish();
    }
}

fn replay(c: &mut Criterion) {
    const RECORDS: u64 = 100_000;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut journal, _) = Journal::open(dir.path(), "bench", FsyncPolicy::Never).expect("open");
    for i in 0..RECORDS {
        journal.append(&RECORD).expect("append");
        if i % 64 == 63 {
            journal.commit(Instant::now()).expect("commit");
        }
    }
    journal.commit(Instant::now()).expect("commit");
    drop(journal);
    let mut group = c.benchmark_group("journal_replay");
    group.sample_size(20);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("open_100k_records", |b| {
        b.iter(|| {
            let (_, replay) = Journal::open(dir.path(), "bench", FsyncPolicy::Never).expect("open");
            assert_eq!(replay.len() as u64, RECORDS);
            black_box(replay)
        });
    });
    group.finish();
}

/// A shard's table of `leases` released leases, as a pool all touched by
/// clients that came and went leaves it.
fn released_table(leases: u32) -> LeaseTable {
    let mut table = LeaseTable::new(0, 1, leases as usize);
    for i in 0..leases {
        let [_, b, c, d] = i.to_be_bytes();
        let (mac, addr) = ([2, 9, 0, b, c, d], Ipv4Addr::from(0x0a00_0000 + i));
        for (kind, at, until) in [(RecordKind::Bind, 1, 3600), (RecordKind::Release, 2, 2)] {
            table.replay(&LeaseRecord {
                kind,
                mac,
                addr,
                at: UnixTime::from_secs(at),
                until: UnixTime::from_secs(until),
            });
        }
    }
    table
}

fn compaction_capture(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_compaction_capture");
    group.sample_size(20);
    for leases in [32_768u32, 65_536] {
        let table = released_table(leases);
        let dir = tempfile::tempdir().expect("temporary directory");
        let (mut journal, _) =
            Journal::open(dir.path(), "bench", FsyncPolicy::Never).expect("open");
        for record in live_records(&table, 0, 1) {
            journal.append(&record).expect("append");
        }
        journal.commit(Instant::now()).expect("commit");
        group.throughput(Throughput::Elements(u64::from(leases)));
        group.bench_function(BenchmarkId::from_parameter(leases), |b| {
            b.iter(|| {
                let live = live_records(&table, 0, 1);
                let job = journal
                    .begin_compaction(live.iter().map(|r| &r[..]))
                    .expect("capture");
                journal.abandon_compaction();
                black_box(job)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, commit_groups, replay, compaction_capture);
criterion_main!(benches);
