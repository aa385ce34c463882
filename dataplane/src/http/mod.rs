//! The HTTP boot-file server: one thread per CPU (at most four), each with
//! its own epoll set (mio) and its own listener in one `SO_REUSEPORT` group
//! per device, off the shards, so a slow or hostile HTTP client never
//! delays a DHCP reply or a TFTP window. The connection caps are shared
//! (taken and given back under a mutex at accept and close only).
//!
//! The decisions are the sans-IO core's ([`bootwave_protocol::http`]):
//! parsing a head, the response head, ranges, the connection caps and the
//! deadlines. This driver accepts, reads into a buffer bounded by
//! `max-request-size`, and writes the head and the file slice with one
//! `writev` from the sealed mapping (one copy, into the socket buffer);
//! a file that keeps its sealed memfd (64 KiB to 8 MiB, see the store)
//! goes out with `sendfile` instead, without that copy, its head held back
//! with `MSG_MORE` so it leaves with the body's first bytes. The file `Arc` is held
//! until the last byte is taken, so a reload mid-download never changes
//! what a client receives. Listeners are bound to each served
//! interface and to loopback (`SO_BINDTODEVICE`), the rule TFTP follows.
//! Deadlines are checked every 250 ms. Downloads are boot events on the
//! bus (started, completed or failed, with the client's MAC when known), as
//! TFTP transfers are, so waves and `explain` follow both transports.

mod stats;

use std::collections::HashMap;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd as _, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bootwave_protocol::config::{HttpSettings, format_mac};
use bootwave_protocol::http::{
    Body, Client, ConnectionCaps, Method, Parse, Refusal, Status, deadline, error_response,
    parse_request, respond,
};
use bootwave_protocol::tftp::{DEFAULT_MAX_PATH_LEN, MacLookup, Resolver};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

pub use stats::HttpStats;

use crate::events::EventBus;

/// One HTTP download as the event bus carries it.
#[derive(Debug, Clone)]
pub struct HttpEvent {
    /// The connection's peer.
    pub client: SocketAddr,
    /// The client's MAC, from its reservation or lease.
    pub mac: Option<[u8; 6]>,
    /// The normalised path (a refused target: as sent, cut to 255 bytes).
    pub path: Arc<str>,
    /// The status sent.
    pub status: Status,
    /// Body bytes of the response (the file or the range).
    pub size: u64,
    /// Where the download is.
    pub phase: HttpPhase,
}

/// How far an [`HttpEvent`]'s download went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpPhase {
    /// The head went out; the body follows.
    Started,
    /// The socket took every body byte.
    Completed {
        /// From request to last byte.
        duration: Duration,
    },
    /// Refused (a 4xx to a GET), or the connection ended mid-body.
    Failed {
        /// Body bytes the socket took.
        bytes: u64,
        /// From request to end.
        duration: Duration,
        /// Why.
        error: &'static str,
    },
}

/// The download a connection is sending, for its ending event.
struct Fetch {
    mac: Option<[u8; 6]>,
    path: Arc<str>,
    status: Status,
    size: u64,
    since: Instant,
}

/// Longest refused target an event carries.
const MAX_EVENT_TARGET: usize = 255;

/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Token of the waker; listeners take the next ones, connections the rest.
const WAKER: Token = Token(0);

/// A running HTTP server; dropping it stops and joins its threads (open
/// connections are closed).
#[derive(Debug)]
pub struct HttpServer {
    stop: Arc<AtomicBool>,
    threads: Vec<(Arc<Waker>, JoinHandle<()>)>,
    /// Addresses listened on, one per device.
    pub listening: Vec<(String, SocketAddr)>,
}

/// Most HTTP threads: one per CPU up to this.
const MAX_THREADS: usize = 4;

/// The HTTP threads this machine gets: one per CPU, at most
/// [`MAX_THREADS`].
fn thread_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

