//! Receive metadata, replies, timers, stop and backend fallback, on loopback.
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bootwave_dataplane::driver::{
    Backend, BackendChoice, Binding, DriverError, Service, ShardContext, Steering, Tx, spawn_shards,
};
use bootwave_protocol::net::RecvMeta;
use driver_support::*;

fn echo_round_trip(backend: BackendChoice) {
    let (addr, binding) = any_addr_group();
    let (group, counter) = start_probes(
        config(1, backend, addr, binding),
        Reply::Echo,
        Duration::ZERO,
    );
    let expected_backend = match backend {
        BackendChoice::Portable => Backend::Portable,
        _ => Backend::Uring,
    };
    assert_eq!(group.backend(), expected_backend);
    let client = client();
    let dst_ip = Ipv4Addr::new(127, 0, 0, 5);
    let server = target(&group, dst_ip);
    for i in 0..20u8 {
        client.send_to(&[i; 40], server).unwrap();
        let mut buf = [0u8; 100];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 40]);
        // The reply leaves from the address the request was sent to: the
        // source hint (IP_PKTINFO ipi_spec_dst) was honoured.
        assert_eq!(from, SocketAddr::V4(server));
    }
    wait_count(&counter, 20);
    let exits = stop_and_join(group);
    let probe = &exits[0].service;
    assert_eq!(probe.seen.len(), 20);
    for seen in &probe.seen {
        assert_eq!(
            seen.meta,
            RecvMeta {
                src: client.local_addr().unwrap(),
                dst_ip: IpAddr::V4(dst_ip),
                local_port: server.port(),
                ifindex: lo_ifindex(),
            }
        );
        assert_eq!(seen.sock, 0);
    }
    assert_eq!(exits[0].stats.rx_datagrams, 20);
    assert_eq!(exits[0].stats.tx_datagrams, 20);
    assert_eq!(exits[0].stats.tx_errors, 0);
}

#[test]
fn uring_echo_reports_meta_and_replies_from_the_destination() {
    echo_round_trip(BackendChoice::Uring);
}

#[test]
fn portable_echo_reports_meta_and_replies_from_the_destination() {
    echo_round_trip(BackendChoice::Portable);
}

#[test]
fn refused_io_uring_falls_back_to_portable() {
    let (addr, binding) = any_addr_group();
    let mut cfg = config(1, BackendChoice::Auto, addr, binding);
    cfg.simulate_uring_unavailable = true;
    let (group, _counter) = start_probes(cfg, Reply::Echo, Duration::ZERO);
    assert_eq!(group.backend(), Backend::Portable);
    let client = client();
    client
        .send_to(b"ping", target(&group, Ipv4Addr::LOCALHOST))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    stop_and_join(group);
}

#[test]
fn forcing_refused_io_uring_is_an_error() {
    let (addr, binding) = any_addr_group();
    let mut cfg = config(1, BackendChoice::Uring, addr, binding);
    cfg.simulate_uring_unavailable = true;
    let result = spawn_shards(cfg, |ctx: &ShardContext| {
        Probe::new(ctx.shard, Default::default(), Reply::Silent)
    });
    assert!(
        matches!(result, Err(DriverError::Uring { .. })),
        "{result:?}"
    );
}

/// Fires at `first`, then every `every`, `fires` times, then asks to stop.
#[derive(Debug)]
struct Ticker {
    next: Instant,
    every: Duration,
    fires: Vec<(Instant, Instant)>,
    limit: usize,
}

impl Service for Ticker {
    fn on_datagram(&mut self, _: Instant, _: usize, _: &RecvMeta, _: &[u8], _: &mut Tx) {}

    fn poll_timeout(&self) -> Option<Instant> {
        (self.fires.len() < self.limit).then_some(self.next)
    }

    fn on_timeout(&mut self, now: Instant, _: &mut Tx) {
        self.fires.push((self.next, now));
        self.next = now + self.every;
    }

    fn should_stop(&self) -> bool {
        self.fires.len() >= self.limit
    }
}

