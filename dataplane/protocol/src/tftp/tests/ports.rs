//! Per-transfer ports: each transfer answers from the port the driver
//! handed in, only its own client moves it, and its port comes back when
//! it ends.

use super::support::{Direct, LISTEN_PORT, MemResolver, Sent, client_addr, pattern, settings};
use crate::tftp::wire::{self, Packet};
use crate::tftp::{
    ErrorCode, MAX_SPARE_PORTS, Refusal, ServerOptions, TftpServer, TransferEvent, TransferOutcome,
};

fn per_transfer(files: &[(&str, Vec<u8>)]) -> Direct<MemResolver> {
    let options = ServerOptions {
        per_transfer_ports: true,
        ..ServerOptions::default()
    };
    Direct::new(TftpServer::with_options(
        &settings(),
        &[],
        MemResolver::with(files),
        options,
    ))
}

fn rrq(name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::emit_request(&mut bytes, false, name, "octet", options);
    bytes
}

fn error_code(sent: &[Sent]) -> Option<u16> {
    match sent {
        [one] => match Packet::parse(&one.bytes) {
            Ok(Packet::Error { code, .. }) => Some(code),
            _ => None,
        },
        _ => None,
    }
}

fn data_blocks(sent: &[Sent]) -> usize {
    sent.iter()
        .filter(|s| matches!(Packet::parse(&s.bytes), Ok(Packet::Data { .. })))
        .count()
}

#[test]
fn each_transfer_answers_from_the_port_handed_in() {
    let mut d = per_transfer(&[("f", pattern(2000, 1))]);
    assert!(d.server.wants_transfer_port());
    for (i, port) in [41_001u16, 52_002, 33_003].into_iter().enumerate() {
        d.server.add_transfer_port(port);
        assert!(!d.server.wants_transfer_port());
        let client = client_addr(1, 3000 + i as u16);
        let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].dest, sent[0].local_port), (client, port));
        assert!(d.server.wants_transfer_port(), "a port serves one transfer");
    }
    assert_eq!(d.server.active_transfers(), 3);
}

#[test]
fn without_a_port_a_request_is_refused_and_counted() {
    let mut d = per_transfer(&[("f", pattern(100, 1))]);
    let client = client_addr(1, 3000);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(error_code(&sent), Some(ErrorCode::NotDefined as u16));
    assert_eq!(sent[0].local_port, LISTEN_PORT);
    assert_eq!(d.server.counters().refusals(Refusal::NoPort), 1);
    assert_eq!(d.server.active_transfers(), 0);
}

#[test]
fn errors_to_requests_come_from_the_listen_port_and_spend_no_port() {
    let mut d = per_transfer(&[("f", pattern(100, 1))]);
    d.server.add_transfer_port(40_500);
    let sent = d.recv(0, client_addr(1, 3000), LISTEN_PORT, &rrq(b"missing", &[]));
    assert_eq!(error_code(&sent), Some(ErrorCode::FileNotFound as u16));
    assert_eq!(sent[0].local_port, LISTEN_PORT);
    assert!(!d.server.wants_transfer_port(), "the port is still spare");
    let sent = d.recv(1, client_addr(1, 3001), LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(sent[0].local_port, 40_500);
}

#[test]
fn a_stranger_on_a_transfer_port_gets_error_5_and_moves_nothing() {
    let mut d = per_transfer(&[("f", pattern(512 * 20, 1))]);
    d.server.add_transfer_port(45_000);
    let client = client_addr(1, 3000);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[("windowsize", "4")]));
    assert!(matches!(Packet::parse(&sent[0].bytes), Ok(Packet::Oack(_))));
    // Same IP, other port; other IP, same port: neither is the peer.
    for stranger in [client_addr(1, 3001), client_addr(2, 3000)] {
        let sent = d.recv(1, stranger, 45_000, &wire::ack(0));
        assert_eq!(error_code(&sent), Some(ErrorCode::UnknownTid as u16));
        assert_eq!((sent[0].dest, sent[0].local_port), (stranger, 45_000));
    }
    // The client's own ACK to another port is not its transfer either.
    let sent = d.recv(2, client, 45_001, &wire::ack(0));
    assert_eq!(error_code(&sent), Some(ErrorCode::UnknownTid as u16));
    // The real client still gets its first window, from its port.
    let sent = d.recv(3, client, 45_000, &wire::ack(0));
    assert_eq!(data_blocks(&sent), 4);
    assert!(
        sent.iter()
            .all(|s| s.local_port == 45_000 && s.dest == client)
    );
}

