//! Reading journals back: one journal, or every journal in a directory.

use std::{
    fs::{self, File},
    io::ErrorKind,
    os::unix::fs::FileExt as _,
    path::Path,
};

use super::{
    error::{JournalError, Result, io_err},
    files::{self, Paths},
    format::{FileHeader, FileKind, HEADER_LEN, HeaderDefect},
    scan::{self, Damage, ScanError, TornTail},
};

/// What replay found besides the records themselves.
#[derive(Debug, Default, Clone)]
pub struct ReplayInfo {
    records: u64,
    snapshot_records: u64,
    torn_tail: Option<TornTail>,
    discarded_stale_log: bool,
    buffer_peak: usize,
}

/// What replay found: the records in commit order, and what was repaired.
#[derive(Debug, Default)]
pub struct Replay {
    records: Vec<Vec<u8>>,
    info: ReplayInfo,
}

/// The replay of one journal found by [`replay_dir`].
#[derive(Debug)]
pub struct NamedReplay {
    /// The journal name (its log file without `.log`).
    pub name: String,
    /// Its records.
    pub replay: Replay,
}

/// One journal streamed by [`replay_dir_with`].
#[derive(Debug)]
pub struct NamedInfo {
    /// The journal name (its log file without `.log`).
    pub name: String,
    /// What its replay found.
    pub info: ReplayInfo,
}

/// The state of a journal on disk, as read without changing anything.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// What replay found (the records went to the caller).
    pub(crate) info: ReplayInfo,
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

impl ReplayInfo {
    /// Number of records replayed.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// How many of the records came from the snapshot.
    pub fn snapshot_records(&self) -> u64 {
        self.snapshot_records
    }

    /// The torn tail dropped from the log, if any. `Journal::open` truncates
    /// it; `replay_dir` only reports it.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// True when the log predated the snapshot (an interrupted compaction)
    /// and held nothing past it.
    pub fn discarded_stale_log(&self) -> bool {
        self.discarded_stale_log
    }

    /// The largest read buffer replay used (bounded by the read chunk or
    /// the largest commit group, whatever the file size).
    pub fn buffer_peak(&self) -> usize {
        self.buffer_peak
    }
}

impl Replay {
    /// Records collected by a streaming replay, with what it found.
    pub(crate) fn new(records: Vec<Vec<u8>>, info: ReplayInfo) -> Self {
        Self { records, info }
    }

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
        usize::try_from(self.info.snapshot_records).unwrap_or(usize::MAX)
    }

    /// The torn tail dropped from the log, if any.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.info.torn_tail()
    }

    /// True when the log predated the snapshot and held nothing past it.
    pub fn discarded_stale_log(&self) -> bool {
        self.info.discarded_stale_log
    }

    /// What replay found besides the records.
    pub fn info(&self) -> &ReplayInfo {
        &self.info
    }
}

/// Replays every journal in `dir` without modifying any file, sorted by
/// name, collecting the records. Used when the shard count changes: each
/// new shard keeps the records it owns and writes them with
/// `Journal::create_from`; the old journals are then removed with
/// [`retire`].
pub fn replay_dir(dir: &Path) -> Result<Vec<NamedReplay>> {
    journal_names(dir)?
        .into_iter()
        .map(|name| {
            let mut records = Vec::new();
            let info = load(&Paths::new(dir, &name)?, &mut |r| records.push(r.to_vec()))?.info;
            let replay = Replay::new(records, info);
            Ok(NamedReplay { name, replay })
        })
        .collect()
}

/// [`replay_dir`] without collecting: each journal is streamed through a
/// bounded buffer and every record goes to `on_record` with its journal's
/// name as it is read. On an error, records already handed over must be
/// discarded.
pub fn replay_dir_with(
    dir: &Path,
    mut on_record: impl FnMut(&str, &[u8]),
) -> Result<Vec<NamedInfo>> {
    journal_names(dir)?
        .into_iter()
        .map(|name| {
            let paths = Paths::new(dir, &name)?;
            let info = load(&paths, &mut |r| on_record(&name, r))?.info;
            Ok(NamedInfo { name, info })
        })
        .collect()
}

