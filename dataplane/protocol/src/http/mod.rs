//! HTTP/1.1 boot-file service, sans-IO.
//!
//! The driver owns the sockets; this module decides. [`parse_request`]
//! reads one request head (with `httparse`) from the bytes received so far
//! and either asks for more, names the request, or names the error status.
//! [`respond`] turns a request into a response head written into a caller
//! buffer and the byte span of the file to send after it. Paths go through
//! the TFTP normaliser ([`target::decode_target`]), so both transports
//! refuse the same names, and files come from the same [`Resolver`] (the
//! boot-file store behind the per-host scripts).
//!
//! Only GET and HEAD exist; a request carrying a body is refused (400) and
//! the connection closed, since its end cannot be found without reading it.
//! A single `Range` gets 206 or 416 ([`range`]); other ranges are ignored.
//! `ETag` and `Last-Modified` come from the file version
//! ([`FileData::version`]); a rendered script has none.

pub mod caps;
pub mod range;
pub mod status;
pub mod target;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use caps::{ConnectionCaps, Refusal};
pub use range::{ByteRange, parse_range};
pub use status::Status;
pub use target::{TargetError, decode_target};

pub use crate::tftp::FileVersion;
use crate::tftp::{FileData, ResolveRequest, Resolved, Resolver};

/// Most header fields in one request; more is 431.
pub const MAX_HEADERS: usize = 48;

/// The method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET: head and body.
    Get,
    /// HEAD: the head GET would get.
    Head,
}

/// One parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'b> {
    /// GET or HEAD.
    pub method: Method,
    /// The request target as sent.
    pub target: &'b str,
    /// The `Range` value, if any.
    pub range: Option<&'b [u8]>,
    /// The `If-Range` value, if any.
    pub if_range: Option<&'b [u8]>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of the head, consumed from the receive buffer.
    pub head_len: usize,
}

/// What the bytes received so far hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<'b> {
    /// No complete head yet and room for more.
    Partial,
    /// A complete request head.
    Request(Request<'b>),
    /// A bad request: answer `status` and close.
    Error(Status),
}

/// Reads one request head from `buf`. A head longer than `max_head` bytes
/// is refused: 414 while the request line is still incomplete, else 431.
pub fn parse_request(buf: &[u8], max_head: usize) -> Parse<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Parse::Error(Status::HeaderFieldsTooLarge),
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Parse::Partial,
        Ok(httparse::Status::Partial) => {
            let line_done = buf.iter().take(max_head).any(|&b| b == b'\n');
            return Parse::Error(if line_done {
                Status::HeaderFieldsTooLarge
            } else {
                Status::UriTooLong
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Parse::Error(Status::HeaderFieldsTooLarge),
        Err(_) => return Parse::Error(Status::BadRequest),
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Parse::Error(Status::BadRequest);
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Parse::Error(Status::MethodNotAllowed),
    };
    let mut parsed = Request {
        method,
        target,
        range: None,
        if_range: None,
        keep_alive: version == 1,
        head_len,
    };
    let mut hosts = 0;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("range") {
            parsed.range = Some(header.value);
        } else if name.eq_ignore_ascii_case("if-range") {
            parsed.if_range = Some(header.value);
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.keep_alive = connection_keeps(header.value, parsed.keep_alive);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && header.value.trim_ascii() != b"0")
        {
            return Parse::Error(Status::BadRequest);
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host.
    if hosts > 1 || (version == 1 && hosts == 0) {
        return Parse::Error(Status::BadRequest);
    }
    Parse::Request(parsed)
}

/// Whether a `Connection` value keeps the connection open, starting from
/// the version's default.
fn connection_keeps(value: &[u8], default: bool) -> bool {
    let mut keep = default;
    for token in value.split(|&b| b == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"close") {
            return false;
        }
        if token.eq_ignore_ascii_case(b"keep-alive") {
            keep = true;
        }
    }
    keep
}

/// What to send after the head.
#[derive(Debug, Clone)]
pub struct Body {
    /// The file version resolved for this request.
    pub file: Arc<dyn FileData>,
    /// First byte sent.
    pub offset: u64,
    /// Bytes sent.
    pub len: u64,
}

/// The decision for one request.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status sent.
    pub status: Status,
    /// File bytes to send after the head (GET with 200 or 206 only).
    pub body: Option<Body>,
    /// Whether the connection stays open afterwards.
    pub keep_alive: bool,
    /// The normalised path, when the target decoded to one.
    pub path: Option<String>,
}

/// Who asks: the client and, when known, its MAC.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The peer address of the connection.
    pub addr: SocketAddr,
    /// The MAC bound to that address, when DHCP knows it.
    pub mac: Option<[u8; 6]>,
}