impl HttpServer {
    /// Listens on `port` of every device in `devices` and serves from
    /// `resolver`, identifying clients with `macs`: one thread per CPU (at
    /// most four), each with its own listeners in one `SO_REUSEPORT` group
    /// per device, so the kernel spreads connections over them; the
    /// connection caps are shared.
    pub fn start<R, M>(
        settings: &HttpSettings,
        devices: &[String],
        resolver: R,
        macs: M,
        stats: Arc<HttpStats>,
        bus: EventBus,
    ) -> io::Result<Self>
    where
        R: Resolver + Clone + Send + 'static,
        M: MacLookup + Clone + 'static,
    {
        let caps = Arc::new(Mutex::new(ConnectionCaps::new(
            settings.max_connections_per_client,
            settings.max_connections,
        )));
        // Dropped on any error below: the threads already running stop.
        let mut server = Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            listening: Vec::new(),
        };
        for t in 0..thread_count() {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let mut listeners = Vec::new();
            for (i, device) in devices.iter().enumerate() {
                // Later threads join the first one's port (the same group).
                let port = server
                    .listening
                    .get(i)
                    .map_or(settings.port, |(_, a)| a.port());
                let mut listener =
                    listen(device, port, settings.listen_backlog()).map_err(|e| {
                        io::Error::new(e.kind(), format!("http: listen on {device}: {e}"))
                    })?;
                poll.registry()
                    .register(&mut listener, Token(1 + i), Interest::READABLE)?;
                if t == 0 {
                    server
                        .listening
                        .push((device.clone(), listener.local_addr()?));
                }
                listeners.push(listener);
            }
            let mut worker = Server {
                poll,
                listeners,
                conns: HashMap::new(),
                next_token: 1 + devices.len(),
                caps: Arc::clone(&caps),
                settings: settings.clone(),
                resolver: resolver.clone(),
                macs: macs.clone(),
                stats: Arc::clone(&stats),
                bus: bus.clone(),
                refusals_logged: None,
            };
            let flag = Arc::clone(&server.stop);
            let thread = std::thread::Builder::new()
                .name(format!("http-{t}"))
                .spawn(move || worker.run(&flag))?;
            server.threads.push((waker, thread));
        }
        Ok(server)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (waker, _) in &self.threads {
            let _ = waker.wake();
        }
        for (_, thread) in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A TCP listener on `0.0.0.0:port` that takes connections of `device`
/// only, with `backlog` pending connections at most.
fn listen(device: &str, port: u16, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // The HTTP threads' listeners of one device form one group.
    socket.set_reuse_port(true)?;
    socket.bind_device(Some(device.as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new([0, 0, 0, 0].into(), port)).into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

struct Server<R, M> {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    /// Shared by every HTTP thread: the caps are per client and in total.
    caps: Arc<Mutex<ConnectionCaps>>,
    settings: HttpSettings,
    resolver: R,
    macs: M,
    stats: Arc<HttpStats>,
    bus: EventBus,
    /// When refusals were last logged, and those since.
    refusals_logged: Option<Instant>,
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Received bytes not yet consumed (bounded by `max-request-size`).
    buf: Vec<u8>,
    /// Response head still to send, from `head_sent`.
    head: Vec<u8>,
    head_sent: usize,
    /// File bytes still to send.
    body: Option<Body>,
    body_sent: u64,
    keep_alive: bool,
    /// When the first byte of the request head in `buf` arrived.
    head_since: Option<Instant>,
    /// The last read or write that moved bytes.
    progress: Instant,
    /// The download being sent, when someone watches events.
    fetch: Option<Fetch>,
}

/// What driving a connection ended with.
enum Next {
    /// Waiting for the socket.
    Wait,
    /// Close it.
    Close,
}

impl<R: Resolver, M: MacLookup> Server<R, M> {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Err(error) = self.poll.poll(&mut events, Some(SWEEP_EVERY))
                && error.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(%error, "http: poll failed; server stopped");
                return;
            }
            for event in &events {
                match event.token() {
                    WAKER => {}
                    Token(i) if i <= self.listeners.len() => self.accept(i - 1),
                    token => self.drive(token),
                }
            }
            let now = Instant::now();
            if now.duration_since(last_sweep) >= SWEEP_EVERY {
                last_sweep = now;
                self.sweep(now);
            }
        }
    }

