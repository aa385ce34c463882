//! The data plane's control endpoint: `bootwave.v1.DataplaneControl` on a
//! unix socket, served by a current-thread tokio runtime on its own thread,
//! away from the shards.
//!
//! The agent pushes the desired state with a generation number and the id
//! of the agent history it belongs to
//! ([`ApplyRequest`](bootwave_proto::v1::ApplyRequest)): the full state, or
//! a delta on top of the generation in force (refused with `ABORTED` when
//! its base is another generation or another history, so the agent falls
//! back to the full state). A full state of another history replaces the
//! one in force and the takeover is logged. The resulting state is
//! converted into a [`Config`] with the data plane's own validation
//! (machine-local settings — `interfaces`, ports, `[tftp]`, `[journal]`,
//! `[ipv6]` — come from the `local` configuration) and handed to the
//! `apply` callback, which swaps it in as one snapshot. The state is then
//! persisted under the journal directory ([`persist`]) and the reply
//! carries the generation.
//!
//! `WatchEvents` streams the shards' boot events from the
//! [`EventBus`] (one bus subscription per stream,
//! lossy: a slow reader is told how many events it missed) and
//! `ListLeases` reads the DHCP shards' [`LeaseMirror`]s; both are handed
//! in as an [`Observe`] by [`serve_with`].
//!
//! ```ignore
//! let handle = control::serve_with(Path::new("/run/bootwave/control.sock"), local, apply, status, observe)?;
//! // … serve …
//! handle.stop();
//! ```

mod leases;
pub mod persist;
mod service;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bootwave_protocol::config::Config;
use tokio::sync::oneshot;

use crate::events::{EventBus, LeaseMirror};

pub use service::ControlService;

/// Called with each validated configuration and where it comes from;
/// returns once the configuration is in force, or why it could not be
/// applied.
pub type ApplyFn = Arc<dyn Fn(Config, &Origin) -> Result<(), String> + Send + Sync>;

/// Where a pushed state comes from: an agent history, a generation in it,
/// and when it was applied here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The agent history (a random id created with the agent's state).
    pub history: String,
    /// The generation in that history.
    pub generation: u64,
    /// When it was applied (ms since the Unix epoch).
    pub applied_unix_ms: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = persist::utc_text(self.applied_unix_ms);
        write!(
            f,
            "pushed generation {} of history {} from {at}",
            self.generation, self.history
        )
    }
}

/// The pushed state in force (`None`: none yet), shared by the control
/// thread and [`ControlHandle`].
pub type InForce = Arc<Mutex<Option<Origin>>>;

/// Reports what the data plane runs.
pub type StatusFn = Arc<dyn Fn() -> DataplaneStatus + Send + Sync>;

/// What the data plane runs, for `DataplaneControl.Status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataplaneStatus {
    /// Shards serving.
    pub shards: u32,
    /// I/O backend name (`io_uring` or `portable`).
    pub backend: String,
    /// The `[http] port` boot URLs name; `None` when HTTP is off.
    pub http_port: Option<u16>,
}

/// What the data plane shows of its shards: their boot events and the
/// mirrors of their leases (one per DHCP shard).
#[derive(Debug, Clone, Default)]
pub struct Observe {
    /// The bus the shards publish their events on.
    pub events: EventBus,
    /// One lease mirror per DHCP shard.
    pub leases: Vec<Arc<LeaseMirror>>,
}

/// Why the control endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket path exists and is not a socket (never removed).
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Removing a stale socket, binding or setting its mode failed.
    #[error("{path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another live process answers on the socket path (never removed).
    #[error("{0}: another process is serving on this socket")]
    InUse(PathBuf),
    /// The control thread or its runtime could not start.
    #[error("starting the control thread: {0}")]
    Thread(std::io::Error),
}

/// The running endpoint. Dropping it stops the server and removes the
/// socket file.
#[derive(Debug)]
pub struct ControlHandle {
    path: PathBuf,
    in_force: InForce,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ControlHandle {
    /// The generation last applied (0: none yet).
    pub fn generation(&self) -> u64 {
        self.in_force().map_or(0, |o| o.generation)
    }

    /// Where the pushed state in force comes from (`None`: none yet).
    pub fn in_force(&self) -> Option<Origin> {
        lock(&self.in_force).clone()
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("control thread panicked");
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Everything the endpoint serves.
pub struct Endpoint {
    /// The local configuration (machine-local settings of every state).
    pub local: Config,
    /// Puts a validated configuration in force.
    pub apply: ApplyFn,
    /// What the data plane runs.
    pub status: StatusFn,
    /// The shards' events and lease mirrors.
    pub observe: Observe,
    /// Where applied states are persisted (the journal directory), if
    /// anywhere.
    pub persist: Option<PathBuf>,
    /// The pushed state in force at start (read back from `persist`).
    pub in_force: Option<persist::Applied>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("persist", &self.persist)
            .finish_non_exhaustive()
    }
}

/// Serves `DataplaneControl` on the unix socket `path` (mode 0600; a stale
/// socket file is removed first) from a new thread, with no shard to
/// observe (`WatchEvents` streams nothing, `ListLeases` lists nothing) and
/// nothing persisted.
pub fn serve(
    path: &Path,
    local: Config,
    apply: ApplyFn,
    status: StatusFn,
) -> Result<ControlHandle, ControlError> {
    serve_with(path, local, apply, status, Observe::default())
}

/// Like [`serve`], with the shards' events and lease mirrors to serve.
pub fn serve_with(
    path: &Path,
    local: Config,
    apply: ApplyFn,
    status: StatusFn,
    observe: Observe,
) -> Result<ControlHandle, ControlError> {
    start(
        path,
        Endpoint {
            local,
            apply,
            status,
            observe,
            persist: None,
            in_force: None,
        },
    )
}

/// Serves `endpoint` on `path` (see [`serve`]).
pub fn start(path: &Path, endpoint: Endpoint) -> Result<ControlHandle, ControlError> {
    let listener = bind(path)?;
    let in_force: InForce = Arc::new(Mutex::new(
        endpoint.in_force.as_ref().map(|a| a.origin.clone()),
    ));
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let service = ControlService::new(endpoint, in_force.clone()).observing(stop);
    let (tx, rx) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ControlError::Thread)?;
    let thread = std::thread::Builder::new()
        .name("bw-control".into())
        .spawn(move || runtime.block_on(service::run(service, listener, rx, stopping)))
        .map_err(ControlError::Thread)?;
    Ok(ControlHandle {
        path: path.to_owned(),
        in_force,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// Locks `m`, whatever a panicking holder left: every writer replaces the
/// value whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, ControlError> {
    use bootwave_daemon::unix_socket::{self, BindError};
    unix_socket::bind_private(path).map_err(|e| match e {
        BindError::NotASocket(p) => ControlError::NotASocket(p),
        // A socket someone still accepts on belongs to a running data
        // plane: refused rather than stolen. Only a dead one is stale.
        BindError::InUse(p) => ControlError::InUse(p),
        BindError::Io { path, source } => ControlError::Socket { path, source },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod observe_tests;
