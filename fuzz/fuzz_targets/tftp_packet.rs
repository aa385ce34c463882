#![no_main]
//! Arbitrary bytes into the TFTP packet parser, and the same bytes as an
//! operation sequence into a server core. Neither may panic.

use bootwave_protocol::tftp::fuzzing::ops;
use bootwave_protocol::tftp::wire::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Packet::parse(data) {
        Ok(Packet::Rrq(request) | Packet::Wrq(request)) => {
            assert!(request.options.iter().count() <= data.len());
        }
        Ok(Packet::Oack(options)) => {
            assert!(options.iter().count() <= data.len());
        }
        _ => {}
    }
    ops::run(data);
});
