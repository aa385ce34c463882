//! Compaction, its crash points, `replay_dir`, re-partitioning and `retire`.

use std::{fs, path::Path, time::Instant};

use bootwave_protocol::config::FsyncPolicy;

use super::{NAME, commit_all, log_path, open, rec, recs, reopen_records, tempdir};
use crate::journal::{Journal, JournalError, compact::CompactStep, replay_dir, retire};

/// Path of the test journal's snapshot.
fn snap_path(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{NAME}.snap"))
}

/// Borrowed view of owned records.
fn slices(records: &[Vec<u8>]) -> impl Iterator<Item = &[u8]> {
    records.iter().map(Vec::as_slice)
}

/// A journal at generation 1 whose state is records 2..6: a snapshot of
/// 2..4 and a log holding 4..6.
fn old_state(dir: &Path) -> Journal {
    let (mut j, _) = open(dir, FsyncPolicy::Always);
    let now = Instant::now();
    commit_all(&mut j, &recs(0..4), now);
    j.compact(slices(&recs(2..4))).expect("compact");
    commit_all(&mut j, &recs(4..6), now);
    j
}

#[test]
fn compaction_replaces_the_content_and_the_log_goes_on() {
    let dir = tempdir();
    let now = Instant::now();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    commit_all(&mut j, &recs(0..10), now);
    let stats = j.compact(slices(&recs(5..10))).expect("compact");
    assert_eq!((stats.records, stats.generation), (5, 1));
    assert_eq!(j.log_bytes(), 40);
    assert_eq!(
        j.snapshot_bytes(),
        fs::metadata(snap_path(dir.path())).expect("stat").len()
    );
    let ticket = commit_all(&mut j, &recs(10..12), now);
    assert_eq!(ticket.first_seq, 15, "sequence numbers never go back");
    drop(j);
    let (mut j, replay) = open(dir.path(), FsyncPolicy::Never);
    assert_eq!(replay.snapshot_records(), 5);
    assert_eq!(replay.into_records(), recs(5..12));
    assert_eq!(
        j.compact(slices(&recs(8..12))).expect("compact").generation,
        2
    );
    drop(j);
    assert_eq!(reopen_records(dir.path()), recs(8..12));
}

#[test]
fn compaction_to_an_empty_set_and_large_sets() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    commit_all(&mut j, &recs(0..3), Instant::now());
    j.compact(std::iter::empty()).expect("compact");
    drop(j);
    assert!(reopen_records(dir.path()).is_empty());
    // Large enough to span several snapshot chunks.
    let big: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 100_000]).collect();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    j.compact(slices(&big)).expect("compact");
    drop(j);
    assert_eq!(reopen_records(dir.path()), big);
}

#[test]
fn compaction_needs_everything_committed() {
    let dir = tempdir();
    let (mut j, _) = open(dir.path(), FsyncPolicy::Never);
    j.append(&rec(0)).expect("append");
    assert!(matches!(
        j.compact(std::iter::empty()),
        Err(JournalError::Uncommitted { count: 1 })
    ));
    j.prepare_commit().expect("prepare");
    assert!(matches!(
        j.compact(std::iter::empty()),
        Err(JournalError::CommitInFlight)
    ));
}

#[test]
fn crash_between_any_two_compaction_steps_keeps_old_or_new_state() {
    use CompactStep::*;
    let old = recs(2..6);
    let new: Vec<Vec<u8>> = recs(3..6).into_iter().chain([rec(50)]).collect();
    let cases = [
        (SnapshotTempWritten, &old),
        (SnapshotTempSynced, &old),
        (SnapshotRenamed, &new),
        (SnapshotDirSynced, &new),
        (LogTempSynced, &new),
        (LogRenamed, &new),
    ];
    for (stop_at, expected) in cases {
        let dir = tempdir();
        let mut j = old_state(dir.path());
        let stats = j
            .compact_until(slices(&new), &mut |step| step != stop_at)
            .expect("no I/O error");
        assert!(stats.is_none(), "stopped at {stop_at:?}");
        assert!(matches!(
            j.append(&rec(9)),
            Err(JournalError::Poisoned { .. })
        ));
        drop(j);
        let (mut j, replay) = open(dir.path(), FsyncPolicy::Always);
        assert_eq!(&replay.into_records(), expected, "crash after {stop_at:?}");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        commit_all(&mut j, &[rec(100)], Instant::now());
        drop(j);
        let mut want = expected.clone();
        want.push(rec(100));
        assert_eq!(
            reopen_records(dir.path()),
            want,
            "after crash at {stop_at:?}"
        );
    }
}

