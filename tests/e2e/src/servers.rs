//! The DHCP + TFTP servers under test: peers (dnsmasq) and bootwave on each
//! backend, behind one [`Server`] enum so every end-to-end test runs
//! against each.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bootwave_config::{bootwave_toml, check_bootwave_toml};
use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::metrics::{Metrics, scrape_metrics};
use crate::netns::Netns;
use crate::tools::find_tool;
use crate::wait::wait_udp_bound;

/// How long a server gets to bind its ports.
const START_LIMIT: Duration = Duration::from_secs(10);

/// What a server must serve, independent of which server it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSpec {
    /// The interface (inside the server namespace) to serve on.
    pub interface: String,
    /// The server's address on that interface.
    pub server_addr: Ipv4Addr,
    /// The subnet prefix length.
    pub prefix: u8,
    /// The dynamic pool, inclusive.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// Boot file name handed out (DHCP `file`), if any.
    pub boot_file: Option<String>,
    /// TFTP root; `None` serves DHCP only.
    pub tftp_root: Option<PathBuf>,
    /// Boot rules before the catch-all `boot_file` (bootwave only).
    pub boot_rules: Vec<BootRuleSpec>,
    /// Known hosts (dnsmasq: `--dhcp-host`).
    pub hosts: Vec<HostSpec>,
    /// Lease journal directory that outlives the server (for restarts);
    /// `None`: a fresh directory per start (bootwave only).
    pub state_dir: Option<PathBuf>,
    /// When journal records reach the disk (bootwave only).
    pub journal_sync: JournalSync,
    /// Per-client TFTP admission (bootwave only); `None` keeps the
    /// documented defaults.
    pub tftp_admission: Option<bootwave_protocol::config::TftpAdmission>,
    /// Ping check before offering, waiting this long for an answer
    /// (bootwave only); `None`: no ping check.
    pub ping_timeout: Option<Duration>,
    /// TOML appended to the generated `bootwave.toml` as it is (bootwave
    /// only): `[http]`, `[[profiles]]`, hosts with profiles.
    pub extra_toml: String,
    /// Keys added to the `[[subnets]]` table as they are (bootwave only):
    /// `dynamic-bootp = true`, `unknown-clients = "deny"`.
    pub subnet_toml: String,
    /// Keys added to the `[dhcp]` table as they are (bootwave only):
    /// `relays = ["10.77.0.2/32"]`.
    pub dhcp_toml: String,
    /// Shard threads, each answering DHCP (`--shards N --dhcp-shards N`;
    /// bootwave only); `None` keeps the data plane's own choice.
    pub shards: Option<usize>,
    /// Where to serve Prometheus metrics inside the server namespace
    /// (`--metrics`; bootwave only), read with [`RunningServer::metrics`].
    pub metrics: Option<SocketAddr>,
}

/// One boot rule: the first whose conditions hold gives the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRuleSpec {
    /// Option 93 values that match (empty: any).
    pub arch: Vec<u16>,
    /// Option 77 that must match, if any.
    pub user_class: Option<String>,
    /// The boot file.
    pub filename: String,
}

/// A known client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Unique name.
    pub name: String,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// A fixed address outside the pool.
    pub fixed_address: Option<Ipv4Addr>,
    /// Host name sent as option 12.
    pub hostname: Option<String>,
}

/// bootwave's `[journal] fsync` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalSync {
    /// Leave flushing to the kernel (survives a process crash).
    Never,
    /// Group fsync; replies wait for it (the shipped default).
    Batch,
    /// fsync before every reply.
    Always,
}

impl ServeSpec {
    /// The subnet mask.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// Number of addresses in the pool.
    pub fn pool_size(&self) -> u32 {
        u32::from(self.pool.1).saturating_sub(u32::from(self.pool.0)) + 1
    }
}

/// A server implementation the end-to-end tests can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// dnsmasq (DHCP + TFTP), the reference peer.
    Dnsmasq,
    /// `bootwave-dataplane` on the given I/O backend, found through
    /// [`bootwave_binary`].
    Bootwave(Backend),
}

/// The data plane's I/O backend (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring shards.
    Uring,
    /// The portable (poll-based) shards.
    Portable,
}

