//! Packet-by-packet checks: ACK handling, errors, refusals, timers, drain.

use std::net::SocketAddr;

use super::support::{
    DATA_PORTS, Direct, LISTEN_PORT, MemResolver, Sent, client_addr, pattern, settings,
};
use crate::config::{TftpAdmission, TftpSettings};
use crate::tftp::wire::{self, Packet};
use crate::tftp::{ErrorCode, Refusal, ServerOptions, TftpServer};

fn direct_with(
    settings: &TftpSettings,
    options: ServerOptions,
    files: &[(&str, Vec<u8>)],
) -> Direct<MemResolver> {
    Direct::new(TftpServer::with_options(
        settings,
        &DATA_PORTS,
        MemResolver::with(files),
        options,
    ))
}

fn direct(files: &[(&str, Vec<u8>)]) -> Direct<MemResolver> {
    direct_with(&settings(), ServerOptions::default(), files)
}

fn rrq(name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::emit_request(&mut bytes, false, name, "octet", options);
    bytes
}

/// The DATA block numbers in `sent`, in order.
fn blocks(sent: &[Sent]) -> Vec<u16> {
    sent.iter()
        .filter_map(|s| match Packet::parse(&s.bytes) {
            Ok(Packet::Data { block, .. }) => Some(block),
            _ => None,
        })
        .collect()
}

/// The single ERROR in `sent`, as (code, message).
fn error_of(sent: &[Sent]) -> (u16, String) {
    assert_eq!(sent.len(), 1, "expected one packet, got {sent:?}");
    match Packet::parse(&sent[0].bytes) {
        Ok(Packet::Error { code, message }) => {
            (code, String::from_utf8_lossy(message).into_owned())
        }
        other => panic!("not an ERROR: {other:?}"),
    }
}

/// Starts a windowed transfer of 10 × 512 bytes and returns the client
/// and its data port after the OACK.
fn windowed(d: &mut Direct<MemResolver>, windowsize: &str) -> (SocketAddr, u16) {
    let client = client_addr(1, 3000);
    let sent = d.recv(
        0,
        client,
        LISTEN_PORT,
        &rrq(b"f", &[("windowsize", windowsize)]),
    );
    assert_eq!(sent.len(), 1);
    assert!(matches!(Packet::parse(&sent[0].bytes), Ok(Packet::Oack(_))));
    assert!(DATA_PORTS.contains(&sent[0].local_port));
    assert_eq!(sent[0].dest, client);
    (client, sent[0].local_port)
}

#[test]
fn duplicate_and_old_acks_send_nothing() {
    let mut d = direct(&[("f", pattern(512 * 10, 1))]);
    let (client, port) = windowed(&mut d, "4");
    assert_eq!(
        blocks(&d.recv(1, client, port, &wire::ack(0))),
        [1, 2, 3, 4]
    );
    assert!(
        d.recv(2, client, port, &wire::ack(0)).is_empty(),
        "duplicate ACK 0"
    );
    assert_eq!(
        blocks(&d.recv(3, client, port, &wire::ack(4))),
        [5, 6, 7, 8]
    );
    for old in [4, 4, 3, 1, 0, 60_000] {
        assert!(
            d.recv(4, client, port, &wire::ack(old)).is_empty(),
            "ACK {old}"
        );
    }
    assert!(
        d.recv(4, client, port, &wire::ack(9)).is_empty(),
        "ACK of unsent block 9"
    );
    let tail = d.recv(5, client, port, &wire::ack(8));
    assert_eq!(blocks(&tail), [9, 10, 11]);
    assert_eq!(tail[2].bytes.len(), 4, "empty final block");
    assert_eq!(d.server.counters().retransmits, 0);
    assert!(d.recv(6, client, port, &wire::ack(11)).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.counters().transfers_completed, 1);
}

#[test]
fn partial_window_ack_resumes_after_acknowledged_block() {
    let mut d = direct(&[("f", pattern(512 * 10, 2))]);
    let (client, port) = windowed(&mut d, "4");
    assert_eq!(
        blocks(&d.recv(1, client, port, &wire::ack(0))),
        [1, 2, 3, 4]
    );
    assert_eq!(
        blocks(&d.recv(2, client, port, &wire::ack(2))),
        [3, 4, 5, 6]
    );
    assert_eq!(d.server.counters().retransmits, 2);
    assert_eq!(
        blocks(&d.recv(3, client, port, &wire::ack(6))),
        [7, 8, 9, 10]
    );
}

