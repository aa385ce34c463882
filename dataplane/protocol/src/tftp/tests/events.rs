//! Transfer events: one when a transfer starts, one when it ends with its
//! outcome, bytes acknowledged, retransmissions and duration (virtual
//! time).

use std::net::IpAddr;
use std::time::Duration;

use super::support::{
    DATA_PORTS, Direct, LISTEN_PORT, MemResolver, client_addr, pattern, settings,
};
use crate::tftp::wire::{self, Packet};
use crate::tftp::{
    ErrorCode, ServerOptions, TftpServer, TransferEnded, TransferEvent, TransferOutcome,
};

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

fn direct(files: &[(&str, Vec<u8>)], options: ServerOptions) -> Direct<MemResolver> {
    let mut server =
        TftpServer::with_options(&settings(), &DATA_PORTS, MemResolver::with(files), options);
    // Host 1 of the test LAN has a reservation; the others are unknown.
    server.set_mac_lookup(|ip: IpAddr| (ip == client_addr(1, 0).ip()).then_some(MAC));
    Direct::new(server)
}

fn rrq(name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::emit_request(&mut bytes, false, name, "octet", options);
    bytes
}

fn events(d: &mut Direct<MemResolver>) -> Vec<TransferEvent> {
    std::iter::from_fn(|| d.server.poll_event()).collect()
}

fn ended(d: &mut Direct<MemResolver>) -> TransferEnded {
    match &events(d)[..] {
        [TransferEvent::Ended(e)] => e.clone(),
        other => panic!("expected one Ended event, got {other:?}"),
    }
}

/// Starts a windowed transfer of `f` for `client`; returns its data port.
fn start(d: &mut Direct<MemResolver>, client: std::net::SocketAddr, window: &str) -> u16 {
    let sent = d.recv(
        0,
        client,
        LISTEN_PORT,
        &rrq(b"./f", &[("windowsize", window)]),
    );
    assert!(matches!(Packet::parse(&sent[0].bytes), Ok(Packet::Oack(_))));
    sent[0].local_port
}

#[test]
fn a_completed_transfer_reports_start_and_end() {
    let mut d = direct(&[("f", pattern(512 * 10, 1))], ServerOptions::default());
    let client = client_addr(1, 3000);
    let port = start(&mut d, client, "4");
    match &events(&mut d)[..] {
        [TransferEvent::Started(s)] => {
            assert_eq!(s.client, client);
            assert_eq!(s.mac, Some(MAC));
            assert_eq!(&*s.file, "f", "the normalised path");
            assert_eq!((s.size, s.blksize, s.windowsize), (5120, 512, 4));
        }
        other => panic!("expected one Started event, got {other:?}"),
    }
    for (ms, block) in [(1, 0), (2, 4), (3, 8)] {
        d.recv(ms, client, port, &wire::ack(block));
        assert!(d.server.poll_event().is_none(), "no event mid-transfer");
    }
    d.recv(7, client, port, &wire::ack(11));
    let end = ended(&mut d);
    assert_eq!(end.outcome, TransferOutcome::Completed);
    assert_eq!((end.client, end.mac, &*end.file), (client, Some(MAC), "f"));
    assert_eq!(
        (end.size, end.bytes_acked, end.retransmits),
        (5120, 5120, 0)
    );
    assert_eq!(end.duration, Duration::from_millis(7));
}

#[test]
fn a_silent_client_times_out_with_its_retransmissions_counted() {
    let mut d = direct(&[("f", pattern(3000, 2))], ServerOptions::default());
    let client = client_addr(2, 3000);
    d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    assert!(matches!(&events(&mut d)[..], [TransferEvent::Started(s)] if s.mac.is_none()));
    // Initial RTO 1 s, doubling up to 4 s, 5 retries, then dropped.
    let mut at = 0;
    for gap in [1000, 2000, 4000, 4000, 4000, 4000] {
        at += gap;
        d.tick(at);
    }
    let end = ended(&mut d);
    assert_eq!(end.outcome, TransferOutcome::TimedOut);
    assert_eq!(end.outcome.to_string(), "timed out");
    assert_eq!((end.mac, end.bytes_acked, end.retransmits), (None, 0, 5));
    assert_eq!(end.duration, Duration::from_millis(at));
}

#[test]
fn a_client_silent_after_the_final_block_is_told_apart() {
    let mut d = direct(&[("f", pattern(1000, 3))], ServerOptions::default());
    let client = client_addr(1, 3001);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    let port = sent[0].local_port;
    d.recv(1, client, port, &wire::ack(1));
    let _ = events(&mut d);
    // Block 2 (488 bytes, the final one) is sent; its ACK never comes.
    let mut at = 1;
    for gap in [1000, 2000, 4000, 4000, 4000, 4000] {
        at += gap;
        d.tick(at);
    }
    let end = ended(&mut d);
    assert_eq!(end.outcome, TransferOutcome::FinalAckMissing);
    assert_eq!(end.outcome.to_string(), "final ACK missing");
    assert_eq!((end.size, end.bytes_acked), (1000, 512));
    assert!(!end.outcome.is_completed());
}

