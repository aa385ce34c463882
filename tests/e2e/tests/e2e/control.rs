//! The control path end to end: `bootwave` (CLI) → `bootwave-agent` →
//! `bootwave-dataplane --control`, observed by real DHCP clients. Changes
//! made through the agent are served without a data plane restart, survive
//! an agent SIGKILL, a data plane SIGHUP and a data plane restart while the
//! agent is down (the data plane serves its persisted pushed state), and an
//! agent on a wiped state directory (another history) pushes in full.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use bootwave_e2e::agent::{Agent, AgentSpec, ControlledDataplane};
use bootwave_e2e::{
    Backend, CAPTURES_DIR, DhcpProbe, Lab, POOL_END, POOL_START, Reply, SERVER_ADDR, Server,
    capture_payload, require_root_and_tools, test_mac, udhcpc_lease,
};
use dhcproto::v4::MessageType;

use crate::on_each_backend;

/// The client's MAC, reserved through the agent.
const HOST_MAC: [u8; 6] = [0x02, 0x3c, 0x00, 0x00, 0x00, 0x01];
/// The reserved address: inside the lab subnet, outside the pool.
const FIXED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 5);
/// Another reserved address, outside the pool.
const OTHER_FIXED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 6);
/// Agent resync period (`--resync-ms`).
const RESYNC_MS: u64 = 200;
/// Longest wait for the agent to bring a restarted data plane up to date.
const RESYNC_LIMIT: Duration = Duration::from_secs(10);

/// Boot rules of the profile test: `rescue` hosts get `rescue.efi`, every
/// other arch-7 client `ipxe.efi`.
const PROFILE_RULES: &str = r#"
[[subnets.boot-rules]]
profile = "rescue"
arch = [7]
filename = "rescue.efi"

[[subnets.boot-rules]]
arch = [7]
filename = "ipxe.efi"
"#;

on_each_backend!(host_added_through_the_agent_is_served_without_restart);
fn host_added_through_the_agent_is_served_without_restart(server: Server) -> anyhow::Result<()> {
    let started = Instant::now();
    let rig = Rig::start(server)?;
    let before_pid = rig.dataplane.pid();
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    rig.agent.cli(&[
        "host",
        "add",
        "--mac",
        &mac_text(HOST_MAC),
        "--ip",
        &FIXED.to_string(),
        "--hostname",
        "n1",
    ])?;
    let lease = rig.udhcpc()?;
    assert_eq!(lease.ip, FIXED, "{}", rig.context("reserved address"));
    assert_eq!(
        lease.hostname.as_deref(),
        Some("n1"),
        "{}",
        rig.context("host name")
    );

    rig.agent
        .cli(&["host", "rm", "--mac", &mac_text(HOST_MAC)])?;
    let lease = rig.udhcpc()?;
    assert!(in_pool(lease.ip), "{}", rig.context(&format!("{lease:?}")));
    assert_eq!(lease.hostname, None, "{}", rig.context("no host name"));
    assert_eq!(
        rig.dataplane.pid(),
        before_pid,
        "the data plane was never restarted"
    );
    eprintln!("{server:?}: add/serve/rm/serve in {:?}", started.elapsed());
    Ok(())
}

on_each_backend!(a_reserved_host_is_listed_by_bootwave_leases);
fn a_reserved_host_is_listed_by_bootwave_leases(server: Server) -> anyhow::Result<()> {
    let rig = Rig::start(server)?;
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    rig.add_host(FIXED, "n1")?;
    let lease = rig.udhcpc()?;
    assert_eq!(lease.ip, FIXED, "{}", rig.context("reserved address"));
    // No pool client ever came: the reserved host's binding alone.
    let mac = mac_text(HOST_MAC);
    let json = rig.agent.cli(&["--json", "leases"])?;
    let listed: serde_json::Value = serde_json::from_str(&json)?;
    let leases = listed["leases"].as_array().cloned().unwrap_or_default();
    assert_eq!(leases.len(), 1, "{json}\n{}", rig.context("leases"));
    assert_eq!(leases[0]["mac"], mac.as_str(), "{json}");
    assert_eq!(leases[0]["address"], FIXED.to_string().as_str(), "{json}");
    assert_eq!(leases[0]["state"], "bound", "{json}");
    let table = rig.agent.cli(&["leases", "--mac", &mac])?;
    let row = table.lines().find(|l| l.contains(&mac)).unwrap_or_default();
    assert!(
        row.contains(&FIXED.to_string()) && row.contains("bound") && row.contains("in "),
        "{table}"
    );
    Ok(())
}