#[test]
fn lock_step_duplicate_data_ack_is_ignored() {
    // The Sorcerer's Apprentice case: a client re-ACKs a duplicated DATA.
    let mut d = direct(&[("f", pattern(512 * 3 + 1, 3))]);
    let client = client_addr(2, 3000);
    let first = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(blocks(&first), [1]);
    let port = first[0].local_port;
    assert_eq!(blocks(&d.recv(1, client, port, &wire::ack(1))), [2]);
    assert!(d.recv(2, client, port, &wire::ack(1)).is_empty());
    assert_eq!(blocks(&d.recv(3, client, port, &wire::ack(2))), [3]);
    assert!(d.recv(4, client, port, &wire::ack(2)).is_empty());
}

#[test]
fn unknown_tid_gets_error_5_and_transfer_goes_on() {
    let mut d = direct(&[("f", pattern(2000, 4))]);
    let (client, port) = windowed(&mut d, "2");
    let stranger = client_addr(1, 4444);
    let sent = d.recv(1, stranger, port, &wire::ack(0));
    assert_eq!(error_of(&sent).0, ErrorCode::UnknownTid as u16);
    assert_eq!((sent[0].dest, sent[0].local_port), (stranger, port));
    let other_port = DATA_PORTS
        .iter()
        .copied()
        .find(|&p| p != port)
        .expect("4 ports");
    let sent = d.recv(1, client, other_port, &wire::ack(0));
    assert_eq!(error_of(&sent).0, ErrorCode::UnknownTid as u16);
    assert!(
        d.recv(1, stranger, port, b"\x00\x05\x00\x00x\x00")
            .is_empty(),
        "never answer an ERROR"
    );
    assert_eq!(blocks(&d.recv(2, client, port, &wire::ack(0))), [1, 2]);
    assert_eq!(d.server.counters().errors(ErrorCode::UnknownTid), 2);
}

#[test]
fn replies_come_from_the_address_the_client_asked() {
    use crate::net::RecvMeta;
    use crate::tftp::TxQueue;
    use std::net::{IpAddr, Ipv4Addr};

    let mut d = direct(&[("f", pattern(5000, 14))]);
    let mut out = TxQueue::new();
    for (host, ours) in [
        (1, Ipv4Addr::new(10, 0, 0, 1)),
        (2, Ipv4Addr::new(192, 168, 7, 1)),
    ] {
        let meta = RecvMeta {
            src: client_addr(host, 1),
            dst_ip: IpAddr::V4(ours),
            local_port: LISTEN_PORT,
            ifindex: 2,
        };
        let name: &[u8] = if host == 1 { b"f" } else { b"missing" };
        d.server
            .handle(d.at(0), &meta, &rrq(name, &[("windowsize", "2")]), &mut out);
        let t = out.transmits()[0];
        assert_eq!((t.dest, t.src_ip), (meta.src, IpAddr::V4(ours)));
        if host == 1 {
            let ack = RecvMeta {
                local_port: t.local_port,
                ..meta
            };
            out.clear();
            d.server.handle(d.at(1), &ack, &wire::ack(0), &mut out);
            assert_eq!(out.len(), 2);
            assert!(out.transmits().iter().all(|t| t.src_ip == IpAddr::V4(ours)));
            assert_eq!(out.batches().count(), 1, "a window is one GSO batch");
        }
        out.clear();
    }
}

#[test]
fn wrq_and_mail_mode_refused() {
    let mut d = direct(&[("f", vec![1])]);
    let mut wrq = Vec::new();
    wire::emit_request(&mut wrq, true, b"f", "octet", &[]);
    let sent = d.recv(0, client_addr(1, 1), LISTEN_PORT, &wrq);
    assert_eq!(error_of(&sent).0, ErrorCode::AccessViolation as u16);
    let mut mail = Vec::new();
    wire::emit_request(&mut mail, false, b"f", "mail", &[]);
    let sent = d.recv(0, client_addr(1, 1), LISTEN_PORT, &mail);
    assert_eq!(error_of(&sent).0, ErrorCode::IllegalOperation as u16);
    assert_eq!(d.server.active_transfers(), 0);
}

