//! A shard's journal and its upkeep: compaction while running and recovery
//! from write failures, both driven from the shard's loop.
//!
//! Compaction starts when the log grows past
//! `max(ratio × last snapshot, min_log_bytes)`, or when anything was
//! appended and the last compaction is `max_age` old. The shard captures the
//! live set (an in-memory encode) and a helper thread writes and syncs the
//! snapshot while the shard keeps appending to its log; once the snapshot
//! is in place the shard moves the records appended since the capture into
//! a fresh log (one write, one sync, one rename, one directory sync). Only
//! one compaction runs at a time.
//!
//! A failed write or sync (a full disk, an I/O error) stops
//! acknowledgements: the caller drops the replies waiting for the journal
//! and refuses new ones. Every [`RETRY_FIRST`]–[`RETRY_MAX`] the journal is
//! started over from the live set ([`Journal::recover`]); when that
//! succeeds, acknowledgements resume. The condition is logged on entry, on
//! recovery and every [`REMIND_EVERY`] in between.

use std::{
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{CommitTicket, Journal, JournalError, Result, SnapshotOutcome, format::HEADER_LEN};

/// First retry after a failure.
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two retries.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often a failure that lasts is logged again.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(60);
/// Wait after a failed compaction before the next attempt.
const COMPACT_BACKOFF: Duration = Duration::from_secs(10);
/// How often the shard looks whether the helper thread is done.
const JOB_POLL: Duration = Duration::from_millis(20);

/// When a shard compacts its journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact when the log is this many times the last snapshot...
    pub ratio: u64,
    /// ...and at least this large.
    pub min_log_bytes: u64,
    /// Compact when anything was appended and the last compaction is this
    /// old.
    pub max_age: Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            ratio: 4,
            min_log_bytes: 512 << 10,
            max_age: Duration::from_secs(600),
        }
    }
}

/// What the metrics show of a shard's journal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalGauges {
    /// True while acknowledgements are stopped by a failure.
    pub failed: bool,
    /// Failures: writes, syncs, compactions and recovery attempts.
    pub failures: u64,
    /// Compactions completed (recoveries included).
    pub compactions: u64,
    /// Recoveries after a failure.
    pub recoveries: u64,
    /// Bytes on disk: log plus snapshot.
    pub bytes: u64,
}

/// A failure in progress.
#[derive(Debug, Clone, Copy)]
struct Failure {
    since: Instant,
    retry_at: Instant,
    backoff: Duration,
    remind_at: Instant,
}

/// One shard's journal with compaction and failure recovery. The write
/// methods pass through to [`Journal`]; call [`maintain`](Self::maintain)
/// once per loop iteration, after the commit.
#[derive(Debug)]
pub struct ShardJournal {
    journal: Journal,
    name: String,
    policy: CompactionPolicy,
    job: Option<JoinHandle<SnapshotOutcome>>,
    last_compaction: Instant,
    next_attempt: Instant,
    /// Records committed since the last compaction.
    appended: bool,
    failure: Option<Failure>,
    gauges: JournalGauges,
    /// How long the shard spent on the running compaction so far (the
    /// capture of the live set), for the log line at its end.
    stalled: Duration,
}

impl ShardJournal {
    /// Wraps the open journal `name`.
    pub fn new(name: String, journal: Journal, policy: CompactionPolicy, now: Instant) -> Self {
        Self {
            journal,
            name,
            policy,
            job: None,
            last_compaction: now,
            next_attempt: now,
            appended: false,
            failure: None,
            gauges: JournalGauges::default(),
            stalled: Duration::ZERO,
        }
    }

    /// [`Journal::append`]; refused at once while failed.
    pub fn append(&mut self, record: &[u8]) -> Result<u64> {
        if self.failure.is_some() {
            return Err(JournalError::Poisoned {
                path: self.name.clone().into(),
            });
        }
        self.journal.append(record)
    }

    /// [`Journal::commit`].
    pub fn commit(&mut self, now: Instant) -> Result<CommitTicket> {
        let ticket = self.journal.commit(now)?;
        self.appended |= ticket.end_seq > ticket.first_seq;
        Ok(ticket)
    }

