//! Running as a service: the shipped systemd units pass `systemd-analyze
//! verify`, and a data plane started by hand as root keeps only the three
//! capabilities it needs while it serves DHCP and TFTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use bootwave_e2e::agent::workspace_binary;
use bootwave_e2e::{
    Lab, SERVER_ADDR, Server, TftpClient, bootwave_binary, find_tool, require_root_and_tools,
    udhcpc_lease,
};

use crate::on_each_backend;

/// `CAP_NET_BIND_SERVICE | CAP_NET_ADMIN | CAP_NET_RAW` (10, 12, 13).
const KEPT: u64 = 1 << 10 | 1 << 12 | 1 << 13;
/// Highest `systemd-analyze security` exposure accepted (0 safest, 10 worst).
const MAX_EXPOSURE: f64 = 3.0;

/// The units, each with the binary its `ExecStart` names.
const UNITS: [(&str, &str); 2] = [
    ("bootwave-dataplane.service", "bootwave-dataplane"),
    ("bootwave-agent.service", "bootwave-agent"),
];

#[test]
fn systemd_units_pass_verify_and_keep_a_low_exposure() -> anyhow::Result<()> {
    let Some(analyze) = find_tool("systemd-analyze") else {
        panic!("systemd-analyze is missing; `tests/run` installs the Debian package systemd");
    };
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/systemd");
    let dir = tempfile::tempdir()?;
    for (unit, binary) in UNITS {
        let text = std::fs::read_to_string(units.join(unit))?;
        let installed = format!("/usr/local/bin/{binary} ");
        anyhow::ensure!(
            text.contains(&format!("ExecStart={installed}")),
            "{unit}: ExecStart names {installed}"
        );
        // `verify` checks that ExecStart is executable: point it at the
        // binary this workspace built, the only change to the unit.
        let built = built_binary(binary)?;
        let text = text.replace(&installed, &format!("{} ", built.display()));
        std::fs::write(dir.path().join(unit), text)?;
    }
    let paths: Vec<PathBuf> = UNITS.iter().map(|(u, _)| dir.path().join(u)).collect();
    let verify = Command::new(&analyze).arg("verify").args(&paths).output()?;
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        verify.status
    );
    for path in &paths {
        let security = Command::new(&analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(path)
            .output()?;
        let stdout = String::from_utf8_lossy(&security.stdout);
        let overall = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_default();
        // "→ Overall exposure level for NAME.service: 2.0 OK 🙂"
        let exposure: Option<f64> = overall
            .rsplit(": ")
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        assert!(
            exposure.is_some_and(|e| e <= MAX_EXPOSURE),
            "{}: exposure above {MAX_EXPOSURE}: {overall}\n{stdout}{}",
            path.display(),
            String::from_utf8_lossy(&security.stderr)
        );
        eprintln!("{overall}");
    }
    let dataplane = std::fs::read_to_string(units.join(UNITS[0].0))?;
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let line = format!("{key}=CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN\n");
        assert!(dataplane.contains(&line), "data plane unit: {line}");
    }
    let agent = std::fs::read_to_string(units.join(UNITS[1].0))?;
    for line in ["CapabilityBoundingSet=\n", "AmbientCapabilities=\n"] {
        assert!(agent.contains(line), "agent unit: {line}");
    }
    Ok(())
}

on_each_backend!(a_dataplane_started_as_root_keeps_three_capabilities);
fn a_dataplane_started_as_root_keeps_three_capabilities(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "busybox"]);
    let root = tempfile::tempdir()?;
    std::fs::write(root.path().join("ipxe.efi"), vec![0x5a; 200_000])?;
    let lab = Lab::star(1)?;
    let running = server.start(
        &lab.server,
        &lab.spec(Some(root.path().to_owned()), Some("ipxe.efi")),
    )?;
    let pid = running.child.pid();
    // Every thread: each inherits its creator's sets, and shards, control,
    // HTTP and helper threads must all be reduced.
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    let mut threads = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task?.path().join("status"))?;
        let caps = |key: &str| cap_mask(&status, key);
        let name = status.lines().next().unwrap_or_default();
        assert_eq!(caps("CapEff:"), Some(KEPT), "{server:?} {name}: effective");
        assert_eq!(caps("CapPrm:"), Some(KEPT), "{server:?} {name}: permitted");
        assert_eq!(caps("CapBnd:"), Some(KEPT), "{server:?} {name}: bounding");
        assert_eq!(caps("CapInh:"), Some(0), "{server:?} {name}: inheritable");
        assert_eq!(caps("CapAmb:"), Some(0), "{server:?} {name}: ambient");
        threads += 1;
    }
    assert!(threads > 1, "{server:?}: shard threads are running");
    // Still serving with the reduced set: a lease (the ACK is unicast
    // through an ARP entry, which needs CAP_NET_ADMIN) and a transfer.
    let client = &lab.clients[0];
    let lease = udhcpc_lease(&client.ns, &client.ifname, None)
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    assert_eq!(lease.boot_file.as_deref(), Some("ipxe.efi"), "{server:?}");
    client.ns.add_addr(&client.ifname, lease.ip, lease.mask)?;
    let dest = tempfile::tempdir()?;
    TftpClient::Busybox
        .get(
            &client.ns,
            SERVER_ADDR,
            "ipxe.efi",
            &dest.path().join("ipxe.efi"),
        )
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    assert_eq!(std::fs::read(dest.path().join("ipxe.efi"))?.len(), 200_000);
    let log = running.child.stderr();
    assert!(
        log.lines().any(|l| l.contains("capabilities")
            && l.contains("kept=cap_net_bind_service,cap_net_admin,cap_net_raw")),
        "{server:?}: start-up names the kept capabilities\n{}",
        running.child.tail()
    );
    Ok(())
}

/// The hexadecimal capability mask on the `key` line of a status file.
fn cap_mask(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    u64::from_str_radix(line[key.len()..].trim(), 16).ok()
}

/// The workspace's build of `binary`.
fn built_binary(binary: &str) -> anyhow::Result<PathBuf> {
    if binary == "bootwave-dataplane" {
        return Ok(bootwave_binary()?);
    }
    Ok(workspace_binary(binary, "BOOTWAVE_AGENT_BINARY")?)
}
