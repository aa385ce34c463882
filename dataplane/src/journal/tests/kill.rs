//! A writer process killed with SIGKILL loses no acknowledged record.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use bootwave_protocol::config::FsyncPolicy;

use super::{commit_all, open, recs, reopen_records, tempdir};

/// Set in the child process: the directory to write the journal into.
const CHILD_DIR_ENV: &str = "BOOTWAVE_JOURNAL_KILL_TEST_DIR";
/// This test's path inside the test binary, to run it again as the child.
const TEST_PATH: &str = "journal::tests::kill::sigkill_loses_no_acknowledged_record";
/// Acknowledged records after which the parent kills the child.
const KILL_AFTER: usize = 300;

#[test]
fn sigkill_loses_no_acknowledged_record() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        write_until_killed(Path::new(&dir));
        return;
    }
    let dir = tempdir();
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["--exact", TEST_PATH, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acked = 0;
    // Ends at the child's exit at the latest; its loop is bounded.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().expect("count");
            if acked >= KILL_AFTER {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    assert!(acked >= KILL_AFTER, "child stopped after {acked} records");
    let records = reopen_records(dir.path());
    assert!(
        records.len() >= acked,
        "{} replayed < {acked} acknowledged",
        records.len()
    );
    assert_eq!(records, recs(0..records.len()));
}

/// The child: commit groups of 1 to 4 records with `Always`, printing the
/// acknowledged count after each commit.
fn write_until_killed(dir: &Path) {
    let (mut j, replay) = open(dir, FsyncPolicy::Always);
    assert!(replay.is_empty());
    let mut next = 0;
    let mut out = std::io::stdout();
    for i in 0..20_000 {
        let group = recs(next..next + i % 4 + 1);
        let ticket = commit_all(&mut j, &group, Instant::now());
        assert!(ticket.acked);
        next += group.len();
        writeln!(out, "acked {next}").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// Set in the child of the compaction test.
const COMPACT_DIR_ENV: &str = "BOOTWAVE_JOURNAL_KILL_COMPACT_DIR";
/// That test's path inside the test binary.
const COMPACT_TEST_PATH: &str =
    "journal::tests::kill::sigkill_during_compactions_loses_no_acknowledged_state";
/// Keys the compaction test's records update.
const KEYS: u64 = 8;

/// Record `n`: an update of key `n % KEYS`.
fn keyed(n: u64) -> Vec<u8> {
    format!("key={} n={n}", n % KEYS).into_bytes()
}

#[test]
fn sigkill_during_compactions_loses_no_acknowledged_state() {
    if let Some(dir) = std::env::var_os(COMPACT_DIR_ENV) {
        update_until_killed(Path::new(&dir));
        return;
    }
    let dir = tempdir();
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            COMPACT_TEST_PATH,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(COMPACT_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (mut acked, mut compactions) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        let mut words = line.split_whitespace();
        if let (Some("acked"), Some(n), Some(c)) = (words.next(), words.next(), words.next()) {
            acked = n.parse().expect("count");
            compactions = c.parse().expect("count");
            if acked >= 3 * KILL_AFTER as u64 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    assert!(
        compactions >= 3,
        "only {compactions} compactions before the kill"
    );
    // Each key's newest replayed update is at least its newest acknowledged.
    let mut newest = [None; KEYS as usize];
    for record in reopen_records(dir.path()) {
        let text = String::from_utf8(record).expect("utf-8 record");
        let n: u64 = text
            .rsplit("n=")
            .next()
            .and_then(|n| n.parse().ok())
            .expect("well-formed record");
        assert_eq!(text, String::from_utf8(keyed(n)).expect("utf-8"));
        let slot = &mut newest[(n % KEYS) as usize];
        *slot = Some(slot.map_or(n, |m: u64| m.max(n)));
    }
    for key in 0..KEYS {
        let want = (0..acked).rev().find(|n| n % KEYS == key);
        assert!(
            newest[key as usize] >= want,
            "key {key}: replayed {:?}, acknowledged {want:?}",
            newest[key as usize]
        );
    }
}

/// The child: one update per commit with `Always` and a small compaction
/// threshold, so the kill lands in or between compactions; prints the
/// acknowledged count and compactions after each commit.
fn update_until_killed(dir: &Path) {
    let (journal, replay) = open(dir, FsyncPolicy::Always);
    assert!(replay.is_empty());
    let policy = crate::journal::CompactionPolicy {
        ratio: 2,
        min_log_bytes: 2048,
        ..crate::journal::CompactionPolicy::default()
    };
    let now = Instant::now();
    let mut j = crate::journal::ShardJournal::new(super::NAME.to_owned(), journal, policy, now);
    let mut live: Vec<Vec<u8>> = Vec::new();
    let mut out = std::io::stdout();
    for n in 0..200_000u64 {
        let record = keyed(n);
        j.append(&record).expect("append");
        assert!(j.commit(now).expect("commit").acked);
        match live.get_mut((n % KEYS) as usize) {
            Some(slot) => *slot = record,
            None => live.push(record),
        }
        j.maintain(now, || live.clone()).expect("upkeep");
        writeln!(out, "acked {} {}", n + 1, j.gauges().compactions).expect("stdout");
        out.flush().expect("stdout");
    }
}
