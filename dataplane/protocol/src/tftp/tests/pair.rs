//! A server core and client models over an in-memory network in virtual
//! time, with seeded loss, duplication and reordering.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::client::{Client, ClientSend, ClientSpec};
use super::support::{SERVER_IP, XorShift, client_addr};
use crate::net::RecvMeta;
use crate::tftp::{Resolver, TftpServer, TxQueue};

/// Impairments of the in-memory network.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Impairments {
    /// Datagrams lost, per mille.
    pub(super) loss: u32,
    /// Datagrams delivered twice, per mille.
    pub(super) duplicate: u32,
    /// Datagrams held back by up to 3 ms extra, per mille.
    pub(super) reorder: u32,
}

/// A datagram on the wire.
#[derive(Debug, Clone)]
struct InFlight {
    at: Instant,
    seq: u64,
    src: SocketAddr,
    dest: SocketAddr,
    bytes: Vec<u8>,
}

/// The server, its clients and the network between them.
#[derive(Debug)]
pub(super) struct Pair<R: Resolver> {
    pub(super) server: TftpServer<R>,
    pub(super) clients: Vec<Client>,
    pub(super) now: Instant,
    pub(super) impairments: Impairments,
    /// One-way delay.
    pub(super) latency: Duration,
    /// Datagrams the server queued.
    pub(super) server_sends: u64,
    /// Datagrams the server queued, by destination, as raw bytes.
    pub(super) server_log: Vec<(SocketAddr, u16, Vec<u8>)>,
    /// Keep `server_log`.
    pub(super) log: bool,
    rng: XorShift,
    wire: Vec<InFlight>,
    seq: u64,
    out: TxQueue,
}

impl<R: Resolver> Pair<R> {
    pub(super) fn new(server: TftpServer<R>, seed: u64) -> Self {
        Self {
            server,
            clients: Vec::new(),
            now: Instant::now(),
            impairments: Impairments::default(),
            latency: Duration::from_micros(100),
            server_sends: 0,
            server_log: Vec::new(),
            log: false,
            rng: XorShift::new(seed),
            wire: Vec::new(),
            seq: 0,
            out: TxQueue::new(),
        }
    }

    /// Adds a client on host `10.0.1.<host>` and sends its first RRQ.
    pub(super) fn add_client(&mut self, spec: ClientSpec, host: u8) -> usize {
        let server = SocketAddr::new(IpAddr::V4(SERVER_IP), super::support::LISTEN_PORT);
        let mut client = Client::new(spec, client_addr(host, 2000 + u16::from(host)), server);
        let sends = client.start(self.now);
        self.clients.push(client);
        self.transmit_all(sends);
        self.clients.len() - 1
    }

    /// Runs until every client has finished and the server is idle, or
    /// `max_events` events have happened. Returns the events used.
    pub(super) fn drive(&mut self, max_events: usize) -> usize {
        for event in 0..max_events {
            if self.clients.iter().all(Client::finished) && self.server.active_transfers() == 0 {
                return event;
            }
            if !self.step() {
                return event;
            }
        }
        max_events
    }

    /// Advances to the next event and processes everything due then.
    /// False when nothing is pending anywhere.
    pub(super) fn step(&mut self) -> bool {
        let next = [
            self.wire.iter().map(|d| d.at).min(),
            self.server.poll_timeout(),
            self.clients.iter().filter_map(Client::poll_timeout).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        self.deliver_due();
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now, &mut self.out);
            self.flush_server();
        }
        let now = self.now;
        let sends: Vec<ClientSend> = self
            .clients
            .iter_mut()
            .flat_map(|c| c.handle_timeout(now))
            .collect();
        self.transmit_all(sends);
        true
    }

    /// Runs for `duration` of virtual time (bounded by `max_events`).
    pub(super) fn run_for(&mut self, duration: Duration, max_events: usize) {
        let end = self.now + duration;
        for _ in 0..max_events {
            let pending = [
                self.wire.iter().map(|d| d.at).min(),
                self.server.poll_timeout(),
                self.clients.iter().filter_map(Client::poll_timeout).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            if pending.is_none_or(|t| t > end) || !self.step() {
                break;
            }
        }
        self.now = self.now.max(end);
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        let mut due: Vec<InFlight> = Vec::new();
        self.wire.retain(|d| {
            if d.at <= now {
                due.push(d.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|d| (d.at, d.seq));
        for datagram in due {
            if datagram.dest.ip() == IpAddr::V4(SERVER_IP) {
                let meta = RecvMeta {
                    src: datagram.src,
                    dst_ip: datagram.dest.ip(),
                    local_port: datagram.dest.port(),
                    ifindex: 1,
                };
                self.server
                    .handle(now, &meta, &datagram.bytes, &mut self.out);
                self.flush_server();
            } else if let Some(client) = self.clients.iter_mut().find(|c| c.addr == datagram.dest) {
                let sends = client.handle(now, datagram.src, &datagram.bytes);
                self.transmit_all(sends);
            }
        }
    }

    fn flush_server(&mut self) {
        let transmits: Vec<_> = self.out.transmits().to_vec();
        for t in transmits {
            let mut bytes = Vec::new();
            self.out.copy_datagram(&t, &mut bytes);
            self.server_sends += 1;
            if self.log {
                self.server_log.push((t.dest, t.local_port, bytes.clone()));
            }
            let src = SocketAddr::new(IpAddr::V4(SERVER_IP), t.local_port);
            self.put_on_wire(src, t.dest, bytes);
        }
        self.out.clear();
    }

    fn transmit_all(&mut self, sends: Vec<ClientSend>) {
        for send in sends {
            self.put_on_wire(send.src, send.dest, send.bytes);
        }
    }

    fn put_on_wire(&mut self, src: SocketAddr, dest: SocketAddr, bytes: Vec<u8>) {
        let imp = self.impairments;
        if self.rng.chance(imp.loss) {
            return;
        }
        let copies = if self.rng.chance(imp.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut at = self.now + self.latency;
            if self.rng.chance(imp.reorder) {
                at += Duration::from_micros(self.rng.below(3_000));
            }
            self.seq += 1;
            self.wire.push(InFlight {
                at,
                seq: self.seq,
                src,
                dest,
                bytes: bytes.clone(),
            });
        }
    }
}
