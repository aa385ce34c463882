//! The agent's listeners: the API with health and reflection, on TCP (every
//! call must carry `authorization: Bearer TOKEN`, or come over mutual TLS
//! with a client certificate of the configured CA) or on a unix socket
//! (mode 0600: file permissions decide who may call); and the optional
//! metrics endpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bootwave_proto::v1::bootwave_service_server::BootwaveServiceServer;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::config::TlsFiles;
use crate::metrics::{self, RpcCounts, WaveStages};
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
    /// socket file, never one another process serves.
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
    // Shared with the data plane's control socket: mode 0600 from the first
    // moment, and a socket a live agent still serves is never removed.
    use bootwave_daemon::unix_socket::{BindError, bind_private};
    let listener = match bind_private(path) {
        Ok(listener) => listener,
        Err(e @ BindError::InUse(_)) => anyhow::bail!(
            "{e}: another bootwave-agent serves it; stop that one first or choose another \
             --listen path"
        ),
        Err(e) => return Err(e.into()),
    };
    tokio::net::UnixListener::from_std(listener)
        .with_context(|| format!("listening on {}", path.display()))
}

/// What the agent serves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Directory of the state database.
    pub state_dir: PathBuf,
    /// Data-plane control endpoints (`unix:/path` or `http://host:port`).
    pub dataplanes: Vec<String>,
    /// Bearer token; required on TCP listeners without mutual TLS.
    pub token: Option<String>,
    /// How often data planes are checked and re-synced.
    pub resync_interval: Duration,
}

/// Optional parts of serving: mutual TLS, the metrics endpoint and its
/// wave source.
#[derive(Default)]
pub struct ServeOptions {
    /// Mutual TLS on the TCP listener.
    pub tls: Option<TlsFiles>,
    /// Where `/metrics` is served.
    pub metrics: Option<SocketAddr>,
    /// Told the metrics endpoint's bound address (useful with port 0).
    pub metrics_bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    /// Hosts per wave stage for the metrics; none when unset.
    pub waves: Option<Arc<dyn WaveStages>>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tls", &self.tls)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// Serves the agent on `listener` until `shutdown` completes.
pub async fn serve(
    config: AgentConfig,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(config, ServeOptions::default(), listener, shutdown).await
}

/// As [`serve`], with TLS and metrics.
///
/// Authentication on TCP: with `tls` and no token, the handshake requires a
/// client certificate signed by the client CA; with `tls` and a token,
/// either a client certificate or the bearer token authenticates; without
/// `tls` the token is required.
pub async fn serve_with(
    config: AgentConfig,
    options: ServeOptions,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let tls = match (&listener, &options.tls) {
        (Listener::Unix(_), Some(_)) => anyhow::bail!("TLS needs a TCP listener"),
        (Listener::Tcp(_), Some(files)) => Some(
            files
                .server_config(config.token.is_some())
                .context("loading the TLS files")?,
        ),
        (_, None) => None,
    };
    if config.token.as_deref().is_some_and(str::is_empty) {
        anyhow::bail!(
            "the bearer token is empty: an empty token would let anyone call; put a secret in \
             the token file (or BOOTWAVE_TOKEN)"
        );
    }
    let token = match (&listener, config.token) {
        (Listener::Tcp(_), None) if tls.is_none() => anyhow::bail!(
            "a TCP listener needs a bearer token (--token-file or BOOTWAVE_TOKEN) or mutual TLS"
        ),
        (Listener::Tcp(_), token) => token,
        (Listener::Unix(_), _) => None,
    };
    let auth = BearerAuth {
        token: token.as_deref().map(TokenDigest::of),
        certificate_authenticates: tls.is_some(),
    };
    let store = Arc::new(Store::open(&config.state_dir).context("opening the state")?);
    let dataplanes = Arc::new(Dataplanes::new(&config.dataplanes)?);
    let resync = tokio::spawn(
        dataplanes
            .clone()
            .resync_forever(store.clone(), config.resync_interval),
    );
    let rpc = Arc::new(RpcCounts::default());
    let agent = Agent::new(store.clone(), dataplanes.clone());
    let metrics = match options.metrics {
        Some(addr) => {
            let sources = metrics::Sources {
                store: store.clone(),
                dataplanes: dataplanes.clone(),
                rpc: rpc.clone(),
                waves: options.waves.unwrap_or_else(|| agent.waves().clone()),
            };
            let server = metrics::serve(addr, sources)?;
            tracing::info!("metrics on http://{}/metrics", server.local_addr());
            if let Some(tx) = options.metrics_bound {
                let _ = tx.send(server.local_addr());
            }
            Some(server)
        }
        None => None,
    };
    let background = agent.spawn_background();
    let shutdown = agent.close_on(shutdown);
    let api = InterceptedService::new(
        BootwaveServiceServer::new(agent)
            .max_decoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES),
        auth,
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BootwaveServiceServer<Agent>>().await;
    // Reflection in both versions: grpcurl speaks v1, several language
    // clients (Python's grpcio-reflection among them) still speak v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bootwave_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("building the reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building the v1alpha reflection service")?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).context("the TLS configuration")?;
    }
    let router = builder
        .layer(rpc.layer())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
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
    // The task and the scrape thread hold the store; wait until both let
    // go of it so that the database can be opened again at once.
    let _ = resync.await;
    drop(metrics);
    result.context("serving")
}

/// Checks `authorization: Bearer TOKEN` when a token is set, unless the
/// client presented a certificate the TLS handshake verified.
#[derive(Clone)]
struct BearerAuth {
    /// SHA-256 of the token.
    token: Option<TokenDigest>,
    /// A verified client certificate is enough.
    certificate_authenticates: bool,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(request);
        };
        if self.certificate_authenticates && request.peer_certs().is_some_and(|c| !c.is_empty()) {
            return Ok(request);
        }
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(given) if TokenDigest::of(given).matches(expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong bearer token")),
            None => Err(Status::unauthenticated(
                "missing authorization: Bearer TOKEN",
            )),
        }
    }
}

/// A token's SHA-256 digest. Digests of any two tokens have the same
/// length, so comparing them in constant time tells a caller nothing about
/// the token's length or where a guess first differs.
#[derive(Clone)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    fn matches(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.0.ct_eq(&other.0))
    }
}

#[cfg(test)]
mod tests {
    use super::TokenDigest;

    #[test]
    fn token_digests_match_only_the_same_token() {
        let token = TokenDigest::of("s3cret");
        assert!(TokenDigest::of("s3cret").matches(&token));
        for other in ["", "s3cre", "s3cret ", "S3cret", "s3cret-and-more"] {
            assert!(!TokenDigest::of(other).matches(&token), "{other:?}");
        }
    }
}
