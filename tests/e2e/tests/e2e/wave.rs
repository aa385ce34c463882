//! A reboot wave followed by the agent, end to end: 200 hosts declared
//! through the agent with a label, `bootwave wave start --label …`, then 200
//! simulated machines run the guide's flow against the data plane (firmware
//! DHCP with the captured OVMF DISCOVER → TFTP `ipxe.efi` → iPXE DHCP with
//! the captured iPXE DISCOVER → TFTP `refind.pxe` → `refind.conf` and
//! `refind_x64.efi`), each from its own reserved address, and
//! `bootwave --json wave watch` shows every host `DONE` with its timeline.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use bootwave_e2e::agent::{Agent, AgentSpec, ControlledDataplane};
use bootwave_e2e::{
    BootRuleSpec, CAPTURES_DIR, DhcpProbe, Lab, RELAY_ADDR, Reply, SERVER_ADDR, Server,
    capture_payload, request_selecting, require_root_and_tools,
};
use dhcproto::v4::{Message, MessageType};

use crate::control::{mac_text, path_str};
use crate::on_each_backend;
use crate::tftp_download::pattern;

/// Machines in the wave.
const HOSTS: u16 = 200;
/// Address of host 0; host i gets the i-th one after it (outside the pool).
const FIRST_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 40, 10);
/// A machine outside the wave, used to see that boot events flow.
const CANARY: [u8; 6] = [0x02, 0x3e, 0, 0, 0, 1];
/// Longest a simulated machine waits for one reply.
const REPLY_LIMIT: Duration = Duration::from_secs(3);

