//! The agent's TLS identity and the CA its clients' certificates must chain
//! to (mutual TLS on the TCP listener).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// PEM files of mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The agent's certificate chain.
    pub cert: PathBuf,
    /// The agent's private key.
    pub key: PathBuf,
    /// The CA that signs client certificates.
    pub client_ca: PathBuf,
}

impl TlsFiles {
    /// Reads the files into a server configuration. A client certificate
    /// signed by the CA is required in the handshake, unless
    /// `token_also_authenticates`: then a client may connect without one and
    /// authenticate with the bearer token instead (a certificate it does
    /// present must still chain to the CA).
    pub fn server_config(&self, token_also_authenticates: bool) -> anyhow::Result<ServerTlsConfig> {
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        let ca = Certificate::from_pem(read(&self.client_ca)?);
        Ok(ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(ca)
            .client_auth_optional(token_also_authenticates))
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
