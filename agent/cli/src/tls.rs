//! The client side of TLS: `--ca`, `--cert` and `--key`.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::{Connection, EXIT_ERROR, EXIT_USAGE, Failure};

/// The TLS settings `conn` asks for; `None` when it names no file.
pub(super) fn client_config(conn: &Connection) -> Result<Option<ClientTlsConfig>, Failure> {
    if conn.ca.is_none() && conn.cert.is_none() && conn.key.is_none() {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    match &conn.ca {
        Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => tls = tls.with_native_roots(),
    }
    match (&conn.cert, &conn.key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(Failure {
                code: EXIT_USAGE,
                message: "--cert and --key go together".into(),
            });
        }
    }
    Ok(Some(tls))
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure {
        code: EXIT_ERROR,
        message: format!("{}: {e}", path.display()),
    })
}
