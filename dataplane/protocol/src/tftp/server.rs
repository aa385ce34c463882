//! The server core: requests in, transfers in a table, sends out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::admission::{Admission, DEFAULT_CLIENT_TABLE_CAPACITY, Refusal};
use super::counters::TftpCounters;
use super::events::{
    DEFAULT_EVENT_CAPACITY, EventQueue, TransferEnded, TransferEvent, TransferOutcome,
    TransferStarted,
};
use super::options::{Limits, Negotiated};
use super::path::{self, PathError};
use super::timers::{TimerEntry, TimerHeap};
use super::transfer::{AckOutcome, NEVER, Netascii, RtoBounds, Transfer};
use super::tx::{Route, TxQueue};
use super::wire::{self, ErrorCode, Mode, Packet, Request};
use super::{MacLookup, ResolveRequest, Resolved, Resolver};
use crate::config::TftpSettings;
use crate::net::RecvMeta;

/// Default burst budget: Linux's default socket send buffer
/// (`net.core.wmem_default`).
pub const DEFAULT_BURST_BUDGET_BYTES: usize = 212_992;

/// Most per-transfer ports the core holds before a request uses one.
pub const MAX_SPARE_PORTS: usize = 4;

/// Lower bound of the adaptive timeout whatever the configuration says.
const RTO_FLOOR: Duration = Duration::from_millis(1);
/// Timeout before a transfer has an RTT sample (RFC 6298).
const INITIAL_RTO: Duration = Duration::from_secs(1);

/// Tuning that belongs to the driver rather than the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Bytes of DATA datagrams (headers included) one window, and one
    /// [`TftpServer::handle_timeout`] call, may queue at once: the socket
    /// send buffer. Windows are negotiated down to fit.
    pub burst_budget_bytes: usize,
    /// Longest accepted file name in bytes.
    pub max_path_len: usize,
    /// Transfer events kept until [`TftpServer::poll_event`] takes them;
    /// beyond it the oldest are dropped and counted.
    pub event_capacity: usize,
    /// Idle clients (rate state only) remembered per shard; the oldest is
    /// forgotten first. Clients holding a transfer are always kept.
    pub client_table_capacity: usize,
    /// Serve every transfer from a port of its own that the driver hands
    /// in with [`TftpServer::add_transfer_port`] (RFC 1350's random TID),
    /// instead of the fixed data ports: an off-path host cannot guess where
    /// to send a blind ACK. ERRORs to requests then come from the listen
    /// port, and a finished transfer's port is handed back through
    /// [`TftpServer::poll_released_port`].
    pub per_transfer_ports: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            burst_budget_bytes: DEFAULT_BURST_BUDGET_BYTES,
            max_path_len: path::DEFAULT_MAX_PATH_LEN,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            client_table_capacity: DEFAULT_CLIENT_TABLE_CAPACITY,
            per_transfer_ports: false,
        }
    }
}

/// One entry of the transfer table: a transfer or a free slot.
pub(crate) type Slot = Option<Transfer>;

/// What a transfer's events need and its hot record does not hold, kept
/// in a side table indexed by slot: written at the start, read at the end,
/// touched in between only by a retransmission.
#[derive(Debug)]
struct TransferMeta {
    file: Arc<str>,
    mac: Option<[u8; 6]>,
    /// Ticks at the request.
    started: u64,
    retransmits: u32,
}

/// Timeouts a transfer that never got its first ACK may take at most (fewer
/// when `max_retries` is lower): a spoofed request holds its slot for
/// `max_timeout` × this, however patient the server is with clients that
/// answer.
const FIRST_ACK_TIMEOUTS: u8 = 5;

