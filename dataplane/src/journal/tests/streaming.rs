//! Replay streams files larger than its read buffer: records go to the
//! caller as they are read and memory stays bounded by the read chunk or
//! the largest commit group.

use std::{
    fs::{self, OpenOptions},
    io::Write as _,
    time::Instant,
};

use bootwave_protocol::config::FsyncPolicy;

use super::{NAME, commit_all, log_path, open, rec, recs, tempdir};
use crate::journal::{Journal, JournalError, replay_dir_with, scan::READ_CHUNK};

/// Records 0..n committed in groups of `per_group`.
fn write_log(dir: &std::path::Path, n: usize, per_group: usize, policy: FsyncPolicy) {
    let (mut j, _) = open(dir, policy);
    let now = Instant::now();
    for start in (0..n).step_by(per_group) {
        commit_all(&mut j, &recs(start..(start + per_group).min(n)), now);
    }
}

#[test]
fn a_log_larger_than_the_buffer_replays_in_bounded_memory() {
    let dir = tempdir();
    // About 4 MiB in 1,000-record groups, sixteen times the read chunk.
    let n = 100_000;
    write_log(dir.path(), n, 1_000, FsyncPolicy::Never);
    let size = fs::metadata(log_path(dir.path())).expect("stat").len();
    assert!(size > 12 * READ_CHUNK as u64, "{size} bytes");
    let mut seen = 0;
    let (mut j, info) = Journal::open_streaming(dir.path(), NAME, FsyncPolicy::Never, |r| {
        assert_eq!(r, rec(seen), "record {seen} in order");
        seen += 1;
    })
    .expect("open");
    assert_eq!((seen, info.records()), (n, n as u64));
    assert!(
        info.buffer_peak() <= 2 * READ_CHUNK,
        "buffer {} for a {size}-byte log",
        info.buffer_peak()
    );
    // The journal goes on after a streamed open.
    commit_all(&mut j, &[rec(n)], Instant::now());
    drop(j);
    let (_, replay) = open(dir.path(), FsyncPolicy::Never);
    assert_eq!(replay.len(), n + 1);
}

#[test]
fn a_group_larger_than_the_chunk_grows_the_buffer_to_that_group_only() {
    let dir = tempdir();
    let big: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8; 400_000]).collect();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    let now = Instant::now();
    commit_all(&mut j, &recs(0..10), now);
    commit_all(&mut j, &big, now);
    commit_all(&mut j, &recs(10..20), now);
    drop(j);
    let mut lens = Vec::new();
    let (_, info) =
        Journal::open_streaming(dir.path(), NAME, FsyncPolicy::Never, |r| lens.push(r.len()))
            .expect("open");
    assert_eq!(lens.len(), 23);
    assert_eq!(&lens[10..13], [400_000; 3]);
    let group = 3 * (400_000 + 4) + 28;
    assert!(
        info.buffer_peak() >= group && info.buffer_peak() <= 2 * group,
        "{}",
        info.buffer_peak()
    );
}

#[test]
fn streamed_torn_tail_and_corruption_across_chunks() {
    // A torn tail at the end of a log many chunks long is cut.
    let dir = tempdir();
    write_log(dir.path(), 50_000, 500, FsyncPolicy::Never);
    let mut file = OpenOptions::new()
        .append(true)
        .open(log_path(dir.path()))
        .expect("open");
    file.write_all(&[0xab; 100]).expect("tear");
    drop(file);
    let mut seen = 0;
    let (_, info) =
        Journal::open_streaming(dir.path(), NAME, FsyncPolicy::Never, |_| seen += 1).expect("open");
    assert_eq!(seen, 50_000);
    assert_eq!(info.torn_tail().map(|t| t.dropped_bytes), Some(100));
    // Damage early in a long log whose later groups vouch for it (every
    // commit synced) is corruption, found through the window.
    let dir = tempdir();
    write_log(dir.path(), 20_000, 100, FsyncPolicy::Always);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).expect("read");
    bytes[40 + 100] ^= 0x10;
    fs::write(&path, &bytes).expect("write");
    let err =
        Journal::open_streaming(dir.path(), NAME, FsyncPolicy::Never, |_| {}).expect_err("corrupt");
    assert!(
        matches!(err, JournalError::Corrupt { offset: 40, .. }),
        "{err:?}"
    );
    let err = replay_dir_with(dir.path(), |_, _| {}).expect_err("corrupt");
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err:?}");
}
