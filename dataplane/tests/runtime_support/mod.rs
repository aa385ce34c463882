//! Shared pieces of the runtime tests: a running `bootwave-dataplane` on
//! loopback with a temporary configuration, a relay-style DHCP client and a
//! TFTP client. Traffic stays on 127.0.0.0/8.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// How long a server may take to print its summary.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a reply may take.
pub const REPLY_LIMIT: Duration = Duration::from_secs(3);

/// Two free UDP ports on loopback, `p` and `p + 1` both free for DHCP,
/// and `q` for TFTP.
///
/// Taken below the kernel's ephemeral range (32768 and up), so no socket a
/// running server opens on port 0 (a TFTP transfer port) can take them between
/// this check and the server's bind; a counter keeps the tests of one
/// process on distinct ports.
pub fn free_ports() -> (u16, u16) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + std::process::id() % 4_000 * 3;
    for _ in 0..1_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = u16::try_from(20_000 + (base - 20_000 + n * 3) % 12_000).expect("below 32000");
        let free = |port: u16| UdpSocket::bind(("0.0.0.0", port)).is_ok();
        if free(p) && free(p + 1) && free(p + 2) {
            return (p, p + 2);
        }
    }
    panic!("no free ports found");
}

/// The test configuration: loopback only, DHCP on `dhcp_port`, TFTP on
/// `tftp_port`, a pool in 127.0.0.0/8, `hosts` appended.
pub fn config_text(dhcp_port: u16, tftp_port: u16, hosts: &str) -> String {
    format!(
        r#"interfaces = ["lo"]

[dhcp]
port = {dhcp_port}
default-lease-time = "1h"
max-lease-time = "2h"
authoritative = true
ping-check = false

[tftp]
port = {tftp_port}
root = "tftp"
max-windowsize = 16
min-timeout = "200ms"
max-timeout = "1s"
max-retries = 3

[journal]
dir = "state"
fsync = "batch"
fsync-interval = "2ms"

[[subnets]]
network = "127.0.0.0/8"
ranges = ["127.0.10.1-127.0.10.200"]
next-server = "127.0.0.1"

[[subnets.boot-rules]]
arch = "efi-x64"
filename = "ipxe.efi"
{hosts}
"#
    )
}

/// A running data plane; killed when dropped.
pub struct Running {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub dhcp_port: u16,
    pub tftp_port: u16,
    pub summary: String,
    log: PathBuf,
}

/// A test directory with `tftp/` filled by `files`.
pub fn test_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bw-runtime-")
        .tempdir()
        .expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tftp")).expect("mkdir");
    for (name, bytes) in files {
        std::fs::write(dir.path().join("tftp").join(name), bytes).expect("write");
    }
    dir
}

impl Running {
    /// Writes `config` into `dir/bootwave.toml` and starts the binary with
    /// `args`; returns once its summary is printed.
    pub fn start(dir: &Path, config: &str, dhcp_port: u16, tftp_port: u16, args: &[&str]) -> Self {
        let path = dir.join("bootwave.toml");
        std::fs::write(&path, config).expect("write config");
        let log = dir.join(format!(
            "stderr-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootwave-dataplane"))
            .arg("--config")
            .arg(&path)
            .arg("--control")
            .arg(format!("unix:{}", dir.join("control.sock").display()))
            .args(args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn bootwave-dataplane");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Self {
            child: Some(child),
            dir: dir.to_owned(),
            dhcp_port,
            tftp_port,
            summary: String::new(),
            log,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    running.summary.push_str(&line);
                    running.summary.push('\n');
                    if line.trim_start().starts_with("metrics") {
                        return running;
                    }
                }
                Err(_) => panic!(
                    "server did not start within {START_LIMIT:?}; stdout:\n{}\nstderr:\n{}",
                    running.summary,
                    running.stderr()
                ),
            }
        }
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's stderr once `ready` holds for it, or as it is after
    /// five seconds: log lines are written by a background thread, so a
    /// line may land a moment after the reply it describes.
    pub fn stderr_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.stderr();
            if ready(&log) || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        // Safety: `kill` on the pid of a child this test started and has not
        // reaped; it cannot touch memory.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit after SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A DHCP "relay" on 127.0.0.1:`port` (the server answers relays on its
/// own port). Requests go to 127.0.0.2, which the server's wildcard socket
/// receives, while replies to giaddr 127.0.0.1 reach this more specific
/// socket.
pub struct Relay {
    socket: UdpSocket,
    server: SocketAddrV4,
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub message_type: u8,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    pub file: String,
}