/// A TFTP read-only server core for one shard. See the [module
/// docs](super) for the driving loop.
pub struct TftpServer<R> {
    resolver: R,
    mac_lookup: Option<Box<dyn MacLookup>>,
    limits: Limits,
    rto: RtoBounds,
    max_retries: u8,
    max_transfers: usize,
    /// A transfer without a first ACK is dropped this long (µs) after its
    /// request: `max_timeout × min(max_retries, FIRST_ACK_TIMEOUTS)`.
    first_ack_budget: u64,
    admission: Admission,
    /// Per refusal reason: when it was last logged, and refusals since.
    refusal_log: [(Option<u64>, u64); Refusal::ALL.len()],
    max_path_len: usize,
    listen_port: u16,
    data_ports: Box<[u16]>,
    /// Per-transfer ports: opened by the driver and not yet used (at most
    /// a few), and those of ended transfers for the driver to close.
    per_transfer_ports: bool,
    spare_ports: Vec<u16>,
    released_ports: Vec<u16>,
    slots: Vec<Slot>,
    /// Per slot, the event metadata of its transfer.
    meta: Vec<Option<TransferMeta>>,
    /// Per slot, the conversion state of a netascii transfer (`None` for
    /// octet).
    netascii: Vec<Option<Netascii>>,
    /// Per slot, bumped each time it is freed, so stale timers are
    /// recognised.
    generations: Vec<u32>,
    free: Vec<u32>,
    /// Transfers by client address (one per address: a new request from
    /// it replaces the old transfer); the slot's record names its port.
    index: HashMap<SocketAddr, u32>,
    timers: TimerHeap,
    epoch: Option<Instant>,
    draining: bool,
    counters: TftpCounters,
    events: EventQueue,
    path_buf: String,
}

