//! Appending, group commit, sync policies and the driver-side API.

use std::{fs::OpenOptions, io, os::unix::fs::FileExt as _, time::Instant};

use bootwave_protocol::config::FsyncPolicy;

use super::{NAME, at, commit_all, log_path, open, rec, recs, reopen_records, tempdir};
use crate::journal::{Journal, JournalError, MAX_RECORD_LEN, WriteProgress};

/// File header plus group header.
const OVERHEAD: u64 = 40 + 28;

#[test]
fn records_round_trip_across_reopens() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, replay) = open(dir.path(), FsyncPolicy::Never);
    assert!(replay.is_empty());
    commit_all(&mut j, &recs(0..3), now);
    commit_all(&mut j, &recs(3..4), now);
    drop(j);
    let (mut j, replay) = open(dir.path(), FsyncPolicy::Never);
    assert_eq!(replay.into_records(), recs(0..4));
    let ticket = commit_all(&mut j, &recs(4..10), now);
    assert_eq!((ticket.first_seq, ticket.end_seq), (4, 10));
    drop(j);
    assert_eq!(reopen_records(dir.path()), recs(0..10));
}

#[test]
fn group_commit_writes_and_syncs_once() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    let records = recs(0..100);
    let ticket = commit_all(&mut j, &records, Instant::now());
    let stats = j.stats();
    assert_eq!(
        (stats.commits, stats.writes, stats.syncs, stats.records),
        (1, 1, 1, 100)
    );
    let body: usize = records.iter().map(|r| 4 + r.len()).sum();
    assert_eq!(ticket.bytes as u64, 28 + body as u64);
    assert_eq!(j.log_bytes(), OVERHEAD + body as u64);
    assert_eq!(
        std::fs::metadata(log_path(dir.path())).expect("stat").len(),
        j.log_bytes()
    );
    assert!(ticket.acked);
    assert_eq!((ticket.first_seq, ticket.end_seq), (0, 100));
}

#[test]
fn empty_commit_writes_nothing() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    let ticket = j.commit(Instant::now()).expect("commit");
    assert_eq!((ticket.bytes, ticket.first_seq, ticket.end_seq), (0, 0, 0));
    assert_eq!(j.stats().writes, 0);
    assert_eq!(j.log_bytes(), 40);
}

#[test]
fn uncommitted_records_are_lost_and_sequence_continues() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    commit_all(&mut j, &recs(0..2), now);
    j.append(&rec(99)).expect("append");
    assert_eq!(j.pending_records(), 1);
    drop(j);
    let (mut j, replay) = open(dir.path(), FsyncPolicy::Never);
    assert_eq!(replay.into_records(), recs(0..2));
    assert_eq!(commit_all(&mut j, &recs(2..3), now).first_seq, 2);
    drop(j);
    assert_eq!(reopen_records(dir.path()), recs(0..3));
}

#[test]
fn never_acknowledges_on_write_without_syncing() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    let now = Instant::now();
    let ticket = commit_all(&mut j, &recs(0..5), now);
    assert!(ticket.acked);
    assert_eq!(j.acked_seq(), 5);
    assert_eq!(j.next_sync_at(now), None);
    assert_eq!(j.stats().syncs, 0);
}

#[test]
fn batch_syncs_at_most_once_per_interval() {
    let dir = tempdir();
    let policy = FsyncPolicy::Batch(std::time::Duration::from_millis(10));
    let (mut j, _) = open(dir.path(), policy);
    let t0 = Instant::now();
    // Nothing synced yet since open: the first commit syncs at once.
    assert!(commit_all(&mut j, &recs(0..1), t0).acked);
    let second = commit_all(&mut j, &recs(1..3), at(t0, 2));
    assert!(!second.acked);
    assert_eq!(j.acked_seq(), 1);
    assert_eq!(j.next_sync_at(at(t0, 2)), Some(at(t0, 10)));
    assert!(!j.needs_sync(at(t0, 9)));
    // A commit before the deadline does not sync either.
    assert!(!commit_all(&mut j, &recs(3..4), at(t0, 9)).acked);
    assert!(j.needs_sync(at(t0, 10)));
    assert_eq!(j.sync(at(t0, 10)).expect("sync"), 4);
    assert_eq!(j.next_sync_at(at(t0, 11)), None);
    // Past the interval a commit syncs by itself.
    assert!(commit_all(&mut j, &recs(4..5), at(t0, 25)).acked);
    assert_eq!(j.stats().syncs, 3);
}

#[test]
fn always_syncs_every_commit() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    let now = Instant::now();
    for i in 0..3 {
        assert!(commit_all(&mut j, &recs(i..i + 1), now).acked);
    }
    assert_eq!(j.stats().syncs, 3);
    assert_eq!(j.acked_seq(), 3);
}