#[test]
fn a_port_closed_after_the_final_block_is_a_missing_final_ack_not_a_failure() {
    let mut d = direct(&[("f", pattern(1000, 3))], ServerOptions::default());
    let client = client_addr(1, 3001);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    let port = sent[0].local_port;
    d.recv(1, client, port, &wire::ack(1));
    let _ = events(&mut d);
    // Block 2, the final one, is resent once; the client's port is closed.
    d.tick(1001);
    d.server.handle_unreachable(d.at(1002), port, client);
    let end = ended(&mut d);
    assert_eq!(end.outcome, TransferOutcome::FinalAckMissing);
    assert_eq!((end.size, end.bytes_acked), (1000, 512));
}

#[test]
fn a_port_closed_mid_transfer_is_unreachable() {
    let mut d = direct(&[("f", pattern(512 * 10, 3))], ServerOptions::default());
    let client = client_addr(1, 3001);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    let port = sent[0].local_port;
    d.recv(1, client, port, &wire::ack(1));
    let _ = events(&mut d);
    d.server.handle_unreachable(d.at(2), port, client);
    assert_eq!(ended(&mut d).outcome, TransferOutcome::Unreachable);
}

#[test]
fn a_client_error_ends_the_transfer_with_its_code_and_message() {
    let mut d = direct(&[("f", pattern(512 * 10, 3))], ServerOptions::default());
    let client = client_addr(1, 3001);
    let port = start(&mut d, client, "4");
    d.recv(1, client, port, &wire::ack(0));
    d.recv(2, client, port, &wire::ack(4));
    events(&mut d);
    let mut error = Vec::new();
    wire::emit_error(&mut error, ErrorCode::NotDefined, "user abort");
    d.recv(30, client, port, &error);
    let end = ended(&mut d);
    assert_eq!(
        end.outcome,
        TransferOutcome::ClientError {
            code: 0,
            message: "user abort".into()
        }
    );
    assert_eq!(end.outcome.to_string(), "client error 0: user abort");
    assert_eq!(end.bytes_acked, 4 * 512);
    assert_eq!(end.duration, Duration::from_millis(30));
    assert_eq!(d.server.counters().transfers_failed, 1);
}

#[test]
fn an_option_refusal_is_its_own_outcome() {
    let mut d = direct(&[("f", pattern(100, 4))], ServerOptions::default());
    let client = client_addr(3, 3000);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[("tsize", "0")]));
    let mut error = Vec::new();
    wire::emit_error(&mut error, ErrorCode::OptionsRefused, "size only");
    events(&mut d);
    d.recv(1, client, sent[0].local_port, &error);
    let end = ended(&mut d);
    assert_eq!(end.outcome, TransferOutcome::OptionsRefused);
    assert_eq!(end.bytes_acked, 0);
}

#[test]
fn retransmitted_blocks_are_counted_per_transfer() {
    let mut d = direct(&[("f", pattern(512 * 10, 5))], ServerOptions::default());
    let (a, b) = (client_addr(1, 4000), client_addr(4, 4000));
    let (port_a, port_b) = (start(&mut d, a, "4"), start(&mut d, b, "4"));
    d.recv(1, a, port_a, &wire::ack(0));
    // A partial-window ACK: blocks 3 and 4 go out again.
    d.recv(2, a, port_a, &wire::ack(2));
    d.recv(3, a, port_a, &wire::ack(6));
    d.recv(4, a, port_a, &wire::ack(10));
    d.recv(5, a, port_a, &wire::ack(11));
    // The other transfer finishes without loss.
    for (ms, block) in [(6, 0), (7, 4), (8, 8), (9, 11)] {
        d.recv(ms, b, port_b, &wire::ack(block));
    }
    let ends: Vec<TransferEnded> = events(&mut d)
        .into_iter()
        .filter_map(|e| match e {
            TransferEvent::Ended(e) => Some(e),
            TransferEvent::Started(_) => None,
        })
        .collect();
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert_eq!((ends[0].client, ends[0].retransmits), (a, 2));
    assert_eq!((ends[1].client, ends[1].retransmits), (b, 0));
    assert!(ends.iter().all(|e| e.outcome.is_completed()));
    assert_eq!(d.server.counters().retransmits, 2);
}

#[test]
fn a_new_request_replaces_a_transfer_in_progress() {
    let mut d = direct(&[("f", pattern(512 * 10, 6))], ServerOptions::default());
    let client = client_addr(1, 3002);
    let port = start(&mut d, client, "4");
    d.recv(1, client, port, &wire::ack(0));
    d.recv(2, client, port, &wire::ack(4));
    events(&mut d);
    d.recv(3, client, LISTEN_PORT, &rrq(b"f", &[]));
    match &events(&mut d)[..] {
        [TransferEvent::Ended(end), TransferEvent::Started(_)] => {
            assert_eq!(end.outcome, TransferOutcome::Replaced);
            assert_eq!(end.bytes_acked, 2048);
        }
        other => panic!("expected Ended then Started, got {other:?}"),
    }
}

#[test]
fn an_undrained_queue_keeps_the_newest_events_and_counts_the_rest() {
    let options = ServerOptions {
        event_capacity: 2,
        ..ServerOptions::default()
    };
    let mut d = direct(&[("f", pattern(100, 7))], options);
    for host in 1..=3 {
        d.recv(0, client_addr(host, 5000), LISTEN_PORT, &rrq(b"f", &[]));
    }
    assert_eq!(d.server.counters().events_dropped, 1);
    let hosts: Vec<IpAddr> = events(&mut d).iter().map(|e| e.client().ip()).collect();
    assert_eq!(hosts, [client_addr(2, 0).ip(), client_addr(3, 0).ip()]);
}
