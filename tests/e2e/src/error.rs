//! The harness error type.

use std::time::Duration;

/// Why a harness operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A command could not be started at all (binary missing, permissions).
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its stdout and stderr.
        output: String,
    },
    /// A command did not finish before its deadline and was killed.
    #[error("`{command}` still running after {limit:?}; killed:\n{output}")]
    Timeout {
        /// The command line.
        command: String,
        /// The deadline it missed.
        limit: Duration,
        /// The tail of its stdout and stderr.
        output: String,
    },
    /// A condition polled for did not become true before its deadline.
    #[error("waited {limit:?} for {what}")]
    Deadline {
        /// What was awaited.
        what: String,
        /// How long the wait lasted.
        limit: Duration,
    },
    /// A name given to the harness is not usable (too long, bad characters).
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Output of a tool could not be read as expected.
    #[error("{what}:\n{text}")]
    Parse {
        /// What was missing or malformed.
        what: String,
        /// The text (or its tail) that was being read.
        text: String,
    },
    /// A file-system operation of the harness itself failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias for harness operations.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
