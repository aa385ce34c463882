//! A byte-driven sequence of operations against a TFTP core with
//! per-transfer ports and tight admission limits, shared by the unit
//! tests of [`super`] (random bytes via proptest) and the `tftp_admission`
//! cargo-fuzz target. After every step it checks the rules a hostile host
//! must not break:
//!
//! - no client IP holds more than `max-transfers-per-client` transfers, and
//!   the table never exceeds `max-transfers`;
//! - answers that cost a token (every reply to a datagram on the listen
//!   port, every transfer started, every ERROR 5) stay within the token
//!   bucket: `burst + rate × elapsed` per client IP;
//! - an OACK acknowledges `timeout` only as asked and at most
//!   `max-timeout`, and grants blksize and windowsize within bounds;
//! - a transfer that never got an ACK is gone `max-timeout × max-retries`
//!   after its request;
//! - an ICMP unreachable for a transfer's own client ends that transfer,
//!   and no DATA goes to that client from its port afterwards;
//! - nothing leaks: every port handed in comes back, every transfer ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{TftpAdmission, TftpSettings};
use crate::net::RecvMeta;
use crate::tftp::wire::{self, Packet};
use crate::tftp::{
    FileData, ResolveRequest, Resolved, Resolver, ServerOptions, TftpServer, TransferEvent, TxQueue,
};

const LISTEN: u16 = 69;
const MAX_TRANSFERS: u32 = 8;
const CAP: u32 = 3;
const RATE: u32 = 5;
const BURST: u32 = 6;
const MAX_TIMEOUT_SECS: u64 = 2;
const MAX_RETRIES: u8 = 3;
const IPS: u8 = 4;
const PORTS: u16 = 8;

/// Two files; anything else is not found.
#[derive(Debug)]
struct Files(Vec<(&'static str, Arc<dyn FileData>)>);

impl Resolver for Files {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        match self.0.iter().find(|(name, _)| *name == request.path) {
            Some((_, file)) => Resolved::File(Arc::clone(file)),
            None => Resolved::NotFound,
        }
    }
}

/// Reads bytes off the input, yielding zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
}

/// What the model knows of one client address's transfer.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// The port it answers from, once its first packet was seen.
    port: Option<u16>,
    /// Milliseconds at the request.
    started: u64,
    /// Whether an ACK from the client reached that port.
    acked: bool,
    /// The timeout the request asked for.
    asked_timeout: Option<u64>,
}

/// The driver and the clients around the core.
struct Model {
    server: TftpServer<Files>,
    out: TxQueue,
    base: Instant,
    ms: u64,
    next_port: u16,
    open_fails: bool,
    /// Ports handed in and not yet given back.
    ports_out: Vec<u16>,
    held: HashMap<SocketAddr, Held>,
    /// Answers charged to each client IP.
    answers: [u64; IPS as usize],
    /// Clients reported unreachable on their port: no DATA to them from it.
    gone: Vec<(SocketAddr, u16)>,
}