impl Backend {
    /// Both backends, for tests that run on each.
    pub const ALL: [Self; 2] = [Self::Uring, Self::Portable];

    /// The `--backend` argument.
    pub fn arg(self) -> &'static str {
        match self {
            Self::Uring => "uring",
            Self::Portable => "portable",
        }
    }
}

/// A started server; stopped when dropped.
#[derive(Debug)]
pub struct RunningServer {
    /// The server process.
    pub child: ChildGuard,
    metrics: Option<SocketAddr>,
    _config_dir: tempfile::TempDir,
}

impl Server {
    /// Starts this server inside `ns` and waits until it has bound port 67
    /// (and 69 when `spec` has a TFTP root).
    pub fn start(self, ns: &Netns, spec: &ServeSpec) -> Result<RunningServer> {
        let config_dir = tempfile::Builder::new()
            .prefix("bwt-server-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                what: "creating the server config directory".to_owned(),
                source,
            })?;
        let child = match self {
            Self::Dnsmasq => {
                let dnsmasq = find_tool("dnsmasq").unwrap_or_else(|| "dnsmasq".into());
                ns.spawn(dnsmasq, &dnsmasq_args(spec))?
            }
            Self::Bootwave(backend) => {
                let config = config_dir.path().join("bootwave.toml");
                let text = bootwave_toml(spec, config_dir.path());
                std::fs::create_dir(config_dir.path().join("tftp")).map_err(|source| {
                    HarnessError::Io {
                        what: "creating the empty TFTP root".to_owned(),
                        source,
                    }
                })?;
                check_bootwave_toml(&text, config_dir.path())?;
                write_file(&config, &text)?;
                ns.spawn(bootwave_binary()?, &bootwave_args(spec, &config, backend))?
            }
        };
        let mut server = RunningServer {
            child,
            metrics: spec.metrics.filter(|_| self != Self::Dnsmasq),
            _config_dir: config_dir,
        };
        server.wait_bound(ns, 67)?;
        if spec.tftp_root.is_some() {
            server.wait_bound(ns, 69)?;
        }
        Ok(server)
    }
}

