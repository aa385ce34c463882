//! Client channels to an endpoint written `unix:/path/to.sock`,
//! `http://host:port` or `https://host:port` (TLS: the trust roots and an
//! optional client identity come from a [`ClientTlsConfig`], else the
//! system's roots).

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Uri};

/// Why an endpoint could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The endpoint is neither `unix:PATH` nor a valid URI.
    #[error("{endpoint}: not unix:PATH or http://HOST:PORT: {source}")]
    BadEndpoint {
        /// The text given.
        endpoint: String,
        /// What tonic said.
        source: tonic::transport::Error,
    },
    /// TLS settings were given for an endpoint that is not `https://`, or
    /// tonic refused them.
    #[error("{endpoint}: TLS: {reason}")]
    Tls {
        /// The text given.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// Connecting failed.
    #[error("{endpoint}: {source}")]
    Connect {
        /// The text given.
        endpoint: String,
        /// What tonic said.
        source: tonic::transport::Error,
    },
}

/// Where an endpoint leads.
enum Target {
    Unix(PathBuf),
    Uri(Box<Endpoint>),
}

fn target(endpoint: &str) -> Result<Target, ChannelError> {
    if let Some(path) = endpoint.strip_prefix("unix:") {
        return Ok(Target::Unix(PathBuf::from(path.trim_start_matches("//"))));
    }
    Endpoint::from_shared(endpoint.to_owned())
        .map(|e| Target::Uri(Box::new(e)))
        .map_err(|source| ChannelError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// Connects now; fails when the peer is not there.
pub async fn connect(endpoint: &str) -> Result<Channel, ChannelError> {
    connect_tls(endpoint, None).await
}

/// As [`connect`], with TLS settings for an `https://` endpoint (`None`:
/// the system's trust roots, no client certificate).
pub async fn connect_tls(
    endpoint: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, ChannelError> {
    let err = |source| ChannelError::Connect {
        endpoint: endpoint.to_owned(),
        source,
    };
    match with_tls(target(endpoint)?, endpoint, tls)? {
        Target::Uri(e) => e.connect().await.map_err(err),
        Target::Unix(path) => unix_endpoint()
            .connect_with_connector(unix_connector(path))
            .await
            .map_err(err),
    }
}

/// A channel that connects on first use and reconnects after failures.
pub fn connect_lazy(endpoint: &str) -> Result<Channel, ChannelError> {
    Ok(match with_tls(target(endpoint)?, endpoint, None)? {
        Target::Uri(e) => e.connect_lazy(),
        Target::Unix(path) => unix_endpoint().connect_with_connector_lazy(unix_connector(path)),
    })
}

/// Applies TLS to an `https://` target: `tls`, or the system's roots.
fn with_tls(
    target: Target,
    endpoint: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<Target, ChannelError> {
    let error = |reason: String| ChannelError::Tls {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let https = matches!(&target, Target::Uri(e) if e.uri().scheme_str() == Some("https"));
    match (target, tls) {
        (Target::Uri(e), tls) if https => {
            let tls = tls.unwrap_or_else(|| ClientTlsConfig::new().with_native_roots());
            e.tls_config(tls)
                .map(|e| Target::Uri(Box::new(e)))
                .map_err(|e| error(e.to_string()))
        }
        (_, Some(_)) => Err(error("TLS settings need an https:// endpoint".into())),
        (target, None) => Ok(target),
    }
}

fn unix_endpoint() -> Endpoint {
    // The URI is required by the API but unused: the connector below
    // decides where the stream goes.
    Endpoint::from_static("http://[::1]:50051")
}

fn unix_connector(
    path: PathBuf,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<TokioIo<tokio::net::UnixStream>>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
    })
}