/// Runs the operations encoded in `data`.
pub fn run(data: &[u8]) {
    let settings = TftpSettings {
        port: LISTEN,
        root: "/srv/tftp".into(),
        max_blksize: 65464,
        mtu: 1500,
        max_windowsize: 64,
        min_timeout: Duration::from_millis(50),
        max_timeout: Duration::from_secs(MAX_TIMEOUT_SECS),
        max_retries: MAX_RETRIES,
        max_transfers: MAX_TRANSFERS,
        admission: TftpAdmission {
            max_transfers_per_client: CAP,
            new_transfers_per_second: RATE,
            new_transfers_burst: BURST,
        },
    };
    let text: Vec<u8> = b"line\r\nbare\rcr\n".repeat(400);
    let files = Files(vec![
        ("a", Arc::new(vec![0x5a; 40_000])),
        ("t.txt", Arc::new(text)),
    ]);
    let options = ServerOptions {
        per_transfer_ports: true,
        ..ServerOptions::default()
    };
    let mut m = Model {
        server: TftpServer::with_options(&settings, &[], files, options),
        out: TxQueue::new(),
        base: Instant::now(),
        ms: 0,
        next_port: 40_000,
        open_fails: false,
        ports_out: Vec::new(),
        held: HashMap::new(),
        answers: [0; IPS as usize],
        gone: Vec::new(),
    };
    let mut input = Input(data);
    let mut steps = 0;
    while !input.0.is_empty() && steps < 5_000 {
        steps += 1;
        let op = input.byte();
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + input.byte() % IPS)),
            5000 + u16::from(input.byte()) % PORTS,
        );
        match op % 8 {
            0 | 1 => {
                let (bytes, timeout) = request(&mut input);
                m.deliver(client, LISTEN, &bytes, Some(timeout));
            }
            2 => {
                // The client's ACK to its own transfer port.
                let port = m.held.get(&client).and_then(|h| h.port).unwrap_or(LISTEN);
                let block = input.u16() % 4;
                m.deliver(client, port, &wire::ack(block), None);
            }
            3 => {
                // A blind ACK or ERROR to a guessed port.
                let port = m.guess_port(input.byte());
                let bytes = if input.byte() % 2 == 0 {
                    wire::ack(input.u16()).to_vec()
                } else {
                    let mut error = Vec::new();
                    wire::emit_error(&mut error, wire::ErrorCode::NotDefined, "x");
                    error
                };
                m.deliver(client, port, &bytes, None);
            }
            4 => {
                // ICMP unreachable for a guessed port, or the client's own.
                let own = m.held.get(&client).and_then(|h| h.port);
                let port = match (own, input.byte() % 2) {
                    (Some(port), 0) => port,
                    _ => m.guess_port(input.byte()),
                };
                m.unreachable(client, port);
            }
            5 => {
                m.ms += u64::from(input.byte()) * 25;
                m.timers();
            }
            6 => m.open_fails = input.byte() % 4 == 0,
            _ => {
                if input.byte() == 0xff {
                    m.server.drain();
                }
            }
        }
    }
    // Time heals: every transfer ends, every port comes back.
    for _ in 0..40 {
        m.ms += 1_000;
        m.timers();
    }
    assert_eq!(m.server.active_transfers(), 0, "transfers leaked");
    assert!(m.held.is_empty(), "ended events missing: {:?}", m.held);
    m.ports_out.sort_unstable();
    while let Some(port) = m.server.poll_released_port() {
        m.ports_out.retain(|&p| p != port);
    }
    assert!(
        m.ports_out.len() <= crate::tftp::MAX_SPARE_PORTS,
        "ports never given back: {:?}",
        m.ports_out
    );
}

/// An RRQ with fuzzed name, mode and options; also the timeout it asks.
fn request(input: &mut Input<'_>) -> (Vec<u8>, Option<u64>) {
    let kind = input.byte();
    let name = [&b"a"[..], b"t.txt", b"none", b"../a"][usize::from(kind % 4)];
    let mode = ["octet", "netascii", "NetAscii", "mail"][usize::from((kind >> 2) % 4)];
    let timeout = u64::from(input.byte()) + u64::from(input.byte() % 2) * 256;
    let all = [
        ("blksize", input.u16().to_string()),
        ("windowsize", input.u16().to_string()),
        ("tsize", "0".to_owned()),
        ("TimeOut", timeout.to_string()),
    ];
    let mask = input.byte();
    let options: Vec<(&str, &str)> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, (n, v))| (*n, v.as_str()))
        .collect();
    let asked = (mask & 8 != 0).then_some(timeout);
    let mut bytes = Vec::new();
    wire::emit_request(&mut bytes, kind & 0x80 != 0, name, mode, &options);
    (bytes, asked)
}