on_each_backend!(agent_restart_keeps_hosts_and_resyncs_a_restarted_dataplane);
fn agent_restart_keeps_hosts_and_resyncs_a_restarted_dataplane(
    server: Server,
) -> anyhow::Result<()> {
    let mut rig = Rig::start(server)?;
    let mac = mac_text(HOST_MAC);
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    rig.agent.cli(&[
        "host",
        "add",
        "--mac",
        &mac,
        "--ip",
        &FIXED.to_string(),
        "--hostname",
        "n1",
    ])?;

    // SIGKILL the agent; a new one on the same state still has the host.
    let status = rig.agent.kill9();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status.expect("agent reaped")),
        Some(9)
    );
    rig.agent = Agent::start(&rig.lab.server, &rig.agent_spec)?;
    let hosts = rig.agent.cli(&["--json", "host", "ls"])?;
    assert_eq!(hosts.matches("\"mac\":").count(), 1, "one host: {hosts}");
    assert!(
        hosts
            .to_ascii_lowercase()
            .contains(&format!("\"mac\":\"{mac}\"")),
        "{hosts}"
    );
    assert!(
        hosts.contains(&format!("\"fixed_address\":\"{FIXED}\"")),
        "{hosts}"
    );
    let generation = json_u64(&rig.agent.cli(&["--json", "status"])?, "generation")
        .ok_or_else(|| anyhow::anyhow!("status has no generation"))?;
    assert!(generation >= 2, "apply and host add: {generation}");

    // Restart the data plane: it comes up with the pushed state it
    // persisted, and the agent sees it in sync.
    let old_pid = rig.dataplane.pid();
    let restarted = Instant::now();
    rig.dataplane.restart(&rig.lab.server)?;
    assert_ne!(rig.dataplane.pid(), old_pid, "a new data plane process");
    let resynced_in = rig.expect_resync(generation, restarted)?;
    eprintln!("{server:?}: restarted data plane resynced in {resynced_in:?}");
    Ok(())
}

on_each_backend!(sigkilled_dataplane_takes_its_socket_back_and_is_resynced);
fn sigkilled_dataplane_takes_its_socket_back_and_is_resynced(server: Server) -> anyhow::Result<()> {
    let mut rig = Rig::start(server)?;
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    let reply = rig.agent.cli(&[
        "--json",
        "host",
        "add",
        "--mac",
        &mac_text(HOST_MAC),
        "--ip",
        &FIXED.to_string(),
        "--hostname",
        "n1",
    ])?;
    let generation = json_u64(&reply, "generation")
        .ok_or_else(|| anyhow::anyhow!("host add reply has no generation: {reply}"))?;

    // A crash leaves the control socket file behind; the next data plane
    // must take it back, since no live process serves it.
    rig.dataplane.kill9();
    let socket = &rig.agent_spec.dataplanes[0];
    assert!(socket.exists(), "SIGKILL leaves {}", socket.display());
    let restarted = Instant::now();
    rig.dataplane.restart(&rig.lab.server)?;
    let resynced_in = rig.expect_resync(generation, restarted)?;
    eprintln!("{server:?}: data plane after SIGKILL resynced in {resynced_in:?}");
    Ok(())
}

