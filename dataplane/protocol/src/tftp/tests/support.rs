//! Shared pieces of the scenario tests: settings, a resolver over an
//! in-memory tree, a seeded RNG and direct-drive helpers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::TftpSettings;
use crate::net::RecvMeta;
use crate::tftp::{FileData, ResolveRequest, Resolved, Resolver, TftpServer, TxQueue};

/// The server's address.
pub(super) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The listen port.
pub(super) const LISTEN_PORT: u16 = 69;
/// The data ports of the shard under test.
pub(super) const DATA_PORTS: [u16; 4] = [40_000, 40_001, 40_002, 40_003];

/// Settings as a LAN deployment would have them.
pub(super) fn settings() -> TftpSettings {
    TftpSettings {
        port: LISTEN_PORT,
        root: "/srv/tftp".into(),
        max_blksize: 65464,
        mtu: 1500,
        max_windowsize: 64,
        min_timeout: Duration::from_millis(100),
        max_timeout: Duration::from_secs(4),
        max_retries: 5,
        max_transfers: 1000,
        admission: crate::config::TftpAdmission::DEFAULT,
    }
}

/// A client address on the test LAN.
pub(super) fn client_addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, host)), port)
}

/// Bytes that differ from block to block, so a misplaced block shows.
pub(super) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small xorshift64* generator: deterministic, no dependency.
#[derive(Debug, Clone)]
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `per_mille` / 1000.
    pub(super) fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && (self.next_u64() % 1000) < u64::from(per_mille)
    }

    /// Uniform in `0..n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// An in-memory TFTP root, plus names that are denied and a per-MAC
/// generated script.
#[derive(Debug, Default)]
pub(super) struct MemResolver {
    pub(super) files: HashMap<String, Arc<dyn FileData>>,
    pub(super) denied: Vec<String>,
    /// Paths the resolver was asked for, in order.
    pub(super) asked: std::cell::RefCell<Vec<String>>,
}

impl MemResolver {
    pub(super) fn with(files: &[(&str, Vec<u8>)]) -> Self {
        let mut resolver = Self::default();
        for (name, bytes) in files {
            resolver.add(name, bytes.clone());
        }
        resolver
    }

    pub(super) fn add(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.insert(name.to_owned(), Arc::new(bytes));
    }
}

impl Resolver for MemResolver {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        self.asked.borrow_mut().push(request.path.to_owned());
        if self.denied.iter().any(|d| d == request.path) {
            return Resolved::Denied;
        }
        if request.path == "boot.ipxe" {
            let Some(mac) = request.mac else {
                return Resolved::NotFound;
            };
            let script = format!(
                "#!ipxe\necho host {}\nchain tftp://${{next-server}}/refind.pxe\n",
                mac.map(|b| format!("{b:02x}")).join(":")
            );
            return Resolved::File(Arc::new(script.into_bytes()));
        }
        match self.files.get(request.path) {
            Some(file) => Resolved::File(Arc::clone(file)),
            None => Resolved::NotFound,
        }
    }
}

/// One datagram as owned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sent {
    pub(super) dest: SocketAddr,
    pub(super) local_port: u16,
    pub(super) bytes: Vec<u8>,
}

/// Drives a server by hand: one datagram in, the sends out as owned bytes.
#[derive(Debug)]
pub(super) struct Direct<R: Resolver> {
    pub(super) server: TftpServer<R>,
    pub(super) base: Instant,
    out: TxQueue,
}

impl<R: Resolver> Direct<R> {
    pub(super) fn new(server: TftpServer<R>) -> Self {
        Self {
            server,
            base: Instant::now(),
            out: TxQueue::new(),
        }
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Delivers `bytes` from `src` to `local_port` at `ms` milliseconds.
    pub(super) fn recv(
        &mut self,
        ms: u64,
        src: SocketAddr,
        local_port: u16,
        bytes: &[u8],
    ) -> Vec<Sent> {
        let meta = RecvMeta {
            src,
            dst_ip: IpAddr::V4(SERVER_IP),
            local_port,
            ifindex: 1,
        };
        self.server.handle(self.at(ms), &meta, bytes, &mut self.out);
        self.take()
    }

    /// Fires the server's timers at `ms` milliseconds.
    pub(super) fn tick(&mut self, ms: u64) -> Vec<Sent> {
        self.server.handle_timeout(self.at(ms), &mut self.out);
        self.take()
    }

    fn take(&mut self) -> Vec<Sent> {
        let sent = self
            .out
            .transmits()
            .iter()
            .map(|t| {
                let mut bytes = Vec::new();
                self.out.copy_datagram(t, &mut bytes);
                Sent {
                    dest: t.dest,
                    local_port: t.local_port,
                    bytes,
                }
            })
            .collect();
        self.out.clear();
        sent
    }
}
