//! The DHCP + TFTP servers under test: peers (dnsmasq) and bootwave, behind
//! one [`Server`] enum so every end-to-end test runs against each.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
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
    /// `bootwave-dataplane`, found through [`bootwave_binary`].
    Bootwave,
}

/// A started server; stopped when dropped.
#[derive(Debug)]
pub struct RunningServer {
    /// The server process.
    pub child: ChildGuard,
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
            Self::Bootwave => {
                let config = config_dir.path().join("bootwave.toml");
                write_file(&config, &bootwave_toml(spec, config_dir.path()))?;
                let config = config.to_string_lossy().into_owned();
                ns.spawn(bootwave_binary()?, &["--config", config.as_str()])?
            }
        };
        let mut server = RunningServer {
            child,
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

/// `bootwave.toml` for `spec`.
///
/// PROVISIONAL SCHEMA: the file format is not settled yet (there is no
/// `assets/bootwave.toml`). The keys below mirror the validated model in
/// `bootwave_protocol::config::model`; align them with the real parser once
/// it exists. `state_dir` receives the lease journal.
pub fn bootwave_toml(spec: &ServeSpec, state_dir: &Path) -> String {
    let mut toml = format!(
        r#"interfaces = ["{iface}"]

[dhcp]
default_lease_time = "{lease}s"
max_lease_time = "{lease}s"
authoritative = true
ping_check = false

[journal]
dir = "{journal}"
fsync = "never"

[[subnets]]
net = "{net}/{prefix}"
ranges = [{{ start = "{start}", end = "{end}" }}]
routers = ["{server}"]
next_server = "{server}"
"#,
        iface = spec.interface,
        lease = spec.lease_secs,
        journal = state_dir.join("journal").display(),
        net = Ipv4Addr::from(u32::from(spec.server_addr) & u32::from(spec.netmask())),
        prefix = spec.prefix,
        start = spec.pool.0,
        end = spec.pool.1,
        server = spec.server_addr,
    );
    if let Some(file) = &spec.boot_file {
        toml.push_str(&format!("boot_file = \"{file}\"\n"));
    }
    if let Some(root) = &spec.tftp_root {
        toml.push_str(&format!("\n[tftp]\nroot = \"{}\"\n", root.display()));
    }
    toml
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

    #[test]
    fn bootwave_toml_names_subnet_pool_and_root() {
        let toml = bootwave_toml(&spec(), Path::new("/tmp/state"));
        assert!(toml.contains(r#"net = "10.77.0.0/24""#), "{toml}");
        assert!(
            toml.contains(r#"start = "10.77.0.10", end = "10.77.0.250""#),
            "{toml}"
        );
        assert!(toml.contains(r#"root = "/srv/boot""#), "{toml}");
        assert!(toml.contains(r#"dir = "/tmp/state/journal""#), "{toml}");
    }
}