#[test]
fn path_attacks_refused_before_the_resolver() {
    let mut d = direct(&[("etc/passwd", vec![1]), ("x", vec![2]), ("b", vec![3])]);
    let long = vec![b'a'; 300];
    let attacks: [&[u8]; 8] = [
        b"../etc/passwd",
        b"/../x",
        b"a/../../b",
        b"\\..\\x",
        b"a\x01b",
        &long,
        b"",
        b"/",
    ];
    for name in attacks {
        let sent = d.recv(0, client_addr(3, 1), LISTEN_PORT, &rrq(name, &[]));
        let (code, message) = error_of(&sent);
        assert_eq!(code, ErrorCode::AccessViolation as u16, "{name:?}");
        assert!(message.starts_with("access violation"), "{message}");
    }
    // A NUL ends the name on the wire; what follows is then the mode.
    let sent = d.recv(
        0,
        client_addr(3, 1),
        LISTEN_PORT,
        b"\x00\x01x\x00../etc\x00octet\x00",
    );
    assert_eq!(error_of(&sent).0, ErrorCode::IllegalOperation as u16);
    assert!(d.server.resolver().asked.borrow().is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    // Collapsed but harmless names still resolve.
    let sent = d.recv(
        0,
        client_addr(3, 1),
        LISTEN_PORT,
        &rrq(b"//etc/./passwd", &[]),
    );
    assert_eq!(blocks(&sent), [1]);
    assert_eq!(*d.server.resolver().asked.borrow(), ["etc/passwd"]);
}

#[test]
fn not_found_and_denied_keep_no_state() {
    let mut resolver = MemResolver::with(&[("secret", vec![1])]);
    resolver.denied.push("secret".to_owned());
    let mut d = Direct::new(TftpServer::new(&settings(), &DATA_PORTS, resolver));
    let sent = d.recv(
        0,
        client_addr(4, 1),
        LISTEN_PORT,
        &rrq(b"missing", &[("tsize", "0")]),
    );
    assert_eq!(error_of(&sent), (1, "file not found".to_owned()));
    let sent = d.recv(0, client_addr(4, 1), LISTEN_PORT, &rrq(b"secret", &[]));
    assert_eq!(error_of(&sent).0, ErrorCode::AccessViolation as u16);
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.poll_timeout(), None);
    assert_eq!(d.server.counters().transfers_started, 0);
}

#[test]
fn malformed_packets_get_error_4_or_are_dropped() {
    let mut d = direct(&[("f", pattern(3000, 5))]);
    let bad: [&[u8]; 7] = [
        b"",
        b"\x00",
        b"\x00\x09\x00\x00",
        b"\x00\x01f",
        b"\x00\x01f\x00octet",
        b"\x00\x01f\x00binary\x00",
        b"\x00\x01f\x00octet\x00blksize\x001024",
    ];
    for bytes in bad {
        let sent = d.recv(0, client_addr(5, 1), LISTEN_PORT, bytes);
        assert_eq!(
            error_of(&sent).0,
            ErrorCode::IllegalOperation as u16,
            "{bytes:?}"
        );
    }
    let (client, port) = windowed(&mut d, "2");
    for bytes in [&b"\x00"[..], b"\x00\x04\x00", b"\x00\x0a"] {
        assert!(
            d.recv(1, client, port, bytes).is_empty(),
            "{bytes:?} dropped"
        );
    }
    assert_eq!(d.server.active_transfers(), 1);
    assert_eq!(blocks(&d.recv(2, client, port, &wire::ack(0))), [1, 2]);
    assert_eq!(d.server.counters().malformed_dropped, 10);
}

#[test]
fn unexpected_opcode_from_a_client_ends_its_transfer() {
    let mut d = direct(&[("f", pattern(3000, 6))]);
    let (client, port) = windowed(&mut d, "2");
    let sent = d.recv(1, client, port, b"\x00\x03\x00\x01data");
    assert_eq!(error_of(&sent).0, ErrorCode::IllegalOperation as u16);
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.counters().transfers_failed, 1);
}

