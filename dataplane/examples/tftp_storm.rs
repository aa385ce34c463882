//! A storm of lock-step TFTP downloads (one ACK per block, as iPXE and
//! OVMF without a window fetch), all at once from one host, for
//! benchmarking a TFTP server: aggregate MB/s, the server's CPU per
//! transfer (`/proc/PID/stat` user + system time, waited-for children
//! included, so a forking server is measured whole) and its RSS per
//! concurrent transfer (the server and its children, sampled every
//! 50 ms).
//!
//! ```text
//! tftp_storm SERVER:PORT FILE --size BYTES [--transfers N] [--concurrency N]
//!            [--blksize N] [--pid SERVER_PID] [--deadline SECS]
//! ```
//!
//! One thread, one socket per transfer on a mio poll. A transfer resends
//! its last packet after 1 s without an answer and fails after 5 resends.
//! Prints one JSON object. `benches/tftp-storm.sh` runs it against the
//! data plane on each backend in a network namespace.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

const RESEND_AFTER: Duration = Duration::from_secs(1);
const MAX_RESENDS: u32 = 5;

#[derive(Debug)]
struct Args {
    server: SocketAddr,
    file: String,
    size: u64,
    transfers: usize,
    concurrency: usize,
    blksize: usize,
    pid: Option<u32>,
    deadline: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let server = it.next().context("SERVER:PORT")?.parse()?;
    let file = it.next().context("FILE")?;
    let mut args = Args {
        server,
        file,
        size: 0,
        transfers: 1000,
        concurrency: 1000,
        blksize: 1432,
        pid: None,
        deadline: Duration::from_secs(120),
    };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size" => args.size = value.parse()?,
            "--transfers" => args.transfers = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--blksize" => args.blksize = value.parse()?,
            "--pid" => args.pid = Some(value.parse()?),
            "--deadline" => args.deadline = Duration::from_secs(value.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    if args.size == 0 {
        bail!("--size BYTES is required (the file's length, checked per transfer)");
    }
    Ok(args)
}

/// One download in flight.
struct Transfer {
    socket: UdpSocket,
    /// The server's transfer port, once its first DATA came.
    peer: Option<SocketAddr>,
    /// The block expected next.
    next: u16,
    received: u64,
    last: Vec<u8>,
    sent_at: Instant,
    resends: u32,
}

#[derive(Debug, Default)]
struct Totals {
    ok: u64,
    failed: u64,
    wrong_size: u64,
    resends: u64,
    bytes: u64,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let cpu_before = args.pid.map(cpu_ticks).transpose()?;
    let rss_before = args.pid.map(tree_rss_kib).unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = args.pid.map(|pid| {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(tree_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    });
    let started = Instant::now();
    let totals = storm(&args)?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(thread) = sampler {
        let _ = thread.join();
    }
    let cpu = match (args.pid, cpu_before) {
        (Some(pid), Some(before)) => {
            let ticks = cpu_ticks(pid)?.saturating_sub(before);
            Some(ticks as f64 / clock_ticks_per_sec())
        }
        _ => None,
    };
    let peak = peak.load(Ordering::Relaxed);
    let per_transfer_ms = cpu.map(|c| c * 1e3 / totals.ok.max(1) as f64);
    let rss_per_kib = (peak.saturating_sub(rss_before)) as f64 / args.concurrency.max(1) as f64;
    println!(
        "{{\"transfers\": {}, \"ok\": {}, \"failed\": {}, \"wrong_size\": {}, \"resends\": {}, \
         \"secs\": {secs:.2}, \"mb_per_s\": {:.1}, \"server_cpu_s\": {}, \"cpu_ms_per_transfer\": {}, \
         \"rss_before_kib\": {rss_before}, \"rss_peak_kib\": {peak}, \"rss_kib_per_concurrent\": {rss_per_kib:.1}}}",
        args.transfers,
        totals.ok,
        totals.failed,
        totals.wrong_size,
        totals.resends,
        totals.bytes as f64 / secs / 1e6,
        cpu.map_or("null".to_owned(), |c| format!("{c:.2}")),
        per_transfer_ms.map_or("null".to_owned(), |c| format!("{c:.3}")),
    );
    if totals.ok != args.transfers as u64 {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs every transfer, `concurrency` at a time.
fn storm(args: &Args) -> anyhow::Result<Totals> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Option<Transfer>> = (0..args.concurrency).map(|_| None).collect();
    let mut free: VecDeque<usize> = (0..args.concurrency).collect();
    let mut totals = Totals::default();
    let mut launched = 0;
    let mut running = 0;
    let mut buf = vec![0u8; args.blksize + 4 + 64];
    let deadline = Instant::now() + args.deadline;
    let rrq = request(&args.file, args.blksize);
    loop {
        while launched < args.transfers
            && let Some(slot) = free.pop_front()
        {
            let local: SocketAddr = if args.server.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            let mut socket = UdpSocket::bind(local)?;
            poll.registry()
                .register(&mut socket, Token(slot), Interest::READABLE)?;
            socket.send_to(&rrq, args.server)?;
            slots[slot] = Some(Transfer {
                socket,
                peer: None,
                next: 1,
                received: 0,
                last: rrq.clone(),
                sent_at: Instant::now(),
                resends: 0,
            });
            launched += 1;
            running += 1;
        }
        if running == 0 {
            return Ok(totals);
        }
        if Instant::now() >= deadline {
            totals.failed += (args.transfers - launched + running) as u64;
            return Ok(totals);
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for event in &events {
            let slot = event.token().0;
            let done = match slots.get_mut(slot).and_then(Option::as_mut) {
                Some(t) => on_readable(t, &mut buf, args, &mut totals)?,
                None => false,
            };
            if done && let Some(mut t) = slots[slot].take() {
                poll.registry().deregister(&mut t.socket)?;
                free.push_back(slot);
                running -= 1;
            }
        }
        let now = Instant::now();
        for (slot, entry) in slots.iter_mut().enumerate() {
            let Some(t) = entry else {
                continue;
            };
            if now.duration_since(t.sent_at) < RESEND_AFTER {
                continue;
            }
            if t.resends >= MAX_RESENDS {
                totals.failed += 1;
                if let Some(mut t) = entry.take() {
                    poll.registry().deregister(&mut t.socket)?;
                }
                free.push_back(slot);
                running -= 1;
                continue;
            }
            t.resends += 1;
            totals.resends += 1;
            t.sent_at = now;
            t.socket.send_to(&t.last, t.peer.unwrap_or(args.server))?;
        }
    }
}

/// Drains one socket; `true` once its transfer ended (either way).
fn on_readable(
    t: &mut Transfer,
    buf: &mut [u8],
    args: &Args,
    totals: &mut Totals,
) -> io::Result<bool> {
    loop {
        let (n, from) = match t.socket.recv_from(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        let packet = &buf[..n];
        if packet.len() < 4 || t.peer.is_some_and(|p| p != from) {
            continue;
        }
        match u16::from_be_bytes([packet[0], packet[1]]) {
            3 => {
                let block = u16::from_be_bytes([packet[2], packet[3]]);
                if block != t.next {
                    continue;
                }
                t.peer = Some(from);
                let len = packet.len() - 4;
                t.received += len as u64;
                t.last = vec![0, 4, packet[2], packet[3]];
                t.socket.send_to(&t.last, from)?;
                t.sent_at = Instant::now();
                t.resends = 0;
                t.next = t.next.wrapping_add(1);
                if len < args.blksize {
                    totals.bytes += t.received;
                    if t.received == args.size {
                        totals.ok += 1;
                    } else {
                        totals.wrong_size += 1;
                        totals.failed += 1;
                    }
                    return Ok(true);
                }
            }
            6 => {
                // OACK: acknowledge with ACK 0.
                t.peer = Some(from);
                t.last = vec![0, 4, 0, 0];
                t.socket.send_to(&t.last, from)?;
                t.sent_at = Instant::now();
            }
            5 => {
                totals.failed += 1;
                return Ok(true);
            }
            _ => {}
        }
    }
}

/// An octet RRQ asking `blksize` (none when it is 512).
fn request(file: &str, blksize: usize) -> Vec<u8> {
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(file.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    if blksize != 512 {
        rrq.extend_from_slice(format!("blksize\0{blksize}\0").as_bytes());
    }
    rrq
}

/// utime + stime + cutime + cstime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 of the whole line, i.e. index 11 after the name.
    let ticks = fields
        .get(11..15)
        .context("/proc/PID/stat fields")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks)
}

fn clock_ticks_per_sec() -> f64 {
    // Linux reports /proc times in USER_HZ, 100 on every architecture
    // this runs on.
    100.0
}

/// VmRSS of `pid` and all its descendants, in KiB (0 when gone).
fn tree_rss_kib(pid: u32) -> u64 {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    rss + children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .map(tree_rss_kib)
        .sum::<u64>()
}
