#![no_main]
//! Arbitrary bytes as an HTTP request head into the parser, and every
//! request that parses answered from a one-file store. Neither may panic;
//! the answer is a complete head, and a body never reaches past the file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bootwave_protocol::http::{Client, Parse, Status, error_response, parse_request, respond};
use bootwave_protocol::tftp::{ResolveRequest, Resolved, Resolver};
use libfuzzer_sys::fuzz_target;

/// Size of the one file served.
const SIZE: usize = 1000;

struct OneFile;

impl Resolver for OneFile {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        match request.path {
            "ipxe.efi" => Resolved::File(Arc::new(vec![7u8; SIZE])),
            "denied" => Resolved::Denied,
            _ => Resolved::NotFound,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let client = Client {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 40000),
        mac: None,
    };
    for max in [1024, 8192] {
        let mut head = Vec::new();
        let response = match parse_request(data, max) {
            Parse::Partial => {
                assert!(data.len() < max, "a full buffer is never partial");
                continue;
            }
            Parse::Error(status) => error_response(status, true, now, &mut head),
            Parse::Request(request) => {
                assert!(request.head_len <= data.len().min(max));
                respond(&request, client, &OneFile, (now, 255), &mut head)
            }
        };
        assert!(head.starts_with(b"HTTP/1.1 "), "{head:?}");
        assert!(head.ends_with(b"\r\n\r\n"), "{head:?}");
        if let Some(body) = &response.body {
            assert!(matches!(response.status, Status::Ok | Status::PartialContent));
            assert!(body.offset + body.len <= SIZE as u64);
        }
    }
});
