//! Random bytes into the TFTP parser and random operation sequences into a
//! server core: nothing may panic, nothing may leak.

use super::{admission as admission_ops, ops};
use crate::tftp::wire::Packet;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Packet::Rrq(request) | Packet::Wrq(request)) = Packet::parse(&bytes) {
            // Whatever parsed, its options iterate to the end.
            prop_assert!(request.options.iter().count() <= bytes.len());
        }
    }

    #[test]
    fn server_survives_operation_sequences(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        ops::run(&bytes);
    }

    #[test]
    fn hostile_hosts_keep_to_the_admission_rules(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        admission_ops::run(&bytes);
    }
}

/// Sequences that reach deep states: a complete windowed download, a
/// refusal, a timeout storm.
#[test]
fn hand_written_sequences() {
    // RRQ "a" octet with blksize+windowsize, then ACK the latest block many times.
    let mut download = vec![0, 0, 0, 0x05, 0x02, 0, 0, 0, 0, 0, 16, 0b0000_0011];
    for _ in 0..20 {
        download.extend_from_slice(&[1, 0]);
    }
    ops::run(&download);
    // Same client, ERROR 8 after the OACK.
    ops::run(&[0, 1, 0, 0x05, 0, 0, 0, 0, 0, 0, 4, 0b0000_0111, 3, 1, 8, 1]);
    // Time jumps and drain in the middle of transfers.
    ops::run(&[
        0, 2, 0, 0x02, 0, 0, 0, 0, 0, 0, 1, 0, 6, 0, 0xff, 5, 0, 250, 1, 2, 0, 3, 0, 0, 0, 0, 0, 0,
        0, 1,
    ]);
}

/// Admission sequences that reach the rules: a host at its cap and over
/// its bucket, a transfer never acknowledged, an ICMP report for a live
/// transfer.
#[test]
fn hand_written_admission_sequences() {
    // One host, eight ports, request after request: cap, then bucket.
    let mut flood = Vec::new();
    for port in 0..8u8 {
        flood.extend_from_slice(&[0, 0, port, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    admission_ops::run(&flood);
    // A request with timeout 255, never acknowledged, then time passes.
    admission_ops::run(&[
        0, 1, 1, 0, 255, 0, 0, 0, 0, 0, 0b1000, 5, 0, 0, 255, 5, 0, 0, 255,
    ]);
    // A windowed request, the ICMP report for its own port, a blind ACK.
    admission_ops::run(&[
        0, 2, 2, 0, 0, 0, 0x05, 0x9c, 0, 64, 0b0011, 4, 2, 2, 0, 2, 2, 2, 0, 0,
    ]);
}
