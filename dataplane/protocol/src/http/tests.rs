use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use super::*;

#[derive(Debug)]
struct Versioned(Vec<u8>);

impl FileData for Versioned {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn version(&self) -> Option<FileVersion> {
        Some(FileVersion {
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            tag: 0xabc,
        })
    }
}

struct Files;

impl Resolver for Files {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        match request.path {
            "ipxe.efi" => Resolved::File(Arc::new(Versioned((0..=99).collect()))),
            "script.ipxe" if request.mac.is_some() => {
                Resolved::File(Arc::new(b"#!ipxe\nchain x\n".to_vec()))
            }
            "empty" => Resolved::File(Arc::new(Vec::new())),
            "secret" => Resolved::Denied,
            _ => Resolved::NotFound,
        }
    }
}

fn client(mac: Option<[u8; 6]>) -> Client {
    Client {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 40000),
        mac,
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Parses `raw` and answers it: the response and its head as text.
fn ask(raw: &str, mac: Option<[u8; 6]>) -> (Response, String) {
    let mut head = Vec::new();
    let response = match parse_request(raw.as_bytes(), 8192) {
        Parse::Request(request) => respond(&request, client(mac), &Files, (now(), 255), &mut head),
        Parse::Error(status) => error_response(status, false, now(), &mut head),
        Parse::Partial => panic!("partial: {raw:?}"),
    };
    (response, String::from_utf8(head).expect("head is text"))
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: boot\r\n{extra}\r\n")
}

#[test]
fn whole_file_with_validators_and_keep_alive() {
    let (response, head) = ask(&get("/ipxe.efi", ""), None);
    assert_eq!(response.status, Status::Ok);
    assert!(response.keep_alive);
    let body = response.body.expect("body");
    assert_eq!((body.offset, body.len), (0, 100));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Length: 100\r\n"), "{head}");
    assert!(head.contains("\r\nETag: \"abc-64\"\r\n"), "{head}");
    assert!(head.contains("\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n"));
    assert!(
        head.contains("\r\nDate: Fri, 15 Jan 2027 08:00:00 GMT\r\n"),
        "{head}"
    );
    assert!(head.ends_with("Connection: keep-alive\r\n\r\n"));
}

#[test]
fn head_gets_the_head_of_get_without_a_body() {
    let (response, head) = ask("HEAD /ipxe.efi HTTP/1.1\r\nHost: b\r\n\r\n", None);
    assert_eq!(response.status, Status::Ok);
    assert!(response.body.is_none());
    assert!(head.contains("Content-Length: 100\r\n"));
}

#[test]
fn single_range_and_unsatisfiable_range() {
    let (response, head) = ask(&get("/ipxe.efi", "Range: bytes=10-19\r\n"), None);
    assert_eq!(response.status, Status::PartialContent);
    let body = response.body.expect("body");
    assert_eq!((body.offset, body.len), (10, 10));
    assert!(
        head.contains("Content-Range: bytes 10-19/100\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 10\r\n"));

    let (response, head) = ask(&get("/ipxe.efi", "Range: bytes=100-\r\n"), None);
    assert_eq!(response.status, Status::RangeNotSatisfiable);
    assert!(response.body.is_none());
    assert!(head.contains("Content-Range: bytes */100\r\n"), "{head}");

    let (response, _) = ask(&get("/ipxe.efi", "Range: bytes=0-1,5-6\r\n"), None);
    assert_eq!(response.status, Status::Ok, "a list is ignored");
}

#[test]
fn if_range_that_does_not_match_sends_the_whole_file() {
    let (response, _) = ask(
        &get("/ipxe.efi", "Range: bytes=0-0\r\nIf-Range: \"other\"\r\n"),
        None,
    );
    assert_eq!(response.status, Status::Ok);
    let (response, _) = ask(
        &get("/ipxe.efi", "Range: bytes=0-0\r\nIf-Range: \"abc-64\"\r\n"),
        None,
    );
    assert_eq!(response.status, Status::PartialContent);
}

#[test]
fn scripts_have_no_validators_and_depend_on_the_mac() {
    let (response, head) = ask(&get("/script.ipxe", ""), Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(response.status, Status::Ok);
    assert_eq!(response.body.expect("body").len, 15);
    assert!(!head.contains("ETag"));
    let (response, _) = ask(&get("/script.ipxe", ""), None);
    assert_eq!(response.status, Status::NotFound);
    assert!(response.keep_alive, "a 404 keeps the connection");
}

#[test]
fn empty_file_and_denied_names() {
    let (response, head) = ask(&get("/empty", ""), None);
    assert_eq!(response.status, Status::Ok);
    assert!(response.body.is_none());
    assert!(head.contains("Content-Length: 0\r\n"));
    assert_eq!(ask(&get("/secret", ""), None).0.status, Status::Forbidden);
}

#[test]
fn path_attacks_are_refused() {
    for (target, status) in [
        ("/../etc/passwd", Status::BadRequest),
        ("/%2e%2e/etc/passwd", Status::BadRequest),
        ("/..%2fetc%2fpasswd", Status::BadRequest),
        ("//etc/passwd", Status::BadRequest),
        ("/ipxe.efi%00.png", Status::BadRequest),
        ("*", Status::BadRequest),
    ] {
        let (response, _) = ask(&get(target, ""), None);
        assert_eq!(response.status, status, "{target}");
        assert!(response.body.is_none());
    }
    let long = format!("/{}", "a".repeat(400));
    assert_eq!(ask(&get(&long, ""), None).0.status, Status::UriTooLong);
}

#[test]
fn bad_requests() {
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n", 8192),
        Parse::Partial
    );
    assert_eq!(
        parse_request(b"GARBAGE\r\n\r\n", 8192),
        Parse::Error(Status::BadRequest)
    );
    assert_eq!(
        parse_request(b"POST /x HTTP/1.1\r\nHost: x\r\n\r\n", 8192),
        Parse::Error(Status::MethodNotAllowed)
    );
    assert_eq!(
        parse_request(b"GET /x HTTP/1.1\r\n\r\n", 8192),
        Parse::Error(Status::BadRequest),
        "HTTP/1.1 without Host"
    );
    assert_eq!(
        parse_request(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 8192),
        Parse::Error(Status::BadRequest)
    );
    assert_eq!(
        parse_request(
            b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            8192
        ),
        Parse::Error(Status::BadRequest)
    );
    assert_eq!(
        parse_request(
            b"GET /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            8192
        ),
        Parse::Error(Status::BadRequest)
    );
    let (response, head) = ask("DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n", None);
    assert_eq!(response.status, Status::MethodNotAllowed);
    assert!(!response.keep_alive);
    assert!(head.contains("Allow: GET, HEAD\r\n"));
}

#[test]
fn oversized_heads() {
    let long_line = format!("GET /{} HTTP/1.1", "a".repeat(2000));
    assert_eq!(
        parse_request(long_line.as_bytes(), 1024),
        Parse::Error(Status::UriTooLong)
    );
    let many = format!("GET /x HTTP/1.1\r\nHost: x\r\n{}", "X-A: b\r\n".repeat(200));
    assert_eq!(
        parse_request(many.as_bytes(), 1024),
        Parse::Error(Status::HeaderFieldsTooLarge)
    );
    let headers = format!(
        "GET /x HTTP/1.1\r\n{}\r\n",
        "X-A: b\r\n".repeat(MAX_HEADERS + 1)
    );
    assert_eq!(
        parse_request(headers.as_bytes(), 8192),
        Parse::Error(Status::HeaderFieldsTooLarge)
    );
}

#[test]
fn connection_header_and_versions() {
    let keeps = |raw: &str| match parse_request(raw.as_bytes(), 8192) {
        Parse::Request(r) => r.keep_alive,
        other => panic!("{other:?}"),
    };
    assert!(keeps("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(!keeps(
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    ));
    assert!(!keeps("GET /x HTTP/1.0\r\n\r\n"));
    assert!(keeps("GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    let pipelined = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n";
    match parse_request(pipelined, 8192) {
        Parse::Request(r) => assert_eq!((r.target, r.head_len), ("/a", 28)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deadlines() {
    let t0 = Instant::now();
    let timeouts = (Duration::from_secs(10), Duration::from_secs(60));
    assert_eq!(deadline(None, t0, timeouts), t0 + Duration::from_secs(60));
    assert_eq!(
        deadline(Some(t0), t0 + Duration::from_secs(5), timeouts),
        t0 + Duration::from_secs(10)
    );
}
