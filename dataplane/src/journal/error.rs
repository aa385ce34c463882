//! The journal's error type.

use std::{io, path::PathBuf};

/// Everything that can go wrong while opening, writing, replaying or
/// compacting a journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal name is not a plain file-name stem (`[A-Za-z0-9_.-]`, not
    /// starting with a dot, at most 128 bytes).
    #[error("invalid journal name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An operating-system call on a journal file or directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation that failed (`"open"`, `"write"`, `"fdatasync"`, …).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file header is short, has the wrong magic or kind, or fails its
    /// checksum. Headers are synced before a file gets its final name, so
    /// this is never a torn write.
    #[error("{}: bad journal header: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        reason: &'static str,
    },

    /// The file was written by a format version this build does not read.
    #[error("{}: unsupported journal format version {version}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in its header.
        version: u16,
    },

    /// A commit group failed verification and cannot be a torn tail: a later
    /// group proves that the damaged bytes had been synced, or the damage is
    /// in a snapshot (snapshots are synced before they are renamed into place).
    #[error("{}: corrupt journal data at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged commit group.
        offset: u64,
        /// Which check failed.
        reason: &'static str,
    },

    /// The log builds on a snapshot generation newer than the snapshot on
    /// disk, so the snapshot it depends on is missing.
    #[error(
        "{}: log generation {log_generation} has no matching snapshot (found generation {snapshot_generation})",
        path.display()
    )]
    GenerationMismatch {
        /// The log file.
        path: PathBuf,
        /// Generation recorded in the log header.
        log_generation: u64,
        /// Generation of the snapshot on disk (0 when there is none).
        snapshot_generation: u64,
    },

    /// A record is larger than [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN).
    #[error("record of {len} bytes exceeds the {max}-byte limit")]
    RecordTooLarge {
        /// Length of the rejected record.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The open batch already holds [`MAX_GROUP_BODY`](super::MAX_GROUP_BODY)
    /// bytes; commit before appending more.
    #[error("commit group full ({bytes} bytes); commit before appending")]
    GroupFull {
        /// Bytes already in the open batch.
        bytes: usize,
    },

    /// An earlier write or sync failed, or compaction stopped half way; the
    /// file state is unknown and the journal must be reopened (replay decides
    /// what survived). After a failed `fdatasync` the kernel may already have
    /// dropped the dirty pages, so retrying is never safe.
    #[error("{}: journal is unusable after an earlier I/O failure; reopen it", path.display())]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },

    /// The operation needs the commit write in flight to be completed first.
    #[error("a commit write is in flight")]
    CommitInFlight,

    /// A compaction started with `begin_compaction` is not finished yet.
    #[error("a compaction is in flight")]
    CompactionInFlight,

    /// `complete_commit` was called with no commit write in flight.
    #[error("no commit write is in flight")]
    NothingInFlight,

    /// Compaction was asked for while appended records are not yet committed.
    #[error("{count} appended records are not committed yet")]
    Uncommitted {
        /// Records appended since the last commit.
        count: u32,
    },
}

/// Shorthand for journal results.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Builds a closure mapping an `io::Error` to [`JournalError::Io`].
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.into();
    move |source| JournalError::Io { op, path, source }
}
