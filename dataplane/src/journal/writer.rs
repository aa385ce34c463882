//! The journal writer: append, group commit and sync.

use std::{
    fs::{File, OpenOptions},
    io::{self, ErrorKind},
    mem,
    os::unix::fs::FileExt as _,
    path::Path,
    time::Instant,
};

use bootwave_protocol::config::FsyncPolicy;

use super::{
    compact::{Capture, CompactStats},
    error::{JournalError, Result, io_err},
    files::{self, Paths},
    format::{
        self, GROUP_HEADER_LEN, HEADER_LEN, MAX_GROUP_BODY, MAX_RECORD_LEN, RECORD_PREFIX_LEN,
    },
    replay::{self, LogState, Replay, ReplayInfo},
};

/// One shard's lease journal: a single writer, no locks.
///
/// Records are appended to an in-memory batch and written as one commit
/// group by [`commit`](Self::commit) (blocking) or by the driver through
/// [`prepare_commit`](Self::prepare_commit) /
/// [`complete_commit`](Self::complete_commit). See the module docs for the
/// durability contract.
#[derive(Debug)]
pub struct Journal {
    pub(super) paths: Paths,
    policy: FsyncPolicy,
    pub(super) file: File,
    pub(super) generation: u64,
    /// The open batch: a reserved group header followed by records.
    open_batch: Vec<u8>,
    open_count: u32,
    /// An empty buffer kept for the next batch (double buffering).
    spare: Vec<u8>,
    in_flight: Option<InFlight>,
    /// A compaction whose snapshot is being written elsewhere.
    pub(super) capture: Option<Capture>,
    /// Sequence number of the next appended record.
    pub(super) next_seq: u64,
    /// End of the data written to the log (the next group's offset).
    pub(super) written_end: u64,
    /// Every record with a lower sequence number is written.
    pub(super) written_seq: u64,
    /// End of the log data known to be on stable storage.
    pub(super) synced_end: u64,
    /// Every record with a lower sequence number is on stable storage.
    pub(super) synced_seq: u64,
    last_sync: Option<Instant>,
    pub(super) snapshot_bytes: u64,
    pub(super) poisoned: bool,
    stats: JournalStats,
}

/// A sealed commit group being written.
#[derive(Debug)]
struct InFlight {
    buf: Vec<u8>,
    offset: u64,
    done: usize,
    first_seq: u64,
    count: u32,
}

/// The result of a commit: which records it wrote and whether they are
/// acknowledged (durable as the policy promises, so replies may go out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitTicket {
    /// Sequence number of the first record of the group.
    pub first_seq: u64,
    /// Sequence number just past the last record of the group.
    pub end_seq: u64,
    /// Bytes written (group header included).
    pub bytes: usize,
    /// True when the records are acknowledged already. Otherwise they are
    /// once [`Journal::acked_seq`] reaches `end_seq`.
    pub acked: bool,
}

/// A commit group for the driver to write itself (for example with an
/// io_uring `Write` at `offset`).
#[derive(Debug, Clone, Copy)]
pub struct PreparedWrite<'a> {
    /// The bytes still to write.
    pub bytes: &'a [u8],
    /// Where they go in the log file.
    pub offset: u64,
}

/// How far a driver-submitted commit write got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteProgress {
    /// A short write: call `prepare_commit` again for the rest.
    Incomplete,
    /// The whole group is written.
    Written(CommitTicket),
}

/// What an `fdatasync` covers: the writes completed before it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncToken {
    end: u64,
    seq: u64,
}

/// Counters since the journal was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Records committed.
    pub records: u64,
    /// Commit groups written.
    pub commits: u64,
    /// Write calls completed (more than `commits` only after short writes).
    pub writes: u64,
    /// `fdatasync` calls completed.
    pub syncs: u64,
    /// Bytes written to the log.
    pub bytes_written: u64,
}

impl Journal {
    /// Opens (or creates) the journal `name` in the existing directory
    /// `dir`, replays it, drops a torn tail and syncs the result, so that
    /// everything in the returned [`Replay`] is on stable storage.
    pub fn open(dir: &Path, name: &str, policy: FsyncPolicy) -> Result<(Self, Replay)> {
        let mut records = Vec::new();
        let (journal, info) =
            Self::open_streaming(dir, name, policy, |r| records.push(r.to_vec()))?;
        Ok((journal, Replay::new(records, info)))
    }

