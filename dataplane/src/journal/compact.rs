//! Compaction: replace snapshot + log by a snapshot of the live records and
//! an empty log, crash-safely; either all at once ([`Journal::compact`]) or
//! with the snapshot written off the shard's thread
//! ([`Journal::begin_compaction`], [`SnapshotJob::run`],
//! [`Journal::finish_compaction`]).

use std::{fs::File, os::unix::fs::FileExt as _, path::Path};

use bootwave_protocol::config::FsyncPolicy;

use super::{
    error::io_err,
    error::{JournalError, Result},
    files::{self, Paths},
    format::{self, FileHeader, FileKind, GROUP_HEADER_LEN, HEADER_LEN, MAX_RECORD_LEN},
    writer::Journal,
};

/// Body size at which a snapshot starts a new commit group.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// What a compaction wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// Records in the new snapshot.
    pub records: u64,
    /// Size of the new snapshot file.
    pub snapshot_bytes: u64,
    /// The new generation.
    pub generation: u64,
}

/// A snapshot for another thread to write: [`SnapshotJob::run`] writes
/// `<name>.snap.tmp`, syncs it, renames it to `<name>.snap` and syncs the
/// directory, while the journal keeps appending to its log. The snapshot
/// holds the live set as of the capture; records appended to the log after
/// it replay on top of it (see [`Journal::begin_compaction`]).
#[derive(Debug)]
pub struct SnapshotJob {
    paths: Paths,
    bytes: Vec<u8>,
    generation: u64,
}

/// What a [`SnapshotJob`] did; hand it to [`Journal::finish_compaction`].
#[derive(Debug)]
pub struct SnapshotOutcome {
    generation: u64,
    bytes: u64,
    /// The failure, and whether the snapshot had been renamed into place.
    failed: Option<(JournalError, bool)>,
}

/// A compaction whose snapshot is being written elsewhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capture {
    /// The generation of the snapshot.
    pub(crate) generation: u64,
    /// Sequence number of the first record not covered by the snapshot.
    pub(crate) seq: u64,
    /// Log offset of the first group not covered by the snapshot.
    pub(crate) offset: u64,
}

impl SnapshotJob {
    /// Writes the snapshot into place (blocking: several syncs). On
    /// failure before the rename the temporary file is removed and the
    /// journal is untouched.
    pub fn run(self) -> SnapshotOutcome {
        let outcome = |failed| SnapshotOutcome {
            generation: self.generation,
            bytes: self.bytes.len() as u64,
            failed,
        };
        match write_snapshot(&self.paths, &self.bytes, &mut |_| true) {
            Ok(_) => {}
            Err(e) => {
                let _ = files::remove_optional(&self.paths.snap_tmp);
                return outcome(Some((e, false)));
            }
        }
        match files::sync_dir(&self.paths.dir) {
            Ok(()) => outcome(None),
            Err(e) => outcome(Some((e, true))),
        }
    }

    /// Size of the snapshot file.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for a snapshot of no record (the header alone).
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == HEADER_LEN
    }
}

/// The points between compaction steps, each named after the step just
/// completed. A crash at any of them leaves either the old or the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CompactStep {
    /// `<name>.snap.tmp` written, not synced.
    SnapshotTempWritten,
    /// `<name>.snap.tmp` synced.
    SnapshotTempSynced,
    /// Renamed to `<name>.snap`; the old log is now stale.
    SnapshotRenamed,
    /// Directory synced: the rename is durable.
    SnapshotDirSynced,
    /// `<name>.log.tmp` holds the new log header, synced.
    LogTempSynced,
    /// Renamed to `<name>.log`.
    LogRenamed,
}