impl Model {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.ms)
    }

    fn guess_port(&self, pick: u8) -> u16 {
        if pick.is_multiple_of(3) {
            return LISTEN;
        }
        let span = self.next_port.saturating_sub(40_000).max(1);
        40_000 + u16::from(pick) % span
    }

    /// Hands the core a port when it wants one (unless opening fails), as
    /// the driver does before a datagram of the listen port.
    fn offer_port(&mut self) {
        if self.server.wants_transfer_port() && !self.open_fails {
            self.server.add_transfer_port(self.next_port);
            self.ports_out.push(self.next_port);
            self.next_port = self.next_port.wrapping_add(1).max(40_000);
        }
    }

    fn deliver(&mut self, src: SocketAddr, port: u16, bytes: &[u8], asked: Option<Option<u64>>) {
        self.ms += 1;
        if port == LISTEN {
            self.offer_port();
        }
        let meta = RecvMeta {
            src,
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            local_port: port,
            ifindex: 1,
        };
        let to_transfer = self.held.get(&src).and_then(|h| h.port) == Some(port);
        if to_transfer
            && matches!(Packet::parse(bytes), Ok(Packet::Ack { .. }))
            && let Some(held) = self.held.get_mut(&src)
        {
            held.acked = true;
        }
        self.server.handle(self.now(), &meta, bytes, &mut self.out);
        let answered = !self.out.is_empty();
        let stranger_error = !to_transfer && port != LISTEN && answered;
        if port == LISTEN && answered || stranger_error {
            self.answers[ip_index(src)] += 1;
        }
        self.check(asked.map(|a| (src, a)));
    }

    fn unreachable(&mut self, dest: SocketAddr, port: u16) {
        self.ms += 1;
        let own = self.held.get(&dest).and_then(|h| h.port) == Some(port);
        self.server.handle_unreachable(self.now(), port, dest);
        if own {
            self.gone.push((dest, port));
        }
        self.check(None);
        if own {
            assert!(
                self.held.get(&dest).and_then(|h| h.port) != Some(port),
                "an unreachable client's transfer lives on"
            );
        }
    }

    fn timers(&mut self) {
        for _ in 0..64 {
            let now = self.now();
            if self.server.poll_timeout().is_none_or(|d| d > now) {
                break;
            }
            self.server.handle_timeout(now, &mut self.out);
            self.check(None);
        }
        let budget = MAX_TIMEOUT_SECS * 1000 * u64::from(MAX_RETRIES);
        for (client, held) in &self.held {
            assert!(
                held.acked || self.ms < held.started + budget,
                "{client}: no ACK since {} ms, still held at {} ms",
                held.started,
                self.ms
            );
        }
    }

    /// Checks what the core queued and its events against the rules.
    fn check(&mut self, request: Option<(SocketAddr, Option<u64>)>) {
        while let Some(event) = self.server.poll_event() {
            match event {
                TransferEvent::Started(start) => {
                    let asked_timeout = request
                        .filter(|(c, _)| *c == start.client)
                        .and_then(|(_, t)| t);
                    self.held.insert(
                        start.client,
                        Held {
                            port: None,
                            started: self.ms,
                            acked: false,
                            asked_timeout,
                        },
                    );
                }
                TransferEvent::Ended(end) => {
                    self.held.remove(&end.client);
                }
            }
        }
        for t in self.out.transmits() {
            let mut bytes = Vec::new();
            self.out.copy_datagram(t, &mut bytes);
            let parsed = Packet::parse(&bytes);
            if t.local_port != LISTEN
                && let Some(held) = self.held.get_mut(&t.dest)
                && held.port.is_none()
                && !matches!(parsed, Ok(Packet::Error { .. }))
            {
                held.port = Some(t.local_port);
            }
            match parsed {
                Ok(Packet::Oack(options)) => {
                    let held = self.held.get(&t.dest).copied();
                    for (name, value) in options {
                        let value: u64 = std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(u64::MAX);
                        match name {
                            b"timeout" => {
                                assert!((1..=MAX_TIMEOUT_SECS).contains(&value), "timeout {value}");
                                if let Some(held) = held {
                                    assert_eq!(Some(value), held.asked_timeout, "granted as asked");
                                }
                            }
                            b"blksize" => assert!((8..=1468).contains(&value), "blksize {value}"),
                            b"windowsize" => assert!((1..=64).contains(&value), "window {value}"),
                            b"tsize" => {}
                            other => panic!("unasked option {other:?}"),
                        }
                    }
                }
                Ok(Packet::Data { .. }) => {
                    assert!(
                        !self.gone.contains(&(t.dest, t.local_port)),
                        "DATA to {} from {} after it was unreachable",
                        t.dest,
                        t.local_port
                    );
                }
                Ok(Packet::Error { .. }) => {}
                other => panic!("unexpected packet {other:?}"),
            }
        }
        self.out.clear();
        while let Some(port) = self.server.poll_released_port() {
            self.ports_out.retain(|&p| p != port);
            self.gone.retain(|&(_, p)| p != port);
        }
        // The rules on what is held.
        assert!(self.server.active_transfers() <= MAX_TRANSFERS as usize);
        let mut per_ip = [0u32; IPS as usize];
        for client in self.held.keys() {
            per_ip[ip_index(*client)] += 1;
        }
        assert!(
            per_ip.iter().all(|&n| n <= CAP),
            "per-client cap: {per_ip:?}"
        );
        assert_eq!(self.held.len(), self.server.active_transfers());
        let bound = u64::from(BURST) + u64::from(RATE) * self.ms / 1000;
        for (ip, &n) in self.answers.iter().enumerate() {
            assert!(
                n <= bound,
                "client {ip}: {n} answers by {} ms, bound {bound}",
                self.ms
            );
        }
    }
}

fn ip_index(addr: SocketAddr) -> usize {
    match addr.ip() {
        IpAddr::V4(v4) => usize::from(v4.octets()[3].wrapping_sub(10) % IPS),
        IpAddr::V6(_) => 0,
    }
}