    /// [`open`](Self::open) without collecting the records: the files are
    /// read through a bounded buffer and each record goes to `on_record` as
    /// it is verified (snapshot first, then the log; a commit group whole
    /// or not at all). On an error, records already handed over must be
    /// discarded.
    pub fn open_streaming(
        dir: &Path,
        name: &str,
        policy: FsyncPolicy,
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<(Self, ReplayInfo)> {
        let paths = Paths::new(dir, name)?;
        files::remove_optional(&paths.snap_tmp)?;
        files::remove_optional(&paths.log_tmp)?;
        let loaded = replay::load(&paths, &mut on_record)?;
        let (file, end) = match loaded.log {
            LogState::Current { good_end } => (reopen_log(&paths.log, good_end)?, good_end),
            LogState::Missing => {
                // A snapshot without a log is what `retire` leaves when it
                // stops half way: the journal no longer exists.
                files::remove_optional(&paths.snap)?;
                files::sync_dir(dir)?;
                (create_log(&paths, 0, 0)?, HEADER_LEN as u64)
            }
            LogState::Stale => {
                let file = create_log(&paths, loaded.generation, loaded.next_seq)?;
                (file, HEADER_LEN as u64)
            }
        };
        let journal = Self {
            paths,
            policy,
            file,
            generation: loaded.log_generation,
            open_batch: Vec::new(),
            open_count: 0,
            spare: Vec::new(),
            in_flight: None,
            capture: None,
            next_seq: loaded.next_seq,
            written_end: end,
            written_seq: loaded.next_seq,
            synced_end: end,
            synced_seq: loaded.next_seq,
            last_sync: None,
            snapshot_bytes: loaded.snapshot_bytes,
            poisoned: false,
            stats: JournalStats::default(),
        };
        Ok((journal, loaded.info))
    }

    /// Copies `record` into the open batch; returns its sequence number.
    /// Nothing reaches the file before the next commit.
    pub fn append(&mut self, record: &[u8]) -> Result<u64> {
        self.check()?;
        if record.len() > MAX_RECORD_LEN {
            return Err(JournalError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_LEN,
            });
        }
        let body = self.open_batch.len().saturating_sub(GROUP_HEADER_LEN);
        if body + RECORD_PREFIX_LEN + record.len() > MAX_GROUP_BODY {
            return Err(JournalError::GroupFull { bytes: body });
        }
        if self.open_count == 0 {
            format::begin_group(&mut self.open_batch);
        }
        format::push_record(&mut self.open_batch, record);
        self.open_count += 1;
        self.next_seq += 1;
        Ok(self.next_seq - 1)
    }

    /// Writes every record appended since the last commit as one group with
    /// one positional write, then syncs if the policy asks for it now
    /// (`Always`: every commit; `Batch(d)`: when the last sync is `d` old).
    /// An empty batch writes nothing (but may still sync when due).
    pub fn commit(&mut self, now: Instant) -> Result<CommitTicket> {
        self.check()?;
        if self.in_flight.is_some() {
            return Err(JournalError::CommitInFlight);
        }
        self.seal();
        let mut ticket = self.empty_ticket();
        while let Some(f) = &self.in_flight {
            let result = self
                .file
                .write_at(&f.buf[f.done..], f.offset + f.done as u64);
            if let WriteProgress::Written(t) = self.complete_commit(result)? {
                ticket = t;
            }
        }
        if self.needs_sync(now) {
            self.sync(now)?;
        }
        ticket.acked = self.acked_seq() >= ticket.end_seq;
        Ok(ticket)
    }