impl<R> std::fmt::Debug for TftpServer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("listen_port", &self.listen_port)
            .field("data_ports", &self.data_ports)
            .field("active", &self.index.len())
            .field("draining", &self.draining)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<R: Resolver> TftpServer<R> {
    /// A core answering RRQs on `settings.port` and serving transfers from
    /// `data_ports` (the listen port is used when none is given), with the
    /// default [`ServerOptions`].
    pub fn new(settings: &TftpSettings, data_ports: &[u16], resolver: R) -> Self {
        Self::with_options(settings, data_ports, resolver, ServerOptions::default())
    }

    /// Like [`TftpServer::new`] with explicit driver tuning.
    pub fn with_options(
        settings: &TftpSettings,
        data_ports: &[u16],
        resolver: R,
        options: ServerOptions,
    ) -> Self {
        let micros = |d: Duration| u32::try_from(d.max(RTO_FLOOR).as_micros()).unwrap_or(u32::MAX);
        let (min, max) = (micros(settings.min_timeout), micros(settings.max_timeout));
        let max = max.max(min);
        let mut ports: Vec<u16> = data_ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            ports.push(settings.port);
        }
        Self {
            resolver,
            mac_lookup: None,
            limits: Limits::new(
                settings.max_blksize,
                settings.mtu,
                settings.max_windowsize,
                options.burst_budget_bytes,
            )
            .with_max_timeout(settings.max_timeout),
            rto: RtoBounds {
                min,
                max,
                initial: micros(INITIAL_RTO).clamp(min, max),
            },
            max_retries: settings.max_retries,
            max_transfers: settings.max_transfers as usize,
            first_ack_budget: u64::try_from(
                settings
                    .max_timeout
                    .max(RTO_FLOOR)
                    .saturating_mul(u32::from(settings.max_retries.clamp(1, FIRST_ACK_TIMEOUTS)))
                    .as_micros(),
            )
            .unwrap_or(u64::MAX),
            admission: Admission::new(&settings.admission, options.client_table_capacity),
            refusal_log: [(None, 0); Refusal::ALL.len()],
            max_path_len: options.max_path_len,
            listen_port: settings.port,
            data_ports: ports.into_boxed_slice(),
            per_transfer_ports: options.per_transfer_ports,
            spare_ports: Vec::new(),
            released_ports: Vec::new(),
            slots: Vec::new(),
            meta: Vec::new(),
            netascii: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            timers: TimerHeap::default(),
            epoch: None,
            draining: false,
            counters: TftpCounters::default(),
            events: EventQueue::new(options.event_capacity),
            path_buf: String::new(),
        }
    }

    /// Installs the "MAC by client IP" lookup whose answer is passed to the
    /// resolver.
    pub fn set_mac_lookup(&mut self, lookup: impl MacLookup + 'static) {
        self.mac_lookup = Some(Box::new(lookup));
    }

    /// The resolver.
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// The counters so far.
    pub fn counters(&self) -> &TftpCounters {
        &self.counters
    }

    /// The oldest transfer event not yet taken. Drain it after every
    /// [`TftpServer::handle`] and [`TftpServer::handle_timeout`]: the queue
    /// is bounded and drops its oldest events when full.
    pub fn poll_event(&mut self) -> Option<TransferEvent> {
        self.events.pop()
    }

    /// Hands in a port the driver opened for the next transfer (with
    /// [`ServerOptions::per_transfer_ports`]). Each port serves one
    /// transfer; at most [`MAX_SPARE_PORTS`] are kept, beyond that the port
    /// is handed straight back through [`TftpServer::poll_released_port`].
    pub fn add_transfer_port(&mut self, port: u16) {
        if self.spare_ports.len() < MAX_SPARE_PORTS && port != self.listen_port {
            self.spare_ports.push(port);
        } else {
            self.released_ports.push(port);
        }
    }

    /// Whether the next read request would find no port: the driver should
    /// open one and [`TftpServer::add_transfer_port`] it before handing in
    /// a datagram of the listen port.
    pub fn wants_transfer_port(&self) -> bool {
        self.per_transfer_ports && self.spare_ports.is_empty() && !self.draining
    }

    /// A port whose transfer ended (or that is no longer needed): the
    /// driver closes its socket. Drain after every [`TftpServer::handle`]
    /// and [`TftpServer::handle_timeout`].
    pub fn poll_released_port(&mut self) -> Option<u16> {
        self.released_ports.pop()
    }

    /// Transfers in the table.
    pub fn active_transfers(&self) -> usize {
        self.index.len()
    }

    /// Entries in the timer heap, live and stale (about one per transfer).
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// Stops accepting requests (they get ERROR 0 "server shutting down");
    /// transfers in flight run to their end.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Whether [`TftpServer::drain`] was called and no transfer is left.
    pub fn is_drained(&self) -> bool {
        self.draining && self.index.is_empty()
    }

    /// Processes one datagram received at `now`, queueing replies in `out`.
    pub fn handle(&mut self, now: Instant, meta: &RecvMeta, datagram: &[u8], out: &mut TxQueue) {
        let now = self.ticks(now);
        let packet = Packet::parse(datagram);
        if meta.local_port == self.listen_port {
            match packet {
                Ok(Packet::Rrq(request)) => return self.on_request(now, meta, &request, out),
                Ok(Packet::Wrq(_)) => {
                    if self.charge(now, meta, out) {
                        self.send_error(
                            out,
                            meta,
                            ErrorCode::AccessViolation,
                            "server is read-only",
                        );
                    }
                    return;
                }
                Err(error) => {
                    debug!(src = %meta.src, %error, "malformed TFTP request");
                    self.counters.malformed_dropped += 1;
                    if self.charge(now, meta, out) {
                        self.send_error(
                            out,
                            meta,
                            ErrorCode::IllegalOperation,
                            "malformed request",
                        );
                    }
                    return;
                }
                // A transfer may share the listen port when no data port
                // was given: look it up below.
                Ok(_) => {}
            }
        }
        let packet = match packet {
            Ok(packet) => packet,
            Err(error) => {
                debug!(src = %meta.src, %error, "malformed TFTP packet dropped");
                self.counters.malformed_dropped += 1;
                return;
            }
        };
        let slot = self.index.get(&meta.src).copied().filter(|&slot| {
            self.transfer(slot)
                .is_some_and(|t| t.local_port == meta.local_port)
        });
        let Some(slot) = slot else {
            // A stranger's datagram is answered like a request: from the
            // sender's bucket, so a sweep of ports reflects no more.
            if !matches!(packet, Packet::Error { .. }) && self.charge(now, meta, out) {
                self.counters.errors_sent[ErrorCode::UnknownTid as usize] += 1;
                out.push_control(reply_route(meta), |buf| {
                    wire::emit_error(buf, ErrorCode::UnknownTid, "unknown transfer ID");
                });
            }
            return;
        };
        match packet {
            Packet::Ack { block } => self.on_ack(now, slot, block, out),
            Packet::Error { code, message } => {
                let refused = code == ErrorCode::OptionsRefused as u16
                    && self.transfer(slot).is_some_and(Transfer::awaiting_oack_ack);
                debug!(src = %meta.src, code, "client ended the transfer");
                let outcome = if refused {
                    TransferOutcome::OptionsRefused
                } else {
                    TransferOutcome::ClientError {
                        code,
                        message: String::from_utf8_lossy(message).into(),
                    }
                };
                self.finish(now, slot, outcome);
            }
            _ => {
                self.counters.errors_sent[ErrorCode::IllegalOperation as usize] += 1;
                out.push_control(reply_route(meta), |buf| {
                    wire::emit_error(buf, ErrorCode::IllegalOperation, "unexpected packet");
                });
                self.finish(now, slot, TransferOutcome::ProtocolViolation);
            }
        }
    }

    /// An ICMP destination unreachable (port, host or network) came back
    /// for a datagram sent from `local_port` to `dest`. The transfer on
    /// that port ends when `dest` is its own client: a spoofed request
    /// names a victim whose kernel rejects the OACK or first DATA, and the
    /// transfer must not be left for blind ACKs to drive. A report about
    /// any other destination (an ERROR 5 sent to a stranger) changes
    /// nothing.
    pub fn handle_unreachable(&mut self, now: Instant, local_port: u16, dest: SocketAddr) {
        let now = self.ticks(now);
        let slot = self.index.get(&dest).copied().filter(|&slot| {
            self.transfer(slot)
                .is_some_and(|t| t.local_port == local_port)
        });
        let Some(slot) = slot else {
            return;
        };
        debug!(client = %dest, "client unreachable");
        // A client that closed its port once the final block arrived (iPXE
        // starting the image it fetched) makes a resent final block bounce:
        // the same end as a final ACK that never came.
        let outcome = match self.transfer(slot) {
            Some(t) if t.only_final_ack_missing() => TransferOutcome::FinalAckMissing,
            _ => TransferOutcome::Unreachable,
        };
        self.finish(now, slot, outcome);
    }

    /// When [`TftpServer::handle_timeout`] should next be called. A deadline
    /// in the past means "as soon as the queue is flushed".
    pub fn poll_timeout(&self) -> Option<Instant> {
        let epoch = self.epoch?;
        Some(epoch + Duration::from_micros(self.timers.earliest()?))
    }

    /// Retransmits or drops every transfer whose timer expired by `now`,
    /// stopping early once a burst budget of DATA is queued (the rest stay
    /// due; see [`TftpServer::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant, out: &mut TxQueue) {
        let now = self.ticks(now);
        let mut spent = 0;
        while spent < self.limits.burst_budget {
            let Some(entry) = self.timers.pop_due(now) else {
                break;
            };
            let generation = self.generations.get(entry.slot as usize).copied();
            let Some(transfer) = self.transfer_mut(entry.slot) else {
                continue;
            };
            if generation != Some(entry.generation) || transfer.scheduled != entry.deadline {
                continue;
            }
            transfer.scheduled = NEVER;
            if transfer.deadline > now {
                let deadline = transfer.deadline;
                self.arm(entry.slot, deadline);
                continue;
            }
            spent += self.on_expired(now, entry.slot, out);
        }
    }

    /// Microseconds since the epoch (set by the first call).
    fn ticks(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(NEVER - 1)
    }

    fn on_request(&mut self, now: u64, meta: &RecvMeta, request: &Request<'_>, out: &mut TxQueue) {
        let client = meta.src;
        if (self.draining || request.mode == Mode::Mail) && !self.charge(now, meta, out) {
            return;
        }
        if self.draining {
            return self.send_error(out, meta, ErrorCode::NotDefined, "server shutting down");
        }
        if request.mode == Mode::Mail {
            return self.send_error(
                out,
                meta,
                ErrorCode::IllegalOperation,
                "mail mode not supported",
            );
        }
        let negotiated = Negotiated::from_request(request.options, &self.limits);
        if let Some(slot) = self.existing(client) {
            let repeated = self
                .transfer(slot)
                .is_some_and(|t| t.untouched() && t.negotiated() == negotiated);
            if repeated {
                // The client repeated its request: our first answer was
                // lost. Resending costs a token like a request does.
                if let Err(reason) = self.admission.check(client.ip(), now, false) {
                    return self.refuse(now, meta, reason, out);
                }
                self.send_round(now, slot, out);
                return;
            }
            self.finish(now, slot, TransferOutcome::Replaced);
        }
        let admitted = self.admission.check(client.ip(), now, true);
        self.counters.clients_evicted = self.admission.evicted();
        if let Err(reason) = admitted {
            return self.refuse(now, meta, reason, out);
        }
        if self.index.len() >= self.max_transfers {
            return self.refuse(now, meta, Refusal::TableFull, out);
        }
        let Some(local_port) = self.free_port(client) else {
            return self.refuse(now, meta, Refusal::NoPort, out);
        };
        let path = match path::normalize(request.filename, self.max_path_len, &mut self.path_buf) {
            Ok(path) => path,
            Err(error) => {
                debug!(%client, %error, "refused file name");
                return self.send_error(out, meta, ErrorCode::AccessViolation, path_message(error));
            }
        };
        let mac = self
            .mac_lookup
            .as_ref()
            .and_then(|lookup| lookup.mac_of(client.ip()));
        let file = match self.resolver.resolve(&ResolveRequest { path, client, mac }) {
            Resolved::File(file) => file,
            Resolved::NotFound => {
                return self.send_error(out, meta, ErrorCode::FileNotFound, "file not found");
            }
            Resolved::Denied => {
                return self.send_error(out, meta, ErrorCode::AccessViolation, "access denied");
            }
        };
        // Netascii is converted block by block from the shared file as it
        // is sent: a request holds no copy, only a cursor.
        let netascii = (request.mode == Mode::Netascii).then(|| Netascii::new(file.netascii_len()));
        let size = netascii.map_or(file.bytes().len() as u64, |n| n.size);
        let local = (meta.dst_ip, local_port);
        let Some(transfer) = Transfer::new(file, size, client, local, &negotiated, &self.rto)
        else {
            return self.send_error(out, meta, ErrorCode::DiskFull, "file too large");
        };
        if self.per_transfer_ports {
            // The port is spent: it serves this transfer and is closed after.
            self.spare_ports.pop();
        }
        // One line per transfer (not per packet): the boot record of a
        // client, with its MAC when DHCP knows it.
        info!(
            %client,
            mac = %mac.map_or_else(|| "unknown".to_owned(), |m| crate::config::format_mac(&m)),
            file = %path,
            size,
            blksize = negotiated.blksize,
            windowsize = negotiated.windowsize,
            "tftp: transfer started"
        );
        let file: Arc<str> = Arc::from(path);
        let slot = self.insert(
            transfer,
            TransferMeta {
                file: file.clone(),
                mac,
                started: now,
                retransmits: 0,
            },
            netascii,
        );
        self.admission.started(client.ip());
        self.counters.transfers_started += 1;
        self.events.push(TransferEvent::Started(TransferStarted {
            client,
            mac,
            file,
            size,
            blksize: negotiated.blksize,
            windowsize: negotiated.windowsize,
        }));
        self.counters.events_dropped = self.events.dropped();
        self.send_round(now, slot, out);
    }

    fn on_ack(&mut self, now: u64, slot: u32, block: u16, out: &mut TxQueue) {
        let bounds = self.rto;
        let Some(transfer) = self.transfer_mut(slot) else {
            return;
        };
        match transfer.on_ack(block, now, &bounds) {
            AckOutcome::Ignored => {}
            AckOutcome::Advanced | AckOutcome::Resend => {
                self.send_round(now, slot, out);
            }
            AckOutcome::Complete => self.finish(now, slot, TransferOutcome::Completed),
        }
    }

    /// Handles an expired timer; returns the bytes queued.
    fn on_expired(&mut self, now: u64, slot: u32, out: &mut TxQueue) -> usize {
        let (max_retries, max_rto) = (self.max_retries, self.rto.max);
        let first_ack_due = self.first_ack_due(slot);
        let Some(transfer) = self.transfer_mut(slot) else {
            return 0;
        };
        let unanswered = transfer.untouched() && now >= first_ack_due;
        if unanswered || !transfer.on_timeout(max_retries, max_rto) {
            debug!(client = %transfer.client, "transfer timed out");
            let outcome = if transfer.only_final_ack_missing() {
                TransferOutcome::FinalAckMissing
            } else {
                TransferOutcome::TimedOut
            };
            self.finish(now, slot, outcome);
            return 0;
        }
        self.send_round(now, slot, out)
    }

    /// Sends the current round of `slot` and re-arms its timer; returns
    /// the bytes queued.
    fn send_round(&mut self, now: u64, slot: u32, out: &mut TxQueue) -> usize {
        let Some(transfer) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return 0;
        };
        let resent_before = self.counters.retransmits;
        let netascii = self
            .netascii
            .get_mut(slot as usize)
            .and_then(Option::as_mut);
        let bytes = transfer.send_round(now, out, &mut self.counters, netascii);
        let mut deadline = now.saturating_add(u64::from(transfer.rto()));
        if transfer.untouched()
            && let Some(Some(meta)) = self.meta.get(slot as usize)
        {
            deadline = deadline.min(meta.started.saturating_add(self.first_ack_budget));
        }
        let resent = self.counters.retransmits - resent_before;
        if resent > 0
            && let Some(Some(meta)) = self.meta.get_mut(slot as usize)
        {
            let resent = u32::try_from(resent).unwrap_or(u32::MAX);
            meta.retransmits = meta.retransmits.saturating_add(resent);
        }
        self.arm(slot, deadline);
        bytes
    }

    /// Sets the deadline of `slot`, pushing a heap entry only when it moves
    /// earlier than the live one.
    fn arm(&mut self, slot: u32, deadline: u64) {
        let Some(&generation) = self.generations.get(slot as usize) else {
            return;
        };
        let Some(transfer) = self.transfer_mut(slot) else {
            return;
        };
        transfer.deadline = deadline;
        if deadline < transfer.scheduled {
            transfer.scheduled = deadline;
            self.timers.push(TimerEntry {
                deadline,
                slot,
                generation,
            });
        }
    }

    /// When a transfer of `slot` that is still without its first ACK is
    /// dropped.
    fn first_ack_due(&self, slot: u32) -> u64 {
        match self.meta.get(slot as usize) {
            Some(Some(meta)) => meta.started.saturating_add(self.first_ack_budget),
            _ => NEVER,
        }
    }

    /// Spends a token of the sender's bucket for an answer that starts no
    /// transfer (an ERROR to a request or a stranger); `false`, counted as
    /// a rate refusal, when the bucket is empty and nothing may be sent.
    fn charge(&mut self, now: u64, meta: &RecvMeta, out: &mut TxQueue) -> bool {
        let charged = self.admission.check(meta.src.ip(), now, false);
        self.counters.clients_evicted = self.admission.evicted();
        match charged {
            Ok(()) => true,
            Err(reason) => {
                self.refuse(now, meta, reason, out);
                false
            }
        }
    }

    /// Refuses a read request for `reason`: ERROR 0 for a cap, nothing for
    /// the rate (the client retries later; nothing is reflected). Counted,
    /// and logged at most once a second per reason.
    fn refuse(&mut self, now: u64, meta: &RecvMeta, reason: Refusal, out: &mut TxQueue) {
        self.counters.refused[reason as usize] += 1;
        let (last, suppressed) = &mut self.refusal_log[reason as usize];
        if last.is_none_or(|at| now.saturating_sub(at) >= 1_000_000) {
            warn!(
                client = %meta.src,
                reason = reason.name(),
                suppressed = *suppressed,
                "tftp: read request refused"
            );
            *last = Some(now);
            *suppressed = 0;
        } else {
            *suppressed += 1;
        }
        match reason {
            Refusal::PerClientCap => self.send_error(
                out,
                meta,
                ErrorCode::NotDefined,
                "too many transfers from this client",
            ),
            Refusal::TableFull | Refusal::NoPort => {
                self.send_error(out, meta, ErrorCode::NotDefined, "server busy");
            }
            Refusal::Rate => {}
        }
    }

    fn send_error(&mut self, out: &mut TxQueue, meta: &RecvMeta, code: ErrorCode, message: &str) {
        self.counters.errors_sent[code as usize] += 1;
        let route = Route {
            local_port: self.reply_port(meta.src),
            ..reply_route(meta)
        };
        out.push_control(route, |buf| wire::emit_error(buf, code, message));
    }

    fn transfer(&self, slot: u32) -> Option<&Transfer> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn transfer_mut(&mut self, slot: u32) -> Option<&mut Transfer> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The transfer of `client`, if any.
    fn existing(&self, client: SocketAddr) -> Option<u32> {
        self.index.get(&client).copied()
    }

    /// The port a new transfer of `client` is served from: the next spare
    /// per-transfer port, or a fixed data port chosen by the client's
    /// address so clients spread over them.
    fn free_port(&self, client: SocketAddr) -> Option<u16> {
        if self.per_transfer_ports {
            return self.spare_ports.last().copied();
        }
        Some(self.data_ports[port_hash(client) % self.data_ports.len()])
    }

    /// The port ERRORs to a request come from: a data port (as a new TID),
    /// or with per-transfer ports the listen port, so that no port is
    /// opened for a request that is refused.
    fn reply_port(&self, client: SocketAddr) -> u16 {
        if self.per_transfer_ports {
            return self.listen_port;
        }
        self.data_ports[port_hash(client) % self.data_ports.len()]
    }

    fn insert(
        &mut self,
        transfer: Transfer,
        meta: TransferMeta,
        netascii: Option<Netascii>,
    ) -> u32 {
        let key = transfer.client;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(transfer);
                self.meta[slot as usize] = Some(meta);
                self.netascii[slot as usize] = netascii;
                slot
            }
            None => {
                self.slots.push(Some(transfer));
                self.meta.push(Some(meta));
                self.netascii.push(netascii);
                self.generations.push(0);
                // The table never exceeds `max_transfers`, a u32.
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        slot
    }

    fn finish(&mut self, now: u64, slot: u32, outcome: TransferOutcome) {
        let Some(transfer) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        // `meta` grows with `slots` and is filled with every transfer.
        let meta = self.meta.get_mut(slot as usize).and_then(Option::take);
        let size = match self.netascii.get_mut(slot as usize).and_then(Option::take) {
            Some(netascii) => netascii.size,
            None => transfer.file.bytes().len() as u64,
        };
        // `generations` grows with `slots`, so the slot that held a
        // transfer has an entry.
        let generation = &mut self.generations[slot as usize];
        *generation = generation.wrapping_add(1);
        self.free.push(slot);
        self.index.remove(&transfer.client);
        if self.per_transfer_ports {
            self.released_ports.push(transfer.local_port);
        }
        self.admission.ended(transfer.client.ip());
        self.counters.clients_evicted = self.admission.evicted();
        info!(client = %transfer.client, %outcome, "tftp: transfer ended");
        let counter = match outcome {
            TransferOutcome::Completed => &mut self.counters.transfers_completed,
            TransferOutcome::TimedOut | TransferOutcome::FinalAckMissing => {
                &mut self.counters.transfers_timed_out
            }
            TransferOutcome::OptionsRefused => &mut self.counters.option_refusals,
            TransferOutcome::ClientError { .. }
            | TransferOutcome::Replaced
            | TransferOutcome::ProtocolViolation
            | TransferOutcome::Unreachable => &mut self.counters.transfers_failed,
        };
        *counter += 1;
        let Some(meta) = meta else {
            return;
        };
        self.events.push(TransferEvent::Ended(TransferEnded {
            client: transfer.client,
            mac: meta.mac,
            file: meta.file,
            size,
            outcome,
            bytes_acked: transfer.acked_bytes(size),
            retransmits: meta.retransmits,
            duration: Duration::from_micros(now.saturating_sub(meta.started)),
        }));
        self.counters.events_dropped = self.events.dropped();
    }
}

/// Addressing of a reply to `meta`'s sender from where it arrived.
fn reply_route(meta: &RecvMeta) -> Route {
    Route {
        dest: meta.src,
        src_ip: meta.dst_ip,
        local_port: meta.local_port,
    }
}

/// The ERROR 2 message for a refused name.
fn path_message(error: PathError) -> &'static str {
    match error {
        PathError::Empty => "access violation: empty file name",
        PathError::TooLong => "access violation: file name too long",
        PathError::Nul | PathError::Control | PathError::NotUtf8 => {
            "access violation: bad character in file name"
        }
        PathError::ParentDir => "access violation: '..' in file name",
    }
}

/// A cheap, well-mixed hash of a client address for spreading it over the
/// data ports.
fn port_hash(client: SocketAddr) -> usize {
    let ip = match client.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u64) ^ ((bits >> 64) as u64)
        }
    };
    let mixed = (ip ^ u64::from(client.port()) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stay_small() {
        assert!(
            size_of::<Transfer>() <= 128,
            "Transfer is {} bytes",
            size_of::<Transfer>()
        );
        assert!(
            size_of::<Slot>() <= 128,
            "Slot is {} bytes",
            size_of::<Slot>()
        );
    }
}