#[test]
fn driver_writes_in_pieces_while_appends_continue() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    let file = OpenOptions::new()
        .write(true)
        .open(log_path(dir.path()))
        .expect("open log");
    for r in recs(0..3) {
        j.append(&r).expect("append");
    }
    let (first_half, offset, total) = {
        let w = j
            .prepare_commit()
            .expect("prepare")
            .expect("something to write");
        assert_eq!(w.offset, 40);
        let half = w.bytes.len() / 2;
        file.write_all_at(&w.bytes[..half], w.offset)
            .expect("write");
        (half, w.offset, w.bytes.len())
    };
    // Appends while the write is in flight go to the next batch.
    for r in recs(3..5) {
        j.append(&r).expect("append");
    }
    assert_eq!(
        j.complete_commit(Ok(first_half)).expect("complete"),
        WriteProgress::Incomplete
    );
    let rest = j.prepare_commit().expect("prepare").expect("rest");
    assert_eq!(rest.offset, offset + first_half as u64);
    assert_eq!(rest.bytes.len(), total - first_half);
    file.write_all_at(rest.bytes, rest.offset).expect("write");
    let n = rest.bytes.len();
    let WriteProgress::Written(ticket) = j.complete_commit(Ok(n)).expect("complete") else {
        panic!("write should be complete");
    };
    assert_eq!(
        (ticket.first_seq, ticket.end_seq, ticket.acked),
        (0, 3, false)
    );
    assert!(j.needs_sync(now));
    let token = j
        .begin_sync()
        .expect("not poisoned")
        .expect("unsynced data");
    assert_eq!(
        j.complete_sync(token, file.sync_data(), now).expect("sync"),
        3
    );
    // The next batch holds the two records appended during the write.
    let w = j.prepare_commit().expect("prepare").expect("second batch");
    assert_eq!(w.offset, 40 + total as u64);
    file.write_all_at(w.bytes, w.offset).expect("write");
    let n = w.bytes.len();
    let WriteProgress::Written(ticket) = j.complete_commit(Ok(n)).expect("complete") else {
        panic!("write should be complete");
    };
    assert_eq!((ticket.first_seq, ticket.end_seq), (3, 5));
    drop(j);
    assert_eq!(reopen_records(dir.path()), recs(0..5));
}

#[test]
fn failed_write_poisons_and_reopen_drops_the_partial_group() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    commit_all(&mut j, &recs(0..2), Instant::now());
    j.append(&rec(2)).expect("append");
    {
        let w = j.prepare_commit().expect("prepare").expect("bytes");
        // The kernel got part of it before failing.
        let file = OpenOptions::new()
            .write(true)
            .open(log_path(dir.path()))
            .expect("open");
        file.write_all_at(&w.bytes[..10], w.offset).expect("write");
    }
    let err = j.complete_commit(Err(io::Error::from_raw_os_error(libc::EIO)));
    assert!(
        matches!(err, Err(JournalError::Io { op: "write", .. })),
        "{err:?}"
    );
    assert!(matches!(
        j.append(&rec(3)),
        Err(JournalError::Poisoned { .. })
    ));
    assert!(matches!(
        j.commit(Instant::now()),
        Err(JournalError::Poisoned { .. })
    ));
    drop(j);
    let (_, replay) = open(dir.path(), FsyncPolicy::Always);
    assert_eq!(replay.torn_tail().map(|t| t.dropped_bytes), Some(10));
    assert_eq!(replay.into_records(), recs(0..2));
}

#[test]
fn failed_sync_poisons() {
    let dir = tempdir();
    let (mut j, _) = open(
        dir.path(),
        FsyncPolicy::Batch(std::time::Duration::from_secs(1)),
    );
    let now = Instant::now();
    commit_all(&mut j, &recs(0..1), now);
    commit_all(&mut j, &recs(1..2), now);
    let token = j.begin_sync().expect("ok").expect("unsynced");
    let err = j.complete_sync(token, Err(io::Error::from_raw_os_error(libc::EIO)), now);
    assert!(
        matches!(
            err,
            Err(JournalError::Io {
                op: "fdatasync",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(j.acked_seq(), 1);
    assert!(matches!(j.sync(now), Err(JournalError::Poisoned { .. })));
}

#[test]
fn misuse_is_reported() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    assert!(matches!(
        j.complete_commit(Ok(1)),
        Err(JournalError::NothingInFlight)
    ));
    let big = vec![0u8; MAX_RECORD_LEN + 1];
    assert!(matches!(
        j.append(&big),
        Err(JournalError::RecordTooLarge { .. })
    ));
    j.append(&rec(0)).expect("append");
    assert!(j.prepare_commit().expect("prepare").is_some());
    assert!(matches!(
        j.commit(Instant::now()),
        Err(JournalError::CommitInFlight)
    ));
    assert!(matches!(
        Journal::open(dir.path(), "../x", FsyncPolicy::Never),
        Err(JournalError::InvalidName { .. })
    ));
    assert!(dir.path().join(format!("{NAME}.log")).exists());
}