    /// Seals the open batch (unless a write is already in flight) and hands
    /// out the bytes to write at `offset`; `None` when there is nothing to
    /// write. Records appended meanwhile go to the next batch. The bytes stay
    /// at the same address, unchanged, until `complete_commit` reports
    /// [`WriteProgress::Written`]; the journal must not be dropped while the
    /// kernel may still read them. Calling it again before completion returns
    /// the same bytes.
    pub fn prepare_commit(&mut self) -> Result<Option<PreparedWrite<'_>>> {
        self.check()?;
        self.seal();
        Ok(self.in_flight.as_ref().map(|f| PreparedWrite {
            bytes: &f.buf[f.done..],
            offset: f.offset + f.done as u64,
        }))
    }

    /// Reports the result of the write of a [`PreparedWrite`]. A failed
    /// write poisons the journal: reopen it, replay decides what survived.
    pub fn complete_commit(&mut self, result: io::Result<usize>) -> Result<WriteProgress> {
        self.check()?;
        let Some(remaining) = self.in_flight.as_ref().map(|f| f.buf.len() - f.done) else {
            return Err(JournalError::NothingInFlight);
        };
        let n = match result {
            Ok(n) if n > 0 && n <= remaining => n,
            Ok(n) => {
                let e = io::Error::new(ErrorKind::WriteZero, format!("wrote {n} of {remaining}"));
                return Err(self.poison(io_err("write", &self.paths.log)(e)));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(WriteProgress::Incomplete),
            Err(e) => return Err(self.poison(io_err("write", &self.paths.log)(e))),
        };
        self.stats.writes += 1;
        let Some(mut f) = self.in_flight.take() else {
            return Err(JournalError::NothingInFlight);
        };
        f.done += n;
        if f.done < f.buf.len() {
            self.in_flight = Some(f);
            return Ok(WriteProgress::Incomplete);
        }
        let len = f.buf.len();
        self.written_end += len as u64;
        self.written_seq = f.first_seq + u64::from(f.count);
        self.stats.commits += 1;
        self.stats.records += u64::from(f.count);
        self.stats.bytes_written += len as u64;
        f.buf.clear();
        self.spare = f.buf;
        Ok(WriteProgress::Written(CommitTicket {
            first_seq: f.first_seq,
            end_seq: self.written_seq,
            bytes: len,
            acked: self.acked_seq() >= self.written_seq,
        }))
    }

    /// When the next sync should happen: `None` when nothing waits for one
    /// (or the policy is `Never`); a time at or before `now` means now.
    pub fn next_sync_at(&self, now: Instant) -> Option<Instant> {
        if self.synced_seq >= self.written_seq {
            return None;
        }
        match self.policy {
            FsyncPolicy::Never => None,
            FsyncPolicy::Always => Some(now),
            FsyncPolicy::Batch(d) => Some(self.last_sync.map_or(now, |t| t + d)),
        }
    }

    /// True when the policy wants a sync at `now`.
    pub fn needs_sync(&self, now: Instant) -> bool {
        self.next_sync_at(now).is_some_and(|t| t <= now)
    }

    /// Syncs the log now (blocking `fdatasync`) whatever the policy; returns
    /// [`acked_seq`](Self::acked_seq). Does nothing when all is synced.
    pub fn sync(&mut self, now: Instant) -> Result<u64> {
        match self.begin_sync()? {
            Some(token) => {
                let result = self.file.sync_data();
                self.complete_sync(token, result, now)
            }
            None => Ok(self.acked_seq()),
        }
    }

    /// For a driver issuing `fdatasync` itself: captures what the sync will
    /// cover, i.e. the writes completed so far. Take it after the
    /// `complete_commit` of the last write the sync must cover (with an
    /// io_uring link write → fsync, after handling the write's completion).
    /// `None` when everything is synced already.
    pub fn begin_sync(&self) -> Result<Option<SyncToken>> {
        self.check()?;
        Ok(
            (self.written_seq > self.synced_seq || self.written_end > self.synced_end).then_some(
                SyncToken {
                    end: self.written_end,
                    seq: self.written_seq,
                },
            ),
        )
    }

    /// Reports the result of a driver-issued `fdatasync`; returns
    /// [`acked_seq`](Self::acked_seq). A failure poisons the journal. A
    /// cancelled sync (never run) must simply not be reported.
    pub fn complete_sync(
        &mut self,
        token: SyncToken,
        result: io::Result<()>,
        now: Instant,
    ) -> Result<u64> {
        self.check()?;
        if let Err(e) = result {
            return Err(self.poison(io_err("fdatasync", &self.paths.log)(e)));
        }
        self.synced_end = self.synced_end.max(token.end);
        self.synced_seq = self.synced_seq.max(token.seq);
        self.last_sync = Some(now);
        self.stats.syncs += 1;
        Ok(self.acked_seq())
    }

    /// Every record with a lower sequence number is acknowledged: synced for
    /// `Always` and `Batch`, written to the kernel for `Never`.
    pub fn acked_seq(&self) -> u64 {
        match self.policy {
            FsyncPolicy::Never => self.written_seq,
            FsyncPolicy::Always | FsyncPolicy::Batch(_) => self.synced_seq.min(self.written_seq),
        }
    }

    /// Size of the log file (header included, open batch excluded); compare
    /// it with the live set to decide when to compact.
    pub fn log_bytes(&self) -> u64 {
        self.written_end
    }

    /// Size of the current snapshot file (0 when there is none).
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes
    }

    /// Records appended since the last commit (not yet sealed).
    pub fn pending_records(&self) -> u32 {
        self.open_count
    }

    /// True after a failed write or sync (or a compaction stopped half
    /// way): only [`recover`](Self::recover) makes the journal usable again.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The sync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Counters since the journal was opened.
    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// Fails when an earlier I/O failure left the journal unusable.
    pub(super) fn check(&self) -> Result<()> {
        if self.poisoned {
            return Err(JournalError::Poisoned {
                path: self.paths.log.clone(),
            });
        }
        Ok(())
    }

    /// Marks the journal unusable and passes `err` through.
    pub(super) fn poison(&mut self, err: JournalError) -> JournalError {
        self.poisoned = true;
        err
    }

    /// True while a commit write is in flight.
    pub(super) fn in_flight_write(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts the journal over from `live` after a failure (or any time
    /// nothing is in flight): the open batch and a commit write that failed
    /// are dropped (their records are lost; replies waiting for them must be
    /// dropped too), then the live set is written as a fresh snapshot and
    /// log by [`compact`](Self::compact), which never reads the damaged
    /// log. Whatever a failed write left at the end of the old log is thus
    /// discarded with it. On failure the journal stays poisoned; call again
    /// later.
    pub fn recover<'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<CompactStats> {
        if self.capture.is_some() {
            return Err(JournalError::CompactionInFlight);
        }
        self.poisoned = false;
        self.in_flight = None;
        self.open_batch.clear();
        self.open_count = 0;
        self.compact(live).map_err(|e| self.poison(e))
    }

    /// Fails when records are appended but not committed, or a write or a
    /// compaction is in flight.
    pub(super) fn ensure_idle(&self) -> Result<()> {
        if self.in_flight.is_some() {
            return Err(JournalError::CommitInFlight);
        }
        if self.capture.is_some() {
            return Err(JournalError::CompactionInFlight);
        }
        if self.open_count > 0 {
            return Err(JournalError::Uncommitted {
                count: self.open_count,
            });
        }
        Ok(())
    }

    /// Moves the open batch into flight, if nothing is in flight already.
    fn seal(&mut self) {
        if self.in_flight.is_some() || self.open_count == 0 {
            return;
        }
        let first_seq = self.next_seq - u64::from(self.open_count);
        format::seal_group(
            &mut self.open_batch,
            first_seq,
            self.synced_end,
            self.open_count,
        );
        self.in_flight = Some(InFlight {
            buf: mem::replace(&mut self.open_batch, mem::take(&mut self.spare)),
            offset: self.written_end,
            done: 0,
            first_seq,
            count: mem::take(&mut self.open_count),
        });
    }

    /// A ticket for a commit that wrote nothing.
    fn empty_ticket(&self) -> CommitTicket {
        CommitTicket {
            first_seq: self.written_seq,
            end_seq: self.written_seq,
            bytes: 0,
            acked: true,
        }
    }
}

/// Opens an existing log for writing, cuts it back to `good_end` and syncs
/// it so that what replay returned is durable.
fn reopen_log(path: &Path, good_end: u64) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    if len > good_end {
        file.set_len(good_end).map_err(io_err("truncate", path))?;
    }
    files::sync_file(&file, path)?;
    Ok(file)
}

/// Creates an empty log atomically: header into `<name>.log.tmp`, sync,
/// rename over `<name>.log`, sync the directory.
fn create_log(paths: &Paths, generation: u64, first_seq: u64) -> Result<File> {
    let file = files::write_log_temp(paths, generation, first_seq)?;
    files::rename(&paths.log_tmp, &paths.log)?;
    files::sync_dir(&paths.dir)?;
    Ok(file)
}
