//! The agent's listeners: the API with health and reflection, on TCP (every
//! call must carry `authorization: Bearer TOKEN`) or on a unix socket
//! (mode 0600: file permissions decide who may call).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bootwave_proto::v1::bootwave_service_server::BootwaveServiceServer;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::push::Dataplanes;
use crate::service::Agent;
use crate::store::Store;

/// Where the agent listens: `unix:PATH` or `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (bearer token required).
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Self::Tcp)
            .map_err(|_| format!("{s:?} is neither unix:PATH nor HOST:PORT"))
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// Unix socket.
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Binds `listen`; a unix socket gets mode 0600 and replaces a stale
    /// socket file.
    pub async fn bind(listen: &Listen) -> anyhow::Result<Self> {
        match listen {
            Listen::Tcp(addr) => Ok(Self::Tcp(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?,
            )),
            Listen::Unix(path) => bind_unix(path).map(Self::Unix),
        }
    }

    /// The TCP address bound, if TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(_) => None,
        }
    }
}

fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?,
        Ok(_) => anyhow::bail!("{}: exists and is not a socket", path.display()),
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(listener)
}

/// What the agent serves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Directory of the state database.
    pub state_dir: PathBuf,
    /// Data-plane control endpoints (`unix:/path` or `http://host:port`).
    pub dataplanes: Vec<String>,
    /// Bearer token; required on TCP listeners.
    pub token: Option<String>,
    /// How often data planes are checked and re-synced.
    pub resync_interval: Duration,
}

/// Serves the agent on `listener` until `shutdown` completes.
pub async fn serve(
    config: AgentConfig,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let token = match (&listener, config.token) {
        (Listener::Tcp(_), None) => {
            anyhow::bail!("a TCP listener needs a bearer token (--token-file or BOOTWAVE_TOKEN)")
        }
        (Listener::Tcp(_), Some(t)) => Some(t),
        (Listener::Unix(_), _) => None,
    };
    let store = Arc::new(Store::open(&config.state_dir).context("opening the state")?);
    let dataplanes = Arc::new(Dataplanes::new(&config.dataplanes)?);
    let resync = tokio::spawn(
        dataplanes
            .clone()
            .resync_forever(store.clone(), config.resync_interval),
    );
    let agent = Agent::new(store, dataplanes);
    let background = agent.spawn_background();
    let shutdown = agent.close_on(shutdown);
    let api = InterceptedService::new(BootwaveServiceServer::new(agent), BearerAuth { token });
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BootwaveServiceServer<Agent>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bootwave_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(api);
    let result = match listener {
        Listener::Tcp(l) => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Listener::Unix(l) => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    for task in background {
        task.abort();
    }
    resync.abort();
    // The task holds the store; wait until it is dropped so that the
    // database can be opened again at once.
    let _ = resync.await;
    result.context("serving")
}

/// Checks `authorization: Bearer TOKEN` when a token is set.
#[derive(Clone)]
struct BearerAuth {
    token: Option<String>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong bearer token")),
            None => Err(Status::unauthenticated(
                "missing authorization: Bearer TOKEN",
            )),
        }
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
