//! Journal behaviour tests on real files in temporary directories.

mod compaction;
mod damage;
mod kill;
mod model;
mod running;
mod streaming;
mod writing;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bootwave_protocol::config::FsyncPolicy;

use super::{Journal, Replay};

/// The journal name used by single-journal tests.
const NAME: &str = "shard-0-of-1";

/// A lease-like record of a few dozen bytes, distinct per `i`.
fn rec(i: usize) -> Vec<u8> {
    format!(
        "lease mac=02:00:00:{:02x}:{:02x}:{:02x} ip=10.0.{}.{}",
        i >> 16 & 0xff,
        i >> 8 & 0xff,
        i & 0xff,
        i / 250,
        i % 250
    )
    .into_bytes()
}

/// Records `range` as built by [`rec`].
fn recs(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(rec).collect()
}

/// A fresh temporary directory.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Opens the test journal, panicking on error.
fn open(dir: &Path, policy: FsyncPolicy) -> (Journal, Replay) {
    Journal::open(dir, NAME, policy).expect("open journal")
}

/// Opens the test journal and returns only the replayed records.
fn reopen_records(dir: &Path) -> Vec<Vec<u8>> {
    open(dir, FsyncPolicy::Never).1.into_records()
}

/// Appends `records` and commits them as one group.
fn commit_all(j: &mut Journal, records: &[Vec<u8>], now: Instant) -> super::CommitTicket {
    for r in records {
        j.append(r).expect("append");
    }
    j.commit(now).expect("commit")
}

/// Path of the test journal's log.
fn log_path(dir: &Path) -> PathBuf {
    dir.join(format!("{NAME}.log"))
}

/// A fixed base time plus `ms` milliseconds (virtual time).
fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}
