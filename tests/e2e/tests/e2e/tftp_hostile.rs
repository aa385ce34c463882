//! Hostile and broken TFTP clients cannot take the data plane down: a
//! netascii flood costs no memory, one host's transfer storm leaves other
//! hosts served, and a spoofed request with blind ACKs sends a victim no
//! DATA.

use std::ffi::OsStr;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bootwave_e2e::{
    Lab, RunningServer, SERVER_ADDR, ServeSpec, Server, TftpClient, discover, find_tool,
    require_root_and_tools, test_mac,
};
use dhcproto::v4::MessageType;
use socket2::{Domain, Protocol, Socket, Type};

use crate::on_each_backend;
use crate::tftp_download::pattern;

const MIB: usize = 1 << 20;
/// Where the data plane serves metrics inside the server namespace.
const METRICS: &str = "127.0.0.1:9469";
/// The first client's address.
const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 200);
/// The second client's address.
const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 201);
/// `IPPROTO_RAW`: a raw socket whose datagrams carry their own IP header.
const IPPROTO_RAW: i32 = 255;

/// A spec with metrics on and the shipped admission defaults.
fn metered(lab: &Lab, root: &Path) -> anyhow::Result<ServeSpec> {
    Ok(ServeSpec {
        metrics: Some(METRICS.parse()?),
        ..lab.spec(Some(root.to_owned()), None)
    })
}

/// A read request for `name` in `mode` with `options`.
fn rrq(name: &str, mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = vec![0, 1];
    for field in [name, mode]
        .into_iter()
        .chain(options.iter().flat_map(|(k, v)| [*k, *v]))
    {
        bytes.extend_from_slice(field.as_bytes());
        bytes.push(0);
    }
    bytes
}

/// The options of an OACK, in order.
fn oack_options(datagram: &[u8]) -> Option<Vec<(String, String)>> {
    let body = datagram.strip_prefix(&[0, 6])?;
    let fields: Vec<String> = body
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let fields = &fields[..fields.len().saturating_sub(1)];
    Some(
        fields
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
            .collect(),
    )
}

/// `(VmRSS, RssAnon)` of `pid` in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("RssAnon:")?))
}

