//! Test services and loopback helpers shared by the driver tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bootwave_dataplane::driver::{
    BackendChoice, Binding, Chunk, DriverConfig, Service, ShardContext, ShardExit, ShardGroup,
    SocketSpec, SourceHint, Steering, Tx, spawn_shards,
};
use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::tftp::FileData;

/// Both backends, for tests that must pass on each.
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::Uring, BackendChoice::Portable];

/// One datagram as a service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub sock: usize,
    pub meta: RecvMeta,
    pub data: Vec<u8>,
}

/// What [`Probe`] answers with.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Nothing.
    Silent,
    /// The same bytes, from the address the datagram was sent to.
    Echo,
    /// A window of `[header | file slice]` datagrams.
    Window {
        file: Arc<dyn FileData>,
        chunks: Vec<Chunk>,
    },
}

/// Records every datagram, counts them in a shared counter, and replies.
#[derive(Debug)]
pub struct Probe {
    pub shard: usize,
    pub seen: Vec<Seen>,
    pub counter: Arc<AtomicUsize>,
    pub reply: Reply,
    /// Sleep this long on the first datagram (to let the socket queue fill).
    pub first_delay: Duration,
}

impl Probe {
    pub fn new(shard: usize, counter: Arc<AtomicUsize>, reply: Reply) -> Self {
        Self {
            shard,
            seen: Vec::new(),
            counter,
            reply,
            first_delay: Duration::ZERO,
        }
    }
}

impl Service for Probe {
    fn on_datagram(
        &mut self,
        _now: Instant,
        sock: usize,
        meta: &RecvMeta,
        data: &[u8],
        tx: &mut Tx,
    ) {
        if self.seen.is_empty() && !self.first_delay.is_zero() {
            std::thread::sleep(self.first_delay);
        }
        self.seen.push(Seen {
            sock,
            meta: *meta,
            data: data.to_vec(),
        });
        self.counter.fetch_add(1, Ordering::SeqCst);
        let std::net::SocketAddr::V4(dst) = meta.src else {
            return;
        };
        let std::net::IpAddr::V4(local) = meta.dst_ip else {
            return;
        };
        let hint = Some(SourceHint {
            ifindex: meta.ifindex,
            addr: local,
        });
        match &self.reply {
            Reply::Silent => {}
            Reply::Echo => {
                let mut buf = tx.buffer();
                buf.extend_from_slice(data);
                tx.send(sock, dst, hint, buf).expect("socket exists");
            }
            Reply::Window { file, chunks } => {
                tx.send_window(sock, dst, hint, file.clone(), chunks)
                    .expect("valid window");
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn on_timeout(&mut self, _now: Instant, _tx: &mut Tx) {}
}

/// A one-socket config on `addr` with the given backend.
pub fn config(shards: usize, backend: BackendChoice, addr: &str, binding: Binding) -> DriverConfig {
    let mut config = DriverConfig::new(
        shards,
        vec![SocketSpec::new(addr.parse().unwrap(), binding)],
    );
    config.backend = backend;
    config
}

/// Starts `shards` probes on `addr`, sharing one counter.
pub fn start_probes(
    mut config: DriverConfig,
    reply: Reply,
    first_delay: Duration,
) -> (ShardGroup<Probe>, Arc<AtomicUsize>) {
    config.pin_threads = false;
    let counter = Arc::new(AtomicUsize::new(0));
    let shared = counter.clone();
    let group = spawn_shards(config, move |ctx: &ShardContext| {
        let mut probe = Probe::new(ctx.shard, shared.clone(), reply.clone());
        probe.first_delay = first_delay;
        probe
    })
    .expect("shards start");
    (group, counter)
}

/// Waits (at most 10 s) until `counter` reaches `want`.
pub fn wait_count(counter: &AtomicUsize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::SeqCst) < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} datagrams arrived",
            counter.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Stops the group and returns the shards' exits.
pub fn stop_and_join<S>(group: ShardGroup<S>) -> Vec<ShardExit<S>> {
    group.stop();
    group.join().expect("shards stop cleanly")
}

/// A loopback client with a 5 s read timeout and a large receive buffer.
pub fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let size: libc::c_int = 8 << 20;
    // Safety: passes a live c_int of the size given to a socket we own.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "SO_RCVBUFFORCE needs root: {}",
        std::io::Error::last_os_error()
    );
    socket
}

/// The interface index of `lo`.
pub fn lo_ifindex() -> u32 {
    std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .expect("lo exists")
        .trim()
        .parse()
        .expect("ifindex is a number")
}

/// A file of `len` bytes whose byte `i` is `i % 251`.
pub fn pattern_file(len: usize) -> Arc<dyn FileData> {
    Arc::new((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// TFTP-like chunks: block `n` at `n * stride`, with the given lengths.
pub fn chunks(lens: &[usize], stride: usize) -> Vec<Chunk> {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let [hi, lo] = (i as u16 + 1).to_be_bytes();
            Chunk {
                header: [0, 3, hi, lo],
                start: i * stride,
                len,
            }
        })
        .collect()
}

/// The address a shard group listens on, as seen from a loopback client.
pub fn target(group: &ShardGroup<Probe>, ip: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(ip, group.local_addrs(0)[0].port())
}

/// A group bound to `0.0.0.0:0` with kernel steering.
pub fn any_addr_group() -> (&'static str, Binding) {
    ("0.0.0.0:0", Binding::Group(Steering::Kernel))
}