on_each_backend!(host_added_through_the_agent_survives_sighup);
fn host_added_through_the_agent_survives_sighup(server: Server) -> anyhow::Result<()> {
    let rig = Rig::start(server)?;
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    let generation = rig.add_host(FIXED, "n1")?;
    assert_eq!(rig.udhcpc()?.ip, FIXED, "{}", rig.context("before SIGHUP"));

    // The file now gives the MAC another address: the reload keeps the
    // pushed state in force and logs the conflict.
    let file = rig.dataplane.config_path();
    let text = std::fs::read_to_string(file)?;
    std::fs::write(
        file,
        format!(
            "{text}\n[[hosts]]\nname = \"from-file\"\nmac = \"{}\"\nfixed-address = \"{OTHER_FIXED}\"\n",
            mac_text(HOST_MAC)
        ),
    )?;
    let pid = rig.dataplane.pid();
    rig.dataplane.sighup();
    wait_until(RESYNC_LIMIT, || {
        rig.dataplane.log().contains("reload: tftp root rescanned")
    })
    .map_err(|()| anyhow::anyhow!(rig.context("SIGHUP was never handled")))?;
    assert!(
        rig.dataplane
            .log()
            .contains("reload: the file's hosts changed, but the pushed generation"),
        "{}",
        rig.context("reload logs the file's conflicting hosts")
    );
    let lease = rig.udhcpc()?;
    assert_eq!(lease.ip, FIXED, "{}", rig.context("after SIGHUP"));
    assert_eq!(lease.hostname.as_deref(), Some("n1"), "{}", rig.context(""));
    assert_eq!(rig.dataplane.pid(), pid, "SIGHUP does not restart");
    let status = rig.agent.cli(&["--json", "status"])?;
    assert_eq!(
        json_u64(&status, "acked_generation"),
        Some(generation),
        "{status}"
    );
    assert_eq!(
        rig.dataplane.log().matches("applied desired state").count(),
        2,
        "apply and host add, no push after SIGHUP: {}",
        rig.context("")
    );
    Ok(())
}

on_each_backend!(dataplane_restarted_while_the_agent_is_down_serves_the_pushed_host);
fn dataplane_restarted_while_the_agent_is_down_serves_the_pushed_host(
    server: Server,
) -> anyhow::Result<()> {
    let mut rig = Rig::start(server)?;
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    let generation = rig.add_host(FIXED, "n1")?;
    rig.agent.kill9().expect("agent reaped");

    rig.dataplane.restart(&rig.lab.server)?;
    let log = rig.dataplane.log();
    assert!(
        log.contains(&format!(
            "serving the persisted pushed generation {generation} "
        )),
        "{}",
        rig.context("start-up names the persisted state")
    );
    let mut screen = String::new();
    let _ = wait_until(RESYNC_LIMIT, || {
        screen = rig.dataplane.screen();
        screen.contains("  shards ")
    });
    assert!(
        screen.contains(&format!("state       pushed generation {generation} ")),
        "{}",
        rig.context("start-up screen")
    );
    let check = std::process::Command::new(bootwave_e2e::bootwave_binary()?)
        .args(["check", "--config", path_str(rig.dataplane.config_path())?])
        .output()?;
    let check_out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check_out}");
    assert!(
        check_out.contains(&format!(
            "state in force: the pushed generation {generation} "
        )),
        "check names the persisted state: {check_out}"
    );
    // No agent is running: the reservation comes from the persisted state.
    let client = &rig.lab.clients[0];
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::broadcast(&client.ifname))??;
    let ack = probe
        .dora(HOST_MAC, 0x5eed_0101, Duration::from_secs(5))?
        .ok_or_else(|| anyhow::anyhow!(rig.context("no answer with the agent down")))?;
    assert_eq!(
        ack.kind,
        MessageType::Ack,
        "{}",
        rig.context(&format!("{ack:?}"))
    );
    assert_eq!(
        ack.yiaddr,
        FIXED,
        "{}",
        rig.context("ACK of the reserved address")
    );
    let lease = rig.udhcpc()?;
    assert_eq!(lease.ip, FIXED, "{}", rig.context("udhcpc, agent down"));
    assert_eq!(lease.hostname.as_deref(), Some("n1"), "{}", rig.context(""));

    // The agent comes back on its state and finds the data plane in sync.
    rig.agent = Agent::start(&rig.lab.server, &rig.agent_spec)?;
    let mut status = String::new();
    wait_until(RESYNC_LIMIT, || {
        status = rig.agent.cli(&["--json", "status"]).unwrap_or_default();
        json_u64(&status, "acked_generation") == Some(generation)
            && status.contains("\"reachable\":true")
    })
    .map_err(|()| anyhow::anyhow!("status never showed generation {generation}: {status}"))?;
    assert!(
        !rig.dataplane.log().contains("applied desired state"),
        "the persisted state needed no push: {}",
        rig.context("")
    );
    Ok(())
}

