//! Real DHCP and TFTP clients run inside a client namespace.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use crate::tools::find_tool;

/// Upper bound on one client run (udhcpc gives up sooner by itself).
const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// Event script for udhcpc: prints the event and the variables udhcpc sets,
/// and configures nothing, so the lease is only observed.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
echo "udhcpc-event=$1 ip=$ip mask=$mask router=$router siaddr=$siaddr boot_file=$boot_file serverid=$serverid lease=$lease hostname=$hostname"
"#;

/// Event script for dhclient: logs the reason and the new lease, and puts
/// the address on the interface while bound so `dhclient -r` can unicast
/// its RELEASE.
const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
echo "dhclient-event=$reason ip=$new_ip_address mask=$new_subnet_mask router=$new_routers serverid=$new_dhcp_server_identifier lease=$new_dhcp_lease_time hostname=$new_host_name" >>"$(dirname "$0")/events.log"
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  RELEASE|EXPIRE|FAIL|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
"#;

/// A lease as busybox `udhcpc` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address (`yiaddr`).
    pub ip: Ipv4Addr,
    /// Prefix length from option 1.
    pub mask: u8,
    /// Routers (option 3), first one.
    pub router: Option<Ipv4Addr>,
    /// Next server (`siaddr`).
    pub siaddr: Option<Ipv4Addr>,
    /// Boot file (`file` field), if any.
    pub boot_file: Option<String>,
    /// Server identifier (option 54).
    pub server_id: Option<Ipv4Addr>,
    /// Lease time in seconds (option 51).
    pub lease_secs: Option<u32>,
    /// Host name (option 12).
    pub hostname: Option<String>,
}

/// Obtains one lease with busybox `udhcpc` on `ifname` inside `ns`
/// (three DISCOVERs one second apart, then failure). `vendor_class` sets
/// option 60, e.g. `PXEClient:Arch:00007:UNDI:003000`.
pub fn udhcpc_lease(ns: &Netns, ifname: &str, vendor_class: Option<&str>) -> Result<Lease> {
    udhcpc_run(ns, ifname, vendor_class)
}

fn udhcpc_run(ns: &Netns, ifname: &str, vendor_class: Option<&str>) -> Result<Lease> {
    let dir = tempfile::Builder::new()
        .prefix("bwt-udhcpc-")
        .tempdir()
        .map_err(|source| HarnessError::Io {
            what: "creating the udhcpc script directory".to_owned(),
            source,
        })?;
    let script = dir.path().join("event.sh");
    write_executable(&script, UDHCPC_SCRIPT)?;
    let busybox = find_tool("busybox").unwrap_or_else(|| "busybox".into());
    let script = script.to_string_lossy().into_owned();
    let mut args = vec![
        "udhcpc", "-i", ifname, "-f", "-q", "-n", "-t", "3", "-T", "1", "-s", &script,
    ];
    if let Some(class) = vendor_class {
        args.extend(["-V", class]);
    }
    let out = ns.exec(busybox, &args, CLIENT_LIMIT)?;
    parse_udhcpc(&out)
}

/// Reads the `bound` event printed by [`UDHCPC_SCRIPT`].
pub(crate) fn parse_udhcpc(out: &str) -> Result<Lease> {
    let line = out
        .lines()
        .find(|line| line.starts_with("udhcpc-event=bound "))
        .ok_or_else(|| HarnessError::Parse {
            what: "udhcpc reported no bound lease".to_owned(),
            text: out.to_owned(),
        })?;
    let vars: BTreeMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let addr = |key: &str| {
        vars.get(key)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let bad = |what: &str| HarnessError::Parse {
        what: format!("udhcpc lease has no valid {what}"),
        text: line.to_owned(),
    };
    Ok(Lease {
        ip: addr("ip").ok_or_else(|| bad("ip"))?,
        mask: vars
            .get("mask")
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| bad("mask"))?,
        router: addr("router"),
        siaddr: addr("siaddr"),
        boot_file: vars
            .get("boot_file")
            .filter(|f| !f.is_empty())
            .map(|f| (*f).to_owned()),
        server_id: addr("serverid"),
        lease_secs: vars.get("lease").and_then(|l| l.parse().ok()),
        hostname: vars
            .get("hostname")
            .filter(|h| !h.is_empty())
            .map(|h| (*h).to_owned()),
    })
}

/// ISC `dhclient` running in the foreground on one interface, with its
/// own lease file, PID file and event script in a private directory.
#[derive(Debug)]
pub struct Dhclient {
    child: ChildGuard,
    dir: tempfile::TempDir,
    ifname: String,
}