    fn accept(&mut self, listener: usize) {
        loop {
            let Some(l) = self.listeners.get(listener) else {
                return;
            };
            let (mut stream, peer) = match l.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    // EMFILE and the like: count, and try again on the
                    // next readiness event or sweep.
                    self.stats.refused(stats::Refused::Accept);
                    self.log_refusal(format_args!("accept failed: {error}"));
                    return;
                }
            };
            let admitted = lock(&self.caps).admit(peer.ip());
            if let Err(refusal) = admitted {
                self.stats.refused(match refusal {
                    Refusal::PerClient => stats::Refused::PerClient,
                    Refusal::Total => stats::Refused::Total,
                });
                self.log_refusal(format_args!("connection from {peer} refused: {refusal:?}"));
                continue;
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(error) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(%error, "http: cannot register a connection");
                lock(&self.caps).release(peer.ip());
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.stats.opened();
            self.conns.insert(
                token,
                Conn {
                    stream,
                    peer,
                    buf: Vec::new(),
                    head: Vec::new(),
                    head_sent: 0,
                    body: None,
                    body_sent: 0,
                    keep_alive: true,
                    head_since: None,
                    progress: Instant::now(),
                    fetch: None,
                },
            );
            self.drive(token);
        }
    }

    /// Refusals are counted always and logged at most once a second.
    fn log_refusal(&mut self, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self
            .refusals_logged
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            self.refusals_logged = Some(now);
            tracing::warn!("http: {what} (at most one such line a second)");
        }
    }

    fn drive(&mut self, token: Token) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        match self.step(&mut conn) {
            Next::Wait => {
                self.conns.insert(token, conn);
            }
            Next::Close => self.close(conn, "connection closed"),
        }
    }

    /// Closes `conn`; a download it was sending ends as failed with `why`.
    fn close(&mut self, mut conn: Conn, why: &'static str) {
        let _ = self.poll.registry().deregister(&mut conn.stream);
        lock(&self.caps).release(conn.peer.ip());
        self.stats.closed();
        if let Some(fetch) = conn.fetch.take() {
            let phase = HttpPhase::Failed {
                bytes: conn.body_sent,
                duration: fetch.since.elapsed(),
                error: why,
            };
            self.publish(conn.peer, fetch, phase);
        }
    }

    fn publish(&self, client: SocketAddr, fetch: Fetch, phase: HttpPhase) {
        self.bus.publish_http(HttpEvent {
            client,
            mac: fetch.mac,
            path: fetch.path,
            status: fetch.status,
            size: fetch.size,
            phase,
        });
    }

    /// Moves a connection on as far as its socket allows.
    fn step(&mut self, conn: &mut Conn) -> Next {
        let max = self.settings.max_request_size as usize;
        loop {
            if conn.head_sent < conn.head.len() || conn.body.is_some() {
                match send(conn, &self.stats) {
                    Ok(true) => {}
                    Ok(false) => return Next::Wait,
                    Err(_) => return Next::Close,
                }
                if let Some(fetch) = conn.fetch.take() {
                    let duration = fetch.since.elapsed();
                    self.publish(conn.peer, fetch, HttpPhase::Completed { duration });
                }
                if !conn.keep_alive {
                    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                    return Next::Close;
                }
                continue;
            }
            match parse_request(&conn.buf, max) {
                Parse::Request(request) => {
                    let mac = self.macs.mac_of(conn.peer.ip());
                    let client = Client {
                        addr: conn.peer,
                        mac,
                    };
                    let now = (SystemTime::now(), DEFAULT_MAX_PATH_LEN);
                    let response = respond(&request, client, &self.resolver, now, &mut conn.head);
                    let consumed = request.head_len;
                    tracing::debug!(
                        client = %conn.peer,
                        mac = mac.as_ref().map(format_mac).unwrap_or_default(),
                        target = request.target,
                        status = response.status.code(),
                        bytes = response.body.as_ref().map_or(0, |b| b.len),
                        "http: request"
                    );
                    self.stats.request(response.status);
                    if request.method == Method::Get && self.bus.is_watched() {
                        let path: Arc<str> = match &response.path {
                            Some(path) => path.as_str().into(),
                            None => cut(request.target, MAX_EVENT_TARGET).into(),
                        };
                        let fetch = Fetch {
                            mac,
                            path,
                            status: response.status,
                            size: response.body.as_ref().map_or(0, |b| b.len),
                            since: Instant::now(),
                        };
                        if response.body.is_some() {
                            let started = Fetch {
                                path: Arc::clone(&fetch.path),
                                ..fetch
                            };
                            conn.fetch = Some(fetch);
                            self.publish(conn.peer, started, HttpPhase::Started);
                        } else if !response.status.is_success() {
                            let phase = HttpPhase::Failed {
                                bytes: 0,
                                duration: Duration::ZERO,
                                error: response.status.reason(),
                            };
                            self.publish(conn.peer, fetch, phase);
                        }
                    }
                    conn.buf.drain(..consumed);
                    conn.head_since = (!conn.buf.is_empty()).then(Instant::now);
                    conn.head_sent = 0;
                    conn.body = response.body;
                    conn.body_sent = 0;
                    conn.keep_alive = response.keep_alive;
                }
                Parse::Error(status) => {
                    self.stats.request(status);
                    tracing::debug!(client = %conn.peer, status = status.code(), "http: bad request");
                    error_response(status, false, SystemTime::now(), &mut conn.head);
                    conn.head_sent = 0;
                    conn.body = None;
                    conn.keep_alive = false;
                    conn.buf.clear();
                }
                Parse::Partial => match receive(conn, max) {
                    Ok(true) => {}
                    Ok(false) => return Next::Wait,
                    Err(_) => return Next::Close,
                },
            }
        }
    }

    /// Closes every connection past its deadline.
    fn sweep(&mut self, now: Instant) {
        let timeouts = (self.settings.header_timeout, self.settings.idle_timeout);
        let late: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| deadline(c.head_since, c.progress, timeouts) <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            if let Some(conn) = self.conns.remove(&token) {
                let reason = if conn.head_since.is_some() {
                    stats::Refused::HeaderTimeout
                } else {
                    stats::Refused::IdleTimeout
                };
                self.stats.refused(reason);
                tracing::debug!(client = %conn.peer, ?reason, "http: connection timed out");
                self.close(conn, "idle timeout");
            }
        }
    }
}