impl RunningServer {
    /// The server's metrics now, scraped inside `ns` (its namespace);
    /// an error unless it was started with [`ServeSpec::metrics`].
    pub fn metrics(&self, ns: &Netns) -> Result<Metrics> {
        let addr = self.metrics.ok_or_else(|| HarnessError::Io {
            what: "metrics of a server started without ServeSpec::metrics".to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        scrape_metrics(ns, addr)
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and
    /// reaps it; returns its exit status.
    pub fn kill9(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(status) = self.child.try_status() {
            return Some(status);
        }
        // Not reaped yet, so the PID is still the server's.
        crate::child::signal(self.child.pid(), rustix::process::Signal::KILL);
        self.child.wait_timeout(START_LIMIT).ok()
    }

    fn wait_bound(&mut self, ns: &Netns, port: u16) -> Result<()> {
        wait_udp_bound(ns, port, START_LIMIT).map_err(|err| {
            let exited = self
                .child
                .try_status()
                .map(|s| format!(" (server exited: {s})"));
            HarnessError::Deadline {
                what: format!("{err}{}\n{}", exited.unwrap_or_default(), self.child.tail()),
                limit: START_LIMIT,
            }
        })
    }
}

/// `bootwave-dataplane`'s command line for `spec` with its configuration
/// file at `config`.
fn bootwave_args(spec: &ServeSpec, config: &Path, backend: Backend) -> Vec<String> {
    let mut args = vec![
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
        "--backend".to_owned(),
        backend.arg().to_owned(),
        "--log-format".to_owned(),
        "human".to_owned(),
    ];
    if let Some(n) = spec.shards {
        args.extend(["--shards".to_owned(), n.to_string()]);
        args.extend(["--dhcp-shards".to_owned(), n.to_string()]);
    }
    if let Some(addr) = spec.metrics {
        args.extend(["--metrics".to_owned(), addr.to_string()]);
    }
    args
}

/// dnsmasq's command line for `spec`: DHCP only on `spec.interface`, DNS off,
/// leases in memory only, no ping check, quiet per-packet logging, TFTP when
/// a root is given.
pub fn dnsmasq_args(spec: &ServeSpec) -> Vec<String> {
    let mut args = vec![
        "--no-daemon".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        "--port=0".to_owned(),
        format!("--interface={}", spec.interface),
        "--bind-interfaces".to_owned(),
        "--user=root".to_owned(),
        "--pid-file=".to_owned(),
        "--log-facility=-".to_owned(),
        "--leasefile-ro".to_owned(),
        "--no-ping".to_owned(),
        "--dhcp-authoritative".to_owned(),
        format!(
            "--dhcp-range={},{},{},{}",
            spec.pool.0,
            spec.pool.1,
            spec.netmask(),
            spec.lease_secs
        ),
        format!("--dhcp-lease-max={}", spec.pool_size()),
    ];
    if let Some(file) = &spec.boot_file {
        args.push(format!("--dhcp-boot={file},,{}", spec.server_addr));
    }
    for host in &spec.hosts {
        let mut entry = host.mac.map(|b| format!("{b:02x}")).join(":");
        if let Some(ip) = host.fixed_address {
            entry.push_str(&format!(",{ip}"));
        }
        if let Some(name) = &host.hostname {
            entry.push_str(&format!(",{name}"));
        }
        args.push(format!("--dhcp-host={entry}"));
    }
    if let Some(root) = &spec.tftp_root {
        args.push("--enable-tftp".to_owned());
        args.push(format!("--tftp-root={}", root.display()));
        args.push("--tftp-max=1000".to_owned());
    }
    args
}

/// The `bootwave-dataplane` binary: `$BOOTWAVE_DATAPLANE`, else
/// `<target>/{release,debug}/bootwave-dataplane` under `$CARGO_TARGET_DIR`
/// or the workspace's `target/`.
pub fn bootwave_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BOOTWAVE_DATAPLANE") {
        return Ok(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join("bootwave-dataplane"))
        .find(|path| path.is_file())
        .ok_or_else(|| HarnessError::Io {
            what: format!(
                "bootwave-dataplane not built under {} (set BOOTWAVE_DATAPLANE)",
                target.display()
            ),
            source: std::io::ErrorKind::NotFound.into(),
        })
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| HarnessError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServeSpec {
        ServeSpec {
            interface: "srv0".to_owned(),
            server_addr: Ipv4Addr::new(10, 77, 0, 1),
            prefix: 24,
            pool: (Ipv4Addr::new(10, 77, 0, 10), Ipv4Addr::new(10, 77, 0, 250)),
            lease_secs: 600,
            boot_file: Some("ipxe.efi".to_owned()),
            tftp_root: Some(PathBuf::from("/srv/boot")),
            boot_rules: Vec::new(),
            hosts: vec![HostSpec {
                name: "n7".to_owned(),
                mac: [2, 0, 0, 0, 0, 7],
                fixed_address: Some(Ipv4Addr::new(10, 77, 0, 5)),
                hostname: Some("n7".to_owned()),
            }],
            state_dir: None,
            journal_sync: JournalSync::Never,
            tftp_admission: None,
            ping_timeout: None,
            extra_toml: String::new(),
            subnet_toml: String::new(),
            dhcp_toml: String::new(),
            shards: None,
            metrics: None,
        }
    }

    #[test]
    fn spec_derives_mask_and_pool_size() {
        let spec = spec();
        assert_eq!(spec.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(spec.pool_size(), 241);
    }

    #[test]
    fn dnsmasq_serves_only_the_given_interface_and_range() {
        let args = dnsmasq_args(&spec());
        for expected in [
            "--interface=srv0",
            "--bind-interfaces",
            "--port=0",
            "--dhcp-range=10.77.0.10,10.77.0.250,255.255.255.0,600",
            "--dhcp-lease-max=241",
            "--dhcp-boot=ipxe.efi,,10.77.0.1",
            "--enable-tftp",
            "--tftp-root=/srv/boot",
            "--dhcp-host=02:00:00:00:00:07,10.77.0.5,n7",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{expected} missing from {args:?}"
            );
        }
    }

    #[test]
    fn dnsmasq_without_tftp_root_has_no_tftp() {
        let spec = ServeSpec {
            tftp_root: None,
            ..spec()
        };
        assert!(!dnsmasq_args(&spec).iter().any(|a| a.contains("tftp")));
    }
}