impl Relay {
    pub fn new(port: u16) -> Self {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket
            .bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into())
            .expect("bind relay");
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Self {
            socket,
            server: SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), port),
        }
    }

    /// Sends one message and waits for the reply with the same xid.
    pub fn exchange(&self, message: &[u8], limit: Duration) -> Option<Reply> {
        self.socket.send_to(message, self.server).expect("send");
        let xid = u32::from_be_bytes([message[4], message[5], message[6], message[7]]);
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            if let Some(reply) = parse_reply(&buf[..n])
                && reply.xid == xid
            {
                return Some(reply);
            }
        }
        None
    }

    /// DISCOVER then REQUEST; the ACKed address.
    pub fn lease(&self, mac: [u8; 6], xid: u32) -> Ipv4Addr {
        let offer = self
            .exchange(&discover(mac, xid), REPLY_LIMIT)
            .expect("an OFFER");
        assert_eq!(offer.message_type, 2, "OFFER");
        let server_id = offer.server_id.expect("server id");
        let ack = self
            .exchange(&request(mac, xid + 1, offer.yiaddr, server_id), REPLY_LIMIT)
            .expect("an ACK");
        assert_eq!(ack.message_type, 5, "ACK: {ack:?}");
        assert_eq!(ack.yiaddr, offer.yiaddr);
        ack.yiaddr
    }
}

/// A relayed BOOTREQUEST with options `opts` (without the end option).
fn message(mac: [u8; 6], xid: u32, opts: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[3] = 1; // hops
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[24..28].copy_from_slice(&Ipv4Addr::LOCALHOST.octets()); // giaddr
    m[28..34].copy_from_slice(&mac);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(opts);
    m.push(255);
    m
}

/// A DISCOVER from an x86-64 UEFI client.
pub fn discover(mac: [u8; 6], xid: u32) -> Vec<u8> {
    message(mac, xid, &[53, 1, 1, 93, 2, 0, 7])
}

/// A REQUEST (SELECTING) for `addr` from `server`.
pub fn request(mac: [u8; 6], xid: u32, addr: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut opts = vec![53, 1, 3, 93, 2, 0, 7, 50, 4];
    opts.extend_from_slice(&addr.octets());
    opts.extend_from_slice(&[54, 4]);
    opts.extend_from_slice(&server.octets());
    message(mac, xid, &opts)
}

/// The fields the tests look at, from a BOOTREPLY.
pub fn parse_reply(b: &[u8]) -> Option<Reply> {
    if b.len() < 240 || b[0] != 2 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let mut reply = Reply {
        message_type: 0,
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        yiaddr: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        server_id: None,
        file: String::from_utf8_lossy(&b[108..236])
            .trim_end_matches('\0')
            .to_owned(),
    };
    let mut i = 240;
    while i < b.len() {
        let code = b[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*b.get(i + 1)?);
        let value = b.get(i + 2..i + 2 + len)?;
        match (code, len) {
            (53, 1) => reply.message_type = value[0],
            (54, 4) => {
                reply.server_id = Some(Ipv4Addr::new(value[0], value[1], value[2], value[3]))
            }
            _ => {}
        }
        i += 2 + len;
    }
    Some(reply)
}

/// Downloads `name` from 127.0.0.1:`port` with the given options
/// (`blksize`, `windowsize`), acknowledging the last block of each window.
pub fn tftp_get(port: u16, name: &str, blksize: Option<u16>, windowsize: Option<u16>) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name.as_bytes());
    rrq.push(0);
    rrq.extend_from_slice(b"octet\0");
    for (key, value) in [("blksize", blksize), ("windowsize", windowsize)] {
        if let Some(v) = value {
            rrq.extend_from_slice(key.as_bytes());
            rrq.push(0);
            rrq.extend_from_slice(v.to_string().as_bytes());
            rrq.push(0);
        }
    }
    socket.send_to(&rrq, ("127.0.0.1", port)).expect("send RRQ");
    let (mut block_size, mut window) = (512usize, 1u16);
    let mut data = Vec::new();
    let mut expected: u16 = 1;
    let mut in_window = 0u16;
    let mut buf = vec![0u8; 70_000];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let packet = &buf[..n];
        match u16::from_be_bytes([packet[0], packet[1]]) {
            6 => {
                // OACK: read the granted options, acknowledge block 0.
                let fields: Vec<&[u8]> = packet[2..].split(|&b| b == 0).collect();
                for pair in fields.chunks(2) {
                    if let [k, v] = pair {
                        let v: usize = std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        match &k.to_ascii_lowercase()[..] {
                            b"blksize" => block_size = v,
                            b"windowsize" => window = v as u16,
                            _ => {}
                        }
                    }
                }
                socket.send_to(&[0, 4, 0, 0], from).expect("ack 0");
            }
            3 => {
                let block = u16::from_be_bytes([packet[2], packet[3]]);
                if block != expected {
                    continue;
                }
                let body = &packet[4..];
                data.extend_from_slice(body);
                in_window += 1;
                let last = body.len() < block_size;
                if last || in_window == window {
                    socket
                        .send_to(&[0, 4, packet[2], packet[3]], from)
                        .expect("ack");
                    in_window = 0;
                }
                if last {
                    return data;
                }
                expected = expected.wrapping_add(1);
            }
            5 => panic!(
                "TFTP error {}: {}",
                u16::from_be_bytes([packet[2], packet[3]]),
                String::from_utf8_lossy(&packet[4..])
            ),
            other => panic!("unexpected TFTP opcode {other}"),
        }
    }
    panic!("TFTP download of {name} did not finish");
}

/// A file of `len` bytes that shows misplaced blocks.
pub fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}
