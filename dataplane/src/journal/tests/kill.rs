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