impl Journal {
    /// Replaces the journal's content by `live` (the records that still
    /// matter, in replay order): writes them as a snapshot of the next
    /// generation and starts an empty log. All appended records must be
    /// committed first. On return the new state is durable; a crash at any
    /// point replays either the old records or `live`.
    pub fn compact<'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<CompactStats> {
        let stats = self.compact_until(live, &mut |_| true)?;
        stats.ok_or_else(|| JournalError::Poisoned {
            path: self.paths.log.clone(),
        })
    }

    /// Starts the journal `name` afresh holding exactly `live` (after a
    /// re-partition, for example); an existing journal of that name is
    /// replaced atomically.
    pub fn create_from<'a>(
        dir: &Path,
        name: &str,
        policy: FsyncPolicy,
        live: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self> {
        let (mut journal, _previous) = Self::open_streaming(dir, name, policy, |_| {})?;
        journal.compact(live)?;
        Ok(journal)
    }

    /// Compaction that asks `proceed` after every step and stops (like a
    /// crash, leaving the journal poisoned) when it says no. `Ok(None)` when
    /// stopped.
    pub(crate) fn compact_until<'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a [u8]>,
        proceed: &mut dyn FnMut(CompactStep) -> bool,
    ) -> Result<Option<CompactStats>> {
        self.check()?;
        self.ensure_idle()?;
        let generation = self.generation + 1;
        let (snapshot, records) = encode_snapshot(live, generation, self.next_seq)?;
        let paths = self.paths.clone();
        // Until the rename the old state is untouched: clean up and go on.
        match write_snapshot(&paths, &snapshot, proceed) {
            Ok(true) => {}
            Ok(false) => return Ok(self.stop()),
            Err(e) => {
                let _ = files::remove_optional(&paths.snap_tmp);
                return Err(e);
            }
        }
        // From here the old log is stale: any failure poisons the journal.
        if !proceed(CompactStep::SnapshotRenamed) {
            return Ok(self.stop());
        }
        files::sync_dir(&paths.dir).map_err(|e| self.poison(e))?;
        if !proceed(CompactStep::SnapshotDirSynced) {
            return Ok(self.stop());
        }
        let end_seq = self.next_seq + records;
        let Some(file) =
            create_log_until(&paths, generation, end_seq, proceed).map_err(|e| self.poison(e))?
        else {
            return Ok(self.stop());
        };
        self.file = file;
        self.generation = generation;
        self.next_seq = end_seq;
        self.written_seq = end_seq;
        self.synced_seq = end_seq;
        self.written_end = HEADER_LEN as u64;
        self.synced_end = HEADER_LEN as u64;
        self.snapshot_bytes = snapshot.len() as u64;
        Ok(Some(CompactStats {
            records,
            snapshot_bytes: self.snapshot_bytes,
            generation,
        }))
    }

    /// Starts a compaction whose snapshot another thread writes: captures
    /// `live` (the records that rebuild the state as of now; everything
    /// appended must be committed) as a snapshot of the next generation
    /// numbered to end at the current sequence number, and returns the job.
    /// The journal keeps appending to its log meanwhile; records from the
    /// capture on replay on top of the snapshot even once it is in place.
    /// `Ok(None)` when the numbering does not fit (more live records than
    /// sequence numbers so far): use [`compact`](Self::compact) then.
    pub fn begin_compaction<'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<SnapshotJob>> {
        self.check()?;
        self.ensure_idle()?;
        let generation = self.generation + 1;
        let live: Vec<&[u8]> = live.into_iter().collect();
        let Some(first_seq) = self.next_seq.checked_sub(live.len() as u64) else {
            return Ok(None);
        };
        let (bytes, _) = encode_snapshot(live, generation, first_seq)?;
        self.capture = Some(Capture {
            generation,
            seq: self.next_seq,
            offset: self.written_end,
        });
        Ok(Some(SnapshotJob {
            paths: self.paths.clone(),
            bytes,
            generation,
        }))
    }

    /// True while a compaction started by
    /// [`begin_compaction`](Self::begin_compaction) is not finished.
    pub fn compacting(&self) -> bool {
        self.capture.is_some()
    }

    /// Ends a compaction started by [`begin_compaction`](Self::begin_compaction):
    /// when its snapshot is in place, writes a log of the new generation
    /// holding the records appended since the capture (synced), renames it
    /// over the old log and syncs the directory. Needs no commit write in
    /// flight. A failure before the new log is in place leaves the journal
    /// usable on its old log (the snapshot, if renamed, covers the capture
    /// and the old log the rest); a failure after it poisons it.
    pub fn finish_compaction(&mut self, outcome: SnapshotOutcome) -> Result<CompactStats> {
        let capture = self.capture.take().ok_or(JournalError::NothingInFlight)?;
        if let Some((err, renamed)) = outcome.failed {
            if renamed {
                self.poisoned = true;
            }
            return Err(err);
        }
        self.check()?;
        if self.in_flight_write() {
            self.capture = Some(capture);
            return Err(JournalError::CommitInFlight);
        }
        let tail = self.read_tail(capture.offset)?;
        let paths = self.paths.clone();
        let log = encode_log(&tail, capture.generation, capture.seq)?;
        let file = match files::write_new(&paths.log_tmp, &log)
            .and_then(|f| files::sync_file(&f, &paths.log_tmp).map(|()| f))
            .and_then(|f| files::rename(&paths.log_tmp, &paths.log).map(|()| f))
        {
            Ok(file) => file,
            Err(e) => {
                let _ = files::remove_optional(&paths.log_tmp);
                return Err(e);
            }
        };
        self.file = file;
        self.generation = capture.generation;
        self.written_end = log.len() as u64;
        self.synced_end = self.written_end;
        self.synced_seq = self.written_seq;
        self.snapshot_bytes = outcome.bytes;
        files::sync_dir(&paths.dir).map_err(|e| self.poison(e))?;
        Ok(CompactStats {
            records: tail.len() as u64,
            snapshot_bytes: outcome.bytes,
            generation: outcome.generation,
        })
    }

    /// Forgets a compaction whose [`SnapshotJob`] never reported (its
    /// thread could not start or panicked). The journal goes on with its
    /// log: whether or not the snapshot reached its place, replay gives the
    /// same records.
    pub fn abandon_compaction(&mut self) {
        self.capture = None;
    }

    /// The records of the log from `offset` to the end of what is written.
    fn read_tail(&mut self, offset: u64) -> Result<Vec<Vec<u8>>> {
        let len = usize::try_from(self.written_end.saturating_sub(offset)).unwrap_or(usize::MAX);
        let mut bytes = vec![0u8; len];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(io_err("read", &self.paths.log))?;
        let mut records = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let Ok((group, n)) = format::parse_group(&bytes[pos..]) else {
                let err = JournalError::Corrupt {
                    path: self.paths.log.clone(),
                    offset: offset + pos as u64,
                    reason: "written group does not read back",
                };
                return Err(self.poison(err));
            };
            records.extend(group.records().map(<[u8]>::to_vec));
            pos += n;
        }
        Ok(records)
    }

    /// Ends a stopped compaction the way a crash would.
    fn stop(&mut self) -> Option<CompactStats> {
        self.poisoned = true;
        None
    }
}

