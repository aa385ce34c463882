//! The TFTP half of a shard: feeds datagrams to the core and turns its
//! [`TxQueue`] into driver sends (DATA windows without copying, control
//! packets in pooled buffers).
//!
//! Each transfer is served from a socket of its own on a port the kernel
//! draws at random ([`Tx::open_socket`]): before a datagram of the listen
//! port reaches the core, a socket is opened if the core has no spare
//! port, and the socket of every transfer that ended is closed after the
//! sends it queued. At most `max-transfers` + [`MAX_SPARE_PORTS`] such
//! sockets are open per shard; when none can be opened (the bound, EMFILE,
//! EADDRINUSE) the request is refused by the core (`no_port`) and the
//! failure counted here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::tftp::{MAX_SPARE_PORTS, Payload, TftpServer, TxQueue};

use super::interfaces::Served;
use super::service::SocketRole;
use super::stats::{Counters, RuntimeDrop};
use crate::driver::{Chunk, MAX_WINDOW, SourceHint, Tx};
use crate::events::EventBus;
use crate::scripts::ScriptResolver;

/// Run-time sockets a shard may hold beyond one per transfer.
pub const SPARE_SOCKETS: usize = MAX_SPARE_PORTS;
/// At most one "cannot open a transfer port" line per this period.
const OPEN_FAILURE_LOG_EVERY: Duration = Duration::from_secs(1);
/// Most `handle_timeout` rounds run back to back when the core stopped at
/// its burst budget.
const MAX_TIMEOUT_ROUNDS: usize = 16;

/// The TFTP state of one shard.
#[derive(Debug)]
pub struct TftpSide {
    server: TftpServer<ScriptResolver>,
    out: TxQueue,
    chunks: Vec<Chunk>,
    listen_port: u16,
    /// Transfer port → socket index of the shard.
    ports: HashMap<u16, usize>,
    /// When an open failure was last logged, and failures since.
    open_failures: (Option<Instant>, u64),
    served: Arc<Served>,
    shard: u32,
    bus: EventBus,
}

impl TftpSide {
    /// A TFTP side of shard `shard` answering requests on `listen_port`,
    /// each transfer from a socket of its own, and publishing transfer
    /// events on `bus`. The core must run with per-transfer ports.
    pub fn new(
        server: TftpServer<ScriptResolver>,
        listen_port: u16,
        served: Arc<Served>,
        (shard, bus): (u32, EventBus),
    ) -> Self {
        Self {
            server,
            out: TxQueue::new(),
            chunks: Vec::with_capacity(64),
            listen_port,
            ports: HashMap::new(),
            open_failures: (None, 0),
            served,
            shard,
            bus,
        }
    }

