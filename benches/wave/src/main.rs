//! `bootwave-wave`: a reboot wave of N simulated machines through the whole
//! network boot, against a server or against its own reflector.
//!
//! Every machine is a small state machine ([`node::Node`]); one event loop
//! drives them all over a few shared UDP sockets (and, with `--http`, one
//! TCP connection per HTTP download). The last line printed is
//! `wave: nodes N done D failed F time S s`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use bootwave_wave::http::{Download, Progress};
use bootwave_wave::node::{HttpResult, Node, Out, Plan, Received};
use bootwave_wave::report::DriverStats;
use bootwave_wave::{dhcp, net, reflector, report};

/// Simulates a reboot wave: N machines through firmware DHCP, the TFTP
/// download of the first file, iPXE DHCP, its script and the files the
/// script names, each machine fetching from its own leased address.
///
/// In relay mode the leased addresses must be local to this host (e.g.
/// `ip route add local 10.201.0.0/16 dev lo` inside the simulator's
/// namespace, with the server routing them back through the relay).
#[derive(Debug, Parser)]
#[command(name = "bootwave-wave", version)]
struct Args {
    /// Simulated machines.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    nodes: u32,
    /// The boot server (DHCP and, unless a reply names another, TFTP).
    /// With --reflector: where the reflector listens (default 127.0.0.2).
    #[arg(long)]
    server: Option<Ipv4Addr>,
    /// Relay address (giaddr): DHCP goes out from ADDR:67 and the server
    /// answers there. With --reflector: default 127.0.0.3.
    #[arg(long, conflicts_with = "iface")]
    relay: Option<Ipv4Addr>,
    /// On-link mode over one interface (one MAC per machine).
    #[arg(long)]
    iface: Option<String>,
    /// Fetch the script's `http://` URLs over HTTP (one TCP connection
    /// per file, from the machine's leased address); without it a script
    /// that names one fails its machine.
    #[arg(long)]
    http: bool,
    /// Longest time one HTTP download may take, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    http_timeout: u64,
    /// Machines powered on per second (0: all at once).
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Measure the simulator's own ceiling against its built-in reflector
    /// (on loopback).
    #[arg(long)]
    reflector: bool,
    /// Directory holding the files the machines fetch: each download is
    /// checked against it (size and CRC-32). Without it, sizes are checked
    /// against the server's `tsize`. The reflector serves these files.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// Per-machine timelines, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Whole wave's time limit, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u32,
    /// MAC of machine 0; machine i adds i to its low 24 bits.
    #[arg(long, default_value = "02:b0:00:00:00:00")]
    mac_base: String,
    /// Wait between OFFER and REQUEST, in milliseconds (OVMF waits about
    /// 4,000 for more offers).
    #[arg(long, default_value_t = 0)]
    offer_wait: u64,
    /// First DHCP retransmission timeout in milliseconds (doubling).
    #[arg(long, default_value_t = 1000)]
    dhcp_timeout: u64,
    /// TFTP retransmission timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    tftp_timeout: u64,
    /// Sends per packet before a stage fails.
    #[arg(long, default_value_t = 6)]
    tries: u32,
    /// Lose this percentage of datagrams at random, in each direction
    /// (a lossy link, where the kernel has no netem), 0–50.
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    loss: f64,
}

/// Random datagram loss at a fixed rate (xorshift64, fixed seed: the same
/// run loses the same share), counting what it lost.
struct Loss {
    threshold: u64,
    state: u64,
    lost: u64,
}

impl Loss {
    fn new(percent: f64) -> Self {
        Self {
            threshold: (percent / 100.0 * u64::MAX as f64) as u64,
            state: 0x9e37_79b9_7f4a_7c15,
            lost: 0,
        }
    }

    /// Whether the next datagram is lost (and then counted).
    fn hit(&mut self) -> bool {
        if self.threshold == 0 || bootwave_wave::xorshift64(&mut self.state) >= self.threshold {
            return false;
        }
        self.lost += 1;
        true
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bootwave-wave: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<_> = text.split(':').collect();
    ensure!(parts.len() == 6, "--mac-base {text}: not a MAC address");
    let mut mac = [0; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("--mac-base {text}"))?;
    }
    Ok(mac)
}

