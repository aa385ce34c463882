//! Compaction while running (snapshot written by another thread while the
//! log goes on), recovery after a failed write, and the shard's upkeep.

use std::{
    fs::{self, OpenOptions},
    io,
    os::unix::fs::FileExt as _,
    path::Path,
    time::{Duration, Instant},
};

use bootwave_protocol::config::FsyncPolicy;

use super::{NAME, commit_all, log_path, open, rec, recs, reopen_records, tempdir};
use crate::journal::{CompactionPolicy, JournalError, ShardJournal};

/// Borrowed view of owned records.
fn slices(records: &[Vec<u8>]) -> impl Iterator<Item = &[u8]> {
    records.iter().map(Vec::as_slice)
}

/// Bytes of every file in `dir` (a file removed meanwhile counts 0).
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn log_goes_on_while_the_snapshot_is_written_elsewhere() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    commit_all(&mut j, &recs(0..10), now);
    let job = j
        .begin_compaction(slices(&recs(6..10)))
        .expect("begin")
        .expect("numbering fits");
    assert!(j.compacting());
    assert!(matches!(
        j.compact(std::iter::empty()),
        Err(JournalError::CompactionInFlight)
    ));
    // Appends go on while the snapshot is written.
    commit_all(&mut j, &recs(10..12), now);
    let outcome = std::thread::spawn(move || job.run())
        .join()
        .expect("snapshot thread");
    commit_all(&mut j, &recs(12..13), now);
    let stats = j.finish_compaction(outcome).expect("finish");
    assert_eq!((stats.generation, stats.records), (1, 3));
    assert!(!j.compacting());
    let ticket = commit_all(&mut j, &recs(13..14), now);
    assert!(ticket.acked);
    assert_eq!(ticket.first_seq, 13, "sequence numbers run on");
    drop(j);
    let (_, replay) = open(dir.path(), FsyncPolicy::Always);
    assert_eq!(replay.snapshot_records(), 4);
    assert_eq!(replay.into_records(), recs(6..14));
}

#[test]
fn crash_after_the_snapshot_is_in_place_replays_the_old_log_on_top() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    commit_all(&mut j, &recs(0..10), now);
    let job = j.begin_compaction(slices(&recs(6..10))).expect("begin");
    commit_all(&mut j, &recs(10..12), now);
    let outcome = job.expect("fits").run();
    // Records acknowledged on the old log after the snapshot took its place.
    commit_all(&mut j, &recs(12..13), now);
    drop((j, outcome));
    let (mut j, replay) = open(dir.path(), FsyncPolicy::Always);
    assert!(!replay.discarded_stale_log());
    assert_eq!(replay.into_records(), recs(6..13));
    // The journal goes on on that log, and compacts again later.
    commit_all(&mut j, &recs(13..14), now);
    j.compact(slices(&recs(9..14))).expect("compact");
    commit_all(&mut j, &recs(14..15), now);
    drop(j);
    assert_eq!(reopen_records(dir.path()), recs(9..15));
}

#[test]
fn crash_before_the_snapshot_is_in_place_keeps_the_old_log() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    commit_all(&mut j, &recs(0..5), now);
    let job = j.begin_compaction(slices(&recs(3..5))).expect("begin");
    commit_all(&mut j, &recs(5..6), now);
    drop((j, job));
    assert_eq!(reopen_records(dir.path()), recs(0..6));
}

#[test]
fn a_failed_write_is_recovered_from_the_live_set() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Always);
    commit_all(&mut j, &recs(0..4), now);
    j.append(&rec(4)).expect("append");
    {
        let w = j.prepare_commit().expect("prepare").expect("bytes");
        // Part of the group reached the file before the disk filled up.
        let file = OpenOptions::new()
            .write(true)
            .open(log_path(dir.path()))
            .expect("open");
        file.write_all_at(&w.bytes[..10], w.offset).expect("write");
    }
    let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
    assert!(j.complete_commit(Err(enospc)).is_err());
    assert!(j.is_poisoned());
    // The live set now: records 1..4 and the one whose write failed.
    let live = recs(1..5);
    let stats = j.recover(slices(&live)).expect("recover");
    assert_eq!(stats.records, 4);
    assert!(!j.is_poisoned());
    let ticket = commit_all(&mut j, &recs(5..6), now);
    assert!(ticket.acked);
    drop(j);
    let (_, replay) = open(dir.path(), FsyncPolicy::Always);
    assert_eq!(
        replay.torn_tail(),
        None,
        "the torn group left with the old log"
    );
    assert_eq!(replay.into_records(), recs(1..6));
}