#[test]
fn error_8_after_oack_ends_quietly() {
    let mut d = direct(&[("ipxe.efi", pattern(100_000, 7))]);
    let client = client_addr(6, 1);
    let probe = rrq(
        b"ipxe.efi",
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
    );
    let sent = d.recv(0, client, LISTEN_PORT, &probe);
    let port = sent[0].local_port;
    let mut refusal = Vec::new();
    wire::emit_error(
        &mut refusal,
        ErrorCode::OptionsRefused,
        "User aborted the transfer",
    );
    assert!(d.recv(1, client, port, &refusal).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.counters().option_refusals, 1);
    assert_eq!(d.server.counters().transfers_failed, 0);
    // Its timer is stale and fires into nothing.
    assert!(d.tick(10_000).is_empty());
    assert_eq!(d.server.poll_timeout(), None);
}

#[test]
fn repeated_rrq_resends_the_first_answer() {
    let mut d = direct(&[("f", pattern(3000, 8))]);
    let client = client_addr(7, 1);
    let first = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[("tsize", "0")]));
    let again = d.recv(5, client, LISTEN_PORT, &rrq(b"f", &[("tsize", "0")]));
    assert_eq!(first, again);
    assert_eq!(d.server.active_transfers(), 1);
    let port = first[0].local_port;
    assert_eq!(blocks(&d.recv(6, client, port, &wire::ack(0))), [1]);
    // Once it has progressed, a new RRQ from the same port restarts it.
    let restart = d.recv(7, client, LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(blocks(&restart), [1]);
    assert_eq!(d.server.active_transfers(), 1);
    assert_eq!(d.server.counters().transfers_failed, 1);
}

#[test]
fn repeated_rrq_with_other_options_restarts() {
    // OVMF's ERROR 8 was lost: its download request, from the same port,
    // must not get the probe's OACK again.
    let mut d = direct(&[("ipxe.efi", pattern(10_000, 15))]);
    let client = client_addr(7, 1);
    let probe = rrq(b"ipxe.efi", &[("tsize", "0"), ("blksize", "1468")]);
    let download = rrq(b"ipxe.efi", &[("blksize", "1468")]);
    d.recv(0, client, LISTEN_PORT, &probe);
    let sent = d.recv(5, client, LISTEN_PORT, &download);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].bytes, b"\x00\x06blksize\x001468\x00");
    assert_eq!(d.server.active_transfers(), 1);
    assert_eq!(d.server.counters().transfers_started, 2);
}

#[test]
fn busy_when_the_table_is_full() {
    let mut limited = settings();
    limited.max_transfers = 2;
    let mut d = direct_with(
        &limited,
        ServerOptions::default(),
        &[("f", pattern(3000, 9))],
    );
    for host in 1..=2 {
        assert_eq!(
            blocks(&d.recv(0, client_addr(host, 1), LISTEN_PORT, &rrq(b"f", &[]))),
            [1]
        );
    }
    let sent = d.recv(0, client_addr(3, 1), LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(error_of(&sent), (0, "server busy".to_owned()));
    assert_eq!(d.server.active_transfers(), 2);
}

#[test]
fn drain_refuses_new_requests_and_lets_transfers_finish() {
    let mut d = direct(&[("f", pattern(600, 10))]);
    let client = client_addr(8, 1);
    let first = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]));
    let port = first[0].local_port;
    d.server.drain();
    assert!(!d.server.is_drained());
    let sent = d.recv(1, client_addr(9, 1), LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(error_of(&sent), (0, "server shutting down".to_owned()));
    assert_eq!(blocks(&d.recv(2, client, port, &wire::ack(1))), [2]);
    assert!(d.recv(3, client, port, &wire::ack(2)).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    assert!(d.server.is_drained());
}

#[test]
fn retransmission_backs_off_then_gives_up() {
    let mut d = direct(&[("f", pattern(3000, 11))]);
    let client = client_addr(10, 1);
    assert_eq!(
        blocks(&d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]))),
        [1]
    );
    // Initial RTO 1 s, doubling up to max_timeout (4 s), 5 retries.
    let mut at = 0;
    for gap in [1000, 2000, 4000, 4000, 4000] {
        at += gap;
        assert_eq!(d.server.poll_timeout(), Some(d.at(at)));
        assert!(d.tick(at - 1).is_empty(), "not yet at {at}");
        assert_eq!(blocks(&d.tick(at)), [1], "resend at {at}");
    }
    at += 4000;
    assert!(d.tick(at).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    let c = d.server.counters();
    assert_eq!((c.transfers_timed_out, c.retransmits), (1, 5));
}