/// The names of the journals in `dir`, sorted.
fn journal_names(dir: &Path) -> Result<Vec<String>> {
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
    Ok(names)
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

/// Reads and verifies a journal without changing any file, streaming each
/// record to `on_record` (snapshot first, then the log) through a bounded
/// buffer. On an error, records already handed over must be discarded.
pub(crate) fn load(paths: &Paths, on_record: &mut dyn FnMut(&[u8])) -> Result<Loaded> {
    let Some((log, log_len)) = open_optional(&paths.log)? else {
        return Ok(Loaded {
            info: ReplayInfo::default(),
            generation: 0,
            log_generation: 0,
            snapshot_bytes: 0,
            next_seq: 0,
            log: LogState::Missing,
        });
    };
    let log_header = read_header(&log, log_len, &paths.log, FileKind::Log)?;
    let snap = open_optional(&paths.snap)?;
    let snap_header = match &snap {
        Some((file, len)) => {
            let h = read_header(file, *len, &paths.snap, FileKind::Snapshot)?;
            if h.generation == 0 {
                return Err(JournalError::BadHeader {
                    path: paths.snap.clone(),
                    reason: "snapshot generation 0",
                });
            }
            Some(h)
        }
        None => None,
    };
    let generation = snap_header.map_or(0, |h| h.generation);
    if log_header.generation > generation {
        return Err(JournalError::GenerationMismatch {
            path: paths.log.clone(),
            log_generation: log_header.generation,
            snapshot_generation: generation,
        });
    }
    let mut info = ReplayInfo::default();
    let (mut snap_end, mut snapshot_bytes) = (0, 0);
    if let (Some((file, len)), Some(h)) = (&snap, snap_header) {
        let scan = scan::scan_snapshot(file, *len, h.first_seq, h.record_count, &mut |_, r| {
            on_record(r)
        })
        .map_err(scan_err(&paths.snap))?;
        info.records = scan.records;
        info.snapshot_records = scan.records;
        info.buffer_peak = scan.buffer_peak;
        snap_end = scan.next_seq;
        snapshot_bytes = *len;
    }
    let mut loaded = Loaded {
        generation,
        log_generation: generation,
        snapshot_bytes,
        next_seq: snap_end,
        log: LogState::Stale,
        info: ReplayInfo::default(),
    };
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
        let scan = scan::scan_log(&log, log_len, log_header.first_seq, &mut |seq, r| {
            if seq >= snap_end {
                on_record(r);
            }
        })
        .map_err(scan_err(&paths.log))?;
        info.buffer_peak = info.buffer_peak.max(scan.buffer_peak);
        if scan.next_seq <= snap_end {
            info.discarded_stale_log = true;
            loaded.info = info;
            return Ok(loaded);
        }
        info.records += scan.next_seq - snap_end;
        info.torn_tail = scan.torn;
        loaded.log_generation = log_header.generation;
        loaded.next_seq = scan.next_seq;
        loaded.log = LogState::Current {
            good_end: scan.good_end,
        };
        loaded.info = info;
        return Ok(loaded);
    }
    if generation > 0 && log_header.first_seq != snap_end {
        return Err(corrupt(&paths.log)(Damage {
            offset: 0,
            reason: "log does not continue the snapshot's sequence",
        }));
    }
    let scan = scan::scan_log(&log, log_len, log_header.first_seq, &mut |_, r| {
        on_record(r)
    })
    .map_err(scan_err(&paths.log))?;
    info.records += scan.records;
    info.torn_tail = scan.torn;
    info.buffer_peak = info.buffer_peak.max(scan.buffer_peak);
    loaded.next_seq = scan.next_seq;
    loaded.log = LogState::Current {
        good_end: scan.good_end,
    };
    loaded.info = info;
    Ok(loaded)
}

/// Opens `path` for reading with its length, or `None` when it does not
/// exist.
fn open_optional(path: &Path) -> Result<Option<(File, u64)>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    Ok(Some((file, len)))
}

/// Reads and decodes the header of a file of `len` bytes.
fn read_header(file: &File, len: u64, path: &Path, kind: FileKind) -> Result<FileHeader> {
    let mut bytes = [0u8; HEADER_LEN];
    let n = usize::try_from(len).unwrap_or(HEADER_LEN).min(HEADER_LEN);
    file.read_exact_at(&mut bytes[..n], 0)
        .map_err(io_err("read", path))?;
    header(&bytes[..n], path, kind)
}

/// Maps a scan failure in `path` to [`JournalError::Corrupt`] or
/// [`JournalError::Io`].
fn scan_err(path: &Path) -> impl FnOnce(ScanError) -> JournalError {
    let path = path.to_path_buf();
    move |e| match e {
        ScanError::Damage(d) => corrupt(&path)(d),
        ScanError::Io(source) => JournalError::Io {
            op: "read",
            path,
            source,
        },
    }
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
