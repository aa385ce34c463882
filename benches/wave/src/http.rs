//! The driver's side of a machine's HTTP download: one non-blocking TCP
//! connection from the machine's leased address, a `GET` with
//! `Connection: close`, the response head read with `httparse`, and the
//! body counted and checksummed as it streams (nothing is kept).

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, SocketAddrV4};

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use crate::node::HttpResult;

/// Longest response head taken.
const MAX_HEAD: usize = 16 * 1024;
/// Headers a response head may have.
const MAX_HEADERS: usize = 32;

/// One download in flight.
#[derive(Debug)]
pub struct Download {
    /// The machine and its download id ([`crate::node::Out::Http`]).
    pub node: u32,
    pub id: u32,
    stream: TcpStream,
    request: Vec<u8>,
    written: usize,
    head: Vec<u8>,
    /// Status and `Content-Length`, once the head is in.
    status: Option<(u16, Option<u64>)>,
    size: u64,
    crc: crc32fast::Hasher,
}

/// Where a download is after [`Download::drive`].
#[derive(Debug)]
pub enum Progress {
    Pending,
    Finished(HttpResult),
}

impl Download {
    /// Starts connecting from `src` (any port) to `dst` for `path`.
    pub fn connect(
        node: u32,
        id: u32,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        path: &str,
    ) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&SocketAddr::V4(src).into())?;
        match socket.connect(&SocketAddr::V4(dst).into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let request = format!(
            "GET /{} HTTP/1.1\r\nHost: {dst}\r\nUser-Agent: bootwave-wave\r\nConnection: close\r\n\r\n",
            path.trim_start_matches('/')
        )
        .into_bytes();
        Ok(Self {
            node,
            id,
            stream: TcpStream::from_std(socket.into()),
            request,
            written: 0,
            head: Vec::new(),
            status: None,
            size: 0,
            crc: crc32fast::Hasher::new(),
        })
    }

    /// The socket, to register with the poll.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Moves the download on as far as the socket allows; `buf` is
    /// scratch space for reads.
    pub fn drive(&mut self, buf: &mut [u8]) -> Progress {
        while self.written < self.request.len() {
            match self.stream.write(&self.request[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                // Not connected yet: the next writable event comes.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(&e.to_string()),
            }
        }
        loop {
            match self.stream.read(buf) {
                Ok(0) => return self.ended(),
                Ok(n) => {
                    if let Some(done) = self.take(&buf[..n]) {
                        return done;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(&e.to_string()),
            }
        }
    }

    /// Takes received bytes: the head first, then the body.
    fn take(&mut self, bytes: &[u8]) -> Option<Progress> {
        let body = if self.status.is_some() {
            bytes
        } else {
            self.head.extend_from_slice(bytes);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            let len = match response.parse(&self.head) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.head.len() < MAX_HEAD => return None,
                Ok(httparse::Status::Partial) => {
                    return Some(self.failed("response head too large"));
                }
                Err(e) => return Some(self.failed(&format!("bad response head: {e}"))),
            };
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok());
            self.status = Some((response.code.unwrap_or(0), length));
            let rest = self.head.split_off(len);
            self.count(&rest);
            return self.complete();
        };
        self.count(body);
        self.complete()
    }

    fn count(&mut self, body: &[u8]) {
        self.size += body.len() as u64;
        self.crc.update(body);
    }

    /// Finished once `Content-Length` bytes are in.
    fn complete(&mut self) -> Option<Progress> {
        match self.status {
            Some((_, Some(length))) if self.size >= length => Some(self.ended()),
            _ => None,
        }
    }

    /// The server closed the connection (or the body is complete).
    fn ended(&mut self) -> Progress {
        let Some((status, length)) = self.status else {
            return self.failed("connection closed before a response");
        };
        if length.is_some_and(|l| l != self.size) {
            return self.failed(&format!(
                "connection closed after {} of {} bytes",
                self.size,
                length.unwrap_or_default()
            ));
        }
        Progress::Finished(HttpResult::Done {
            status,
            size: self.size,
            crc: std::mem::take(&mut self.crc).finalize(),
            length,
        })
    }

    fn failed(&self, why: &str) -> Progress {
        Progress::Finished(HttpResult::Failed(why.to_owned()))
    }
}