#[test]
fn a_client_that_repeats_its_last_ack_keeps_its_transfer() {
    let mut d = direct(&[("f", pattern(3000, 11))]);
    let client = client_addr(10, 2);
    let port = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]))[0].local_port;
    assert_eq!(blocks(&d.recv(10, client, port, &wire::ack(1))), [2]);
    // The next resend: ticks at each deadline the server asks for (the
    // timer heap may wake it early, then nothing is due yet).
    let next_resend = |d: &mut Direct<MemResolver>| -> Option<(u64, Vec<u16>)> {
        for _ in 0..8 {
            let due = d.server.poll_timeout()?;
            let at = (due - d.at(0)).as_millis() as u64;
            let sent = blocks(&d.tick(at));
            if !sent.is_empty() {
                return Some((at, sent));
            }
        }
        None
    };
    // Block 2 never arrives; the client repeats ACK 1 between the
    // server's resends, which are all that is sent (none per ACK).
    for round in 0..12 {
        let (at, sent) = next_resend(&mut d).unwrap_or_else(|| panic!("resend {round}"));
        assert_eq!(sent, [2], "resend {round} at {at}");
        assert!(
            d.recv(at + 1, client, port, &wire::ack(1)).is_empty(),
            "a repeated ACK sends nothing"
        );
    }
    assert_eq!(d.server.active_transfers(), 1, "12 timeouts, still served");
    // Then the client goes quiet: 5 more resends and it is dropped.
    for round in 0..5 {
        let (_, sent) = next_resend(&mut d).unwrap_or_else(|| panic!("quiet resend {round}"));
        assert_eq!(sent, [2]);
    }
    assert_eq!(next_resend(&mut d), None);
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.counters().transfers_timed_out, 1);
}

#[test]
fn a_timeout_ack_long_after_the_window_resends_it_once() {
    let mut d = direct(&[("f", pattern(3000, 11))]);
    let client = client_addr(10, 3);
    let port = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]))[0].local_port;
    // One 10 ms round trip (the timeout drops to min_timeout, 100 ms),
    // then block 2 is lost, and so is the server's resend at 110 ms.
    assert_eq!(blocks(&d.recv(10, client, port, &wire::ack(1))), [2]);
    assert_eq!(blocks(&d.tick(110)), [2]);
    // The client's timeout ACK 105 ms later, long before the server's
    // backed-off timer (310 ms): the window goes out again now.
    assert_eq!(d.server.poll_timeout(), Some(d.at(310)));
    assert_eq!(blocks(&d.recv(215, client, port, &wire::ack(1))), [2]);
    // A duplicate right behind it sends nothing (no apprentice).
    assert!(d.recv(220, client, port, &wire::ack(1)).is_empty());
    assert!(d.recv(300, client, port, &wire::ack(1)).is_empty());
    assert_eq!(d.server.counters().retransmits, 2);
    // The transfer goes on.
    assert_eq!(blocks(&d.recv(330, client, port, &wire::ack(2))), [3]);
}

#[test]
fn negotiated_timeout_is_fixed_and_adaptive_one_follows_rtt() {
    let mut d = direct(&[("f", pattern(30_000, 12))]);
    let fixed = client_addr(11, 1);
    let sent = d.recv(0, fixed, LISTEN_PORT, &rrq(b"f", &[("timeout", "3")]));
    let port = sent[0].local_port;
    assert_eq!(d.server.poll_timeout(), Some(d.at(3000)));
    assert_eq!(d.tick(3000).len(), 1, "OACK resent");
    assert!(
        d.tick(5999).is_empty(),
        "no backoff with a negotiated timeout"
    );
    assert_eq!(d.tick(6000).len(), 1);
    assert_eq!(blocks(&d.recv(6001, fixed, port, &wire::ack(0))), [1]);
    assert!(d.tick(9000).is_empty(), "the OACK's old timer is stale");
    assert_eq!(d.server.poll_timeout(), Some(d.at(9001)));

    // Adaptive: a 10 ms RTT drives the timeout down to min_timeout.
    let mut d = direct(&[("f", pattern(30_000, 12))]);
    let client = client_addr(12, 1);
    let port = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[]))[0].local_port;
    for block in 1..=5u16 {
        let ms = u64::from(block) * 10;
        assert_eq!(
            blocks(&d.recv(ms, client, port, &wire::ack(block))),
            [block + 1]
        );
    }
    // The timer heap is lazy: it may wake early, but nothing fires before
    // the real deadline (last send + 100 ms).
    assert!(d.server.poll_timeout().is_some_and(|t| t <= d.at(150)));
    assert!(d.tick(149).is_empty());
    assert_eq!(d.server.poll_timeout(), Some(d.at(150)));
    assert_eq!(blocks(&d.tick(150)), [6]);
}