/// A lease as dhclient's script reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhclientLease {
    /// The leased address.
    pub ip: Ipv4Addr,
    /// Server identifier (option 54).
    pub server_id: Option<Ipv4Addr>,
    /// Host name (option 12).
    pub hostname: Option<String>,
}

impl Dhclient {
    /// Starts `dhclient -d -1` on `ifname` inside `ns` (one attempt of at
    /// most 15 s).
    pub fn start(ns: &Netns, ifname: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bwt-dhclient-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                what: "creating the dhclient directory".to_owned(),
                source,
            })?;
        write_executable(&dir.path().join("script.sh"), DHCLIENT_SCRIPT)?;
        let conf = dir.path().join("dhclient.conf");
        std::fs::write(&conf, "timeout 15;\nretry 1;\n").map_err(|source| HarnessError::Io {
            what: "writing dhclient.conf".to_owned(),
            source,
        })?;
        let args = Self::common_args(dir.path(), ifname, &["-d", "-1", "-v"]);
        let dhclient = find_tool("dhclient").unwrap_or_else(|| "dhclient".into());
        let child = ns.spawn(dhclient, &args)?;
        Ok(Self {
            child,
            dir,
            ifname: ifname.to_owned(),
        })
    }

    fn common_args(dir: &Path, ifname: &str, first: &[&str]) -> Vec<String> {
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let mut args: Vec<String> = first.iter().map(|a| (*a).to_owned()).collect();
        args.extend([
            "-sf".to_owned(),
            path("script.sh"),
            "-lf".to_owned(),
            path("leases"),
            "-pf".to_owned(),
            path("pid"),
            "-cf".to_owned(),
            path("dhclient.conf"),
            ifname.to_owned(),
        ]);
        args
    }

    /// Waits up to `limit` for a `BOUND` event and returns its lease.
    pub fn wait_bound(&mut self, limit: Duration) -> Result<DhclientLease> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let events = self.events();
            // dhclient runs the BOUND script before it writes the lease
            // file, and `dhclient -r` releases only what that file holds:
            // the lease counts once both are there.
            if let Some(line) = events
                .lines()
                .find(|l| l.starts_with("dhclient-event=BOUND "))
            {
                let lease = parse_dhclient(line)?;
                let leases =
                    std::fs::read_to_string(self.dir.path().join("leases")).unwrap_or_default();
                if leases.contains(&format!("fixed-address {};", lease.ip)) {
                    return Ok(lease);
                }
            }
            if std::time::Instant::now() >= deadline || self.child.try_status().is_some() {
                return Err(HarnessError::Deadline {
                    what: format!(
                        "dhclient to report BOUND; events:\n{events}\n{}",
                        self.child.tail()
                    ),
                    limit,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `dhclient -r`: stops the running client and sends a RELEASE of
    /// its lease to the server.
    pub fn release(mut self, ns: &Netns) -> Result<String> {
        let args = Self::common_args(self.dir.path(), &self.ifname, &["-r", "-v"]);
        let dhclient = find_tool("dhclient").unwrap_or_else(|| "dhclient".into());
        let out = ns.exec(dhclient, &args, CLIENT_LIMIT)?;
        self.child.stop();
        Ok(format!("{out}\n{}", self.events()))
    }

    /// Everything the event script logged so far.
    pub fn events(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("events.log")).unwrap_or_default()
    }
}

fn parse_dhclient(line: &str) -> Result<DhclientLease> {
    let vars: BTreeMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let addr = |key: &str| vars.get(key).and_then(|v| v.parse().ok());
    Ok(DhclientLease {
        ip: addr("ip").ok_or_else(|| HarnessError::Parse {
            what: "dhclient lease has no valid ip".to_owned(),
            text: line.to_owned(),
        })?,
        server_id: addr("serverid"),
        hostname: vars
            .get("hostname")
            .filter(|h| !h.is_empty())
            .map(|h| (*h).to_owned()),
    })
}

/// A TFTP client program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TftpClient {
    /// `curl tftp://…` (asks blksize 512 unless told otherwise).
    Curl,
    /// `atftp` with `blksize 1432` (what iPXE asks).
    Atftp,
    /// `atftp` with `blksize 1468 windowsize 4` (what OVMF asks).
    AtftpWindowed,
    /// `busybox tftp` (plain RFC 1350, 512-byte blocks).
    Busybox,
    /// tftp-hpa's `tftp`.
    TftpHpa,
    /// `atftp` with `blksize 1428 windowsize 16` (RFC 7440 window).
    AtftpWindow16,
    /// `curl --tftp-blksize 1432`.
    Curl1432,
    /// `curl --tftp-blksize 512` (asks the option, gets 512-byte blocks).
    Curl512,
}

