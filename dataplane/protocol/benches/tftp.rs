//! Cost of the TFTP core's hot path with 10,000 transfers in the table:
//! one ACK in, the next DATA descriptors out (lock-step and windowed), and
//! the timer queries the driver makes on every loop turn.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use bootwave_protocol::config::TftpSettings;
use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::tftp::wire::{self, Packet};
use bootwave_protocol::tftp::{FileData, ResolveRequest, Resolved, Resolver, TftpServer, TxQueue};

const TRANSFERS: u32 = 10_000;
/// Large enough that no transfer completes during a run; zeroed pages are
/// never touched because the core never reads file bytes.
const FILE_SIZE: usize = 1 << 30;

#[derive(Debug)]
struct OneFile(Arc<dyn FileData>);

impl Resolver for OneFile {
    fn resolve(&self, _: &ResolveRequest<'_>) -> Resolved {
        Resolved::File(Arc::clone(&self.0))
    }
}

/// A server with `TRANSFERS` transfers, each with its first window sent.
struct Loaded {
    server: TftpServer<OneFile>,
    out: TxQueue,
    now: Instant,
    /// Per client: receive metadata of its ACKs and the block to ACK next.
    clients: Vec<(RecvMeta, u32)>,
    windowsize: u32,
}

impl Loaded {
    fn new(windowsize: u16) -> Self {
        let settings = TftpSettings {
            port: 69,
            root: "/srv/tftp".into(),
            max_blksize: 1468,
            mtu: 1500,
            max_windowsize: 64,
            min_timeout: Duration::from_millis(100),
            max_timeout: Duration::from_secs(4),
            max_retries: 5,
            max_transfers: 100_000,
            admission: bootwave_protocol::config::TftpAdmission::UNLIMITED,
        };
        let file: Arc<dyn FileData> = Arc::new(vec![0u8; FILE_SIZE]);
        let ports: Vec<u16> = (7000..7008).collect();
        let mut server = TftpServer::new(&settings, &ports, OneFile(file));
        let mut out = TxQueue::new();
        let now = Instant::now();
        let mut rrq = Vec::new();
        let window = windowsize.to_string();
        wire::emit_request(
            &mut rrq,
            false,
            b"ipxe.efi",
            "octet",
            &[("blksize", "512"), ("windowsize", &window)],
        );
        let mut clients = Vec::with_capacity(TRANSFERS as usize);
        for i in 0..TRANSFERS {
            let [_, a, b, c] = i.to_be_bytes();
            let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), 2000);
            let mut meta = RecvMeta {
                src,
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
        let mut loaded = Self {
            server,
            out,
            now,
            clients,
            windowsize: u32::from(windowsize),
        };
        for i in 0..TRANSFERS as usize {
            loaded.ack(i);
        }
        loaded
    }

    /// Client `i` acknowledges its whole window; returns descriptors queued.
    fn ack(&mut self, i: usize) -> usize {
        let (meta, block) = &mut self.clients[i];
        self.server
            .handle(self.now, meta, &wire::ack(*block as u16), &mut self.out);
        *block += self.windowsize;
        let sent = self.out.len();
        self.out.clear();
        sent
    }
}

fn ack_to_data(c: &mut Criterion) {
    for windowsize in [1u16, 16] {
        let mut loaded = Loaded::new(windowsize);
        let mut group = c.benchmark_group(format!("tftp_ack_window{windowsize}_10k_transfers"));
        group.throughput(Throughput::Elements(u64::from(windowsize)));
        let mut i = 0;
        group.bench_function("ack_to_data_descriptors", |b| {
            b.iter(|| {
                i = (i + 1) % TRANSFERS as usize;
                let sent = loaded.ack(i);
                debug_assert_eq!(sent, usize::from(windowsize));
                sent
            })
        });
        group.finish();
        assert_eq!(
            loaded.server.active_transfers(),
            TRANSFERS as usize,
            "none completed"
        );
    }
}

fn timers(c: &mut Criterion) {
    let loaded = Loaded::new(1);
    c.bench_function("tftp_poll_timeout_10k_transfers", |b| {
        b.iter(|| loaded.server.poll_timeout())
    });
}

criterion_group!(benches, ack_to_data, timers);
criterion_main!(benches);
