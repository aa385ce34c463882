//! `bootwave-agent --config FILE`: the agent's settings as TOML.
//!
//! ```toml
//! listen = "127.0.0.1:7070"          # or "unix:/run/bootwave/agent.sock"
//! state = "/var/lib/bootwave-agent"
//! dataplanes = ["unix:/run/bootwave/control.sock"]
//! token-file = "/etc/bootwave/token"
//! metrics = "127.0.0.1:9172"
//! log-format = "json"                # or "human"
//! resync-ms = 2000
//!
//! [tls]
//! cert = "agent.pem"
//! key = "agent.key"
//! client-ca = "clients-ca.pem"
//! ```
//!
//! Every key is optional (flags given on the command line win), unknown
//! keys are refused, and relative paths are taken from the file's
//! directory. Errors read `FILE:LINE:COL: KEY: reason`.

mod file;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use tls::TlsFiles;

use crate::server::Listen;

/// The settings of a configuration file, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFile {
    /// `listen`.
    pub listen: Option<Listen>,
    /// `state`: the state database's directory.
    pub state: Option<PathBuf>,
    /// `dataplanes`: control endpoints.
    pub dataplanes: Vec<String>,
    /// `token-file`.
    pub token_file: Option<PathBuf>,
    /// `[tls]`.
    pub tls: Option<TlsFiles>,
    /// `metrics`: where `/metrics` is served.
    pub metrics: Option<SocketAddr>,
    /// `log-format`.
    pub log_format: Option<LogFormat>,
    /// `resync-ms`: how often data planes are checked.
    pub resync_ms: Option<u64>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            // `text` is accepted as another name of `human`.
            "human" | "text" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("`{s}` is not human or json")),
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not TOML, or a key or value type does not fit the schema (unknown
    /// key, string where a number belongs).
    #[error("{location}: {message}")]
    Syntax {
        /// `FILE:LINE:COL`.
        location: String,
        /// What the TOML reader said.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("{location}: {key}: {message}")]
    Invalid {
        /// `FILE:LINE:COL`.
        location: String,
        /// The key, e.g. `tls.client-ca` or `dataplanes[1]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<AgentFile, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

/// Validates configuration `text`, named `origin` in errors; relative
/// paths are joined to `base`.
pub fn parse(text: &str, origin: &str, base: &Path) -> Result<AgentFile, ConfigFileError> {
    file::parse(text, origin, base)
}