#[test]
fn timeouts_respect_the_burst_budget() {
    let options = ServerOptions {
        burst_budget_bytes: 3 * 516,
        ..ServerOptions::default()
    };
    let mut d = direct_with(&settings(), options, &[("f", pattern(5000, 13))]);
    for host in 1..=5 {
        let sent = d.recv(
            0,
            client_addr(host, 1),
            LISTEN_PORT,
            &rrq(b"f", &[("windowsize", "8")]),
        );
        assert_eq!(
            d.recv(1, client_addr(host, 1), sent[0].local_port, &wire::ack(0))
                .len(),
            3,
            "window clamped to 3"
        );
    }
    // All five windows expire together; only one budget goes out per call.
    let first = d.tick(1001);
    assert_eq!(first.len(), 3);
    assert!(
        d.server.poll_timeout().is_some_and(|t| t <= d.at(1001)),
        "more is due"
    );
    let mut total = first.len();
    for _ in 0..10 {
        let more = d.tick(1001);
        assert!(more.iter().map(|s| s.bytes.len()).sum::<usize>() <= 3 * 516);
        total += more.len();
    }
    assert_eq!(total, 15);
    assert!(d.server.poll_timeout().is_some_and(|t| t > d.at(1001)));
}

#[test]
fn netascii_requests_share_the_file_and_hold_no_copy() {
    let text: Vec<u8> = b"line\n".repeat(200_000);
    let mut d = direct(&[("t.txt", text.clone())]);
    let file = std::sync::Arc::clone(&d.server.resolver().files["t.txt"]);
    let mut request = Vec::new();
    wire::emit_request(
        &mut request,
        false,
        b"t.txt",
        "netascii",
        &[("timeout", "255"), ("tsize", "0")],
    );
    for host in 1..=100u8 {
        let sent = d.recv(0, client_addr(host, 2000), LISTEN_PORT, &request);
        assert_eq!(sent.len(), 1, "one OACK each");
    }
    assert_eq!(d.server.active_transfers(), 100);
    // The resolver's, ours, and one per transfer: every transfer reads the
    // shared bytes; none holds a converted copy.
    assert_eq!(std::sync::Arc::strong_count(&file), 102);
}

