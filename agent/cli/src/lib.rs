//! The `bootwave` command-line client of the agent.
//!
//! Exit status, for scripts: 0 success; 1 error (refused input, failed
//! call); 2 usage error; 3 not found; 4 agent or data plane unavailable
//! (including a change committed but not acknowledged by every data plane);
//! 5 a reboot wave ended with hosts not done (`wave watch`, `wave summary`).

mod apply;
mod commands;
pub mod demo;
mod leases;
mod output;
mod subnet;
mod svg;
mod tls;
mod wave;

use std::path::PathBuf;

use bootwave_proto::v1::bootwave_service_client::BootwaveServiceClient;
use clap::{Args, Subcommand};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use commands::run;
pub use subnet::{NetworkArg, ProfileCommand, SubnetArgs, SubnetCommand};
pub use wave::WaveCommand;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: error.
pub const EXIT_ERROR: u8 = 1;
/// Exit status: usage error (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the object does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit status: the agent or a data plane is unavailable.
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit status: a reboot wave ended with hosts not DONE (failed, timed
/// out, or the wave was finished before they were done).
pub const EXIT_WAVE_FAILED: u8 = 5;

/// How to reach the agent, shared by every agent command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The agent: `unix:/path`, `http://host:port` or `https://host:port`.
    #[arg(
        long,
        global = true,
        env = "BOOTWAVE_AGENT",
        default_value = "unix:/run/bootwave/agent.sock"
    )]
    pub agent: String,
    /// File holding the bearer token (else BOOTWAVE_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) the agent's TLS certificate must chain to
    /// (`https://`; else the system's roots).
    #[arg(long, global = true, env = "BOOTWAVE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key.
    #[arg(long, global = true, env = "BOOTWAVE_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, env = "BOOTWAVE_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The agent commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Hosts: add, remove, list, show.
    #[command(subcommand)]
    Host(HostCommand),
    /// Subnets: add, remove, list, show.
    #[command(subcommand)]
    Subnet(SubnetCommand),
    /// Boot profiles: add, remove, list, show.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Make the agent's state equal to a bootwave TOML file, as one generation.
    Apply {
        /// The file (`-`: stdin).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Show the difference only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Which subnet, rule and profile decide each boot stage of a MAC.
    Explain {
        #[command(flatten)]
        mac: MacArg,
    },
    /// The state's generation and every data plane's acknowledged one.
    Status,
    /// The leases the data planes hold.
    Leases {
        /// Only this MAC.
        #[arg(long)]
        mac: Option<String>,
        /// Only addresses inside this network (CIDR).
        #[arg(long)]
        subnet: Option<String>,
    },
    /// Reboot waves: follow hosts through their network boot.
    #[command(subcommand)]
    Wave(WaveCommand),
}

/// A MAC address, given as `--mac MAC` or as the first argument.
#[derive(Debug, clap::Args)]
pub struct MacArg {
    /// MAC address (or `--mac MAC`).
    #[arg(
        value_name = "MAC",
        required_unless_present = "mac_flag",
        conflicts_with = "mac_flag"
    )]
    mac: Option<String>,
    /// MAC address.
    #[arg(long = "mac", id = "mac_flag", value_name = "MAC")]
    mac_flag: Option<String>,
}

impl MacArg {
    /// The address, in whichever form it was given (clap requires one).
    pub fn into_string(self) -> String {
        self.mac.or(self.mac_flag).unwrap_or_default()
    }
}

/// Host commands.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Add or replace a host.
    Add {
        #[command(flatten)]
        mac: MacArg,
        /// Fixed IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// Host name (option 12).
        #[arg(long)]
        hostname: Option<String>,
        /// Boot profile.
        #[arg(long)]
        profile: Option<String>,
        /// Label `key=value`; repeatable.
        #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// The subnet (CIDR) the host boots in.
        #[arg(long)]
        subnet: Option<String>,
    },
    /// Remove a host.
    Rm {
        #[command(flatten)]
        mac: MacArg,
    },
    /// List hosts.
    Ls {
        /// Only hosts with this label `key=value`; repeatable.
        #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Only hosts with this profile.
        #[arg(long)]
        profile: Option<String>,
        /// Only hosts in this subnet (CIDR).
        #[arg(long)]
        subnet: Option<String>,
    },
    /// Show one host.
    Show {
        #[command(flatten)]
        mac: MacArg,
    },
}

/// Commands of objects that can only be listed from the CLI for now.
#[derive(Debug, Subcommand)]
pub enum ListOnly {
    /// List them.
    Ls,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// A command that failed, with its exit status.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub code: u8,
    /// What to print on stderr.
    pub message: String,
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        // A status with a source was made by the client's transport (the
        // connection broke, e.g. a refused TLS handshake): the call never
        // reached the agent.
        let transport = std::error::Error::source(&s).is_some();
        let code = match s.code() {
            tonic::Code::NotFound => EXIT_NOT_FOUND,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => EXIT_UNAVAILABLE,
            tonic::Code::Unknown | tonic::Code::Cancelled if transport => EXIT_UNAVAILABLE,
            _ => EXIT_ERROR,
        };
        let message = if transport {
            format!("agent unavailable: {}", s.message())
        } else {
            s.message().to_owned()
        };
        Self { code, message }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self {
            code: EXIT_ERROR,
            message: format!("{e:#}"),
        }
    }
}

/// A client with the bearer token attached to every call.
pub type Client = BootwaveServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer TOKEN`.
#[derive(Debug, Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Connects to the agent named by `conn`.
pub async fn connect(conn: &Connection) -> Result<Client, Failure> {
    let token = match &conn.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| Failure {
                    code: EXIT_ERROR,
                    message: format!("{}: {e}", f.display()),
                })?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("BOOTWAVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let bearer = match token {
        Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| Failure {
            code: EXIT_ERROR,
            message: "the token holds characters not allowed in a header".into(),
        })?),
        None => None,
    };
    let channel = bootwave_proto::channel::connect_tls(&conn.agent, tls::client_config(conn)?)
        .await
        .map_err(|e| Failure {
            code: EXIT_UNAVAILABLE,
            message: format!("agent unavailable: {e}"),
        })?;
    Ok(
        BootwaveServiceClient::with_interceptor(channel, Bearer(bearer))
            .max_decoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES),
    )
}