fn node_mac(base: [u8; 6], i: u32) -> [u8; 6] {
    let low = u32::from_be_bytes([0, base[3], base[4], base[5]]).wrapping_add(i) & 0xff_ffff;
    let b = low.to_be_bytes();
    [base[0], base[1], base[2], b[1], b[2], b[3]]
}

/// Files the reflector serves when no directory is given.
fn stand_ins() -> HashMap<String, Arc<[u8]>> {
    let blob = |size: usize, seed: u64| -> Arc<[u8]> {
        let mut s = seed | 1;
        (0..size)
            .map(|_| bootwave_wave::xorshift64(&mut s).to_le_bytes()[0])
            .collect()
    };
    let script = "#!ipxe\nimgfetch --name refind.conf tftp://${next-server}/refind.conf || goto retry\nimgfetch --name refind_x64.efi tftp://${next-server}/refind_x64.efi || goto retry\nchain refind_x64.efi\n";
    HashMap::from([
        ("ipxe.efi".to_owned(), blob(1 << 20, 1)),
        ("refind.pxe".to_owned(), Arc::from(script.as_bytes())),
        ("refind.conf".to_owned(), blob(2_000, 3)),
        ("refind_x64.efi".to_owned(), blob(270 * 1024, 4)),
    ])
}

fn load_files(dir: &std::path::Path) -> anyhow::Result<HashMap<String, Arc<[u8]>>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        files.insert(name, Arc::from(bytes));
    }
    Ok(files)
}

/// `recvmmsg` batches read per round of the event loop.
const MAX_BATCHES: usize = 16;

/// Client ports for TFTP, used in turn (transfer k of a machine uses
/// port k mod this), all shared by every machine. A machine makes five
/// transfers in one pass (the size probe, ipxe.efi, the script and its
/// two files): with more ports than that, none of them shares a port with
/// an earlier one, so a late OACK of an earlier transfer whose ending
/// ERROR was lost never starts a later one (real firmware takes a new
/// port each time). Only a script's retry, after its pause of seconds,
/// comes back to ports used before.
const TFTP_PORTS: usize = 8;

const DHCP: Token = Token(0);
/// Tokens of HTTP downloads start here (after the TFTP sockets').
const HTTP_BASE: usize = 1 + TFTP_PORTS;
/// How often downloads nobody waits for any more are closed.
const HTTP_SWEEP: Duration = Duration::from_millis(500);

fn run(args: &Args) -> anyhow::Result<bool> {
    if let Some(iface) = &args.iface {
        bail!(
            "--iface {iface}: on-link mode is not available in this version; run behind a relay address with --relay"
        );
    }
    ensure!(
        (0.0..=50.0).contains(&args.loss),
        "--loss {}: a percentage from 0 to 50",
        args.loss
    );
    ensure!(
        !(args.http && args.reflector),
        "--http: the reflector serves TFTP only; run --http against a server"
    );
    let (server, relay) = match (args.reflector, args.server, args.relay) {
        (true, s, r) => (
            s.unwrap_or(Ipv4Addr::new(127, 0, 0, 2)),
            r.unwrap_or(Ipv4Addr::new(127, 0, 0, 3)),
        ),
        (false, Some(s), Some(r)) => (s, r),
        (false, None, _) => bail!("--server ADDR is needed (or --reflector)"),
        (false, Some(_), None) => bail!("--relay ADDR is needed (or --reflector)"),
    };
    let base = parse_mac(&args.mac_base)?;
    let contents = match &args.files {
        Some(dir) => load_files(dir)?,
        None if args.reflector => stand_ins(),
        None => HashMap::new(),
    };
    let plan = Plan {
        relay,
        server,
        files: contents
            .iter()
            .map(|(k, v)| (k.clone(), (v.len() as u64, crc32fast::hash(v))))
            .collect(),
        offer_wait: Duration::from_millis(args.offer_wait),
        dhcp_timeout: Duration::from_millis(args.dhcp_timeout.max(1)),
        tftp_timeout: Duration::from_millis(args.tftp_timeout.max(1)),
        tries: args.tries.max(1),
        tftp_ports: TFTP_PORTS as u32,
        http: args.http,
        http_timeout: Duration::from_millis(args.http_timeout.max(1)),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let reflector = if args.reflector {
        let stop = stop.clone();
        let files = contents.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("reflector".into())
            .spawn(move || {
                let _ = ready_tx.send(());
                reflector::run(server, files, &stop)
            })?;
        let _ = ready_rx.recv();
        // Let it bind before the first DISCOVER.
        std::thread::sleep(Duration::from_millis(50));
        Some(handle)
    } else {
        None
    };

    let result = wave(args, &plan, base);
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = reflector {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.context("reflector")),
            Err(_) => bail!("the reflector thread panicked"),
        }
    }
    let (nodes, stats, elapsed) = result?;
    let summary = report::Summary::new(&nodes, elapsed, &stats);
    print!("{}", summary.table(args.reflector));
    if let Some(path) = &args.json {
        report::write_json(path, &nodes).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", summary.last_line());
    Ok(summary.failed == 0)
}

