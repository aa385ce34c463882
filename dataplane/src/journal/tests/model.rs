//! Random operation sequences against a model: replay returns exactly the
//! committed records.

use std::{fs, time::Instant};

use bootwave_protocol::config::FsyncPolicy;
use proptest::prelude::*;

use super::{log_path, open, tempdir};
use crate::journal::{Journal, JournalError};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Commit,
    /// Compact, keeping the committed records whose index + seed is not a
    /// multiple of 3.
    Compact(u8),
    /// Drop the journal (a crash: appended records are lost) and reopen.
    Reopen,
    /// Crash after cutting the last commit group short by 1 + n % len bytes.
    TearLastCommit(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(Op::Append),
        3 => Just(Op::Commit),
        1 => any::<u8>().prop_map(Op::Compact),
        1 => Just(Op::Reopen),
        1 => any::<u16>().prop_map(Op::TearLastCommit),
    ]
}

/// What the journal must hold.
#[derive(Debug, Default)]
struct Model {
    committed: Vec<Vec<u8>>,
    pending: Vec<Vec<u8>>,
    /// Records and bytes of the last group in the current log file.
    last_group: Option<(usize, usize)>,
}

impl Model {
    fn commit(&mut self, j: &mut Journal) {
        let ticket = j.commit(Instant::now()).expect("commit");
        assert!(ticket.acked);
        assert_eq!(
            (ticket.end_seq - ticket.first_seq) as usize,
            self.pending.len()
        );
        if !self.pending.is_empty() {
            self.last_group = Some((self.pending.len(), ticket.bytes));
            self.committed.append(&mut self.pending);
        }
    }
}

fn reopen(dir: &std::path::Path, model: &mut Model) -> Journal {
    model.pending.clear();
    let (j, replay) = open(dir, FsyncPolicy::Never);
    assert_eq!(replay.into_records(), model.committed);
    j
}

fn run(ops: Vec<Op>) {
    let dir = tempdir();
    let mut model = Model::default();
    let mut j = reopen(dir.path(), &mut model);
    for op in ops {
        match op {
            Op::Append(record) => {
                j.append(&record).expect("append");
                model.pending.push(record);
            }
            Op::Commit => model.commit(&mut j),
            Op::Compact(seed) => {
                if !model.pending.is_empty() {
                    let err = j.compact(std::iter::empty()).expect_err("uncommitted");
                    assert!(matches!(err, JournalError::Uncommitted { .. }));
                    model.commit(&mut j);
                }
                let live: Vec<Vec<u8>> = (model.committed.iter().enumerate())
                    .filter(|(i, _)| (i + usize::from(seed)) % 3 != 0)
                    .map(|(_, r)| r.clone())
                    .collect();
                j.compact(live.iter().map(Vec::as_slice)).expect("compact");
                model.committed = live;
                model.last_group = None;
            }
            Op::Reopen => {
                drop(j);
                j = reopen(dir.path(), &mut model);
            }
            Op::TearLastCommit(n) => {
                drop(j);
                if let Some((records, bytes)) = model.last_group.take() {
                    let path = log_path(dir.path());
                    let len = fs::metadata(&path).expect("stat").len();
                    let cut = 1 + u64::from(n) % bytes as u64;
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(len - cut))
                        .expect("cut");
                    let keep = model.committed.len() - records;
                    model.committed.truncate(keep);
                }
                j = reopen(dir.path(), &mut model);
            }
        }
    }
    drop(j);
    reopen(dir.path(), &mut model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replay_returns_exactly_the_committed_records(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
