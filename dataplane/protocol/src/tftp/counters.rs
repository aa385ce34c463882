//! What the TFTP core counts, for the driver's metrics.

use super::admission::Refusal;
use super::wire::ErrorCode;

/// Monotonic counters of one server core. Plain integers: the driver reads
/// them (e.g. once a second) and exports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TftpCounters {
    /// Read requests accepted (a transfer record was created).
    pub transfers_started: u64,
    /// Transfers whose final block was acknowledged.
    pub transfers_completed: u64,
    /// Transfers ended by a client ERROR (other than an option refusal), a
    /// protocol violation, a fresh request from the same client, or an
    /// ICMP unreachable from the client's address.
    pub transfers_failed: u64,
    /// Transfers dropped after `max_retries` timeouts.
    pub transfers_timed_out: u64,
    /// Clients that answered the OACK with ERROR 8 (OVMF's size probe).
    pub option_refusals: u64,
    /// Packets sent again (DATA blocks and OACKs).
    pub retransmits: u64,
    /// DATA packets queued, first sends and resends.
    pub data_blocks_sent: u64,
    /// File bytes queued in DATA packets, first sends and resends.
    pub bytes_sent: u64,
    /// ERROR packets sent, indexed by error code 0..=8.
    pub errors_sent: [u64; 9],
    /// Datagrams that did not parse: answered with ERROR 4 on the listen
    /// port, dropped silently on a data port.
    pub malformed_dropped: u64,
    /// Transfer events dropped because the driver did not take them in
    /// time (the event queue was full).
    pub events_dropped: u64,
    /// Read requests refused by admission, indexed by [`Refusal`] (per
    /// client cap, per client rate, full transfer table, no port).
    pub refused: [u64; Refusal::ALL.len()],
    /// Idle clients forgotten to keep the client table bounded.
    pub clients_evicted: u64,
}

impl TftpCounters {
    /// ERROR packets sent with `code`.
    pub fn errors(&self, code: ErrorCode) -> u64 {
        self.errors_sent[code as usize]
    }

    /// Read requests refused for `reason`.
    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize]
    }
}