on_each_backend!(agent_on_a_wiped_state_directory_pushes_again);
fn agent_on_a_wiped_state_directory_pushes_again(server: Server) -> anyhow::Result<()> {
    let mut rig = Rig::start(server)?;
    let config = rig.dataplane.config_path().to_owned();
    rig.agent.cli(&["apply", "-f", path_str(&config)?])?;
    rig.add_host(FIXED, "n1")?;
    rig.add_host(FIXED, "n1-renamed")?;
    let old = rig.agent.cli(&["--json", "status"])?;
    let old_generation = json_u64(&old, "generation").unwrap_or(0);
    assert!(old_generation >= 3, "{old}");

    // A new state directory: a new history, its generations start over
    // below the data plane's.
    rig.agent.kill9().expect("agent reaped");
    std::fs::remove_dir_all(&rig.agent_spec.state_dir)?;
    std::fs::create_dir(&rig.agent_spec.state_dir)?;
    rig.agent = Agent::start(&rig.lab.server, &rig.agent_spec)?;
    rig.agent.cli(&["apply", "-f", path_str(&config)?])?;
    let generation = rig.add_host(OTHER_FIXED, "n2")?;
    assert!(
        generation < old_generation,
        "the new history starts below the data plane's generation ({generation} vs {old_generation})"
    );
    let status = rig.agent.cli(&["--json", "status"])?;
    assert_eq!(
        json_u64(&status, "acked_generation"),
        Some(generation),
        "{status}"
    );
    assert!(
        rig.dataplane
            .log()
            .contains("another agent history takes over"),
        "{}",
        rig.context("the data plane logs the new history")
    );
    let lease = rig.udhcpc()?;
    assert_eq!(
        lease.ip,
        OTHER_FIXED,
        "{}",
        rig.context("the new agent's host")
    );
    assert_eq!(lease.hostname.as_deref(), Some("n2"), "{}", rig.context(""));
    Ok(())
}

on_each_backend!(agent_restored_from_an_older_copy_pushes_its_state_in_full);
fn agent_restored_from_an_older_copy_pushes_its_state_in_full(
    server: Server,
) -> anyhow::Result<()> {
    let mut rig = Rig::start(server)?;
    rig.agent
        .cli(&["apply", "-f", path_str(rig.dataplane.config_path())?])?;
    let kept = rig.add_host(FIXED, "n1")?;

    // A backup of the state at generation `kept`, then one more change.
    rig.agent.kill9().expect("agent reaped");
    let backup = rig.dir.path().join("agent-backup");
    copy_dir(&rig.agent_spec.state_dir, &backup)?;
    rig.agent = Agent::start(&rig.lab.server, &rig.agent_spec)?;
    let later = rig.add_host(FIXED, "n1-later")?;
    assert!(later > kept);
    assert_eq!(
        rig.udhcpc()?.hostname.as_deref(),
        Some("n1-later"),
        "{}",
        rig.context("")
    );

    // Restore the backup: the data plane holds a higher generation of the
    // same history and must get the restored state, not be skipped.
    rig.agent.kill9().expect("agent reaped");
    std::fs::remove_dir_all(&rig.agent_spec.state_dir)?;
    copy_dir(&backup, &rig.agent_spec.state_dir)?;
    rig.agent = Agent::start(&rig.lab.server, &rig.agent_spec)?;
    wait_until(RESYNC_LIMIT, || {
        rig.dataplane
            .log()
            .contains("the agent rolled its history back")
    })
    .map_err(|()| anyhow::anyhow!(rig.context("no full push of the restored state")))?;
    let status = rig.agent.cli(&["--json", "status"])?;
    assert_eq!(json_u64(&status, "generation"), Some(kept), "{status}");
    assert_eq!(
        json_u64(&status, "acked_generation"),
        Some(kept),
        "{status}"
    );
    let lease = rig.udhcpc()?;
    assert_eq!(lease.ip, FIXED, "{}", rig.context(""));
    assert_eq!(
        lease.hostname.as_deref(),
        Some("n1"),
        "{}",
        rig.context("the restored state is served")
    );
    Ok(())
}