/// Reads what the socket holds into the buffer, up to `max` bytes.
/// `Ok(true)`: new bytes; `Ok(false)`: nothing now; `Err`: closed or
/// failed.
fn receive(conn: &mut Conn, max: usize) -> io::Result<bool> {
    let room = max.saturating_sub(conn.buf.len());
    if room == 0 {
        // parse_request refuses a full buffer, so this is not reached.
        return Err(io::ErrorKind::InvalidData.into());
    }
    let start = conn.buf.len();
    conn.buf.resize(start + room.min(4096), 0);
    let read = conn.stream.read(&mut conn.buf[start..]);
    match read {
        Ok(0) => {
            conn.buf.truncate(start);
            Err(io::ErrorKind::UnexpectedEof.into())
        }
        Ok(n) => {
            conn.buf.truncate(start + n);
            conn.progress = Instant::now();
            if start == 0 {
                conn.head_since = Some(conn.progress);
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            conn.buf.truncate(start);
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            conn.buf.truncate(start);
            Ok(true)
        }
        Err(e) => {
            conn.buf.truncate(start);
            Err(e)
        }
    }
}

/// Writes the rest of the head and the file slice. `Ok(true)`: all sent;
/// `Ok(false)`: the socket is full.
fn send(conn: &mut Conn, stats: &HttpStats) -> io::Result<bool> {
    loop {
        let head = conn.head.get(conn.head_sent..).unwrap_or_default();
        let body = match &conn.body {
            Some(body) => {
                let bytes = body.file.bytes();
                let from = usize::try_from(body.offset + conn.body_sent).unwrap_or(usize::MAX);
                let to = usize::try_from(body.offset + body.len).unwrap_or(usize::MAX);
                bytes.get(from..to.min(bytes.len())).unwrap_or_default()
            }
            None => &[],
        };
        if head.is_empty() && body.is_empty() {
            conn.body = None;
            return Ok(true);
        }
        if head.is_empty() {
            // The head is out: a file that keeps its sealed memfd goes to
            // the socket with sendfile, without a copy through here.
            let sealed = conn.body.as_ref().and_then(|b| {
                let fd = b.file.sealed_fd()?.as_raw_fd();
                Some((fd, b.offset + conn.body_sent))
            });
            if let Some((file_fd, offset)) = sealed {
                match sendfile(conn.stream.as_raw_fd(), file_fd, offset, body.len()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        conn.body_sent += n as u64;
                        stats.sent(n as u64);
                        conn.progress = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
        }
        // With a sealed memfd, the head goes alone, held back (MSG_MORE)
        // so that it leaves in one segment with the body's first bytes, and
        // the body follows by sendfile (a writev would copy the first
        // socket-buffer's worth).
        if !head.is_empty()
            && conn
                .body
                .as_ref()
                .is_some_and(|b| b.file.sealed_fd().is_some())
        {
            match socket2::SockRef::from(&conn.stream).send_with_flags(head, libc::MSG_MORE) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    conn.head_sent += n;
                    conn.progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        match conn
            .stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
        {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let from_head = n.min(head.len());
                conn.head_sent += from_head;
                let from_body = (n - from_head) as u64;
                conn.body_sent += from_body;
                stats.sent(from_body);
                conn.progress = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The shared connection caps; a thread that panicked while holding them
/// left them consistent (each call is one count change).
fn lock(caps: &Mutex<ConnectionCaps>) -> std::sync::MutexGuard<'_, ConnectionCaps> {
    caps.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Most bytes one `sendfile` call is asked for, so that one connection
/// does not hold the thread while others wait.
const SENDFILE_CHUNK: usize = 1 << 20;

/// Sends up to `len` bytes of `file` from `offset` to `socket`; the
/// number sent.
fn sendfile(socket: RawFd, file: RawFd, offset: u64, len: usize) -> io::Result<usize> {
    let mut offset = libc::off64_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    // Safety: both descriptors are open for the whole call: the socket is
    // owned by the connection being driven and the file by the `Arc` its
    // response body holds; `offset` is a local the call may update; the
    // kernel reads the file, never our memory.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::sendfile64(socket, file, &mut offset, len.min(SENDFILE_CHUNK)) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The status counters' label.
pub fn status_label(status: Status) -> &'static str {
    match status.code() {
        200 => "200",
        206 => "206",
        400 => "400",
        403 => "403",
        404 => "404",
        405 => "405",
        414 => "414",
        416 => "416",
        _ => "431",
    }
}

/// The client's MAC from its reservation or, failing that, its lease.
pub fn mac_lookup(
    snapshot: bootwave_protocol::dhcp::SharedSnapshot,
    mirrors: Vec<Arc<crate::events::LeaseMirror>>,
) -> impl MacLookup + Clone + 'static {
    move |ip: IpAddr| match ip {
        IpAddr::V4(v4) => snapshot
            .load()
            .reserved_for(v4)
            .or_else(|| mirrors.iter().find_map(|m| m.mac_of(v4))),
        IpAddr::V6(_) => None,
    }
}
