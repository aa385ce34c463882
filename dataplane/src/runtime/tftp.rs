//! The TFTP half of a shard: feeds datagrams to the core and turns its
//! [`TxQueue`] into driver sends (DATA windows without copying, control
//! packets in pooled buffers).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::tftp::{Payload, TftpServer, TxQueue};

use super::interfaces::Served;
use super::stats::{Counters, RuntimeDrop};
use crate::driver::{Chunk, MAX_WINDOW, SourceHint, Tx};
use crate::events::EventBus;
use crate::scripts::ScriptResolver;

/// Socket index of the TFTP listen group in every shard.
pub const LISTEN_SOCKET: usize = 1;
/// Socket index of the shard's own TFTP data port.
pub const DATA_SOCKET: usize = 2;
/// Most `handle_timeout` rounds run back to back when the core stopped at
/// its burst budget.
const MAX_TIMEOUT_ROUNDS: usize = 16;

/// The TFTP state of one shard.
#[derive(Debug)]
pub struct TftpSide {
    server: TftpServer<ScriptResolver>,
    out: TxQueue,
    chunks: Vec<Chunk>,
    data_port: u16,
    served: Arc<Served>,
    shard: u32,
    bus: EventBus,
}

impl TftpSide {
    /// A TFTP side of shard `shard` serving from `data_port` (the shard's
    /// own socket) and publishing transfer events on `bus`.
    pub fn new(
        server: TftpServer<ScriptResolver>,
        data_port: u16,
        served: Arc<Served>,
        (shard, bus): (u32, EventBus),
    ) -> Self {
        Self {
            server,
            out: TxQueue::new(),
            chunks: Vec::with_capacity(64),
            data_port,
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
        self.server.handle(now, meta, data, &mut self.out);
        // Events first: what a client does after our reply is then never
        // reported before what led to that reply.
        self.publish();
        self.emit(tx, c);
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
                return;
            }
            self.emit(tx, c);
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
            let sock = if first.local_port == self.data_port {
                DATA_SOCKET
            } else {
                LISTEN_SOCKET
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
