//! Echo throughput of the io_uring and portable backends on loopback.
//!
//! One pinned shard echoes 64-byte datagrams. The client keeps at most
//! `WINDOW` datagrams in flight, sending with `sendmmsg` and receiving with
//! `recvmmsg` on a connected socket, so the load is bounded and the figure
//! is round trips per second through the shard. A datagram not echoed
//! within 100 ms counts as lost (and is reported) so an iteration always
//! ends.
//!
//! `driver_sink` measures the receive path alone: the client sends
//! 200 000 datagrams with `sendmmsg`, never more than 2048 ahead of what the
//! shard has counted, so nothing overflows the socket.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bootwave_dataplane::driver::{
    BackendChoice, Binding, DriverConfig, Service, ShardContext, SocketSpec, SourceHint, Steering,
    Tx, spawn_shards,
};
use bootwave_protocol::net::RecvMeta;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Round trips per measured iteration.
const PER_ITER: usize = 20_000;
/// Datagrams in flight at most.
const WINDOW: usize = 256;
/// Datagrams per `sendmmsg` / `recvmmsg`.
const BATCH: usize = 32;
/// Payload bytes.
const SIZE: usize = 64;
/// Datagrams per measured iteration of the one-way bench.
const SINK_PER_ITER: usize = 200_000;
/// Datagrams the one-way sender may run ahead of the shard.
const SINK_WINDOW: usize = 2048;

#[derive(Debug)]
struct Echo;

impl Service for Echo {
    fn on_datagram(&mut self, _: Instant, sock: usize, meta: &RecvMeta, data: &[u8], tx: &mut Tx) {
        let (std::net::SocketAddr::V4(dst), std::net::IpAddr::V4(addr)) = (meta.src, meta.dst_ip)
        else {
            return;
        };
        let mut buf = tx.buffer();
        buf.extend_from_slice(data);
        let hint = SourceHint {
            ifindex: meta.ifindex,
            addr,
        };
        let _ = tx.send(sock, dst, Some(hint), buf);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn on_timeout(&mut self, _: Instant, _: &mut Tx) {}
}

/// Counts datagrams without answering.
#[derive(Debug)]
struct Sink(Arc<AtomicUsize>);

impl Service for Sink {
    fn on_datagram(&mut self, _: Instant, _: usize, _: &RecvMeta, _: &[u8], _: &mut Tx) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn on_timeout(&mut self, _: Instant, _: &mut Tx) {}
}

/// A connected loopback client with batch storage.
struct Client {
    socket: UdpSocket,
    send_buf: Box<[u8; SIZE]>,
    recv_bufs: Box<[[u8; SIZE]; BATCH]>,
}

impl Client {
    fn new(server: std::net::SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
        socket.connect(server).expect("connect client");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        // Room for every echo in flight, so the client's own socket drops
        // nothing (needs root, as the data plane does).
        let size: libc::c_int = 4 << 20;
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
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
        Self {
            socket,
            send_buf: Box::new([0x5a; SIZE]),
            recv_bufs: Box::new([[0; SIZE]; BATCH]),
        }
    }

    /// `n` round trips; returns the elapsed time and the datagrams lost.
    fn run(&mut self, n: usize) -> (Duration, usize) {
        let start = Instant::now();
        let (mut sent, mut received, mut lost) = (0, 0, 0);
        while received + lost < n {
            while sent < n && sent - received - lost < WINDOW {
                let k = BATCH.min(n - sent).min(WINDOW - (sent - received - lost));
                sent += self.send(k);
            }
            match self.recv() {
                Some(k) => received += k,
                None => lost = sent - received,
            }
        }
        (start.elapsed(), lost)
    }

