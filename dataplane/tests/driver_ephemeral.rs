//! Run-time sockets (`Tx::open_socket`): opened on a random port, served
//! from the next iteration, closed after what was queued for them, bounded;
//! on both backends, on loopback.
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bootwave_dataplane::driver::{
    BackendChoice, EphemeralSpec, Service, ShardContext, Tx, spawn_shards,
};
use bootwave_protocol::net::RecvMeta;
use driver_support::*;

/// On socket 0: opens a run-time socket and answers "port N" from it (or
/// "full" from socket 0). On a run-time socket: echoes from it and
/// closes it.
#[derive(Debug, Default)]
struct Opener {
    opened: usize,
    failed: usize,
    closed: usize,
}

impl Service for Opener {
    fn on_datagram(&mut self, _: Instant, sock: usize, meta: &RecvMeta, data: &[u8], tx: &mut Tx) {
        let SocketAddr::V4(src) = meta.src else {
            return;
        };
        if sock == 0 {
            let (from, reply) = match tx.open_socket() {
                Ok((sock, local)) => {
                    self.opened += 1;
                    (sock, format!("port {}", local.port()))
                }
                Err(_) => {
                    self.failed += 1;
                    (0, "full".to_owned())
                }
            };
            let mut bytes = tx.buffer();
            bytes.extend_from_slice(reply.as_bytes());
            tx.send(from, src, None, bytes).unwrap();
        } else {
            let mut bytes = tx.buffer();
            bytes.extend_from_slice(data);
            tx.send(sock, src, None, bytes).unwrap();
            tx.close_socket(sock);
            self.closed += 1;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn on_timeout(&mut self, _: Instant, _: &mut Tx) {}
}

fn recv_text(client: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

fn run_time_sockets(backend: BackendChoice) {
    let mut cfg = config(1, backend, "127.0.0.1:0", any_addr_group().1);
    cfg.pin_threads = false;
    cfg.ephemeral = EphemeralSpec {
        max_sockets: 2,
        ..EphemeralSpec::default()
    };
    let group = spawn_shards(cfg, |_: &ShardContext| Opener::default()).unwrap();
    let listen = SocketAddrV4::new(Ipv4Addr::LOCALHOST, group.local_addrs(0)[0].port());
    let client = client();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut ports = HashSet::new();
    // Many rounds: indices are released and reused, ports drawn afresh.
    for round in 0..40u8 {
        client.send_to(b"open", listen).unwrap();
        let (text, from) = recv_text(&client);
        let port: u16 = text.strip_prefix("port ").unwrap().parse().unwrap();
        // The answer comes from the new socket itself.
        assert_eq!(from.port(), port, "round {round}");
        assert_ne!(port, listen.port());
        ports.insert(port);
        let at = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        client.send_to(&[round; 8], at).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[round; 8][..], SocketAddr::V4(at)));
        // Closed after the echo: nothing answers there any more.
        client.send_to(b"again", at).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            client.recv_from(&mut buf).is_err(),
            "round {round}: closed socket answered"
        );
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
    }
    assert!(
        ports.len() >= 35,
        "ports repeat: {} distinct of 40",
        ports.len()
    );
    // The bound: two open, the third refused.
    for _ in 0..2 {
        client.send_to(b"open", listen).unwrap();
        assert!(recv_text(&client).0.starts_with("port "));
    }
    client.send_to(b"open", listen).unwrap();
    assert_eq!(recv_text(&client).0, "full");
    let exits = stop_and_join(group);
    let opener = &exits[0].service;
    assert_eq!((opener.opened, opener.failed, opener.closed), (42, 1, 40));
}

#[test]
fn uring_run_time_sockets_open_answer_close_and_are_bounded() {
    run_time_sockets(BackendChoice::Uring);
}

#[test]
fn portable_run_time_sockets_open_answer_close_and_are_bounded() {
    run_time_sockets(BackendChoice::Portable);
}