on_each_backend!(profile_switch_changes_the_boot_file);
fn profile_switch_changes_the_boot_file(server: Server) -> anyhow::Result<()> {
    let rig = Rig::start(server)?;
    let mac = mac_text(HOST_MAC);
    let config = std::fs::read_to_string(rig.dataplane.config_path())?;
    let with_profiles = rig.dir.path().join("profiles.toml");
    std::fs::write(&with_profiles, format!("{config}{PROFILE_RULES}"))?;
    rig.agent.cli(&["apply", "-f", path_str(&with_profiles)?])?;
    let fixed = FIXED.to_string();
    rig.agent
        .cli(&["host", "add", "--mac", &mac, "--ip", &fixed])?;

    let client = &rig.lab.clients[0];
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::broadcast(&client.ifname))??;
    let offer = ovmf_offer(&probe, HOST_MAC, 0x5eed_0001)
        .map_err(|e| anyhow::anyhow!(rig.context(&e.to_string())))?;
    assert_eq!(offer.yiaddr, FIXED, "{}", rig.context("default profile"));
    assert_eq!(
        offer.file.as_deref(),
        Some("ipxe.efi"),
        "{}",
        rig.context("")
    );
    assert_eq!(offer.siaddr, SERVER_ADDR, "{}", rig.context("next server"));

    rig.agent.cli(&[
        "host",
        "add",
        "--mac",
        &mac,
        "--ip",
        &fixed,
        "--profile",
        "rescue",
    ])?;
    let offer = ovmf_offer(&probe, HOST_MAC, 0x5eed_0002)
        .map_err(|e| anyhow::anyhow!(rig.context(&e.to_string())))?;
    assert_eq!(offer.yiaddr, FIXED, "{}", rig.context("rescue profile"));
    assert_eq!(
        offer.file.as_deref(),
        Some("rescue.efi"),
        "{}",
        rig.context("")
    );

    // Another arch-7 client (no host entry) still gets the default file.
    let other = test_mac(0x3c, 2);
    let offer = ovmf_offer(&probe, other, 0x5eed_0003)
        .map_err(|e| anyhow::anyhow!(rig.context(&e.to_string())))?;
    assert!(in_pool(offer.yiaddr), "{}", rig.context("unknown client"));
    assert_eq!(
        offer.file.as_deref(),
        Some("ipxe.efi"),
        "{}",
        rig.context("")
    );
    Ok(())
}

/// A lab with one client, a data plane serving the pool with no hosts under
/// `--control`, and an agent driving it; sockets in a private directory.
struct Rig {
    // Field order is drop order: processes before the lab.
    agent: Agent,
    dataplane: ControlledDataplane,
    agent_spec: AgentSpec,
    lab: Lab,
    dir: tempfile::TempDir,
}

impl Rig {
    fn start(server: Server) -> anyhow::Result<Self> {
        require_root_and_tools(&["ip", "ss", "busybox"]);
        let backend = match server {
            Server::Bootwave(backend) => backend,
            Server::Dnsmasq => anyhow::bail!("the control path is bootwave's only"),
        };
        let dir = tempfile::Builder::new().prefix("bwt-control-").tempdir()?;
        let lab = Lab::star(1)?;
        let client = &lab.clients[0];
        client.ns.set_mac(&client.ifname, HOST_MAC)?;
        let dp_socket = dir.path().join("dp.sock");
        let dataplane = start_dataplane(&lab, backend, &dp_socket)?;
        let agent_spec = AgentSpec {
            state_dir: dir.path().join("agent"),
            socket: dir.path().join("agent.sock"),
            dataplanes: vec![dp_socket],
            resync_ms: RESYNC_MS,
        };
        std::fs::create_dir(&agent_spec.state_dir)?;
        let agent = Agent::start(&lab.server, &agent_spec)?;
        Ok(Self {
            agent,
            dataplane,
            agent_spec,
            lab,
            dir,
        })
    }

    /// Reserves `ip` for the client's MAC through the agent; returns the
    /// generation the agent committed (and every data plane acknowledged).
    fn add_host(&self, ip: Ipv4Addr, hostname: &str) -> anyhow::Result<u64> {
        let reply = self.agent.cli(&[
            "--json",
            "host",
            "add",
            "--mac",
            &mac_text(HOST_MAC),
            "--ip",
            &ip.to_string(),
            "--hostname",
            hostname,
        ])?;
        json_u64(&reply, "generation")
            .ok_or_else(|| anyhow::anyhow!("host add reply has no generation: {reply}"))
    }

    fn udhcpc(&self) -> anyhow::Result<bootwave_e2e::Lease> {
        let client = &self.lab.clients[0];
        udhcpc_lease(&client.ns, &client.ifname, None)
            .map_err(|e| anyhow::anyhow!(self.context(&e.to_string())))
    }