/// Where machines' packets go, and the driver's books on them: each
/// machine's output is sent (or queued, for HTTP), its timer re-armed and
/// its end counted by [`Sink::settle`].
struct Sink<'s> {
    dhcp_sock: &'s std::net::UdpSocket,
    tftp_socks: &'s [std::net::UdpSocket],
    server: Ipv4Addr,
    /// What the machine being driven produced.
    out: Vec<Out>,
    /// HTTP downloads asked for, by machine (TCP has its own losses:
    /// `--loss` is UDP only).
    http_out: Vec<(u32, Out)>,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    /// Earliest entry each machine has in `timers`.
    armed: Vec<Option<Instant>>,
    by_addr: HashMap<Ipv4Addr, u32>,
    stats: DriverStats,
    loss: Loss,
    /// Machines done or failed.
    over: u32,
}

impl Sink<'_> {
    /// Sends what `n` produced, re-arms its timer, and counts it over if it
    /// just ended (`was_over`: before the step).
    fn settle(&mut self, n: &mut Node, was_over: bool) {
        if let Some(a) = n.addr {
            self.by_addr.entry(a).or_insert(n.index);
        }
        for o in self.out.drain(..) {
            if matches!(o, Out::Http { .. }) {
                self.http_out.push((n.index, o));
                continue;
            }
            if self.loss.hit() {
                continue;
            }
            let res = match &o {
                Out::Dhcp(bytes) => self
                    .dhcp_sock
                    .send_to(bytes, SocketAddrV4::new(self.server, 67))
                    .map(drop),
                Out::Tftp {
                    port,
                    src,
                    dst,
                    bytes,
                } => net::send_from(
                    &self.tftp_socks[*port as usize % TFTP_PORTS],
                    *src,
                    *dst,
                    bytes,
                ),
                Out::Http { .. } => Ok(()),
            };
            match res {
                Ok(()) => self.stats.sent += 1,
                // A full buffer or a refused port: the retransmission
                // timers recover, as on a real link.
                Err(_) => self.stats.send_errors += 1,
            }
        }
        let d = n.poll_timeout();
        let slot = &mut self.armed[n.index as usize];
        if let Some(d) = d
            && *slot != Some(d)
        {
            // Only earlier deadlines need a new entry: a later one is
            // found when the earlier entry pops (it re-arms then).
            if slot.is_none_or(|a| d < a) {
                self.timers.push(Reverse((d, n.index)));
                *slot = Some(d);
            }
        }
        if !was_over && n.is_over() {
            self.over += 1;
        }
    }
}

