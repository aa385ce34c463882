//! The scrape endpoint: one std thread, one connection at a time.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::{self, MAX_REQUEST};

/// Renders the current metrics into the (cleared) string it is given.
pub type Render = Arc<dyn Fn(&mut String) + Send + Sync>;

/// How long one client may take to send its request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long writing a response may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag when idle.
const STOP_POLL_MS: i32 = 50;
/// The most unread request bytes discarded before closing, so that the
/// close does not reset the connection before the client read the response.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Binding the listening socket failed.
    #[error("bind metrics listener on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Reading back or configuring the listening socket failed.
    #[error("configure metrics listener: {0}")]
    Listener(#[source] io::Error),
    /// The server thread could not be started.
    #[error("spawn metrics thread: {0}")]
    Spawn(#[source] io::Error),
}

/// A running metrics endpoint. Dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `GET /metrics` (the text `render` writes), `GET /` (an index) on
/// `addr` from a thread named `metrics`.
pub fn serve(addr: SocketAddr, render: Render) -> Result<MetricsServer, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(MetricsError::Listener)?;
    let local_addr = listener.local_addr().map_err(MetricsError::Listener)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || accept_loop(&listener, &render, &thread_stop))
        .map_err(MetricsError::Spawn)?;
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

impl MetricsServer {
    /// The address the listener is bound to (with the port chosen when
    /// `serve` was given port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported by the
            // panic hook; there is nothing more to do with it here.
            let _ = thread.join();
        }
    }
}

/// Buffers reused across connections.
#[derive(Default)]
struct Buffers {
    request: Vec<u8>,
    body: String,
    response: Vec<u8>,
}

fn accept_loop(listener: &TcpListener, render: &Render, stop: &AtomicBool) {
    let mut bufs = Buffers::default();
    while !stop.load(Ordering::Relaxed) {
        if !readable(listener, STOP_POLL_MS) {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(err) = handle(stream, render, &mut bufs) {
                    tracing::debug!(%peer, %err, "metrics connection failed");
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => {
                // Such as EMFILE or ECONNABORTED: back off and carry on.
                tracing::debug!(%err, "metrics accept failed");
                std::thread::sleep(Duration::from_millis(STOP_POLL_MS as u64));
            }
        }
    }
}

/// Waits up to `timeout_ms` for a connection to accept.
fn readable(listener: &TcpListener, timeout_ms: i32) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::from(timeout_ms.max(0) / 1000),
        tv_nsec: i64::from(timeout_ms.max(0) % 1000) * 1_000_000,
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

/// Reads one request head (bounded in size and time), answers it, closes.
fn handle(mut stream: TcpStream, render: &Render, bufs: &mut Buffers) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let Some(head_len) = read_head(&mut stream, &mut bufs.request, deadline)? else {
        http::respond_too_large(&mut bufs.response);
        stream.write_all(&bufs.response)?;
        return drain(&mut stream, deadline);
    };
    let request = http::parse(&bufs.request[..head_len]);
    bufs.body.clear();
    if request.route == http::Route::Metrics {
        let rendered = panic::catch_unwind(AssertUnwindSafe(|| render(&mut bufs.body)));
        if rendered.is_err() {
            http::respond_internal_error(&mut bufs.response);
            return stream.write_all(&bufs.response);
        }
    }
    http::respond(&mut bufs.response, &request, &bufs.body);
    stream.write_all(&bufs.response)?;
    if bufs.request.len() > head_len {
        return drain(&mut stream, deadline);
    }
    Ok(())
}

/// Reads into `buf` until it holds a complete request head and returns the
/// head's length; `None` when [`MAX_REQUEST`] bytes hold no complete head.
/// Errors on timeout and on EOF before a complete head.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<Option<usize>> {
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = http::head_end(buf) {
            return Ok(Some(end));
        }
        if buf.len() >= MAX_REQUEST {
            return Ok(None);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(remaining))?;
        let want = chunk.len().min(MAX_REQUEST - buf.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Half-closes and discards what the client still sends (bounded), so that
/// closing with unread data does not reset the connection under the response.
fn drain(stream: &mut TcpStream, deadline: Instant) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let mut chunk = [0u8; 4096];
    let mut discarded = 0;
    while discarded < DRAIN_LIMIT {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => discarded += n,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
