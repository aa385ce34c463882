//! Log output that never blocks a shard.
//!
//! Every thread formats its lines into a bounded channel; one writer thread
//! moves them to stderr. When stderr cannot keep up (a slow terminal, a full
//! pipe, a stalled journald) the channel fills and further lines are
//! dropped and counted ([`dropped_lines`], exported as
//! `bootwave_log_lines_dropped_total`) instead of stalling the caller.

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines buffered between the shards and the writer thread.
const BUFFERED_LINES: usize = 16_384;

/// The drop counter of the installed writer.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// How log lines are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber (filter from `RUST_LOG`, default `info`)
/// writing to stderr through the non-blocking writer. Keep the guard for the
/// whole process: dropping it flushes the lines still buffered.
pub fn init(format: Format) -> WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        Format::Human => builder.init(),
        Format::Json => builder.json().init(),
    }
    guard
}

/// Lines dropped because the writer could not keep up (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}