    /// Handles one datagram of the listen or data socket.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        meta: &RecvMeta,
        data: &[u8],
        tx: &mut Tx,
        c: &mut Counters,
    ) {
        if !self.served.tftp_allowed(meta.ifindex) {
            tracing::trace!(ifindex = meta.ifindex, src = %meta.src, "tftp: datagram from an unserved interface dropped");
            c.drop(RuntimeDrop::TftpUnselectedInterface);
            return;
        }
        if meta.local_port == self.listen_port && self.server.wants_transfer_port() {
            self.open_port(now, tx, c);
        }
        self.server.handle(now, meta, data, &mut self.out);
        // Events first: what a client does after our reply is then never
        // reported before what led to that reply.
        self.publish();
        self.emit(tx, c);
        self.close_released(tx);
    }

    /// ICMP reported `dest` unreachable for a datagram sent from the
    /// transfer port `local_port`: the core ends that transfer if `dest`
    /// is its client (the victim of a spoofed request rejects our OACK),
    /// and its socket is closed.
    pub fn on_unreachable(
        &mut self,
        now: Instant,
        local_port: u16,
        dest: SocketAddrV4,
        tx: &mut Tx,
    ) {
        self.server
            .handle_unreachable(now, local_port, SocketAddr::V4(dest));
        self.publish();
        self.close_released(tx);
    }

    /// Opens a socket on a fresh random port and hands the port to the
    /// core; a failure is counted and logged at most once a second.
    fn open_port(&mut self, now: Instant, tx: &mut Tx, c: &mut Counters) {
        match tx.open_socket() {
            Ok((sock, local)) => {
                self.ports.insert(local.port(), sock);
                self.server.add_transfer_port(local.port());
            }
            Err(error) => {
                c.drop(RuntimeDrop::TftpPortUnavailable);
                let (last, suppressed) = &mut self.open_failures;
                if last.is_none_or(|at| now.duration_since(at) >= OPEN_FAILURE_LOG_EVERY) {
                    tracing::warn!(%error, suppressed = *suppressed, "tftp: cannot open a transfer port");
                    *last = Some(now);
                    *suppressed = 0;
                } else {
                    *suppressed += 1;
                }
            }
        }
    }

    /// Closes the sockets of the transfers that ended (after the sends
    /// already queued for them).
    fn close_released(&mut self, tx: &mut Tx) {
        while let Some(port) = self.server.poll_released_port() {
            if let Some(sock) = self.ports.remove(&port) {
                tx.close_socket(sock);
            }
        }
    }

    /// Runs the core's timers; while its deadline is already past (it
    /// stopped at its burst budget) and it queued something, runs again.
    pub fn on_timeout(&mut self, now: Instant, tx: &mut Tx, c: &mut Counters) {
        for _ in 0..MAX_TIMEOUT_ROUNDS {
            if self.server.poll_timeout().is_none_or(|d| d > now) {
                return;
            }
            self.server.handle_timeout(now, &mut self.out);
            self.publish();
            if self.out.is_empty() {
                self.close_released(tx);
                return;
            }
            self.emit(tx, c);
            self.close_released(tx);
        }
    }

    /// Takes the core's transfer events and publishes them (they are
    /// dropped when nobody watches).
    fn publish(&mut self) {
        while let Some(event) = self.server.poll_event() {
            self.bus.publish_tftp(self.shard, event);
        }
    }

    /// The core's next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.server.poll_timeout()
    }

    /// Stops accepting requests; transfers in flight finish.
    pub fn drain(&mut self) {
        self.server.drain();
    }

    /// The core (counters, active transfers).
    pub fn server(&self) -> &TftpServer<ScriptResolver> {
        &self.server
    }

    /// Moves everything queued into `tx` and clears the queue.
    fn emit(&mut self, tx: &mut Tx, c: &mut Counters) {
        let out = &self.out;
        for range in out.batches() {
            let transmits = &out.transmits()[range];
            let Some(first) = transmits.first() else {
                continue;
            };
            let (SocketAddr::V4(dst), IpAddr::V4(src_ip)) = (first.dest, first.src_ip) else {
                continue;
            };
            let sock = if first.local_port == self.listen_port {
                SocketRole::TftpListen.index()
            } else if let Some(&sock) = self.ports.get(&first.local_port) {
                sock
            } else {
                // A reply from a port already closed (a late datagram to
                // an ended transfer): nothing to send it from.
                c.drop(RuntimeDrop::SendFailed);
                continue;
            };
            let src = Some(SourceHint {
                ifindex: 0,
                addr: src_ip,
            });
            let sent = match first.payload {
                Payload::Control { .. } => transmits.iter().all(|t| {
                    let Payload::Control { start, len } = t.payload else {
                        return false;
                    };
                    let mut bytes = tx.buffer();
                    bytes.extend_from_slice(out.control(start, len));
                    tx.send(sock, dst, src, bytes).is_ok()
                }),
                Payload::Data { file, .. } => {
                    self.chunks.clear();
                    self.chunks
                        .extend(transmits.iter().filter_map(|t| match t.payload {
                            Payload::Data {
                                header,
                                offset,
                                len,
                                ..
                            } => Some(Chunk {
                                header,
                                start: usize::try_from(offset).unwrap_or(usize::MAX),
                                len: len as usize,
                            }),
                            Payload::Control { .. } => None,
                        }));
                    let file = out.file(file);
                    self.chunks
                        .chunks(MAX_WINDOW)
                        .all(|w| tx.send_window(sock, dst, src, file.clone(), w).is_ok())
                }
            };
            if !sent {
                c.drop(RuntimeDrop::SendFailed);
            }
        }
        self.out.clear();
    }
}