#[test]
fn partially_written_temporary_files_are_ignored() {
    let new = recs(10..20);
    // A snapshot temp file cut short: the old state stays.
    let dir = tempdir();
    let mut j = old_state(dir.path());
    j.compact_until(slices(&new), &mut |s| s != CompactStep::SnapshotTempSynced)
        .expect("stopped");
    drop(j);
    let tmp = dir.path().join(format!("{NAME}.snap.tmp"));
    let len = fs::metadata(&tmp).expect("temp snapshot exists").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_len(len / 2))
        .expect("cut");
    assert_eq!(reopen_records(dir.path()), recs(2..6));
    // A log temp file cut short after the snapshot rename: the new state.
    let dir = tempdir();
    let mut j = old_state(dir.path());
    j.compact_until(slices(&new), &mut |s| s != CompactStep::LogTempSynced)
        .expect("stopped");
    drop(j);
    let tmp = dir.path().join(format!("{NAME}.log.tmp"));
    fs::write(&tmp, b"BWJ").expect("cut");
    let (_, replay) = open(dir.path(), FsyncPolicy::Never);
    assert!(replay.discarded_stale_log());
    assert_eq!(replay.into_records(), new);
}

#[test]
fn replay_dir_reads_every_journal_without_changing_them() {
    let dir = tempdir();
    let now = Instant::now();
    for shard in 0..3 {
        let (mut j, _) = Journal::open(
            dir.path(),
            &format!("shard-{shard}-of-3"),
            FsyncPolicy::Never,
        )
        .expect("open");
        commit_all(&mut j, &recs(shard * 10..shard * 10 + 4), now);
        if shard == 1 {
            j.compact(slices(&recs(12..14))).expect("compact");
            commit_all(&mut j, &recs(14..15), now);
        }
    }
    let torn_log = dir.path().join("shard-2-of-3.log");
    let mut torn = fs::read(&torn_log).expect("read");
    torn.extend_from_slice(&[0xde, 0xad, 0xbe]);
    fs::write(&torn_log, &torn).expect("write");
    for stray in [
        "notes.txt",
        "x.log.tmp",
        "orphan.snap",
        ".hidden.log",
        "bad name.log",
    ] {
        fs::write(dir.path().join(stray), b"not a journal").expect("write");
    }
    let all = replay_dir(dir.path()).expect("replay dir");
    let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]);
    assert_eq!(
        all[0]
            .replay
            .records()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>(),
        recs(0..4)
    );
    assert_eq!(
        all[1]
            .replay
            .records()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>(),
        recs(12..15)
    );
    assert_eq!(all[1].replay.snapshot_records(), 2);
    assert_eq!(all[2].replay.torn_tail().map(|t| t.dropped_bytes), Some(3));
    assert_eq!(
        fs::read(&torn_log).expect("read"),
        torn,
        "replay_dir must not truncate"
    );
}

/// The shard owning a record made by `rec(i)`: the index parsed back.
fn key(record: &[u8]) -> usize {
    (0..1000)
        .position(|i| rec(i) == record)
        .expect("known record")
}

#[test]
fn repartition_from_three_shards_to_two() {
    let dir = tempdir();
    let now = Instant::now();
    for shard in 0..3 {
        let name = format!("shard-{shard}-of-3");
        let (mut j, _) = Journal::open(dir.path(), &name, FsyncPolicy::Always).expect("open");
        let mine: Vec<Vec<u8>> = (0..30).filter(|i| i % 3 == shard).map(rec).collect();
        commit_all(&mut j, &mine, now);
    }
    let old: Vec<Vec<u8>> = replay_dir(dir.path())
        .expect("replay")
        .into_iter()
        .flat_map(|r| r.replay.into_records())
        .collect();
    assert_eq!(old.len(), 30);
    for shard in 0..2 {
        let mine = old
            .iter()
            .filter(|r| key(r) % 2 == shard)
            .map(Vec::as_slice);
        Journal::create_from(
            dir.path(),
            &format!("shard-{shard}-of-2"),
            FsyncPolicy::Always,
            mine,
        )
        .expect("create");
    }
    // A crash here leaves both layouts; nothing is lost.
    let both = replay_dir(dir.path()).expect("replay");
    assert_eq!(both.len(), 5);
    assert_eq!(both.iter().map(|r| r.replay.len()).sum::<usize>(), 60);
    for shard in 0..3 {
        retire(dir.path(), &format!("shard-{shard}-of-3")).expect("retire");
    }
    let new = replay_dir(dir.path()).expect("replay");
    assert_eq!(new.len(), 2);
    let mut seen = Vec::new();
    for (shard, r) in new.into_iter().enumerate() {
        assert_eq!(r.name, format!("shard-{shard}-of-2"));
        for record in r.replay.records() {
            assert_eq!(key(record) % 2, shard);
            seen.push(key(record));
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
}

#[test]
fn retired_journal_is_gone_even_if_retire_stopped_half_way() {
    let dir = tempdir();
    let mut j = old_state(dir.path());
    commit_all(&mut j, &recs(6..7), Instant::now());
    drop(j);
    // `retire` removes the log first; stopping right after leaves an orphan
    // snapshot, which must not resurrect the journal.
    fs::remove_file(log_path(dir.path())).expect("remove log");
    assert!(replay_dir(dir.path()).expect("replay").is_empty());
    let (_, replay) = open(dir.path(), FsyncPolicy::Never);
    assert!(replay.is_empty());
    assert!(!snap_path(dir.path()).exists());
    retire(dir.path(), NAME).expect("retire");
    assert!(!log_path(dir.path()).exists());
    assert!(replay_dir(dir.path()).expect("replay").is_empty());
}
