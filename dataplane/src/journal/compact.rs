//! Compaction: replace snapshot + log by a snapshot of the live records and
//! an empty log, crash-safely.

use std::{fs::File, path::Path};

use bootwave_protocol::config::FsyncPolicy;

use super::{
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
        let (mut journal, _previous) = Self::open(dir, name, policy)?;
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
