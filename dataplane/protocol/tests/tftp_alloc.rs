//! The TFTP hot path allocates nothing: once warmed up, an ACK in and the
//! next DATA descriptors out (lock-step and windowed) run under a counting
//! global allocator without a single allocation.

mod counting_alloc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use counting_alloc::allocations;

use bootwave_protocol::config::TftpSettings;
use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::tftp::wire::{self, Packet};
use bootwave_protocol::tftp::{FileData, ResolveRequest, Resolved, Resolver, TftpServer, TxQueue};

#[derive(Debug)]
struct OneFile(Arc<dyn FileData>);

impl Resolver for OneFile {
    fn resolve(&self, _: &ResolveRequest<'_>) -> Resolved {
        Resolved::File(Arc::clone(&self.0))
    }
}

const CLIENTS: u32 = 200;

/// Starts `CLIENTS` transfers of a large file with `windowsize`, returns the
/// server, the queue and per-client (meta, next block to acknowledge).
fn loaded(windowsize: u16, now: Instant) -> (TftpServer<OneFile>, TxQueue, Vec<(RecvMeta, u32)>) {
    let settings = TftpSettings {
        port: 69,
        root: "/srv/tftp".into(),
        max_blksize: 1468,
        mtu: 1500,
        max_windowsize: 64,
        min_timeout: Duration::from_millis(100),
        max_timeout: Duration::from_secs(4),
        max_retries: 5,
        max_transfers: 10_000,
        admission: bootwave_protocol::config::TftpAdmission::UNLIMITED,
    };
    let file: Arc<dyn FileData> = Arc::new(vec![7u8; 64 << 20]);
    let mut server = TftpServer::new(&settings, &[7000, 7001], OneFile(file));
    let mut out = TxQueue::new();
    let mut rrq = Vec::new();
    let window = windowsize.to_string();
    wire::emit_request(
        &mut rrq,
        false,
        b"ipxe.efi",
        "octet",
        &[("blksize", "1432"), ("windowsize", &window)],
    );
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let [_, a, b, c] = i.to_be_bytes();
        let mut meta = RecvMeta {
            src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), 2000),
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            local_port: 69,
            ifindex: 1,
        };
        server.handle(now, &meta, &rrq, &mut out);
        let (_, body) = out.parts(&out.transmits()[0]);
        assert!(matches!(Packet::parse(body), Ok(Packet::Oack(_))));
        meta.local_port = out.transmits()[0].local_port;
        out.clear();
        clients.push((meta, 0));
    }
    (server, out, clients)
}

fn assert_ack_path_allocates_nothing(windowsize: u16) {
    let now = Instant::now();
    let (mut server, mut out, mut clients) = loaded(windowsize, now);
    let mut ack = |server: &mut TftpServer<OneFile>, out: &mut TxQueue, i: usize| {
        let (meta, block) = &mut clients[i];
        server.handle(now, meta, &wire::ack(*block as u16), out);
        *block += u32::from(windowsize);
        let sent = out.len();
        out.clear();
        sent
    };
    // Warm-up: every client's first window, so queues reach their size.
    for i in 0..CLIENTS as usize {
        assert_eq!(ack(&mut server, &mut out, i), usize::from(windowsize));
    }
    let before = allocations();
    let mut sent = 0;
    for round in 0..5 {
        for i in 0..CLIENTS as usize {
            sent += ack(&mut server, &mut out, (i + round) % CLIENTS as usize);
        }
    }
    let made = allocations() - before;
    assert_eq!(sent, 5 * CLIENTS as usize * usize::from(windowsize));
    assert_eq!(made, 0, "{made} allocations on the ACK → DATA path");
}

#[test]
fn lock_step_ack_allocates_nothing() {
    assert_ack_path_allocates_nothing(1);
}

#[test]
fn windowed_ack_allocates_nothing() {
    assert_ack_path_allocates_nothing(16);
}