/// Answers `request` from `resolver`: writes the response head into
/// `head` (cleared first) and says what follows it. `now` is the wall
/// clock for `Date`; `max_path_len` bounds the decoded name as for TFTP.
pub fn respond(
    request: &Request<'_>,
    client: Client,
    resolver: &impl Resolver,
    (now, max_path_len): (SystemTime, usize),
    head: &mut Vec<u8>,
) -> Response {
    let (mut scratch, mut path) = (Vec::new(), String::new());
    let decoded = decode_target(request.target, max_path_len, &mut scratch, &mut path);
    if let Err(error) = decoded {
        let status = if error.is_too_long() {
            Status::UriTooLong
        } else {
            Status::BadRequest
        };
        return error_response(status, request.keep_alive, now, head);
    }
    let resolved = resolver.resolve(&ResolveRequest {
        path: &path,
        client: client.addr,
        mac: client.mac,
    });
    let file = match resolved {
        Resolved::File(file) => file,
        Resolved::NotFound => {
            let mut r = error_response(Status::NotFound, request.keep_alive, now, head);
            r.path = Some(path);
            return r;
        }
        Resolved::Denied => {
            let mut r = error_response(Status::Forbidden, request.keep_alive, now, head);
            r.path = Some(path);
            return r;
        }
    };
    let size = file.bytes().len() as u64;
    let version = file.version();
    let etag = version.map(|v| format!("\"{:x}-{:x}\"", v.tag, size));
    let range = match (request.range, request.if_range) {
        (Some(value), None) => parse_range(value, size),
        (Some(value), Some(tag)) if etag.as_deref().map(str::as_bytes) == Some(tag) => {
            parse_range(value, size)
        }
        _ => ByteRange::Full,
    };
    let status = match range {
        ByteRange::Full => Status::Ok,
        ByteRange::Partial { .. } => Status::PartialContent,
        ByteRange::Unsatisfiable => Status::RangeNotSatisfiable,
    };
    let (offset, len) = range.span(size);
    let mut text = String::with_capacity(256);
    status_line(&mut text, status, now);
    // Writing to a String cannot fail.
    let _ = write!(text, "Content-Length: {len}\r\nAccept-Ranges: bytes\r\n");
    match range {
        ByteRange::Partial { start, end } => {
            let _ = write!(text, "Content-Range: bytes {start}-{end}/{size}\r\n");
        }
        ByteRange::Unsatisfiable => {
            let _ = write!(text, "Content-Range: bytes */{size}\r\n");
        }
        ByteRange::Full => {}
    }
    text.push_str("Content-Type: application/octet-stream\r\n");
    if let (Some(version), Some(etag)) = (version, &etag) {
        let _ = write!(
            text,
            "ETag: {etag}\r\nLast-Modified: {}\r\n",
            httpdate::fmt_http_date(version.modified)
        );
    }
    finish(&mut text, request.keep_alive);
    head.clear();
    head.extend_from_slice(text.as_bytes());
    let body = (request.method == Method::Get && status.is_success() && len > 0).then_some(Body {
        file,
        offset,
        len,
    });
    Response {
        status,
        body,
        keep_alive: request.keep_alive,
        path: Some(path),
    }
}

/// The head of an error answer with no body, for a request that could not
/// be parsed (the connection closes) or one refused after parsing.
pub fn error_response(
    status: Status,
    keep_alive: bool,
    now: SystemTime,
    head: &mut Vec<u8>,
) -> Response {
    // After a parse error the stream position is unknown: always close.
    let keep_alive = keep_alive
        && matches!(
            status,
            Status::NotFound | Status::Forbidden | Status::UriTooLong | Status::BadRequest
        );
    let mut text = String::with_capacity(160);
    status_line(&mut text, status, now);
    text.push_str("Content-Length: 0\r\n");
    if status == Status::MethodNotAllowed {
        text.push_str("Allow: GET, HEAD\r\n");
    }
    finish(&mut text, keep_alive);
    head.clear();
    head.extend_from_slice(text.as_bytes());
    Response {
        status,
        body: None,
        keep_alive,
        path: None,
    }
}

fn status_line(text: &mut String, status: Status, now: SystemTime) {
    let _ = write!(
        text,
        "HTTP/1.1 {} {}\r\nServer: bootwave\r\nDate: {}\r\n",
        status.code(),
        status.reason(),
        httpdate::fmt_http_date(now)
    );
}

fn finish(text: &mut String, keep_alive: bool) {
    text.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
}

/// When a connection must be cut: `header_timeout` after the first byte of
/// an incomplete request head, `idle_timeout` after the last progress
/// otherwise (waiting for the next request, or for the client to take
/// response bytes).
pub fn deadline(
    reading_head_since: Option<std::time::Instant>,
    last_progress: std::time::Instant,
    (header_timeout, idle_timeout): (Duration, Duration),
) -> std::time::Instant {
    let idle = last_progress + idle_timeout;
    match reading_head_since {
        Some(since) => idle.min(since + header_timeout),
        None => idle,
    }
}

#[cfg(test)]
mod tests;
