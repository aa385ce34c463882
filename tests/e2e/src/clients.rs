//! Real DHCP and TFTP clients run inside a client namespace.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use crate::tools::find_tool;

/// Upper bound on one client run (udhcpc gives up sooner by itself).
const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// Event script for udhcpc: prints the event and the variables udhcpc sets,
/// and configures nothing, so the lease is only observed.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
echo "udhcpc-event=$1 ip=$ip mask=$mask router=$router siaddr=$siaddr boot_file=$boot_file serverid=$serverid lease=$lease"
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
}

/// Obtains one lease with busybox `udhcpc` on `ifname` inside `ns`
/// (three DISCOVERs one second apart, then failure). `vendor_class` sets
/// option 60, e.g. `PXEClient:Arch:00007:UNDI:003000`.
pub fn udhcpc_lease(ns: &Netns, ifname: &str, vendor_class: Option<&str>) -> Result<Lease> {
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
        let (program, args) = self.command_line(server, file, dest);
        let program = find_tool(program).unwrap_or_else(|| program.into());
        ns.exec(program, &args, CLIENT_LIMIT)?;
        Ok(())
    }

    fn command_line(
        self,
        server: Ipv4Addr,
        file: &str,
        dest: &Path,
    ) -> (&'static str, Vec<String>) {
        let dest = dest.to_string_lossy().into_owned();
        let server = server.to_string();
        let own = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect();
        match self {
            Self::Curl => (
                "curl",
                own(&[
                    "-sS",
                    "--fail",
                    "--max-time",
                    "20",
                    "-o",
                    &dest,
                    &format!("tftp://{server}/{file}"),
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
            let (_, args) = client.command_line(server, "ipxe.efi", Path::new("/tmp/out"));
            let joined = args.join(" ");
            assert!(joined.contains("10.77.0.1"), "{client:?}: {joined}");
            assert!(joined.contains("ipxe.efi"), "{client:?}: {joined}");
            assert!(joined.contains("/tmp/out"), "{client:?}: {joined}");
        }
    }
}
