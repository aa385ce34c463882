//! A byte-driven sequence of operations against a TFTP server core, shared
//! by the unit tests of [`super`] (random bytes via proptest) and the
//! `tftp_packet` cargo-fuzz target. It checks invariants after every step;
//! the only failure mode is a panic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::TftpSettings;
use crate::net::RecvMeta;
use crate::tftp::wire::{self, Packet};
use crate::tftp::{FileData, Payload, ResolveRequest, Resolved, Resolver, TftpServer, TxQueue};

const LISTEN: u16 = 69;
const DATA_PORTS: [u16; 2] = [1000, 1001];
const MAX_TRANSFERS: usize = 6;

/// Three small files; anything else is not found.
#[derive(Debug)]
struct Files(Vec<(&'static str, Arc<dyn FileData>)>);

impl Resolver for Files {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        match self.0.iter().find(|(name, _)| *name == request.path) {
            Some((_, file)) => Resolved::File(Arc::clone(file)),
            None if request.path == "denied" => Resolved::Denied,
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

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
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
        max_timeout: Duration::from_secs(2),
        max_retries: 3,
        max_transfers: MAX_TRANSFERS as u32,
        admission: crate::config::TftpAdmission::DEFAULT,
    };
    let text: Vec<u8> = b"line\r\nbare\rcr\n".repeat(100);
    let files = Files(vec![
        ("a", Arc::new(vec![0x5a; 3000])),
        ("empty", Arc::new(Vec::new())),
        ("t.txt", Arc::new(text)),
    ]);
    let mut server = TftpServer::new(&settings, &DATA_PORTS, files);
    let base = Instant::now();
    let mut ms = 0u64;
    let mut out = TxQueue::new();
    // Last DATA seen per client: (data port, block).
    let mut last_data = [(DATA_PORTS[0], 0u16); 4];
    let mut input = Input(data);
    let mut steps = 0;
    while !input.0.is_empty() && steps < 10_000 {
        steps += 1;
        let op = input.byte();
        let client_id = usize::from(input.byte() % 4);
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + client_id as u8)),
            5000,
        );
        let (port, bytes) = match op % 7 {
            0 => (LISTEN, request(&mut input)),
            1 => {
                let (port, block) = last_data[client_id];
                (port, wire::ack(block).to_vec())
            }
            2 => (pick_port(&mut input), wire::ack(input.u16()).to_vec()),
            3 => {
                let mut error = Vec::new();
                let code = wire::ErrorCode::from_u16(u16::from(input.byte() % 9))
                    .unwrap_or(wire::ErrorCode::NotDefined);
                wire::emit_error(&mut error, code, "x");
                (pick_port(&mut input), error)
            }
            4 => {
                let port = pick_port(&mut input);
                let len = usize::from(input.byte() % 80);
                (port, input.take(len).to_vec())
            }
            5 => {
                ms += u64::from(input.byte()) * 20;
                server.handle_timeout(base + Duration::from_millis(ms), &mut out);
                check(&server, &mut out, &mut last_data);
                continue;
            }
            _ => {
                if input.byte() == 0xff {
                    server.drain();
                }
                continue;
            }
        };
        ms += 1;
        let meta = RecvMeta {
            src: client,
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            local_port: port,
            ifindex: 1,
        };
        server.handle(base + Duration::from_millis(ms), &meta, &bytes, &mut out);
        check(&server, &mut out, &mut last_data);
    }
    // Whatever happened, time heals: every transfer ends eventually (the
    // longest negotiated timeout is 255 s, retried 3 times).
    for _ in 0..120 {
        ms += 10_000;
        server.handle_timeout(base + Duration::from_millis(ms), &mut out);
        check(&server, &mut out, &mut last_data);
    }
    assert_eq!(server.active_transfers(), 0, "transfers leaked");
}

fn pick_port(input: &mut Input<'_>) -> u16 {
    match input.byte() % 4 {
        0 => LISTEN,
        1 => DATA_PORTS[0],
        2 => DATA_PORTS[1],
        _ => 7,
    }
}

/// An RRQ (or WRQ) with a fuzzed name, mode and options.
fn request(input: &mut Input<'_>) -> Vec<u8> {
    let kind = input.byte();
    let names: [&[u8]; 6] = [b"a", b"empty", b"t.txt", b"../a", b"denied", b"/a"];
    let name = names[usize::from(kind % 6)];
    let mode = ["octet", "netascii", "OCTET", "mail"][usize::from((kind >> 3) % 4)];
    let values = [input.u16(), input.u16(), input.u16()];
    let all = [
        ("blksize", values[0].to_string()),
        ("windowsize", u16::from(input.byte()).to_string()),
        ("tsize", "0".to_owned()),
        ("timeout", (values[1] % 300).to_string()),
        ("unknown", values[2].to_string()),
    ];
    let mask = input.byte();
    let options: Vec<(&str, &str)> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, (n, v))| (*n, v.as_str()))
        .collect();
    let mut bytes = Vec::new();
    wire::emit_request(&mut bytes, kind & 0x80 != 0, name, mode, &options);
    bytes
}

/// Checks what the server queued and remembers the DATA each client got.
fn check<R: Resolver>(server: &TftpServer<R>, out: &mut TxQueue, last_data: &mut [(u16, u16); 4]) {
    assert!(server.active_transfers() <= MAX_TRANSFERS);
    for t in out.transmits() {
        let (header, body) = out.parts(t);
        let client_id = usize::from(match t.dest.ip() {
            IpAddr::V4(v4) => v4.octets()[3].wrapping_sub(10) % 4,
            IpAddr::V6(_) => 0,
        });
        match t.payload {
            Payload::Data { len, .. } => {
                assert_eq!(body.len(), len as usize, "DATA slice within the file");
                assert!(body.len() <= 1468, "block fits the MTU");
                last_data[client_id] = (t.local_port, u16::from_be_bytes([header[2], header[3]]));
            }
            Payload::Control { .. } => match Packet::parse(body) {
                // Netascii blocks are converted into the arena.
                Ok(Packet::Data { block, payload }) => {
                    assert!(payload.len() <= 1468, "converted block fits the MTU");
                    last_data[client_id] = (t.local_port, block);
                }
                Ok(Packet::Oack(_) | Packet::Error { .. }) => {}
                parsed => panic!("control packet {parsed:?}"),
            },
        }
        assert!(t.local_port == LISTEN || DATA_PORTS.contains(&t.local_port) || t.local_port == 7);
    }
    out.clear();
}