on_each_backend!(a_wave_of_200_machines_reaches_done);
fn a_wave_of_200_machines_reaches_done(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let Server::Bootwave(backend) = server else {
        anyhow::bail!("waves are bootwave's only");
    };
    let dir = tempfile::Builder::new().prefix("bwt-wave-").tempdir()?;
    let root = dir.path().join("tftp");
    std::fs::create_dir(&root)?;
    let files = [
        ("ipxe.efi", pattern(24_000, 3)),
        (
            "refind.pxe",
            b"#!ipxe\nchain tftp://${next-server}/refind_x64.efi\n".to_vec(),
        ),
        ("refind.conf", b"timeout 1\n".to_vec()),
        ("refind_x64.efi", pattern(40_000, 5)),
    ];
    for (name, bytes) in &files {
        std::fs::write(root.join(name), bytes)?;
    }
    let lab = Lab::star_wide(1)?;
    let mut spec = lab.spec(Some(root.clone()), None);
    spec.boot_rules = vec![
        BootRuleSpec {
            arch: vec![7, 9],
            user_class: Some("iPXE".to_owned()),
            filename: "refind.pxe".to_owned(),
        },
        BootRuleSpec {
            arch: vec![7, 9],
            user_class: None,
            filename: "ipxe.efi".to_owned(),
        },
    ];
    let dp_socket = dir.path().join("dp.sock");
    let dataplane = ControlledDataplane::start(&lab.server, &spec, backend, &dp_socket)?;
    let agent_spec = AgentSpec {
        state_dir: dir.path().join("agent"),
        socket: dir.path().join("agent.sock"),
        dataplanes: vec![dp_socket],
        resync_ms: 200,
    };
    std::fs::create_dir(&agent_spec.state_dir)?;
    let agent = Agent::start(&lab.server, &agent_spec)?;
    let ctx = |what: &str| format!("{server:?}: {what}\n{}\n{}", agent.tail(), dataplane.tail());

    // The data plane's own configuration plus the 200 labelled hosts, as
    // one generation.
    let mut state = std::fs::read_to_string(dataplane.config_path())?;
    for i in 0..HOSTS {
        state.push_str(&format!(
            "\n[[hosts]]\nname = \"node-{i}\"\nmac = \"{}\"\nfixed-address = \"{}\"\nlabels = {{ wave = \"e2e\" }}\n",
            mac_text(host_mac(i)),
            host_ip(i)
        ));
    }
    let state_path = dir.path().join("state.toml");
    std::fs::write(&state_path, state)?;
    agent.cli(&["apply", "-f", path_str(&state_path)?])?;

    // Machines: the relay address and every reserved address on the client
    // side; each machine fetches its files from its own address, as a real
    // one does (the data plane knows a TFTP client by its reservation).
    let client = &lab.clients[0];
    client
        .ns
        .add_addr(&client.ifname, RELAY_ADDR, lab.prefix())?;
    for i in 0..HOSTS {
        client
            .ns
            .add_addr(&client.ifname, host_ip(i), lab.prefix())?;
    }
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::relay(RELAY_ADDR, SERVER_ADDR))??;
    let ovmf = captured("dhcpdiscover_ovmf.hex")?;
    let ipxe = captured("dhcpdiscover_ipxe.hex")?;

    // Boot events flow to the agent before the wave starts: a machine
    // outside it is seen by `explain`.
    let seen = Instant::now();
    loop {
        exchange(&probe, &ovmf, CANARY, 0xca11)?;
        let explain = agent.cli(&["--json", "explain", &mac_text(CANARY)])?;
        if explain.contains("\"last_dhcp\"") {
            break;
        }
        anyhow::ensure!(
            seen.elapsed() < Duration::from_secs(20),
            "{}",
            ctx(&format!(
                "the agent never saw the canary's events: {explain}"
            ))
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let started = agent.cli(&["wave", "start", "--label", "wave=e2e", "--name", "e2e"])?;
    let id = started
        .split_whitespace()
        .last()
        .ok_or_else(|| anyhow::anyhow!("wave start printed no id"))?
        .to_owned();

    // The machines, one after another; each transfer from a new port of
    // the machine's address, as firmware does. Sockets are opened inside
    // the client namespace.
    let booted = Instant::now();
    client.ns.run_inside(|| -> anyhow::Result<()> {
        for i in 0..HOSTS {
            let (mac, ip) = (host_mac(i), host_ip(i));
            let xid = 0x7a00_0000 | u32::from(i);
            let run = || -> anyhow::Result<()> {
                let ack = exchange(&probe, &ovmf, mac, xid)?;
                check_ack(&ack, ip, "ipxe.efi")?;
                expect_file(ip, "ipxe.efi", &files)?;
                let ack = exchange(&probe, &ipxe, mac, xid ^ 0x0080_0000)?;
                check_ack(&ack, ip, "refind.pxe")?;
                for name in ["refind.pxe", "refind.conf", "refind_x64.efi"] {
                    expect_file(ip, name, &files)?;
                }
                Ok(())
            };
            run().map_err(|e| anyhow::anyhow!(ctx(&format!("machine {i}: {e}"))))?;
        }
        Ok(())
    })??;
    eprintln!(
        "{server:?}: {HOSTS} machines booted in {:?}",
        booted.elapsed()
    );

    // `wave watch` ends once every host is DONE (exit 0); its last line
    // carries every host.
    let watched = agent
        .cli(&["--json", "wave", "watch", &id])
        .map_err(|e| anyhow::anyhow!(ctx(&format!("wave watch: {e}"))))?;
    let last = watched
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("wave watch printed nothing"))?;
    let wave: serde_json::Value = serde_json::from_str(last)?;
    assert_eq!(wave["finished"], true, "{}", ctx(last));
    assert_eq!(wave["counts"]["DONE"], u64::from(HOSTS), "{}", ctx(last));
    let hosts = wave["hosts"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no hosts: {last}"))?;
    assert_eq!(hosts.len(), usize::from(HOSTS), "{last}");
    let flow = [
        "DHCP_FIRMWARE",
        "FIRMWARE_FILE",
        "DHCP_IPXE",
        "SCRIPT",
        "BOOT_FILES",
        "DONE",
    ];
    for host in hosts {
        assert_eq!(host["stage"], "DONE", "{host}");
        let stages: Vec<&str> = host["timeline"]
            .as_array()
            .map(|t| t.iter().filter_map(|m| m["stage"].as_str()).collect())
            .unwrap_or_default();
        // Every stage of the flow, in order (WAITING may come first).
        let reached: Vec<&str> = stages.into_iter().filter(|s| flow.contains(s)).collect();
        assert_eq!(reached, flow, "{host}");
    }
    Ok(())
}

fn host_mac(i: u16) -> [u8; 6] {
    let [hi, lo] = i.to_be_bytes();
    [0x02, 0x3d, 0, 0, hi, lo]
}

fn host_ip(i: u16) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST_HOST) + u32::from(i))
}

