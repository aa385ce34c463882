#![no_main]
//! Arbitrary bytes as a sequence of requests, ACKs, blind datagrams, ICMP
//! reports and time steps from a few hostile hosts into a TFTP core with
//! per-transfer ports and tight admission limits. The sequence checks the
//! admission and option-negotiation rules after every step (see the
//! module); a broken rule is a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bootwave_protocol::tftp::fuzzing::admission::run(data);
});
