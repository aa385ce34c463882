//! What the core reports about transfers: one event when a transfer
//! starts and one when it ends, kept in a bounded queue the driver drains
//! with [`TftpServer::poll_event`](super::TftpServer::poll_event).
//!
//! The queue never grows past its capacity: when the driver does not
//! drain it, the oldest events are dropped and counted
//! ([`TftpCounters::events_dropped`](super::TftpCounters::events_dropped)).
//! Its storage is allocated once, when the core is built, so queueing an
//! event never allocates.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Events the queue holds by default: far more than one loop iteration of
/// a shard produces.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// A transfer was accepted and its first packet queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferStarted {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The client's MAC, when the MAC lookup knows its address.
    pub mac: Option<[u8; 6]>,
    /// The normalised path requested.
    pub file: Arc<str>,
    /// Bytes the transfer sends (after netascii conversion).
    pub size: u64,
    /// Negotiated block size.
    pub blksize: u16,
    /// Negotiated window size.
    pub windowsize: u16,
}

/// A transfer left the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEnded {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The client's MAC, as known when the transfer started.
    pub mac: Option<[u8; 6]>,
    /// The normalised path requested.
    pub file: Arc<str>,
    /// Bytes the transfer sends (after netascii conversion).
    pub size: u64,
    /// How it ended.
    pub outcome: TransferOutcome,
    /// File bytes the client acknowledged.
    pub bytes_acked: u64,
    /// Packets (DATA blocks and OACKs) sent again.
    pub retransmits: u32,
    /// Time from the request to the end.
    pub duration: Duration,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferOutcome {
    /// The final block was acknowledged.
    Completed,
    /// The client stopped answering: `max_retries` timeouts in a row.
    TimedOut,
    /// Every block was sent and all but the final one acknowledged; the
    /// final ACK never came. The client most likely has the whole file:
    /// iPXE starts an image it fetched (e.g. `refind_x64.efi`) at once and
    /// its final ACK is often never sent.
    FinalAckMissing,
    /// The client sent an ERROR (other than an option refusal).
    ClientError {
        /// The client's error code.
        code: u16,
        /// The client's message (invalid UTF-8 replaced).
        message: Box<str>,
    },
    /// The client answered the OACK with ERROR 8 (OVMF's size probe).
    OptionsRefused,
    /// The client sent a fresh request from the same address and port.
    Replaced,
    /// The client sent a packet that has no place in a read transfer.
    ProtocolViolation,
    /// An ICMP destination unreachable came back for a packet sent to the
    /// client: nobody there asked for the transfer (a spoofed request) or
    /// the client is gone.
    Unreachable,
}

impl TransferOutcome {
    /// Whether the file was delivered.
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

impl fmt::Display for TransferOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completed => f.write_str("completed"),
            Self::TimedOut => f.write_str("timed out"),
            Self::FinalAckMissing => f.write_str("final ACK missing"),
            Self::ClientError { code, message } => write!(f, "client error {code}: {message}"),
            Self::OptionsRefused => f.write_str("options refused"),
            Self::Replaced => f.write_str("replaced by a new request"),
            Self::ProtocolViolation => f.write_str("protocol violation"),
            Self::Unreachable => f.write_str("client unreachable"),
        }
    }
}

/// One thing that happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// A transfer started.
    Started(TransferStarted),
    /// A transfer ended.
    Ended(TransferEnded),
}

impl TransferEvent {
    /// The client's address and port.
    pub fn client(&self) -> SocketAddr {
        match self {
            Self::Started(e) => e.client,
            Self::Ended(e) => e.client,
        }
    }

    /// The client's MAC, when known.
    pub fn mac(&self) -> Option<[u8; 6]> {
        match self {
            Self::Started(e) => e.mac,
            Self::Ended(e) => e.mac,
        }
    }

    /// The path requested.
    pub fn file(&self) -> &str {
        match self {
            Self::Started(e) => &e.file,
            Self::Ended(e) => &e.file,
        }
    }
}

/// A bounded FIFO of events that drops its oldest entry when full.
#[derive(Debug)]
pub(crate) struct EventQueue {
    events: VecDeque<TransferEvent>,
    capacity: usize,
    dropped: u64,
}

impl EventQueue {
    /// A queue of at most `capacity` events, allocated now.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// Queues `event`, dropping the oldest one when full.
    pub(crate) fn push(&mut self, event: TransferEvent) {
        if self.capacity == 0 {
            self.dropped += 1;
            return;
        }
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    /// The oldest queued event.
    pub(crate) fn pop(&mut self) -> Option<TransferEvent> {
        self.events.pop_front()
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(port: u16) -> TransferEvent {
        TransferEvent::Started(TransferStarted {
            client: SocketAddr::from(([10, 0, 0, 1], port)),
            mac: None,
            file: Arc::from("ipxe.efi"),
            size: 1,
            blksize: 512,
            windowsize: 1,
        })
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let mut q = EventQueue::new(2);
        for port in 1..=3 {
            q.push(started(port));
        }
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop().map(|e| e.client().port()), Some(2));
        assert_eq!(q.pop().map(|e| e.client().port()), Some(3));
        assert_eq!(q.pop(), None);
        let mut none = EventQueue::new(0);
        none.push(started(1));
        assert_eq!((none.dropped(), none.pop()), (1, None));
    }

    #[test]
    fn outcomes_read_as_reasons() {
        let error = TransferOutcome::ClientError {
            code: 0,
            message: "disk full".into(),
        };
        assert_eq!(error.to_string(), "client error 0: disk full");
        assert_eq!(TransferOutcome::TimedOut.to_string(), "timed out");
        assert!(TransferOutcome::Completed.is_completed());
        assert!(!TransferOutcome::OptionsRefused.is_completed());
    }
}
