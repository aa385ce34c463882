//! Random bytes into the TFTP parser and random operation sequences into a
//! server core: nothing may panic, nothing may leak.

#[path = "tftp_fuzz/ops.rs"]
mod ops;

use bootwave_protocol::tftp::wire::Packet;
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