impl TftpClient {
    /// Every client, for tests that run them all.
    pub const ALL: [Self; 5] = [
        Self::Curl,
        Self::Atftp,
        Self::AtftpWindowed,
        Self::Busybox,
        Self::TftpHpa,
    ];

    /// Downloads `file` from `server` into `dest`, running inside `ns`.
    pub fn get(self, ns: &Netns, server: Ipv4Addr, file: &str, dest: &Path) -> Result<()> {
        self.get_within(ns, server, file, dest, CLIENT_LIMIT)
    }

    /// Like [`TftpClient::get`] with a caller-chosen deadline (large files).
    pub fn get_within(
        self,
        ns: &Netns,
        server: Ipv4Addr,
        file: &str,
        dest: &Path,
        limit: Duration,
    ) -> Result<()> {
        let (program, args) = self.command_line(server, file, dest, limit);
        let program = find_tool(program).unwrap_or_else(|| program.into());
        ns.exec(program, &args, limit)?;
        Ok(())
    }

    fn command_line(
        self,
        server: Ipv4Addr,
        file: &str,
        dest: &Path,
        limit: Duration,
    ) -> (&'static str, Vec<String>) {
        let dest = dest.to_string_lossy().into_owned();
        let server = server.to_string();
        let own = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect();
        // curl gives up a little before the harness would kill it.
        let curl_time = limit.as_secs().saturating_sub(5).max(5).to_string();
        let url = format!("tftp://{server}/{file}");
        let curl = |extra: &[&str]| {
            let mut args = vec!["-sS", "--fail", "--max-time", &curl_time];
            args.extend_from_slice(extra);
            args.extend(["-o", &dest, &url]);
            own(&args)
        };
        match self {
            Self::Curl => ("curl", curl(&[])),
            Self::Curl1432 => ("curl", curl(&["--tftp-blksize", "1432"])),
            Self::Curl512 => ("curl", curl(&["--tftp-blksize", "512"])),
            Self::AtftpWindow16 => (
                "atftp",
                own(&[
                    "--option",
                    "blksize 1428",
                    "--option",
                    "windowsize 16",
                    "-g",
                    "-r",
                    file,
                    "-l",
                    &dest,
                    &server,
                ]),
            ),
            Self::Atftp => (
                "atftp",
                own(&[
                    "--option",
                    "blksize 1432",
                    "--option",
                    "tsize 0",
                    "-g",
                    "-r",
                    file,
                    "-l",
                    &dest,
                    &server,
                ]),
            ),
            Self::AtftpWindowed => (
                "atftp",
                own(&[
                    "--option",
                    "blksize 1468",
                    "--option",
                    "windowsize 4",
                    "-g",
                    "-r",
                    file,
                    "-l",
                    &dest,
                    &server,
                ]),
            ),
            Self::Busybox => (
                "busybox",
                own(&["tftp", "-g", "-r", file, "-l", &dest, &server]),
            ),
            Self::TftpHpa => (
                "tftp",
                own(&[&server, "-m", "binary", "-c", "get", file, &dest]),
            ),
        }
    }
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| HarnessError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bound_event() {
        let out = "udhcpc-event=deconfig ip= mask= router= siaddr= boot_file= serverid= lease=\n\
                   udhcpc-event=bound ip=10.77.0.221 mask=24 router=10.77.0.1 siaddr=10.77.0.1 \
                   boot_file=ipxe.efi serverid=10.77.0.1 lease=3600\n";
        let lease = parse_udhcpc(out).expect("bound line present");
        assert_eq!(lease.ip, Ipv4Addr::new(10, 77, 0, 221));
        assert_eq!(lease.mask, 24);
        assert_eq!(lease.router, Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(lease.boot_file.as_deref(), Some("ipxe.efi"));
        assert_eq!(lease.lease_secs, Some(3600));
    }

    #[test]
    fn no_bound_event_is_an_error() {
        let out = "udhcpc-event=deconfig ip= mask=\nudhcpc-event=leasefail ip= mask=\n";
        assert!(parse_udhcpc(out).is_err());
    }

    #[test]
    fn every_client_names_server_file_and_destination() {
        let server = Ipv4Addr::new(10, 77, 0, 1);
        for client in TftpClient::ALL {
            let (_, args) = client.command_line(
                server,
                "ipxe.efi",
                Path::new("/tmp/out"),
                Duration::from_secs(30),
            );
            let joined = args.join(" ");
            assert!(joined.contains("10.77.0.1"), "{client:?}: {joined}");
            assert!(joined.contains("ipxe.efi"), "{client:?}: {joined}");
            assert!(joined.contains("/tmp/out"), "{client:?}: {joined}");
        }
    }
}