    /// [`Journal::sync`].
    pub fn sync(&mut self, now: Instant) -> Result<u64> {
        self.journal.sync(now)
    }

    /// [`Journal::next_sync_at`]; `None` while failed.
    pub fn next_sync_at(&self, now: Instant) -> Option<Instant> {
        if self.failure.is_some() {
            return None;
        }
        self.journal.next_sync_at(now)
    }

    /// [`Journal::acked_seq`].
    pub fn acked_seq(&self) -> u64 {
        self.journal.acked_seq()
    }

    /// [`Journal::pending_records`].
    pub fn pending_records(&self) -> u32 {
        self.journal.pending_records()
    }

    /// True while acknowledgements are stopped by a failure.
    pub fn is_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// What the metrics show.
    pub fn gauges(&self) -> JournalGauges {
        JournalGauges {
            failed: self.failure.is_some(),
            bytes: self.journal.log_bytes() + self.journal.snapshot_bytes(),
            ..self.gauges
        }
    }

    /// The journal itself (tests, counters).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Notes a failed write or sync: acknowledgements stop until a retry
    /// succeeds. Logged once on entry.
    pub fn fail(&mut self, err: &JournalError, now: Instant) {
        self.gauges.failures += 1;
        if self.failure.is_some() {
            return;
        }
        tracing::error!(journal = %self.name, error = %err, "lease journal failed: ACKs that need it are not sent (OFFERs go on); retrying every {}-{} s", RETRY_FIRST.as_secs(), RETRY_MAX.as_secs());
        self.failure = Some(Failure {
            since: now,
            retry_at: now + RETRY_FIRST,
            backoff: RETRY_FIRST,
            remind_at: now + REMIND_EVERY,
        });
    }

    /// Upkeep, once per loop iteration after the commit: ends a finished
    /// compaction, retries a failed journal when due, starts a compaction
    /// when one is due. `live` gives the records that rebuild the shard's
    /// state now; it is called only when they are needed. An error means
    /// the journal failed just now: drop the replies waiting for it.
    pub fn maintain<L, F>(&mut self, now: Instant, live: F) -> Result<()>
    where
        L: AsRef<[u8]>,
        F: FnOnce() -> Vec<L>,
    {
        if self.job.as_ref().is_some_and(JoinHandle::is_finished) {
            self.end_compaction(now)?;
        }
        if self.failure.is_some() {
            self.retry(now, live);
            return Ok(());
        }
        if self.job.is_none() && self.compaction_due(now) && self.journal.pending_records() == 0 {
            self.start_compaction(now, live)?;
        }
        Ok(())
    }

