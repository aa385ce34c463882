//! Just enough HTTP/1.1 to serve a scrape: request head parsing and the
//! response for each route. No I/O here.

use super::exposition::CONTENT_TYPE;

/// The largest request head accepted, in bytes.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// The body of `GET /`.
const INDEX: &str = "<html><head><title>bootwave data plane</title></head>\
<body><a href=\"/metrics\">metrics</a></body></html>\n";

/// What a complete request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /metrics`.
    Metrics,
    /// `GET /`.
    Index,
    /// A `GET` of any other path.
    NotFound,
    /// A well-formed request with a method other than `GET` or `HEAD`.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// A parsed request: the route and whether the body is to be left out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// What to answer.
    pub(crate) route: Route,
    /// `HEAD`: headers only.
    pub(crate) head_only: bool,
}

/// The end of the request head in `buf` (one past the blank line), if the
/// head is complete.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|at| at + 2))
}

/// Parses the request line of a complete head. Header lines are not needed
/// and not looked at beyond being valid UTF-8.
pub(crate) fn parse(head: &[u8]) -> Request {
    let bad = Request {
        route: Route::BadRequest,
        head_only: false,
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return bad;
    };
    let line = text.split('\n').next().unwrap_or("").trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad;
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || !target.starts_with('/') || method.is_empty()
    {
        return bad;
    }
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad;
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return Request {
            route: Route::MethodNotAllowed,
            head_only,
        };
    }
    let path = target.split('?').next().unwrap_or(target);
    let route = match path {
        "/metrics" => Route::Metrics,
        "/" => Route::Index,
        _ => Route::NotFound,
    };
    Request { route, head_only }
}

/// Writes a whole response (status line, headers, body unless `head_only`)
/// into `out`. For [`Route::Metrics`] the body is `metrics`.
pub(crate) fn respond(out: &mut Vec<u8>, request: &Request, metrics: &str) {
    let (status, content_type, body) = match request.route {
        Route::Metrics => ("200 OK", CONTENT_TYPE, metrics),
        Route::Index => ("200 OK", "text/html; charset=utf-8", INDEX),
        Route::NotFound => ("404 Not Found", "text/plain", "not found\n"),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
        ),
        Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n"),
    };
    write_response(out, status, content_type, body, request.head_only);
}

/// Writes the response to a request head longer than [`MAX_REQUEST`].
pub(crate) fn respond_too_large(out: &mut Vec<u8>) {
    write_response(
        out,
        "431 Request Header Fields Too Large",
        "text/plain",
        "request too large\n",
        false,
    );
}

/// Writes the response when rendering the metrics failed.
pub(crate) fn respond_internal_error(out: &mut Vec<u8>) {
    write_response(
        out,
        "500 Internal Server Error",
        "text/plain",
        "render failed\n",
        false,
    );
}

fn write_response(
    out: &mut Vec<u8>,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) {
    out.clear();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let get = |s: &str| parse(s.as_bytes()).route;
        assert_eq!(
            get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(get("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(get("GET / HTTP/1.1\r\n\r\n"), Route::Index);
        assert_eq!(get("GET /nope HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            get("POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(get("GET /metrics HTTP/2.0\r\n\r\n"), Route::BadRequest);
        assert_eq!(get("GET  /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(get("get /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(get("GET metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(get("\u{1}\u{2}\r\n\r\n"), Route::BadRequest);
        assert_eq!(parse(b"\xff\xfe\r\n\r\n").route, Route::BadRequest);
        assert!(parse(b"HEAD /metrics HTTP/1.1\r\n\r\n").head_only);
    }

    #[test]
    fn head_end_finds_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn head_response_has_length_but_no_body() {
        let mut out = Vec::new();
        let req = parse(b"HEAD /metrics HTTP/1.1\r\n\r\n");
        respond(&mut out, &req, "abc 1\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 6\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
