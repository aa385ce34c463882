//! Reading journals back: one journal, or every journal in a directory.

use std::{fs, path::Path};

use super::{
    error::{JournalError, Result, io_err},
    files::{self, Paths},
    format::{FileHeader, FileKind, HeaderDefect},
    scan::{self, Damage, TornTail},
};

/// What replay found: the records in commit order, and what was repaired.
#[derive(Debug, Default)]
pub struct Replay {
    records: Vec<Vec<u8>>,
    snapshot_records: usize,
    torn_tail: Option<TornTail>,
    discarded_stale_log: bool,
}

/// The replay of one journal found by [`replay_dir`].
#[derive(Debug)]
pub struct NamedReplay {
    /// The journal name (its log file without `.log`).
    pub name: String,
    /// Its records.
    pub replay: Replay,
}

/// The state of a journal on disk, as read without changing anything.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The records.
    pub(crate) replay: Replay,
    /// Generation of the snapshot (0 when there is none).
    pub(crate) generation: u64,
    /// Generation of the log to write on: the snapshot's, or the older
    /// one of a log whose records continue past the snapshot.
    pub(crate) log_generation: u64,
    /// Size of the snapshot file.
    pub(crate) snapshot_bytes: u64,
    /// Sequence number for the next record.
    pub(crate) next_seq: u64,
    /// What to do with the log.
    pub(crate) log: LogState,
}

/// The log's relation to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogState {
    /// No log: the journal does not exist (a snapshot alone is an orphan).
    Missing,
    /// The log predates the snapshot (compaction stopped after renaming the
    /// snapshot) and holds no record past it.
    Stale,
    /// The log continues the snapshot; good data ends at `good_end`.
    Current {
        /// Offset just past the last good group.
        good_end: u64,
    },
}

impl Replay {
    /// The records in commit order: snapshot first, then the log.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.records.iter().map(Vec::as_slice)
    }

    /// The records, owned.
    pub fn into_records(self) -> Vec<Vec<u8>> {
        self.records
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record was found.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How many of the records came from the snapshot.
    pub fn snapshot_records(&self) -> usize {
        self.snapshot_records
    }

    /// The torn tail dropped from the log, if any. `Journal::open` truncates
    /// it; `replay_dir` only reports it.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// True when the log predated the snapshot (an interrupted compaction)
    /// and was ignored.
    pub fn discarded_stale_log(&self) -> bool {
        self.discarded_stale_log
    }
}

/// Replays every journal in `dir` without modifying any file, sorted by
/// name. Used when the shard count changes: each new shard keeps the records
/// it owns and writes them with `Journal::create_from`; the old journals are
/// then removed with [`retire`].
pub fn replay_dir(dir: &Path) -> Result<Vec<NamedReplay>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|f| f.strip_suffix(".log")) else {
            continue;
        };
        // Files that are not named like a journal are not ours.
        if Paths::new(dir, name).is_ok() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let replay = load(&Paths::new(dir, &name)?)?.replay;
            Ok(NamedReplay { name, replay })
        })
        .collect()
}

/// Removes the journal `name` from `dir`. The log goes first (after which
/// the journal no longer exists, atomically), then the snapshot and any
/// temporary files.
pub fn retire(dir: &Path, name: &str) -> Result<()> {
    let paths = Paths::new(dir, name)?;
    files::remove_optional(&paths.log)?;
    files::sync_dir(dir)?;
    for path in [&paths.snap, &paths.snap_tmp, &paths.log_tmp] {
        files::remove_optional(path)?;
    }
    files::sync_dir(dir)
}

