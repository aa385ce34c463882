#![no_main]
//! Arbitrary bytes as a dhcpd.conf and the files it includes, through the
//! whole importer (lexer, parser, converter, emitter, bootwave's own
//! parser). It may refuse the input, never panic; an accepted import is
//! TOML that bootwave parses.
//!
//! The input is split at its first 0xff byte: before it the main file,
//! after it what every `include` reads.

use std::io;
use std::path::Path;

use bootwave_isc::{Loader, Options, import};
use libfuzzer_sys::fuzz_target;

struct Memory<'a> {
    main: &'a [u8],
    included: &'a [u8],
}

impl Loader for Memory<'_> {
    fn load(&mut self, path: &Path, limit: usize) -> io::Result<Vec<u8>> {
        let bytes = if path == Path::new("/dhcpd.conf") {
            self.main
        } else {
            self.included
        };
        if bytes.len() > limit {
            return Err(io::Error::other("too large"));
        }
        Ok(bytes.to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    let (main, included) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut loader = Memory { main, included };
    let options = Options {
        tftp_root: Some("/srv/tftp".into()),
    };
    if let Ok(done) = import(Path::new("/dhcpd.conf"), &options, &mut loader) {
        assert!(
            bootwave_protocol::config::parse(&done.toml, "fuzz", Path::new("/")).is_ok(),
            "an accepted import must parse:\n{}",
            done.toml
        );
    }
});
