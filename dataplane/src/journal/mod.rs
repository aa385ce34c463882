//! The append-only lease journal.
//!
//! Each data-plane shard owns one [`Journal`] (one writer, no locks). The
//! DHCP core hands over lease records as opaque bytes; they must be
//! acknowledged by the journal before the reply that depends on them leaves.
//!
//! # Driving it
//!
//! 1. [`Journal::open`] replays snapshot + log and returns the records;
//!    [`Journal::open_streaming`] and [`replay_dir_with`] hand each record to
//!    a callback as it is read, through a bounded buffer (the read chunk or
//!    the largest commit group), never the whole file.
//! 2. Per event-loop turn: [`Journal::append`] each record, then one
//!    [`Journal::commit`] writes them all with one `pwrite` (group commit) and
//!    syncs per policy. Release the replies whose records are acknowledged:
//!    `ticket.acked`, or later `journal.acked_seq() >= ticket.end_seq`.
//! 3. `Batch(d)`: arm a timer at [`Journal::next_sync_at`] and call
//!    [`Journal::sync`] when it fires.
//! 4. When [`Journal::log_bytes`] grows past a multiple of the live set,
//!    [`Journal::compact`] with the live records, or, to keep the shard
//!    serving meanwhile, [`Journal::begin_compaction`] → [`SnapshotJob::run`]
//!    on another thread → [`Journal::finish_compaction`].
//!    [`ShardJournal`] does this (and failure recovery) for a shard.
//!
//! An io_uring driver writes and syncs itself instead of calling `commit`:
//! [`Journal::prepare_commit`] gives `(bytes, offset)` for a `Write`;
//! [`Journal::complete_commit`] takes its result; then, when
//! [`Journal::needs_sync`], [`Journal::begin_sync`] →`Fsync(DATASYNC)` →
//! [`Journal::complete_sync`]. One commit write is in flight at a time;
//! appends meanwhile go to the next batch.
//!
//! # Durability contract
//!
//! A record is *acknowledged* when its sequence number is below
//! [`Journal::acked_seq`]:
//! - `Always`: its group was written and `fdatasync` returned afterwards;
//!   `commit` returns with `acked == true`. Survives power loss.
//! - `Batch(d)`: same, but syncs run at most every `d` (the first commit
//!   after a quiet period syncs at once); replies wait up to `d`.
//! - `Never`: its group was written to the kernel; `commit` returns with
//!   `acked == true`. Survives a process crash, not power loss or a kernel
//!   crash.
//!
//! After a crash, replay returns every acknowledged record, in order, plus
//! possibly some later ones that were written but not yet acknowledged.
//! Records appended but not committed are lost. Commit groups are atomic:
//! replay returns all of a group or none of it. Any failed write or sync
//! poisons the journal ([`JournalError::Poisoned`]): records not yet
//! acknowledged must be treated as lost; a failed `fdatasync` is never
//! retried (the kernel may have dropped the pages). [`Journal::recover`]
//! starts over from the caller's live set (a fresh snapshot and log, the
//! damaged log never read again), so a torn group left by a failed write
//! goes with the old log.
//!
//! # On-disk format (version 1, little-endian)
//!
//! Files in the journal directory: `<name>.log`, optionally `<name>.snap`;
//! `*.tmp` files are leftovers of interrupted steps, removed on open. The
//! journal exists iff its log exists.
//!
//! File header, 40 bytes: magic `BWJOURNL`, version `u16`, kind `u16`
//! (1 log, 2 snapshot), generation `u64`, first sequence number `u64`,
//! record count `u64` (snapshot only), CRC32 `u32` of the preceding bytes.
//!
//! Then commit groups, one per commit: body length `u32`, CRC32 `u32`
//! (over the length and everything after the CRC field), first sequence
//! number `u64`, `synced_end` `u64` (log offset known durable when the group
//! was written), record count `u32`, then the body: per record a `u32`
//! length and the bytes. Sequence numbers run on without gaps across groups
//! and generations.
//!
//! A snapshot is a header plus groups (1 MiB chunks, `synced_end` 0) with
//! exactly `record count` records. A log applies on top of the snapshot of
//! the same generation (generation 0: no snapshot) and its first sequence
//! number continues the snapshot's.
//!
//! # Replay and damage policy
//!
//! Groups are verified in order. At the first group that fails (short, bad
//! checksum, malformed, out of sequence) the scan looks for a later group
//! that verifies and whose `synced_end` lies beyond the failure. If one
//! exists, the failed bytes had been synced before: that is corruption and
//! open fails with [`JournalError::Corrupt`] (offset included). Otherwise it
//! is a torn tail (data written but never acknowledged by a sync): it is
//! dropped, the file truncated and synced, and [`Replay::torn_tail`] reports
//! it. Limit: damage to synced data that no later group vouches for (the
//! last groups) is indistinguishable from a torn write and is dropped the
//! same way. Damaged headers and snapshots are always errors: both are
//! synced before they get their final name.
//!
//! # Compaction
//!
//! [`Journal::compact`]: write `<name>.snap.tmp` (generation + 1), sync,
//! rename to `<name>.snap`, sync the directory; write `<name>.log.tmp`
//! (generation + 1, empty), sync, rename to `<name>.log`, sync the
//! directory. Its snapshot is numbered after every record of the old log.
//!
//! A snapshot covers the records numbered below its end; a log older than
//! the snapshot contributes its records from that number on, and none when
//! it ends before. So a crash at any point replays either the old state or
//! exactly the live set.
//!
//! While running ([`Journal::begin_compaction`]): the live set is captured
//! as a snapshot numbered to end at the current sequence number; another
//! thread writes it into place while the log goes on (records appended
//! meanwhile replay on top of it); [`Journal::finish_compaction`] then
//! writes the records appended since the capture into `<name>.log.tmp` of
//! the new generation, syncs, renames it over the log and syncs the
//! directory. A crash at any point replays the old state plus everything
//! acknowledged since.
//!
//! # Changing the shard count
//!
//! [`replay_dir`] reads every journal without touching it. Name journals by
//! layout (e.g. `shard-3-of-8`) so that the new ones never overwrite old
//! ones: write each new shard's records with [`Journal::create_from`], then
//! [`retire`] the old names. A crash in between leaves both layouts; replay
//! returns both, so records should be idempotent full-state upserts that the
//! core can merge.

mod compact;
mod error;
mod files;
mod format;
mod replay;
mod scan;
mod upkeep;
mod writer;

pub use compact::{CompactStats, SnapshotJob, SnapshotOutcome};
pub use error::{JournalError, Result};
pub use format::{MAX_GROUP_BODY, MAX_RECORD_LEN};
pub use replay::{NamedInfo, NamedReplay, Replay, ReplayInfo, replay_dir, replay_dir_with, retire};
pub use scan::TornTail;
pub use upkeep::{CompactionPolicy, JournalGauges, ShardJournal};
pub use writer::{CommitTicket, Journal, JournalStats, PreparedWrite, SyncToken, WriteProgress};

#[cfg(test)]
mod tests;
