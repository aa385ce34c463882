//! What the server asks the driver to do with a message.
//!
//! A reply that changes a binding comes wrapped in a [`Commit`]: the driver
//! gets at the [`Transmit`] only by calling [`Commit::persisted`], which it
//! must do after the records are durable (raft-rs's `Ready`/`advance`
//! discipline). Replies are written into the caller's buffer; a
//! [`Transmit`] says how long the reply is and where it goes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::dhcp::event::Event;
use crate::dhcp::probe::ProbeMethod;
use crate::dhcp::record::{LeaseRecord, RecordBatch};

/// UDP port of DHCP servers and relays.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Unicast to the relay agent (`giaddr`, port 67).
    Relay(SocketAddrV4),
    /// Unicast to a configured client, routed (the kernel resolves the
    /// neighbour). This server does not produce it any more: replies to a
    /// client's `ciaddr` are `Direct` or broadcast, so that no client
    /// datagram makes the server ARP.
    Unicast(SocketAddrV4),
    /// Limited broadcast, 255.255.255.255:68.
    Broadcast,
    /// Unicast to an address the client does not have yet (`yiaddr`,
    /// port 68), sent to `mac` without ARP. A driver that cannot add the
    /// neighbour entry may broadcast instead.
    Direct {
        /// `yiaddr:68`.
        addr: SocketAddrV4,
        /// The client's hardware address.
        mac: [u8; 6],
    },
}

/// A reply ready to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: Destination,
    /// Source address to send from (the server identifier).
    pub src_ip: Ipv4Addr,
    /// Interface to send on (the ingress interface).
    pub ifindex: u32,
    /// Length of the reply at the start of the output buffer.
    pub len: usize,
}

/// Records to persist, and the reply that may leave only afterwards.
///
/// Deliberately neither `Copy` nor `Clone`: [`Commit::persisted`] consumes
/// it, so the records must be read (and written) before the reply is
/// reachable, and no copy of the reply can be sent without them:
///
/// ```compile_fail
/// fn keep_a_copy<T: Clone>(_: &T) {}
/// fn resend(commit: &bootwave_protocol::dhcp::Commit) {
///     keep_a_copy(commit);
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
#[must_use = "persist the records, then call `persisted` and send the reply"]
pub struct Commit {
    records: RecordBatch,
    transmit: Option<Transmit>,
}

impl Commit {
    pub(crate) fn new(records: RecordBatch, transmit: Option<Transmit>) -> Self {
        Self { records, transmit }
    }

    /// The records to append to the journal, in order.
    pub fn records(&self) -> &[LeaseRecord] {
        self.records.as_slice()
    }

    /// Call once the records are durable: returns the reply to send, if any
    /// (DECLINE and RELEASE have none).
    pub fn persisted(self) -> Option<Transmit> {
        self.transmit
    }
}

/// Identifies a ping check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeToken(pub(crate) u64);

impl ProbeToken {
    /// The token as a number (for the driver's bookkeeping, e.g. an ICMP
    /// echo identifier/sequence).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A request to ping-check an address before offering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Identifies the probe (`DhcpServer::probe_not_sent`,
    /// `DhcpServer::probe_result`).
    pub token: ProbeToken,
    /// The address to probe.
    pub addr: Ipv4Addr,
    /// The interface the DISCOVER came in on.
    pub ifindex: u32,
    /// How long the core waits for an answer before offering the address
    /// (the core keeps this deadline; the driver keeps none).
    pub timeout: Duration,
    /// ARP on the ingress interface (on-link) or ICMP echo (relayed).
    pub method: ProbeMethod,
}

/// What to do after a message.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Nothing (the event says why).
    None,
    /// Send the reply; no binding changed.
    Send(Transmit),
    /// Persist the records, then send the reply if there is one.
    Commit(Commit),
    /// Probe the address, then report answers with
    /// `DhcpServer::probe_answered`; the core resumes the DISCOVER at the
    /// deadline by itself (`DhcpServer::next_timed_out_probe`).
    Probe(Probe),
}

/// The result of handling one message.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Handled {
    /// What the driver must do.
    pub action: Action,
    /// What happened, for logs and metrics.
    pub event: Event,
}