/// Encodes `live` as a snapshot file; returns it with its record count.
fn encode_snapshot<'a>(
    live: impl IntoIterator<Item = &'a [u8]>,
    generation: u64,
    first_seq: u64,
) -> Result<(Vec<u8>, u64)> {
    let mut out = vec![0u8; HEADER_LEN];
    let mut chunk = Vec::new();
    let mut chunk_count = 0u32;
    let mut seq = first_seq;
    let mut flush = |out: &mut Vec<u8>, chunk: &mut Vec<u8>, count: &mut u32| {
        format::seal_group(chunk, seq, 0, *count);
        out.extend_from_slice(chunk);
        seq += u64::from(std::mem::take(count));
    };
    for record in live {
        if record.len() > MAX_RECORD_LEN {
            return Err(JournalError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_LEN,
            });
        }
        if chunk_count == 0 {
            format::begin_group(&mut chunk);
        }
        format::push_record(&mut chunk, record);
        chunk_count += 1;
        if chunk.len() - GROUP_HEADER_LEN >= SNAPSHOT_CHUNK {
            flush(&mut out, &mut chunk, &mut chunk_count);
        }
    }
    if chunk_count > 0 {
        flush(&mut out, &mut chunk, &mut chunk_count);
    }
    let records = seq - first_seq;
    let header = FileHeader {
        kind: FileKind::Snapshot,
        generation,
        first_seq,
        record_count: records,
    };
    out[..HEADER_LEN].copy_from_slice(&header.encode());
    Ok((out, records))
}

/// A log file of `generation` starting at `first_seq` and holding
/// `records` (in groups of at most one snapshot chunk, `synced_end` 0).
fn encode_log(records: &[Vec<u8>], generation: u64, first_seq: u64) -> Result<Vec<u8>> {
    let (mut bytes, _) = encode_snapshot(records.iter().map(Vec::as_slice), generation, first_seq)?;
    let header = FileHeader {
        kind: FileKind::Log,
        generation,
        first_seq,
        record_count: 0,
    };
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
    Ok(bytes)
}

/// Writes and syncs `<name>.snap.tmp`, then renames it to `<name>.snap`.
/// `Ok(false)` when `proceed` stopped it.
fn write_snapshot(
    paths: &Paths,
    snapshot: &[u8],
    proceed: &mut dyn FnMut(CompactStep) -> bool,
) -> Result<bool> {
    let file = files::write_new(&paths.snap_tmp, snapshot)?;
    if !proceed(CompactStep::SnapshotTempWritten) {
        return Ok(false);
    }
    files::sync_file(&file, &paths.snap_tmp)?;
    if !proceed(CompactStep::SnapshotTempSynced) {
        return Ok(false);
    }
    files::rename(&paths.snap_tmp, &paths.snap)?;
    Ok(true)
}

/// Creates the empty log of the new generation and moves it into place.
/// `Ok(None)` when `proceed` stopped it.
fn create_log_until(
    paths: &Paths,
    generation: u64,
    first_seq: u64,
    proceed: &mut dyn FnMut(CompactStep) -> bool,
) -> Result<Option<File>> {
    let file = files::write_log_temp(paths, generation, first_seq)?;
    if !proceed(CompactStep::LogTempSynced) {
        return Ok(None);
    }
    files::rename(&paths.log_tmp, &paths.log)?;
    if !proceed(CompactStep::LogRenamed) {
        return Ok(None);
    }
    files::sync_dir(&paths.dir)?;
    Ok(Some(file))
}