/// Runs the upkeep until no compaction is in progress (bounded).
fn settle(j: &mut ShardJournal, now: Instant, live: &[Vec<u8>]) {
    for _ in 0..10_000 {
        j.maintain(now, || live.to_vec()).expect("upkeep");
        if !j.journal().compacting() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("compaction did not end");
}

#[test]
fn renewals_keep_the_journal_bounded() {
    let dir = tempdir();
    let (journal, _) = open(dir.path(), FsyncPolicy::Never);
    let policy = CompactionPolicy::default();
    let start = Instant::now();
    let mut j = ShardJournal::new(NAME.to_owned(), journal, policy, start);
    // Ten clients renewing 100,000 times in all: the live set stays ten
    // records, the log would reach 6 MB without compaction.
    let mut live = recs(0..10);
    let mut largest = 0;
    for i in 0..100_000 {
        let record = rec(i % 10 + 1_000 * (i / 10 % 50));
        live[i % 10] = record.clone();
        j.append(&record).expect("append");
        j.commit(start).expect("commit");
        j.maintain(start, || live.clone()).expect("upkeep");
        if i.is_multiple_of(64) {
            largest = largest.max(dir_bytes(dir.path()));
        }
    }
    settle(&mut j, start, &live);
    let compactions = j.gauges().compactions;
    assert!(compactions >= 3, "{compactions} compactions");
    assert!(largest < 2 << 20, "{largest} bytes at most");
    eprintln!("100,000 renewals: {compactions} compactions, at most {largest} bytes on disk");
    drop(j);
    // The last snapshot plus the renewals since; the newest of each client
    // comes last.
    let replayed = reopen_records(dir.path());
    assert!(
        replayed.len() >= 10 && replayed.len() < 40_000,
        "{}",
        replayed.len()
    );
    assert!(
        replayed[replayed.len() - 10..] == live[..],
        "newest renewals"
    );
}

#[test]
fn age_compacts_a_quiet_journal_with_new_records() {
    let dir = tempdir();
    let (journal, _) = open(dir.path(), FsyncPolicy::Never);
    let start = Instant::now();
    let policy = CompactionPolicy::default();
    let mut j = ShardJournal::new(NAME.to_owned(), journal, policy, start);
    let live = recs(0..3);
    j.maintain(start, || live.clone()).expect("upkeep");
    assert_eq!(j.poll_timeout(start), None, "nothing appended, nothing due");
    for r in &live {
        j.append(r).expect("append");
    }
    j.commit(start).expect("commit");
    let due = start + policy.max_age;
    assert_eq!(j.poll_timeout(start), Some(due));
    settle(&mut j, due - Duration::from_secs(1), &live);
    assert_eq!(j.gauges().compactions, 0, "not yet");
    settle(&mut j, due, &live);
    assert_eq!(j.gauges().compactions, 1);
    assert_eq!(j.journal().log_bytes(), 40, "an empty log after it");
    assert_eq!(j.poll_timeout(due), None);
}

#[test]
fn upkeep_stops_acks_on_failure_and_resumes_by_itself() {
    let dir = tempdir();
    let (journal, _) = open(dir.path(), FsyncPolicy::Always);
    let start = Instant::now();
    let mut j = ShardJournal::new(NAME.to_owned(), journal, CompactionPolicy::default(), start);
    let live = recs(0..2);
    j.append(&live[0]).expect("append");
    j.commit(start).expect("commit");
    let err = JournalError::Io {
        op: "write",
        path: log_path(dir.path()),
        source: io::Error::from_raw_os_error(libc::ENOSPC),
    };
    j.fail(&err, start);
    assert!(j.is_failed() && j.gauges().failed);
    assert!(j.append(&live[1]).is_err(), "refused while failed");
    assert_eq!(j.next_sync_at(start), None);
    let retry = j.poll_timeout(start).expect("a retry is scheduled");
    assert!(retry <= start + Duration::from_secs(2), "{retry:?}");
    j.maintain(start, || live.clone()).expect("upkeep");
    assert!(j.is_failed(), "no retry before its time");
    j.maintain(retry, || live.clone()).expect("upkeep");
    assert!(!j.is_failed(), "recovered");
    let g = j.gauges();
    assert_eq!((g.failed, g.recoveries, g.failures), (false, 1, 1));
    j.append(&rec(7)).expect("append");
    assert!(j.commit(retry).expect("commit").acked);
    drop(j);
    let mut want = live;
    want.push(rec(7));
    assert_eq!(reopen_records(dir.path()), want);
}