    fn send(&mut self, k: usize) -> usize {
        let mut iov = libc::iovec {
            iov_base: self.send_buf.as_mut_ptr().cast(),
            iov_len: SIZE,
        };
        let mut msgs: Vec<libc::mmsghdr> = (0..k).map(|_| mmsghdr(&mut iov)).collect();
        // Safety: `msgs` holds `k` headers, each pointing at the one live
        // iovec over `send_buf`; the socket is connected, so no name.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                k as libc::c_uint,
                0,
            )
        };
        usize::try_from(rc).unwrap_or(0)
    }

    /// Sends `n` datagrams, keeping at most [`SINK_WINDOW`] ahead of what
    /// the shard has counted; returns when all are counted or after 5 s.
    fn blast(&mut self, n: usize, counted: &AtomicUsize) -> Duration {
        let start = Instant::now();
        let base = counted.load(Ordering::Relaxed);
        let mut sent = 0;
        let deadline = start + Duration::from_secs(5);
        loop {
            let done = counted.load(Ordering::Relaxed) - base;
            if done >= n || Instant::now() >= deadline {
                if done < n {
                    eprintln!("sink: {} of {n} datagrams not counted", n - done);
                }
                return start.elapsed();
            }
            if sent < n && sent - done < SINK_WINDOW {
                sent += self.send(BATCH.min(n - sent));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Echoes received in one call, or `None` after the read timeout.
    fn recv(&mut self) -> Option<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .recv_bufs
            .iter_mut()
            .map(|buf| libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: SIZE,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs.iter_mut().map(mmsghdr).collect();
        // Safety: `BATCH` headers, each pointing at its own live iovec over
        // a `SIZE`-byte buffer of `recv_bufs`.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(rc).ok()
    }
}

fn mmsghdr(iov: &mut libc::iovec) -> libc::mmsghdr {
    libc::mmsghdr {
        msg_hdr: libc::msghdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            msg_iov: iov,
            msg_iovlen: 1,
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        },
        msg_len: 0,
    }
}

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("driver_echo");
    group.throughput(Throughput::Elements(PER_ITER as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, backend) in [
        ("uring", BackendChoice::Uring),
        ("portable", BackendChoice::Portable),
    ] {
        let spec = SocketSpec::new(
            "127.0.0.1:0".parse().expect("address"),
            Binding::Group(Steering::Kernel),
        );
        let mut config = DriverConfig::new(1, vec![spec]);
        config.backend = backend;
        let shards = spawn_shards(config, |_: &ShardContext| Echo).expect("start shard");
        let mut client = Client::new(std::net::SocketAddr::V4(shards.local_addrs(0)[0]));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (elapsed, lost) = client.run(PER_ITER);
                    if lost > 0 {
                        eprintln!("{name}: {lost} of {PER_ITER} datagrams lost");
                    }
                    total += elapsed;
                }
                total
            })
        });
        shards.stop();
        let exits = shards.join().expect("shard stops");
        eprintln!("{name}: {:?}", exits[0].stats);
    }
    group.finish();
}

fn sink(c: &mut Criterion) {
    let mut group = c.benchmark_group("driver_sink");
    group.throughput(Throughput::Elements(SINK_PER_ITER as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, backend) in [
        ("uring", BackendChoice::Uring),
        ("portable", BackendChoice::Portable),
    ] {
        let spec = SocketSpec::new(
            "127.0.0.1:0".parse().expect("address"),
            Binding::Group(Steering::Kernel),
        );
        let mut config = DriverConfig::new(1, vec![spec]);
        config.backend = backend;
        let counted = Arc::new(AtomicUsize::new(0));
        let shared = counted.clone();
        let shards = spawn_shards(config, move |_: &ShardContext| Sink(shared.clone()))
            .expect("start shard");
        let mut client = Client::new(std::net::SocketAddr::V4(shards.local_addrs(0)[0]));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| client.blast(SINK_PER_ITER, &counted))
                    .sum()
            })
        });
        shards.stop();
        let exits = shards.join().expect("shard stops");
        eprintln!("{name}: {:?}", exits[0].stats);
    }
    group.finish();
}

criterion_group!(benches, echo, sink);
criterion_main!(benches);