    /// Waits for a freshly started data plane to hold `generation` (the
    /// state it persisted, or the agent's push), checks `bootwave status`
    /// and that a client gets its reserved address again; returns the time
    /// from `restarted` (just before the data plane was started) until that
    /// state was seen in force.
    fn expect_resync(&self, generation: u64, restarted: Instant) -> anyhow::Result<Duration> {
        let persisted = format!("serving the persisted pushed generation {generation} ");
        wait_until(RESYNC_LIMIT, || {
            let log = self.dataplane.log();
            log.contains("applied desired state") || log.contains(&persisted)
        })
        .map_err(|()| {
            anyhow::anyhow!(self.context("the restarted data plane never held the agent's state"))
        })?;
        let resynced_in = restarted.elapsed();
        let mut status = String::new();
        wait_until(RESYNC_LIMIT, || {
            status = self.agent.cli(&["--json", "status"]).unwrap_or_default();
            json_u64(&status, "acked_generation") == Some(generation)
                && status.contains("\"reachable\":true")
                && status.contains("\"pools\":[{")
        })
        .map_err(|()| anyhow::anyhow!("status never showed generation {generation}: {status}"))?;
        assert_eq!(
            json_u64(&status, "generation"),
            Some(generation),
            "{status}"
        );
        // The pool's slices, counted by the data plane: all free (the one
        // client holds a reservation outside the pool).
        let size = u64::from(u32::from(POOL_END) - u32::from(POOL_START)) + 1;
        let summed = |key: &str| {
            status
                .match_indices(&format!("\"{key}\":"))
                .filter_map(|(at, m)| {
                    let rest = &status[at + m.len()..];
                    let end = rest.find(|c: char| !c.is_ascii_digit())?;
                    rest[..end].parse::<u64>().ok()
                })
                .sum::<u64>()
        };
        assert_eq!((summed("size"), summed("free")), (size, size), "{status}");
        let lease = self.udhcpc()?;
        assert_eq!(lease.ip, FIXED, "{}", self.context("reserved after resync"));
        assert_eq!(
            lease.hostname.as_deref(),
            Some("n1"),
            "{}",
            self.context("")
        );
        Ok(resynced_in)
    }

    /// `what`, then the output tails of the agent and the data plane.
    fn context(&self, what: &str) -> String {
        format!("{what}\n{}\n{}", self.agent.tail(), self.dataplane.tail())
    }
}

fn start_dataplane(
    lab: &Lab,
    backend: Backend,
    socket: &Path,
) -> anyhow::Result<ControlledDataplane> {
    let spec = lab.spec(None, None);
    Ok(ControlledDataplane::start(
        &lab.server,
        &spec,
        backend,
        socket,
    )?)
}

/// Sends the DISCOVER captured from OVMF (arch 7) with `chaddr` and `xid`
/// rewritten, and returns the OFFER for it.
fn ovmf_offer(probe: &DhcpProbe, chaddr: [u8; 6], xid: u32) -> anyhow::Result<Reply> {
    let text = std::fs::read_to_string(Path::new(CAPTURES_DIR).join("dhcpdiscover_ovmf.hex"))?;
    let mut payload = capture_payload(&text)?;
    anyhow::ensure!(payload.len() > 240, "capture too short");
    payload[4..8].copy_from_slice(&xid.to_be_bytes());
    payload[28..34].copy_from_slice(&chaddr);
    probe.send_raw(&payload)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match probe.recv(left)? {
            Some(r) if r.xid == xid && r.kind == MessageType::Offer => {
                anyhow::ensure!(r.chaddr == chaddr, "OFFER for another MAC: {r:?}");
                return Ok(r);
            }
            _ => {}
        }
    }
    anyhow::bail!("no OFFER for {} (xid {xid:#x})", mac_text(chaddr))
}

/// Copies the regular files of directory `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Polls `ready` every 50 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if ready() { Ok(()) } else { Err(()) }
}

/// The first `"key":N` number in a line of JSON.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn in_pool(ip: Ipv4Addr) -> bool {
    (u32::from(POOL_START)..=u32::from(POOL_END)).contains(&u32::from(ip))
}

pub(crate) fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

pub(crate) fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", path.display()))
}

#[test]
fn json_u64_reads_top_level_and_nested_keys() {
    let status = r#"{"dataplanes":[{"acked_generation":7,"reachable":true}],"generation":9}"#;
    assert_eq!(json_u64(status, "generation"), Some(9));
    assert_eq!(json_u64(status, "acked_generation"), Some(7));
    assert_eq!(json_u64(status, "missing"), None);
}