    /// When [`maintain`](Self::maintain) has work without new traffic.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let job = self.job.as_ref().map(|_| now + JOB_POLL);
        let failure = self.failure.map(|f| f.retry_at.min(f.remind_at));
        let age = (self.appended && self.failure.is_none())
            .then(|| (self.last_compaction + self.policy.max_age).max(self.next_attempt));
        [job, failure, age].into_iter().flatten().min()
    }

    /// Shutdown: waits for a compaction in progress, then commits and
    /// syncs what is left.
    pub fn finish(&mut self, now: Instant) -> Result<()> {
        if self.job.is_some() {
            let _ = self.end_compaction(now);
        }
        if self.failure.is_some() {
            return Ok(());
        }
        self.journal.commit(now)?;
        self.journal.sync(now)?;
        Ok(())
    }

    fn compaction_due(&self, now: Instant) -> bool {
        if now < self.next_attempt {
            return false;
        }
        let live = self.journal.snapshot_bytes().max(HEADER_LEN as u64);
        let limit = live
            .saturating_mul(self.policy.ratio)
            .max(self.policy.min_log_bytes);
        self.journal.log_bytes() > limit
            || (self.appended && now >= self.last_compaction + self.policy.max_age)
    }

    fn start_compaction<L, F>(&mut self, now: Instant, live: F) -> Result<()>
    where
        L: AsRef<[u8]>,
        F: FnOnce() -> Vec<L>,
    {
        let started = Instant::now();
        let live = live();
        let records = live.iter().map(AsRef::as_ref);
        let begun = self.journal.begin_compaction(records);
        self.stalled = started.elapsed();
        let job = match begun {
            Ok(Some(job)) => job,
            Ok(None) => {
                let switch = Instant::now();
                let result = self.journal.compact(live.iter().map(AsRef::as_ref));
                return self.compacted(result.map(|_| ()), now, switch.elapsed());
            }
            Err(err) => return self.compacted(Err(err), now, Duration::ZERO),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("compact-{}", self.name))
            .spawn(move || job.run());
        match spawned {
            Ok(handle) => self.job = Some(handle),
            Err(err) => {
                tracing::warn!(journal = %self.name, error = %err, "no thread for the journal snapshot");
                self.journal.abandon_compaction();
                self.next_attempt = now + COMPACT_BACKOFF;
            }
        }
        Ok(())
    }

    fn end_compaction(&mut self, now: Instant) -> Result<()> {
        let Some(handle) = self.job.take() else {
            return Ok(());
        };
        match handle.join() {
            Ok(outcome) => {
                let switch = Instant::now();
                let result = self.journal.finish_compaction(outcome);
                self.compacted(result.map(|_| ()), now, switch.elapsed())
            }
            Err(_) => {
                tracing::error!(journal = %self.name, "journal snapshot thread panicked");
                self.journal.abandon_compaction();
                self.next_attempt = now + COMPACT_BACKOFF;
                Ok(())
            }
        }
    }

    /// Books the result of a compaction. A failure that poisoned the
    /// journal is a journal failure (returned); any other leaves the
    /// journal on its old log and is tried again later. `switch` is how
    /// long the shard spent moving to the fresh log; with the capture
    /// before it, the time the compaction kept the shard from its traffic.
    fn compacted(&mut self, result: Result<()>, now: Instant, switch: Duration) -> Result<()> {
        let capture = std::mem::take(&mut self.stalled);
        match result {
            Ok(()) => {
                self.gauges.compactions += 1;
                self.last_compaction = now;
                self.appended = false;
                tracing::debug!(
                    journal = %self.name,
                    log = self.journal.log_bytes(),
                    snapshot = self.journal.snapshot_bytes(),
                    capture_us = capture.as_micros() as u64,
                    switch_us = switch.as_micros() as u64,
                    "journal compacted"
                );
                Ok(())
            }
            Err(err) if self.journal.is_poisoned() => {
                self.fail(&err, now);
                Err(err)
            }
            Err(err) => {
                self.gauges.failures += 1;
                self.next_attempt = now + COMPACT_BACKOFF;
                if self.failure.is_none() {
                    tracing::warn!(journal = %self.name, error = %err, "journal compaction failed; the log goes on and compaction is tried again in {} s", COMPACT_BACKOFF.as_secs());
                }
                Ok(())
            }
        }
    }

    /// A retry of a failed journal, when due: start over from the live set.
    fn retry<L, F>(&mut self, now: Instant, live: F)
    where
        L: AsRef<[u8]>,
        F: FnOnce() -> Vec<L>,
    {
        let Some(mut f) = self.failure else {
            return;
        };
        if now < f.retry_at || self.job.is_some() {
            return;
        }
        let live = live();
        match self.journal.recover(live.iter().map(AsRef::as_ref)) {
            Ok(stats) => {
                self.failure = None;
                self.gauges.compactions += 1;
                self.gauges.recoveries += 1;
                self.last_compaction = now;
                self.appended = false;
                tracing::warn!(journal = %self.name, records = stats.records, after_ms = now.saturating_duration_since(f.since).as_millis() as u64, "lease journal writable again: ACKs resume");
            }
            Err(err) => {
                self.gauges.failures += 1;
                f.retry_at = now + f.backoff;
                f.backoff = (f.backoff * 2).min(RETRY_MAX);
                if now >= f.remind_at {
                    f.remind_at = now + REMIND_EVERY;
                    tracing::error!(journal = %self.name, error = %err, failing_s = now.saturating_duration_since(f.since).as_secs(), "lease journal still failing: ACKs that need it are not sent");
                }
                self.failure = Some(f);
            }
        }
    }
}