fn timers_fire(backend: BackendChoice) {
    let (addr, binding) = any_addr_group();
    let mut cfg = config(2, backend, addr, binding);
    cfg.pin_threads = false;
    let start = Instant::now();
    let group = spawn_shards(cfg, move |_: &ShardContext| Ticker {
        next: start + Duration::from_millis(30),
        every: Duration::from_millis(20),
        fires: Vec::new(),
        limit: 3,
    })
    .unwrap();
    // No stop(): each shard ends by itself once its service says so.
    let exits = join_within(group, Duration::from_secs(10));
    for exit in exits {
        let fires = &exit.service.fires;
        assert_eq!(fires.len(), 3);
        for &(deadline, now) in fires {
            assert!(now >= deadline, "timer fired early");
        }
        assert!(fires[2].1 >= start + Duration::from_millis(70));
    }
}

#[test]
fn uring_timers_fire_at_the_service_deadline() {
    timers_fire(BackendChoice::Uring);
}

#[test]
fn portable_timers_fire_at_the_service_deadline() {
    timers_fire(BackendChoice::Portable);
}

fn stop_is_prompt(backend: BackendChoice) {
    let mut cfg = config(2, backend, "127.0.0.1:0", Binding::Group(Steering::Chaddr));
    cfg.pin_threads = false;
    let group = spawn_shards(cfg, |ctx: &ShardContext| {
        Probe::new(ctx.shard, Default::default(), Reply::Silent)
    })
    .unwrap();
    group.stop();
    let exits = join_within(group, Duration::from_secs(5));
    assert_eq!(exits.len(), 2);
    assert_eq!(
        exits.iter().map(|e| e.shard).collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn uring_stop_wakes_idle_shards() {
    stop_is_prompt(BackendChoice::Uring);
}

#[test]
fn portable_stop_wakes_idle_shards() {
    stop_is_prompt(BackendChoice::Portable);
}

/// Joins on a helper thread so a hung shard fails the test instead of
/// hanging it.
fn join_within<S: Send + 'static>(
    group: bootwave_dataplane::driver::ShardGroup<S>,
    limit: Duration,
) -> Vec<bootwave_dataplane::driver::ShardExit<S>> {
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(group.join());
    });
    wait.recv_timeout(limit)
        .expect("shards did not stop in time")
        .expect("shards stop cleanly")
}

fn per_shard_sockets_reach_their_shard(backend: BackendChoice) {
    let mut cfg = config(2, backend, "127.0.0.1:0", Binding::Group(Steering::Kernel));
    cfg.sockets
        .push(bootwave_dataplane::driver::SocketSpec::new(
            "127.0.0.1:0".parse().unwrap(),
            Binding::PerShard,
        ));
    let (group, counter) = start_probes(cfg, Reply::Echo, Duration::ZERO);
    let client = client();
    let mut ports = Vec::new();
    for shard in 0..2 {
        let addrs = group.local_addrs(shard);
        ports.push(addrs[1].port());
        assert_eq!(addrs.len(), 2);
        client.send_to(&[shard as u8], addrs[1]).unwrap();
        let mut buf = [0u8; 4];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&[shard as u8][..], SocketAddr::V4(addrs[1]))
        );
    }
    assert_ne!(ports[0], ports[1]);
    wait_count(&counter, 2);
    for exit in stop_and_join(group) {
        assert_eq!(exit.service.seen.len(), 1, "shard {}", exit.shard);
        let seen = &exit.service.seen[0];
        assert_eq!(seen.sock, 1);
        assert_eq!(seen.data, vec![exit.shard as u8]);
        assert_eq!(seen.meta.local_port, ports[exit.shard]);
    }
}

#[test]
fn uring_per_shard_socket_reaches_its_shard() {
    per_shard_sockets_reach_their_shard(BackendChoice::Uring);
}

#[test]
fn portable_per_shard_socket_reaches_its_shard() {
    per_shard_sockets_reach_their_shard(BackendChoice::Portable);
}
