//! The TFTP server core (RFC 1350, 2347, 2348, 2349, 7440): read-only,
//! sans-IO, one instance per shard.
//!
//! # Shape
//!
//! A [`TftpServer`] owns a table of compact transfer records (a slab with a
//! free list, indexed by `(client address, local port)`), one timer heap and
//! a handful of counters. It never touches a socket, a file or the clock:
//! the driver passes every datagram in with the time it arrived and carries
//! out the sends the core queues in a [`TxQueue`]. Files come from a
//! [`Resolver`] as shared immutable bytes ([`FileData`]); DATA sends name a
//! slice of them instead of copying.
//!
//! Requests arrive on the listen port (`TftpSettings::port`). With
//! [`ServerOptions::per_transfer_ports`] each transfer is served from a
//! port of its own (RFC 1350's random TID): the driver opens a socket on a
//! kernel-chosen ephemeral port and hands the port in with
//! [`TftpServer::add_transfer_port`] whenever
//! [`TftpServer::wants_transfer_port`] says so, and closes it when
//! [`TftpServer::poll_released_port`] gives it back; the core keeps no
//! socket and chooses no number, it only records which port a transfer
//! owns. Without that option transfers share a few fixed data ports given
//! at construction. Either way a datagram is matched to a transfer by the
//! pair (client address and port, local port): anything else on a data
//! port gets ERROR 5 and leaves every transfer as it was.
//!
//! # The driving loop
//!
//! ```no_run
//! # use std::time::Instant;
//! # use bootwave_protocol::net::RecvMeta;
//! # use bootwave_protocol::tftp::{Payload, Resolver, TftpServer, TxQueue};
//! # fn recv(_: Option<Instant>) -> Option<(RecvMeta, Vec<u8>)> { None }
//! # fn send_scatter(_: &RecvMeta, _: &[&[u8]]) {}
//! # fn run<R: Resolver>(mut server: TftpServer<R>) {
//! let mut out = TxQueue::new();
//! loop {
//!     // 1. Wait for a datagram or the next deadline, whichever is first.
//!     let deadline = server.poll_timeout();
//!     let now = Instant::now();
//!     match recv(deadline) {
//!         // 2. Feed datagrams in, with the time they arrived.
//!         Some((meta, datagram)) => server.handle(now, &meta, &datagram, &mut out),
//!         // 3. Or let timers fire (retransmissions, dropping dead clients).
//!         None => server.handle_timeout(now, &mut out),
//!     }
//!     // 4. Send what was queued, in order, from `t.src_ip`:`t.local_port`
//!     //    to `t.dest`. `out.batches()` groups a window
//!     //    into runs suitable for one UDP GSO send; `out.parts(t)` gives
//!     //    the header and the file slice for a scatter send. A file `Arc`
//!     //    can be cloned from `out.file(..)` to keep the bytes alive until
//!     //    an asynchronous send completes.
//!     for t in out.transmits() {
//!         let (header, body) = out.parts(t);
//!         # let meta = RecvMeta { src: t.dest, dst_ip: t.dest.ip(), local_port: t.local_port, ifindex: 0 };
//!         send_scatter(&meta, &[header, body]);
//!     }
//!     // 5. Reuse the queue: no allocation once it has warmed up.
//!     out.clear();
//!     // 6. Take the transfer events (started, ended with its outcome).
//!     while let Some(event) = server.poll_event() {
//!         # let _ = event;
//!     }
//! }
//! # }
//! ```
//!
//! A deadline from [`TftpServer::poll_timeout`] may lie in the past: then
//! `handle_timeout` stopped at its burst budget and wants to be called again
//! once the queue has been flushed.
//!
//! For a graceful stop call [`TftpServer::drain`], keep driving until
//! [`TftpServer::is_drained`], then drop the core.
//!
//! # Behaviour in brief
//!
//! - Options: `blksize` (clamped to `max_blksize` and `mtu − 32`),
//!   `timeout` (1–255 s, and at most `max_timeout`, else not acknowledged),
//!   `tsize` (the real size, converted for netascii),
//!   `windowsize` (clamped to `max_windowsize` and to the burst budget).
//!   Names are case-insensitive; unknown options are ignored; without an
//!   accepted option there is no OACK.
//! - An ACK inside the window moves it (a partial-window ACK resumes after
//!   the acknowledged block); duplicates and old ACKs are ignored, so no
//!   ACK ever causes a retransmission of what it does not acknowledge,
//!   except the client's timeout ACK of the block before the window,
//!   which gets the window again when it comes more than two round trips
//!   after it went out (a repeat sooner than that gets nothing).
//! - Block numbers wrap from 65535 to 0.
//! - Retransmission: the negotiated timeout, else an RFC 6298 estimate
//!   bounded by `min_timeout..max_timeout` with exponential backoff;
//!   after `max_retries` timeouts with nothing heard from the client the
//!   transfer is dropped. A transfer that never got its first ACK is
//!   dropped within `max_timeout × min(max_retries, 5)` of its request,
//!   whatever it negotiated.
//! - Admission, per client IP: at most `max_transfers_per_client` held
//!   transfers (else ERROR 0), and a token bucket on read requests (an RRQ
//!   over the rate is dropped unanswered, so the client retries later and
//!   nothing is reflected). Every answer that starts no transfer spends a
//!   token too — ERROR 0 for the cap, ERROR 4 to a malformed or mail-mode
//!   request, ERROR 2 to a WRQ, ERROR 5 to a stranger on a transfer port —
//!   so a flood gets at most the bucket's worth back, whatever it sends.
//!   Refusals are counted by reason and logged at most once a second per
//!   reason.
//! - An ICMP unreachable for a packet sent to a transfer's client
//!   ([`TftpServer::handle_unreachable`]) ends that transfer: the victim
//!   of a spoofed request rejects the OACK, and blind ACKs then find no
//!   transfer to drive.
//! - File names are normalised by [`normalize_path`] before the resolver
//!   sees them; `..`, control characters and over-long names are refused.

mod admission;
mod counters;
mod events;
mod file;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
mod netascii;
mod options;
mod path;
mod server;
mod timers;
mod transfer;
mod tx;
pub mod wire;

#[cfg(test)]
mod tests;

pub use admission::{DEFAULT_CLIENT_TABLE_CAPACITY, Refusal};
pub use counters::TftpCounters;
pub use events::{
    DEFAULT_EVENT_CAPACITY, TransferEnded, TransferEvent, TransferOutcome, TransferStarted,
};
pub use file::{FileData, FileVersion, MacLookup, ResolveRequest, Resolved, Resolver};
pub use netascii::{NetasciiData, converted_len as netascii_len};
pub use options::{DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE, MTU_OVERHEAD};
pub use path::{DEFAULT_MAX_PATH_LEN, PathError, normalize as normalize_path};
pub use server::{DEFAULT_BURST_BUDGET_BYTES, MAX_SPARE_PORTS, ServerOptions, TftpServer};
pub use tx::{FileIndex, Payload, Transmit, TxQueue};
pub use wire::{ErrorCode, Mode, Packet, ParseError};