/// Reads and verifies a journal without changing any file.
pub(crate) fn load(paths: &Paths) -> Result<Loaded> {
    let Some(log) = files::read_optional(&paths.log)? else {
        return Ok(Loaded {
            replay: Replay::default(),
            generation: 0,
            log_generation: 0,
            snapshot_bytes: 0,
            next_seq: 0,
            log: LogState::Missing,
        });
    };
    let log_header = header(&log, &paths.log, FileKind::Log)?;
    let (mut replay, generation, snapshot_bytes, snap_end) = load_snapshot(paths)?;
    if log_header.generation > generation {
        return Err(JournalError::GenerationMismatch {
            path: paths.log.clone(),
            log_generation: log_header.generation,
            snapshot_generation: generation,
        });
    }
    let mut loaded = Loaded {
        generation,
        log_generation: generation,
        snapshot_bytes,
        next_seq: snap_end,
        log: LogState::Stale,
        replay: Replay::default(),
    };
    let scan = |first_seq| scan::scan_log(&log, first_seq).map_err(corrupt(&paths.log));
    if log_header.generation < generation {
        // The snapshot covers every record numbered below its end; an older
        // log's records from there on (appended while the snapshot was
        // being written) apply on top of it.
        if log_header.first_seq > snap_end {
            return Err(corrupt(&paths.log)(Damage {
                offset: 0,
                reason: "older log starts past the snapshot's end",
            }));
        }
        let scan = scan(log_header.first_seq)?;
        if scan.next_seq <= snap_end {
            replay.discarded_stale_log = true;
            loaded.replay = replay;
            return Ok(loaded);
        }
        let covered = usize::try_from(snap_end - log_header.first_seq).unwrap_or(usize::MAX);
        replay
            .records
            .extend(scan.records.into_iter().skip(covered));
        replay.torn_tail = scan.torn;
        loaded.log_generation = log_header.generation;
        loaded.next_seq = scan.next_seq;
        loaded.log = LogState::Current {
            good_end: scan.good_end,
        };
        loaded.replay = replay;
        return Ok(loaded);
    }
    if generation > 0 && log_header.first_seq != snap_end {
        return Err(corrupt(&paths.log)(Damage {
            offset: 0,
            reason: "log does not continue the snapshot's sequence",
        }));
    }
    let scan = scan(log_header.first_seq)?;
    replay.records.extend(scan.records);
    replay.torn_tail = scan.torn;
    loaded.next_seq = scan.next_seq;
    loaded.log = LogState::Current {
        good_end: scan.good_end,
    };
    loaded.replay = replay;
    Ok(loaded)
}

/// Reads the snapshot if present: its records, generation, file size and
/// the sequence number following its last record.
fn load_snapshot(paths: &Paths) -> Result<(Replay, u64, u64, u64)> {
    let Some(snap) = files::read_optional(&paths.snap)? else {
        return Ok((Replay::default(), 0, 0, 0));
    };
    let h = header(&snap, &paths.snap, FileKind::Snapshot)?;
    if h.generation == 0 {
        return Err(JournalError::BadHeader {
            path: paths.snap.clone(),
            reason: "snapshot generation 0",
        });
    }
    let scan =
        scan::scan_snapshot(&snap, h.first_seq, h.record_count).map_err(corrupt(&paths.snap))?;
    let replay = Replay {
        snapshot_records: scan.records.len(),
        records: scan.records,
        ..Replay::default()
    };
    Ok((replay, h.generation, snap.len() as u64, scan.next_seq))
}

/// Decodes a file header and checks its kind.
fn header(bytes: &[u8], path: &Path, kind: FileKind) -> Result<FileHeader> {
    let bad = |reason| JournalError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    match FileHeader::decode(bytes) {
        Ok(h) if h.kind == kind => Ok(h),
        Ok(_) => Err(bad("wrong file kind")),
        Err(HeaderDefect::Invalid(reason)) => Err(bad(reason)),
        Err(HeaderDefect::Version(version)) => Err(JournalError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        }),
    }
}

/// Maps scan damage in `path` to [`JournalError::Corrupt`].
fn corrupt(path: &Path) -> impl FnOnce(Damage) -> JournalError {
    let path = path.to_path_buf();
    move |d| JournalError::Corrupt {
        path,
        offset: d.offset,
        reason: d.reason,
    }
}