fn wave(
    args: &Args,
    plan: &Plan,
    base: [u8; 6],
) -> anyhow::Result<(Vec<Node>, DriverStats, Duration)> {
    let dhcp_sock = net::udp(SocketAddrV4::new(plan.relay, 67), false)
        .context("the relay's DHCP socket (is --relay an address of this host?)")?;
    let tftp_socks = (0..TFTP_PORTS)
        .map(|_| net::udp(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), true))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut poll = Poll::new()?;
    poll.registry().register(
        &mut SourceFd(&dhcp_sock.as_raw_fd()),
        DHCP,
        Interest::READABLE,
    )?;
    for (k, s) in tftp_socks.iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&s.as_raw_fd()),
            Token(1 + k),
            Interest::READABLE,
        )?;
    }
    let mut events = Events::with_capacity(1024);

    let mut nodes: Vec<Node> = (0..args.nodes)
        .map(|i| Node::new(i, node_mac(base, i)))
        .collect();
    let by_mac: HashMap<[u8; 6], u32> = nodes.iter().map(|n| (n.mac, n.index)).collect();
    let mut sink = Sink {
        dhcp_sock: &dhcp_sock,
        tftp_socks: &tftp_socks,
        server: plan.server,
        out: Vec::new(),
        http_out: Vec::new(),
        timers: BinaryHeap::new(),
        armed: vec![None; nodes.len()],
        by_addr: HashMap::with_capacity(nodes.len()),
        stats: DriverStats::default(),
        loss: Loss::new(args.loss),
        over: 0,
    };
    let mut rx = net::Receiver::new();
    let mut grams = Vec::with_capacity(net::BATCH);
    let mut dhcp_buf = vec![0u8; 2048];

    let wave = Instant::now();
    let limit = wave + Duration::from_secs(u64::from(args.timeout));
    let mut started = 0u32;
    let mut more = false;
    let mut downloads: HashMap<usize, Download> = HashMap::new();
    let mut next_download = 0usize;
    let mut http_buf = vec![0u8; 64 * 1024];
    let mut last_sweep = wave;

    while sink.over < args.nodes {
        let now = Instant::now();
        if now >= limit {
            for n in &mut nodes {
                n.give_up(now, wave);
            }
            break;
        }
        // Power machines on, all at once or paced.
        let due = if args.rate == 0 {
            args.nodes
        } else {
            let secs = now.duration_since(wave).as_secs_f64();
            ((secs * f64::from(args.rate)) as u32 + 1).min(args.nodes)
        };
        while started < due {
            let n = &mut nodes[started as usize];
            let was_over = n.is_over();
            n.start(plan, now, wave, &mut sink.out);
            sink.settle(n, was_over);
            started += 1;
        }
        // Timers due.
        while let Some(&Reverse((at, i))) = sink.timers.peek() {
            if at > now {
                break;
            }
            sink.timers.pop();
            let n = &mut nodes[i as usize];
            if sink.armed[i as usize] == Some(at) {
                sink.armed[i as usize] = None;
            }
            match n.poll_timeout() {
                None => continue,
                // Moved later since: wait for the new deadline.
                Some(d) if d > now => {
                    if sink.armed[i as usize].is_none_or(|a| d < a) {
                        sink.timers.push(Reverse((d, i)));
                        sink.armed[i as usize] = Some(d);
                    }
                    continue;
                }
                Some(_) => {}
            }
            let was_over = n.is_over();
            n.on_timeout(plan, now, wave, &mut sink.out);
            sink.settle(n, was_over);
        }
        if sink.over >= args.nodes {
            break;
        }
        let mut wait = sink
            .timers
            .peek()
            .map_or(Duration::from_millis(50), |Reverse((at, _))| {
                at.saturating_duration_since(now)
            })
            .min(Duration::from_millis(50))
            .min(limit.saturating_duration_since(now));
        if started < args.nodes && args.rate > 0 {
            wait = wait.min(Duration::from_millis(1));
        }
        if more {
            wait = Duration::ZERO;
        }
        // Downloads the machines asked for: connect and register.
        let mut http_done: Vec<(u32, u32, HttpResult)> = Vec::new();
        for (node, o) in sink.http_out.drain(..) {
            let Out::Http { id, src, dst, path } = o else {
                continue;
            };
            let key = next_download;
            next_download += 1;
            let started = Download::connect(node, id, SocketAddrV4::new(src, 0), dst, &path)
                .and_then(|mut d| {
                    poll.registry().register(
                        d.stream(),
                        Token(HTTP_BASE + key),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    Ok(d)
                });
            match started {
                Ok(d) => {
                    sink.stats.sent += 1;
                    downloads.insert(key, d);
                }
                Err(e) => http_done.push((node, id, HttpResult::Failed(format!("connect: {e}")))),
            }
        }
        if !http_done.is_empty() {
            wait = Duration::ZERO;
        }
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        more = false;
        // HTTP downloads that can move.
        for event in &events {
            let Some(key) = event.token().0.checked_sub(HTTP_BASE) else {
                continue;
            };
            let Some(d) = downloads.get_mut(&key) else {
                continue;
            };
            if let Progress::Finished(result) = d.drive(&mut http_buf)
                && let Some(mut d) = downloads.remove(&key)
            {
                let _ = poll.registry().deregister(d.stream());
                sink.stats.received += 1;
                http_done.push((d.node, d.id, result));
            }
        }
        let now_http = Instant::now();
        for (i, id, result) in http_done {
            let node = &mut nodes[i as usize];
            let was_over = node.is_over();
            node.on_http(id, result, plan, now_http, wave, &mut sink.out);
            sink.settle(node, was_over);
        }
        if now_http.duration_since(last_sweep) >= HTTP_SWEEP {
            // A machine that gave a download up (its timeout) or moved on.
            last_sweep = now_http;
            downloads.retain(|_, d| {
                let keep = nodes[d.node as usize].http_waiting() == Some(d.id);
                if !keep {
                    let _ = poll.registry().deregister(d.stream());
                }
                keep
            });
        }
        let mut drained = vec![false; tftp_socks.len()];
        let now = Instant::now();
        // DHCP replies, by MAC.
        loop {
            let n = match dhcp_sock.recv_from(&mut dhcp_buf) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e).context("DHCP receive"),
            };
            sink.stats.received += 1;
            if sink.loss.hit() {
                continue;
            }
            let Some(reply) = dhcp::parse_reply(&dhcp_buf[..n]) else {
                sink.stats.stray += 1;
                continue;
            };
            let Some(&i) = by_mac.get(&reply.chaddr) else {
                sink.stats.stray += 1;
                continue;
            };
            let node = &mut nodes[i as usize];
            let was_over = node.is_over();
            node.on_dhcp(&reply, plan, now, wave, &mut sink.out);
            sink.settle(node, was_over);
        }
        // TFTP, by the address each datagram was sent to; a bounded number
        // of batches per round, so that timers and DHCP get their turn.
        for round in 0..MAX_BATCHES * tftp_socks.len() + 1 {
            if round == MAX_BATCHES * tftp_socks.len() {
                more = true;
                break;
            }
            let slot = round % tftp_socks.len();
            let sock = &tftp_socks[slot];
            if drained[round % tftp_socks.len()] {
                if drained.iter().all(|&d| d) {
                    break;
                }
                continue;
            }
            match rx.recv(sock, &mut grams) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e).context("TFTP receive"),
            }
            if grams.is_empty() {
                drained[round % tftp_socks.len()] = true;
                continue;
            }
            let now = Instant::now();
            for g in &grams {
                sink.stats.received += 1;
                if sink.loss.hit() {
                    continue;
                }
                let Some(&i) = sink.by_addr.get(&g.to) else {
                    sink.stats.stray += 1;
                    continue;
                };
                let node = &mut nodes[i as usize];
                let was_over = node.is_over();
                let got = Received {
                    port: slot as u32,
                    from: g.from,
                    bytes: &rx.bufs[g.slot][..g.len],
                };
                node.on_tftp(got, plan, now, wave, &mut sink.out);
                sink.settle(node, was_over);
            }
        }
    }
    sink.stats.lost = sink.loss.lost;
    Ok((nodes, sink.stats, wave.elapsed()))
}