/// Waits up to `limit` for a metric sum to satisfy `done`; returns the
/// last value.
fn wait_metric(
    running: &RunningServer,
    lab: &Lab,
    name: &str,
    limit: Duration,
    done: impl Fn(u64) -> bool,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + limit;
    loop {
        let value = running.metrics(&lab.server)?.sum(name, &[]);
        if done(value) || Instant::now() >= deadline {
            return Ok(value);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Text of `len` bytes in lines of 64, so netascii expands every line.
fn text_file(len: usize) -> Vec<u8> {
    let line = b"bootwave netascii flood test line: 0123456789abcdefghijklmnopq\n";
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(line);
    }
    out.truncate(len);
    out
}

on_each_backend!(netascii_flood_with_long_timeouts_keeps_rss_flat_and_dhcp_answering);
fn netascii_flood_with_long_timeouts_keeps_rss_flat_and_dhcp_answering(
    server: Server,
) -> anyhow::Result<()> {
    const REQUESTS: usize = 100;
    const HOSTS: u8 = 10;
    require_root_and_tools(&["ip", "ss"]);
    let root = tempfile::tempdir()?;
    let text = text_file(100 * MIB);
    let converted = text.len() + text.iter().filter(|&&b| b == b'\n').count();
    std::fs::write(root.path().join("big.txt"), &text)?;
    drop(text);
    let lab = Lab::star(1)?;
    let running = server.start(&lab.server, &metered(&lab, root.path())?)?;
    let client = &lab.clients[0];
    // Ten addresses, ten transfers each: under the per-client cap (16) and
    // burst (64), so every request is admitted and held.
    let hosts: Vec<Ipv4Addr> = (0..HOSTS)
        .map(|i| Ipv4Addr::new(10, 77, 0, 200 + i))
        .collect();
    for &host in &hosts {
        client.ns.add_addr(&client.ifname, host, 24)?;
    }
    let pid = running.child.pid();
    let before = rss_kib(pid)?;
    let server_at = SocketAddr::from((SERVER_ADDR, 69));
    let request = rrq("big.txt", "netascii", &[("timeout", "255"), ("tsize", "0")]);
    // The first netascii request of a file version counts its converted
    // length once, which reads the shared mapping (file pages, not a copy).
    let warm = client.ns.run_inside(|| -> std::io::Result<Vec<u8>> {
        let s = UdpSocket::bind((hosts[0], 0))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.send_to(&request, server_at)?;
        let mut buf = [0u8; 2048];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(buf[..n].to_vec())
    })??;
    let tsize = converted.to_string();
    assert_eq!(
        oack_options(&warm),
        Some(vec![("tsize".to_owned(), tsize.clone())]),
        "{server:?}: timeout 255 is over max-timeout (3 s), so the OACK leaves it out"
    );
    let warmed = rss_kib(pid)?;
    let sockets = client
        .ns
        .run_inside(|| -> std::io::Result<Vec<UdpSocket>> {
            let mut sockets = Vec::with_capacity(REQUESTS);
            for i in 0..REQUESTS {
                let s = UdpSocket::bind((hosts[i % hosts.len()], 0))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.send_to(&request, server_at)?;
                sockets.push(s);
            }
            Ok(sockets)
        })??;
    let mut buf = [0u8; 2048];
    for (i, s) in sockets.iter().enumerate() {
        let (n, _) = s
            .recv_from(&mut buf)
            .map_err(|e| anyhow::anyhow!("{server:?}: no OACK for request {i}: {e}"))?;
        assert_eq!(
            oack_options(&buf[..n]),
            Some(vec![("tsize".to_owned(), tsize.clone())]),
            "{server:?}: request {i}"
        );
    }
    let active = wait_metric(
        &running,
        &lab,
        "bootwave_tftp_transfers_active",
        Duration::from_secs(3),
        |n| n >= REQUESTS as u64,
    )?;
    assert!(
        active >= REQUESTS as u64,
        "{server:?}: {active} transfers held"
    );
    let after = rss_kib(pid)?;
    println!(
        "{server:?}: VmRSS / RssAnon KiB: start {before:?}, after the first netascii request {warmed:?}, \
         with {REQUESTS} more held {after:?} (file {} MiB, converted {converted} bytes)",
        100
    );
    let limit_kib = 32 * 1024;
    assert!(
        after.0.saturating_sub(warmed.0) < limit_kib,
        "{server:?}: VmRSS grew {} KiB with {REQUESTS} netascii transfers",
        after.0 - warmed.0
    );
    assert!(
        after.1.saturating_sub(before.1) < limit_kib,
        "{server:?}: anonymous memory grew {} KiB: a converted copy?",
        after.1 - before.1
    );
    // DHCP, on the same shard threads, still answers.
    let probe = lab.broadcast_probe()?;
    let offer = probe
        .ask(
            &discover(test_mac(0x7a, 1), 0x7a00_0001),
            Duration::from_secs(3),
        )?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no OFFER\n{}", running.child.tail()))?;
    assert_eq!(offer.kind, MessageType::Offer, "{server:?}: {offer:?}");
    // No ACK ever came: every transfer is reclaimed within max-timeout ×
    // max-retries (15 s), whatever timeout it asked for.
    let active = wait_metric(
        &running,
        &lab,
        "bootwave_tftp_transfers_active",
        Duration::from_secs(25),
        |n| n == 0,
    )?;
    assert_eq!(
        active,
        0,
        "{server:?}: transfers left\n{}",
        running.child.tail()
    );
    drop(sockets);
    Ok(())
}

/// Runs in the first client's namespace: `n` plain RRQs, each from a new
/// socket (a fresh source port), none ever ACKed; then the first answer on
/// each socket is classified.
const STORM: &str = r#"
import json, socket, sys, time
server, n, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rrq = b"\x00\x01small.bin\x00octet\x00"
socks = []
start = time.time()
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.bind((src, 0))
    s.sendto(rrq, (server, 69))
    socks.append(s)
    if i % 100 == 99:
        time.sleep(0.005)
sent_secs = time.time() - start
time.sleep(2)
admitted = capped = silent = other = 0
messages = set()
ports = set()
for s in socks:
    ports.add(s.getsockname()[1])
    try:
        d = s.recv(2048)
    except BlockingIOError:
        silent += 1
        continue
    if d[:2] == b"\x00\x03":
        admitted += 1
    elif d[:4] == b"\x00\x05\x00\x00":
        capped += 1
        messages.add(d[4:].rstrip(b"\x00").decode())
    else:
        other += 1
print(json.dumps({"admitted": admitted, "capped": capped, "silent": silent, "other": other,
                  "messages": sorted(messages), "ports": len(ports), "sent_secs": sent_secs}))
"#;

on_each_backend!(one_host_opening_thousands_of_transfers_does_not_stop_another);
fn one_host_opening_thousands_of_transfers_does_not_stop_another(
    server: Server,
) -> anyhow::Result<()> {
    const STORM_REQUESTS: u64 = 5_000;
    let tools = require_root_and_tools(&["ip", "ss", "python3", "prlimit", "tftp"]);
    let root = tempfile::tempdir()?;
    std::fs::write(root.path().join("small.bin"), pattern(3000, 9))?;
    let file = pattern(MIB, 10);
    std::fs::write(root.path().join("boot.bin"), &file)?;
    let lab = Lab::star(2)?;
    let running = server.start(&lab.server, &metered(&lab, root.path())?)?;
    let (a, b) = (&lab.clients[0], &lab.clients[1]);
    a.ns.add_addr(&a.ifname, HOST_A, 24)?;
    b.ns.add_addr(&b.ifname, HOST_B, 24)?;
    let python = find_tool("python3").unwrap_or_else(|| "python3".into());
    let n = STORM_REQUESTS.to_string();
    let (server_addr, host_a) = (SERVER_ADDR.to_string(), HOST_A.to_string());
    let started = Instant::now();
    let args: [&OsStr; 6] = [
        "--nofile=8192".as_ref(),
        python.as_os_str(),
        "-c".as_ref(),
        STORM.as_ref(),
        server_addr.as_ref(),
        n.as_ref(),
    ];
    let mut args = args.to_vec();
    args.push(host_a.as_ref());
    let storm = a.ns.spawn(tools.path("prlimit"), &args)?;
    // The second host downloads while the storm runs.
    std::thread::sleep(Duration::from_millis(100));
    let out = tempfile::tempdir()?;
    let dest = out.path().join("boot.bin");
    TftpClient::TftpHpa
        .get_within(
            &b.ns,
            SERVER_ADDR,
            "boot.bin",
            &dest,
            Duration::from_secs(30),
        )
        .map_err(|e| anyhow::anyhow!("{server:?}: host B: {e}\n{}", running.child.tail()))?;
    let b_secs = started.elapsed().as_secs_f64();
    let got = std::fs::read(&dest)?;
    assert!(
        got == file,
        "{server:?}: host B's file differs ({} bytes)",
        got.len()
    );
    let report = storm
        .finish(Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("{server:?}: storm: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_str(report.trim())
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}: {report}"))?;
    println!("{server:?}: storm {report}; host B done after {b_secs:.1} s");
    let count = |key: &str| report[key].as_u64().unwrap_or(u64::MAX);
    let (admitted, capped, silent) = (count("admitted"), count("capped"), count("silent"));
    assert_eq!(count("other"), 0, "{report}");
    assert_eq!(admitted + capped + silent, STORM_REQUESTS, "{report}");
    assert!(count("ports") > 4_000, "rotating source ports: {report}");
    let metrics = running.metrics(&lab.server)?;
    // Admission is per shard: the kernel spreads the source ports over
    // every shard's listen socket.
    let shards = metrics
        .text
        .lines()
        .filter(|l| l.starts_with("bootwave_tftp_transfers_active{"))
        .count() as u64;
    assert!(shards >= 1, "{}", metrics.text);
    let cap = 16 * shards;
    assert!(admitted >= 1 && admitted <= cap, "{server:?}: {report}");
    assert!(capped >= 1, "{server:?}: {report}");
    assert_eq!(
        report["messages"],
        serde_json::json!(["too many transfers from this client"]),
        "{report}"
    );
    let refused = |reason: &str| metrics.sum("bootwave_tftp_refused_total", &[("reason", reason)]);
    assert_eq!(refused("per_client_cap"), capped, "{server:?}: {report}");
    assert!(refused("rate") >= 1, "{server:?}: {report}");
    assert!(refused("rate") <= silent, "{server:?}: {report}");
    assert_eq!(refused("table_full") + refused("no_port"), 0, "{report}");
    // Every answer, ERRORs included, spends a token of the client's
    // bucket (burst 64, then 20/s): the storm reflects a bounded number.
    let bound = shards * (64 + (20.0 * (elapsed + 1.0)) as u64);
    assert!(
        admitted + capped <= bound,
        "{server:?}: {} answers to the storm, bound {bound}: {report}",
        admitted + capped
    );
    // At most one refusal line per second per reason and shard.
    let lines = running
        .child
        .stderr()
        .lines()
        .filter(|l| l.contains("tftp: read request refused"))
        .count() as u64;
    let line_bound = 2 * shards * (elapsed.ceil() as u64 + 1);
    assert!(
        (1..=line_bound).contains(&lines),
        "{server:?}: {lines} refusal lines, bound {line_bound}"
    );
    Ok(())
}

/// An IPv4 + UDP datagram from `src` to `dst` (checksums left to the
/// kernel and to nobody: UDP's is optional over IPv4).
fn spoofed(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// TFTP opcodes of the UDP datagrams from the server that reached the
/// victim, as a raw socket in its namespace saw them (every UDP datagram,
/// whatever its port).
struct Capture {
    stop: std::sync::Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u16>>,
}

impl Capture {
    fn start(lab: &Lab, victim: usize) -> anyhow::Result<Self> {
        let socket = lab.clients[victim]
            .ns
            .run_inside(|| -> std::io::Result<Socket> {
                let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                Ok(s)
            })??;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut socket = socket;
            let mut opcodes = Vec::new();
            let mut buf = [0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                let Ok(n) = socket.read(&mut buf) else {
                    continue;
                };
                let packet = &buf[..n];
                let ihl = usize::from(packet.first().map_or(5, |b| b & 0x0f)) * 4;
                if n < ihl + 10 || packet[12..16] != SERVER_ADDR.octets() {
                    continue;
                }
                opcodes.push(u16::from_be_bytes([packet[ihl + 8], packet[ihl + 9]]));
            }
            opcodes
        });
        Ok(Self { stop, thread })
    }

    fn finish(self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

on_each_backend!(a_spoofed_windowed_request_and_blind_acks_send_the_victim_no_data);
fn a_spoofed_windowed_request_and_blind_acks_send_the_victim_no_data(
    server: Server,
) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "cat", "tftp"]);
    let root = tempfile::tempdir()?;
    std::fs::write(root.path().join("big.bin"), pattern(8 * MIB, 11))?;
    let lab = Lab::star(2)?;
    let running = server.start(&lab.server, &metered(&lab, root.path())?)?;
    let (attacker, victim) = (&lab.clients[0], &lab.clients[1]);
    attacker.ns.add_addr(&attacker.ifname, HOST_A, 24)?;
    victim.ns.add_addr(&victim.ifname, HOST_B, 24)?;
    let range = lab.server.exec(
        "cat",
        &["/proc/sys/net/ipv4/ip_local_port_range"],
        Duration::from_secs(5),
    )?;
    let ports: Vec<u16> = range
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let (low, high) = match ports[..] {
        [low, high] if low <= high => (low, high),
        _ => anyhow::bail!("ip_local_port_range: {range:?}"),
    };
    let capture = Capture::start(&lab, 1)?;
    let raw = attacker.ns.run_inside(|| -> std::io::Result<Socket> {
        // IPPROTO_RAW: the datagrams carry their own IP header, so any
        // source address.
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
    })??;
    let victim_port = SocketAddrV4::new(HOST_B, 40_000);
    let to = |port: u16| socket2::SockAddr::from(SocketAddrV4::new(SERVER_ADDR, port));
    let request = rrq(
        "big.bin",
        "octet",
        &[("blksize", "1432"), ("windowsize", "64")],
    );
    raw.send_to(
        &spoofed(victim_port, SocketAddrV4::new(SERVER_ADDR, 69), &request),
        &to(69),
    )?;
    // An off-path attacker sees nothing of the answer; give it time to
    // reach the victim (and the victim's kernel time to reject it).
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut swept = 0u32;
    for pass in 0..2 {
        for port in std::iter::once(69).chain(low..=high) {
            let ack = spoofed(
                victim_port,
                SocketAddrV4::new(SERVER_ADDR, port),
                &[0, 4, 0, 0],
            );
            // A full socket buffer drops a probe; the sweep goes on.
            let _ = raw.send_to(&ack, &to(port));
            swept += 1;
            if swept.is_multiple_of(500) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "sweep {pass} too slow"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let opcodes = capture.finish();
    let data = opcodes.iter().filter(|&&op| op == 3).count();
    let oacks = opcodes.iter().filter(|&&op| op == 6).count();
    println!(
        "{server:?}: {swept} blind ACKs over ports {low}-{high} and 69 in {:.2} s; the victim got {oacks} OACK(s), {data} DATA, {} datagrams in all",
        started.elapsed().as_secs_f64(),
        opcodes.len()
    );
    assert!(
        oacks >= 1,
        "{server:?}: the spoofed request was not answered: {opcodes:?}\n{}",
        running.child.tail()
    );
    assert_eq!(
        data,
        0,
        "{server:?}: blind ACKs drove DATA at the victim\n{}",
        running.child.tail()
    );
    let log = running.child.stderr();
    assert!(
        log.contains("client unreachable"),
        "{server:?}: the victim's rejection did not end the transfer\n{}",
        running.child.tail()
    );
    // The server still serves the victim's real requests.
    let out = tempfile::tempdir()?;
    let dest = out.path().join("big.bin");
    TftpClient::TftpHpa
        .get_within(
            &victim.ns,
            SERVER_ADDR,
            "big.bin",
            &dest,
            Duration::from_secs(60),
        )
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    assert_eq!(std::fs::metadata(&dest)?.len(), 8 * MIB as u64);
    Ok(())
}