#[test]
fn a_client_over_its_cap_gets_error_0_and_holds_nothing_more() {
    let mut d = direct(&[("f", pattern(3000, 30))]);
    let mut first_port = 0;
    for port in 0..16 {
        let sent = d.recv(0, client_addr(1, 1000 + port), LISTEN_PORT, &rrq(b"f", &[]));
        assert_eq!(blocks(&sent), [1], "transfer {port} admitted");
        if port == 0 {
            first_port = sent[0].local_port;
        }
    }
    let sent = d.recv(0, client_addr(1, 2000), LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(
        error_of(&sent),
        (0, "too many transfers from this client".to_owned())
    );
    assert_eq!(d.server.active_transfers(), 16);
    assert_eq!(d.server.counters().refusals(Refusal::PerClientCap), 1);
    // Another host is served; the capped one is again once a transfer ends.
    let other = d.recv(0, client_addr(2, 2000), LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(blocks(&other), [1]);
    let mut bye = Vec::new();
    wire::emit_error(&mut bye, ErrorCode::NotDefined, "bye");
    assert!(d.recv(1, client_addr(1, 1000), first_port, &bye).is_empty());
    let sent = d.recv(2, client_addr(1, 2000), LISTEN_PORT, &rrq(b"f", &[]));
    assert_eq!(blocks(&sent), [1]);
    assert_eq!(d.server.active_transfers(), 17);
}

#[test]
fn requests_over_the_rate_are_dropped_unanswered_and_refill() {
    let mut limited = settings();
    limited.admission = TftpAdmission {
        max_transfers_per_client: 1000,
        new_transfers_per_second: 20,
        new_transfers_burst: 4,
    };
    let mut d = direct_with(
        &limited,
        ServerOptions::default(),
        &[("f", pattern(100, 31))],
    );
    let request = rrq(b"f", &[]);
    for port in 0..4 {
        assert_eq!(
            blocks(&d.recv(0, client_addr(1, port), LISTEN_PORT, &request)),
            [1]
        );
    }
    assert!(
        d.recv(0, client_addr(1, 10), LISTEN_PORT, &request)
            .is_empty()
    );
    assert!(
        d.recv(49, client_addr(1, 11), LISTEN_PORT, &request)
            .is_empty()
    );
    assert_eq!(d.server.counters().refusals(Refusal::Rate), 2);
    // One token every 50 ms; other hosts have their own bucket.
    assert_eq!(
        blocks(&d.recv(50, client_addr(1, 12), LISTEN_PORT, &request)),
        [1]
    );
    assert_eq!(
        blocks(&d.recv(50, client_addr(2, 12), LISTEN_PORT, &request)),
        [1]
    );
    assert_eq!(d.server.active_transfers(), 6);
    // A repeated request costs a token too: a flood of them from one
    // spoofed port reflects no more than the rate.
    let repeated = client_addr(2, 12);
    let mut answered = 0;
    for _ in 0..100 {
        answered += d.recv(60, repeated, LISTEN_PORT, &request).len();
    }
    assert_eq!(answered, 3, "the rest of host 2's burst");
}

#[test]
fn a_transfer_without_a_first_ack_is_reclaimed_within_max_timeout_times_retries() {
    let mut short = settings();
    short.max_retries = 2;
    // 4 s × 2 retries: dropped 8 s after the request, not after the
    // 12 s three rounds of its negotiated 4 s timeout would take.
    let mut d = direct_with(
        &short,
        ServerOptions::default(),
        &[("f", pattern(3000, 32))],
    );
    let client = client_addr(1, 1);
    let sent = d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[("timeout", "4")]));
    assert_eq!(sent.len(), 1, "OACK");
    assert_eq!(d.tick(4000).len(), 1, "OACK resent");
    assert!(d.tick(7999).is_empty());
    assert_eq!(d.server.active_transfers(), 1);
    assert!(d.tick(8000).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
    assert_eq!(d.server.counters().transfers_timed_out, 1);
    // Once it got an ACK a transfer has its full retries again.
    let port = d.recv(9000, client, LISTEN_PORT, &rrq(b"f", &[("timeout", "4")]))[0].local_port;
    assert_eq!(blocks(&d.recv(9001, client, port, &wire::ack(0))), [1]);
    assert_eq!(blocks(&d.tick(13_001)), [1]);
    assert_eq!(blocks(&d.tick(17_001)), [1]);
    assert_eq!(d.server.active_transfers(), 1, "past the first-ACK bound");
    assert!(d.tick(21_001).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
}

#[test]
fn a_patient_server_still_reclaims_a_request_never_acked_after_five_timeouts() {
    let mut patient = settings();
    patient.max_retries = 20;
    let mut d = direct_with(
        &patient,
        ServerOptions::default(),
        &[("f", pattern(3000, 33))],
    );
    let client = client_addr(1, 2);
    assert_eq!(
        d.recv(0, client, LISTEN_PORT, &rrq(b"f", &[("timeout", "4")]))
            .len(),
        1
    );
    // 4 s × 5, not × 20: a spoofed request holds its slot 20 s.
    for at in [4000, 8000, 12_000, 16_000] {
        assert_eq!(d.tick(at).len(), 1, "OACK resent at {at}");
    }
    assert!(d.tick(20_000).is_empty());
    assert_eq!(d.server.active_transfers(), 0);
}

#[test]
fn every_answer_to_a_flood_spends_the_senders_tokens() {
    let mut limited = settings();
    limited.admission = TftpAdmission {
        max_transfers_per_client: 1,
        new_transfers_per_second: 10,
        new_transfers_burst: 6,
    };
    let mut d = direct_with(
        &limited,
        ServerOptions::default(),
        &[("f", pattern(100, 33))],
    );
    let mut wrq = Vec::new();
    wire::emit_request(&mut wrq, true, b"f", "octet", &[]);
    let mut mail = Vec::new();
    wire::emit_request(&mut mail, false, b"f", "mail", &[]);
    let attacker = |port| client_addr(9, port);
    // Six kinds of answerable datagrams, over and over, from one address:
    // a held transfer, the cap's ERROR 0, a WRQ, a mail-mode request, a
    // malformed request, and a stranger's ACK on a data port (ERROR 5).
    let mut answered = 0;
    for round in 0..50u16 {
        for (port, local, bytes) in [
            (1, LISTEN_PORT, rrq(b"f", &[])),
            (2, LISTEN_PORT, rrq(b"f", &[])),
            (3, LISTEN_PORT, wrq.clone()),
            (4, LISTEN_PORT, mail.clone()),
            (5, LISTEN_PORT, vec![0, 9, 1]),
            (6, DATA_PORTS[0], wire::ack(round).to_vec()),
        ] {
            answered += usize::from(!d.recv(0, attacker(port), local, &bytes).is_empty());
        }
    }
    assert_eq!(answered, 6, "the burst, then silence");
    assert_eq!(d.server.counters().refusals(Refusal::Rate), 300 - 6);
    // One token per 100 ms afterwards; other hosts have their own bucket.
    assert_eq!(d.recv(100, attacker(5), LISTEN_PORT, &[0, 9, 1]).len(), 1);
    assert!(d.recv(100, attacker(5), LISTEN_PORT, &[0, 9, 1]).is_empty());
    let other = client_addr(10, 1);
    assert_eq!(
        blocks(&d.recv(100, other, LISTEN_PORT, &rrq(b"f", &[]))),
        [1]
    );
}

/// Counts `tftp: read request refused` lines by their `reason` field.
#[derive(Default)]
struct RefusalLines(std::sync::Mutex<Vec<String>>);

impl tracing::Subscriber for RefusalLines {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        #[derive(Default)]
        struct Fields {
            refused: bool,
            reason: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "reason" {
                    self.reason = value.to_owned();
                }
            }

            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.refused |= format!("{value:?}").contains("read request refused");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.refused {
            self.0.lock().expect("not poisoned").push(fields.reason);
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn refusals_are_logged_at_most_once_a_second_per_reason() {
    let mut capped = settings();
    capped.admission = TftpAdmission {
        max_transfers_per_client: 1,
        new_transfers_per_second: 100,
        new_transfers_burst: 200,
    };
    capped.max_transfers = 2;
    let mut d = direct_with(
        &capped,
        ServerOptions::default(),
        &[("f", pattern(100, 34))],
    );
    let lines = std::sync::Arc::new(RefusalLines::default());
    tracing::subscriber::with_default(lines.clone(), || {
        // 2.5 s of virtual time, a request every 5 ms from a capped host,
        // one from an empty bucket, and one to a full table.
        d.recv(0, client_addr(1, 1), LISTEN_PORT, &rrq(b"f", &[]));
        d.recv(0, client_addr(2, 1), LISTEN_PORT, &rrq(b"f", &[]));
        for ms in (0..2500).step_by(5) {
            let port = 100 + (ms / 5) as u16;
            d.recv(ms, client_addr(1, port), LISTEN_PORT, &rrq(b"f", &[]));
            d.recv(ms, client_addr(3, port), LISTEN_PORT, &rrq(b"f", &[]));
        }
    });
    let c = d.server.counters();
    assert!(c.refusals(Refusal::PerClientCap) > 100);
    assert!(c.refusals(Refusal::Rate) > 100);
    assert!(c.refusals(Refusal::TableFull) > 100);
    let lines = lines.0.lock().expect("not poisoned");
    for reason in ["per_client_cap", "rate", "table_full"] {
        let n = lines.iter().filter(|r| *r == reason).count();
        assert!((1..=3).contains(&n), "{reason}: {n} lines in 2.5 s");
    }
}
