//! Client channels to an endpoint written `unix:/path/to.sock` or
//! `http://host:port`.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

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
    let err = |source| ChannelError::Connect {
        endpoint: endpoint.to_owned(),
        source,
    };
    match target(endpoint)? {
        Target::Uri(e) => e.connect().await.map_err(err),
        Target::Unix(path) => unix_endpoint()
            .connect_with_connector(unix_connector(path))
            .await
            .map_err(err),
    }
}

/// A channel that connects on first use and reconnects after failures.
pub fn connect_lazy(endpoint: &str) -> Result<Channel, ChannelError> {
    Ok(match target(endpoint)? {
        Target::Uri(e) => e.connect_lazy(),
        Target::Unix(path) => unix_endpoint().connect_with_connector_lazy(unix_connector(path)),
    })
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