#[test]
fn an_ended_transfer_gives_its_port_back() {
    let mut d = per_transfer(&[("f", pattern(100, 1))]);
    d.server.add_transfer_port(47_000);
    let client = client_addr(1, 3000);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(data_blocks(&sent), 1);
    assert_eq!(d.server.poll_released_port(), None);
    assert!(d.recv(1, client, 47_000, &wire::ack(1)).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.poll_released_port(), Some(47_000));
    assert_eq!(d.server.poll_released_port(), None);
    // A late datagram to the closed transfer is an unknown TID.
    let sent = d.recv(2, client, 47_000, &wire::ack(1));
    assert_eq!(error_code(&sent), Some(ErrorCode::UnknownTid as u16));
}

#[test]
fn a_timed_out_or_replaced_transfer_gives_its_port_back() {
    let mut d = per_transfer(&[("f", pattern(5000, 1))]);
    let client = client_addr(1, 3000);
    d.server.add_transfer_port(48_000);
    d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[("blksize", "1024")]));
    // A different request from the same address replaces the transfer.
    d.server.add_transfer_port(48_001);
    let sent = d.recv(1, client, LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(sent[0].local_port, 48_001);
    assert_eq!(d.server.poll_released_port(), Some(48_000));
    // Never acknowledged: dropped by the timers, port handed back.
    for s in 1..=120 {
        d.tick(s * 1000);
    }
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.poll_released_port(), Some(48_001));
}

#[test]
fn spare_ports_are_bounded() {
    let mut d = per_transfer(&[]);
    for port in 0..(MAX_SPARE_PORTS as u16 + 3) {
        d.server.add_transfer_port(50_000 + port);
    }
    let mut back = Vec::new();
    while let Some(port) = d.server.poll_released_port() {
        back.push(port);
    }
    assert_eq!(back.len(), 3);
    // The listen port is never taken as a transfer port.
    d.server.add_transfer_port(LISTEN_PORT);
    assert_eq!(d.server.poll_released_port(), Some(LISTEN_PORT));
}

#[test]
fn a_draining_server_wants_no_port() {
    let mut d = per_transfer(&[]);
    assert!(d.server.wants_transfer_port());
    d.server.drain();
    assert!(!d.server.wants_transfer_port());
}

#[test]
fn an_unreachable_client_ends_its_transfer_and_blind_acks_find_nothing() {
    let mut d = per_transfer(&[("f", pattern(1468 * 200, 1))]);
    d.server.add_transfer_port(46_000);
    // A spoofed request names the victim; its kernel rejects the OACK.
    let victim = client_addr(7, 4000);
    let sent = d.recv(
        0,
        victim,
        LISTEN_PORT,
        &rrq(b"f", &[("blksize", "1432"), ("windowsize", "64")]),
    );
    assert!(matches!(Packet::parse(&sent[0].bytes), Ok(Packet::Oack(_))));
    // Reports about another destination or another port change nothing:
    // an ERROR 5 to a stranger can bounce too.
    let at = d.at(1);
    d.server
        .handle_unreachable(at, 46_000, client_addr(7, 4001));
    d.server.handle_unreachable(at, 46_001, victim);
    assert_eq!(d.server.active_transfers(), 1);
    d.server.handle_unreachable(d.at(2), 46_000, victim);
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.poll_released_port(), Some(46_000));
    assert_eq!(d.server.counters().transfers_failed, 1);
    let outcomes: Vec<_> = std::iter::from_fn(|| d.server.poll_event())
        .filter_map(|e| match e {
            TransferEvent::Ended(end) => Some(end.outcome),
            TransferEvent::Started(_) => None,
        })
        .collect();
    assert_eq!(outcomes, [TransferOutcome::Unreachable]);
    // The attacker's blind ACK, from the victim's address, reaches no
    // transfer: no DATA, only ERROR 5 (which the driver cannot even send
    // once the port is closed).
    let sent = d.recv(3, victim, 46_000, &wire::ack(0));
    assert_eq!(data_blocks(&sent), 0);
    assert_eq!(error_code(&sent), Some(ErrorCode::UnknownTid as u16));
    // Idempotent, and harmless once the transfer is gone.
    d.server.handle_unreachable(d.at(4), 46_000, victim);
    assert_eq!(d.server.poll_released_port(), None);
}