fn captured(name: &str) -> anyhow::Result<Message> {
    use dhcproto::{Decodable, Decoder};
    let text = std::fs::read_to_string(Path::new(CAPTURES_DIR).join(name))?;
    let payload = capture_payload(&text)?;
    Ok(Message::decode(&mut Decoder::new(&payload))?)
}

/// The captured DISCOVER as `mac`, then a REQUEST for the offered address
/// carrying the capture's client options (60, 77, 93, 97, 175), through the
/// relay; returns the ACK.
fn exchange(probe: &DhcpProbe, capture: &Message, mac: [u8; 6], xid: u32) -> anyhow::Result<Reply> {
    let mut discover = capture.clone();
    discover.set_chaddr(&mac).set_xid(xid);
    let offer = probe
        .ask(&discover, REPLY_LIMIT)?
        .filter(|r| r.kind == MessageType::Offer)
        .ok_or_else(|| anyhow::anyhow!("no OFFER for {}", mac_text(mac)))?;
    let server = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut request = request_selecting(mac, xid, offer.yiaddr, server);
    for code in [60u8, 77, 93, 97, 175] {
        if let Some(opt) = capture.opts().get(code.into()) {
            request.opts_mut().insert(opt.clone());
        }
    }
    probe
        .ask(&request, REPLY_LIMIT)?
        .filter(|r| r.kind == MessageType::Ack)
        .ok_or_else(|| anyhow::anyhow!("no ACK for {} ({})", mac_text(mac), offer.yiaddr))
}

fn check_ack(ack: &Reply, ip: Ipv4Addr, file: &str) -> anyhow::Result<()> {
    anyhow::ensure!(ack.yiaddr == ip, "ACK of {} instead of {ip}", ack.yiaddr);
    anyhow::ensure!(
        ack.file.as_deref() == Some(file),
        "ACK names {:?} instead of {file}",
        ack.file
    );
    Ok(())
}

/// Downloads `name` from the server to a new port of `ip` (lock-step,
/// 512-byte blocks) and checks it against the file in the TFTP root.
fn expect_file(ip: Ipv4Addr, name: &str, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    let want = files
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow::anyhow!("{name}: not a test file"))?;
    let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
    let got = tftp_get(&socket, name)?;
    anyhow::ensure!(got == *want, "{name}: {} bytes differ", got.len());
    Ok(())
}

/// A minimal RFC 1350 read: RRQ to port 69, ACK every DATA to the port it
/// came from, done at the first short block. Bounded: 3 s per block.
fn tftp_get(socket: &UdpSocket, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    socket.send_to(&rrq, SocketAddrV4::new(SERVER_ADDR, 69))?;
    socket.set_read_timeout(Some(REPLY_LIMIT))?;
    let mut out = Vec::new();
    let mut expected: u16 = 1;
    let mut buf = [0u8; 600];
    loop {
        let (len, from): (usize, SocketAddr) = socket
            .recv_from(&mut buf)
            .map_err(|e| anyhow::anyhow!("{name}: block {expected}: {e}"))?;
        let packet = &buf[..len];
        anyhow::ensure!(len >= 4, "{name}: short packet");
        match u16::from_be_bytes([packet[0], packet[1]]) {
            3 => {
                let block = u16::from_be_bytes([packet[2], packet[3]]);
                if block == expected {
                    out.extend_from_slice(&packet[4..]);
                    expected = expected.wrapping_add(1);
                }
                let mut ack = vec![0, 4];
                ack.extend_from_slice(&block.to_be_bytes());
                socket.send_to(&ack, from)?;
                if block.wrapping_add(1) == expected && len < 516 {
                    return Ok(out);
                }
            }
            5 => anyhow::bail!("{name}: ERROR {}", String::from_utf8_lossy(&packet[4..])),
            op => anyhow::bail!("{name}: unexpected opcode {op}"),
        }
    }
}
