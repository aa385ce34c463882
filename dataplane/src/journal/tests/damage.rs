//! Torn tails, bit flips and corruption found on replay.

use std::{fs, path::Path, time::Instant};

use bootwave_protocol::config::FsyncPolicy;

use super::{commit_all, log_path, open, rec, recs, tempdir};
use crate::journal::{
    Journal, JournalError,
    format::{HEADER_LEN, parse_group},
    replay_dir,
};

/// Start offsets of the groups in a clean log.
fn group_starts(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < log.len() {
        starts.push(pos);
        let (_, len) = parse_group(&log[pos..]).expect("clean log");
        pos += len;
    }
    starts
}

/// A log with three groups (records 0..3, 3..4, 4..6) under `policy`;
/// returns its bytes.
fn three_groups(dir: &Path, policy: FsyncPolicy) -> Vec<u8> {
    let (mut j, _) = open(dir, policy);
    let now = Instant::now();
    commit_all(&mut j, &recs(0..3), now);
    commit_all(&mut j, &recs(3..4), now);
    commit_all(&mut j, &recs(4..6), now);
    drop(j);
    fs::read(log_path(dir)).expect("read log")
}

/// Reopens, checks that exactly `expected` came back with a torn tail
/// reported at `torn_at` and cut off, then checks that appending works.
fn assert_recovers(dir: &Path, expected: &[Vec<u8>], torn_at: Option<usize>) {
    let before = fs::metadata(log_path(dir)).expect("stat").len();
    let (mut j, replay) = open(dir, FsyncPolicy::Never);
    assert_eq!(replay.torn_tail().map(|t| t.offset as usize), torn_at);
    let good_end = torn_at.map_or(before, |t| t as u64);
    assert_eq!(fs::metadata(log_path(dir)).expect("stat").len(), good_end);
    assert_eq!(j.log_bytes(), good_end);
    assert_eq!(
        replay.records().collect::<Vec<_>>(),
        expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    commit_all(&mut j, &[rec(1000)], Instant::now());
    drop(j);
    let (_, again) = open(dir, FsyncPolicy::Never);
    assert!(again.torn_tail().is_none());
    let mut want = expected.to_vec();
    want.push(rec(1000));
    assert_eq!(again.into_records(), want);
}

#[test]
fn torn_tail_at_every_length_of_the_last_group() {
    let dir = tempdir();
    let full = three_groups(dir.path(), FsyncPolicy::Always);
    let last = *group_starts(&full).last().expect("groups");
    for cut in last..full.len() {
        fs::write(log_path(dir.path()), &full[..cut]).expect("write log");
        let torn_at = (cut > last).then_some(last);
        assert_recovers(dir.path(), &recs(0..4), torn_at);
    }
    fs::write(log_path(dir.path()), &full).expect("write log");
    assert_recovers(dir.path(), &recs(0..6), None);
}

#[test]
fn bit_flips_in_the_last_group_are_a_torn_tail() {
    let dir = tempdir();
    let full = three_groups(dir.path(), FsyncPolicy::Always);
    let last = *group_starts(&full).last().expect("groups");
    for byte in last..full.len() {
        let mut bad = full.clone();
        bad[byte] ^= 1 << (byte % 8);
        fs::write(log_path(dir.path()), &bad).expect("write log");
        assert_recovers(dir.path(), &recs(0..4), Some(last));
    }
}

#[test]
fn zero_filled_extension_is_a_torn_tail() {
    let dir = tempdir();
    let mut full = three_groups(dir.path(), FsyncPolicy::Never);
    let end = full.len();
    full.resize(end + 4096, 0);
    fs::write(log_path(dir.path()), &full).expect("write log");
    assert_recovers(dir.path(), &recs(0..6), Some(end));
}

#[test]
fn damage_before_a_group_that_vouches_for_it_is_an_error() {
    let dir = tempdir();
    // With `Always`, each group records that the previous ones were synced.
    let full = three_groups(dir.path(), FsyncPolicy::Always);
    let starts = group_starts(&full);
    for (victim, byte) in [(0, starts[0] + 30), (1, starts[1] + 3), (1, starts[2] - 1)] {
        let mut bad = full.clone();
        bad[byte] ^= 0x10;
        fs::write(log_path(dir.path()), &bad).expect("write log");
        let err = Journal::open(dir.path(), super::NAME, FsyncPolicy::Always).expect_err("corrupt");
        match err {
            JournalError::Corrupt { offset, path, .. } => {
                assert_eq!(offset as usize, starts[victim]);
                assert_eq!(path, log_path(dir.path()));
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(matches!(
            replay_dir(dir.path()),
            Err(JournalError::Corrupt { .. })
        ));
        // Nothing was cut off.
        assert_eq!(fs::read(log_path(dir.path())).expect("read"), bad);
    }
}

#[test]
fn damage_in_data_never_synced_is_a_torn_tail() {
    let dir = tempdir();
    // `Batch` with a long interval: only the first commit syncs, so the
    // later groups do not vouch for each other (power loss may persist them
    // out of order).
    let full = three_groups(
        dir.path(),
        FsyncPolicy::Batch(std::time::Duration::from_secs(3600)),
    );
    let starts = group_starts(&full);
    let mut bad = full.clone();
    bad[starts[1] + 30] ^= 0x01;
    fs::write(log_path(dir.path()), &bad).expect("write log");
    assert_recovers(dir.path(), &recs(0..3), Some(starts[1]));
}

#[test]
fn damaged_header_is_an_error() {
    let dir = tempdir();
    let full = three_groups(dir.path(), FsyncPolicy::Never);
    let mut bad = full.clone();
    bad[3] ^= 0x01;
    fs::write(log_path(dir.path()), &bad).expect("write log");
    let err = Journal::open(dir.path(), super::NAME, FsyncPolicy::Never).expect_err("bad header");
    assert!(
        matches!(
            err,
            JournalError::BadHeader {
                reason: "bad magic",
                ..
            }
        ),
        "{err:?}"
    );
    fs::write(log_path(dir.path()), &full[..HEADER_LEN - 1]).expect("write log");
    let err = Journal::open(dir.path(), super::NAME, FsyncPolicy::Never).expect_err("short");
    assert!(matches!(err, JournalError::BadHeader { .. }), "{err:?}");
    // A future version with a valid checksum.
    let mut future = full.clone();
    future[8] = 9;
    let crc = crc32fast::hash(&future[..36]);
    future[36..40].copy_from_slice(&crc.to_le_bytes());
    fs::write(log_path(dir.path()), &future).expect("write log");
    let err = Journal::open(dir.path(), super::NAME, FsyncPolicy::Never).expect_err("version");
    assert!(
        matches!(err, JournalError::UnsupportedVersion { version: 9, .. }),
        "{err:?}"
    );
}

#[test]
fn log_without_its_snapshot_is_an_error() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    commit_all(&mut j, &recs(0..2), Instant::now());
    let live = recs(0..2);
    j.compact(live.iter().map(Vec::as_slice)).expect("compact");
    drop(j);
    fs::remove_file(dir.path().join(format!("{}.snap", super::NAME))).expect("remove snapshot");
    let err = Journal::open(dir.path(), super::NAME, FsyncPolicy::Never).expect_err("mismatch");
    assert!(
        matches!(
            err,
            JournalError::GenerationMismatch {
                log_generation: 1,
                snapshot_generation: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn damaged_snapshot_is_an_error() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    let live = recs(0..5);
    j.compact(live.iter().map(Vec::as_slice)).expect("compact");
    drop(j);
    let snap = dir.path().join(format!("{}.snap", super::NAME));
    let full = fs::read(&snap).expect("read snapshot");
    let mut bad = full.clone();
    bad[HEADER_LEN + 40] ^= 0x04;
    fs::write(&snap, &bad).expect("write");
    let err = Journal::open(dir.path(), super::NAME, FsyncPolicy::Never).expect_err("corrupt");
    assert!(
        matches!(err, JournalError::Corrupt { offset: 40, .. }),
        "{err:?}"
    );
    fs::write(&snap, &full[..full.len() - 1]).expect("write");
    assert!(Journal::open(dir.path(), super::NAME, FsyncPolicy::Never).is_err());
}
