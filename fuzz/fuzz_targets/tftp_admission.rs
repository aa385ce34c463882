#![no_main]
//! Arbitrary bytes as a sequence of requests, ACKs, blind datagrams, ICMP
//! reports and time steps from a few hostile hosts into a TFTP core with
//! per-transfer ports and tight admission limits. The sequence checks the
//! admission and option-negotiation rules after every step (see the
//! module); a broken rule is a panic.

#[path = "../../dataplane/protocol/tests/tftp_fuzz/admission_ops.rs"]
mod admission_ops;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    admission_ops::run(data);
});
