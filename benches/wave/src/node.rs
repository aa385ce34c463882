//! One simulated machine through the whole boot flow, sans I/O: firmware
//! DHCP, the firmware's size probe and download of the first file, iPXE
//! DHCP, the script, then every file the script names (over TFTP, or over
//! HTTP when the run allows it: the driver then does the TCP and hands the
//! node what came back).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::dhcp::{self, Client, Kind, Reply, ReplyKind};
use crate::tftp::{self, Ask, End, Transfer};

/// The stages a machine goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    DhcpFirmware,
    FirmwareFile,
    DhcpIpxe,
    Script,
    BootFiles,
}

impl Stage {
    pub const ALL: [Self; 5] = [
        Self::DhcpFirmware,
        Self::FirmwareFile,
        Self::DhcpIpxe,
        Self::Script,
        Self::BootFiles,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::DhcpFirmware => "dhcp_firmware",
            Self::FirmwareFile => "firmware_file",
            Self::DhcpIpxe => "dhcp_ipxe",
            Self::Script => "script",
            Self::BootFiles => "boot_files",
        }
    }
}

/// What every machine shares: where the server is, timing, known files.
#[derive(Debug)]
pub struct Plan {
    /// Relay address (giaddr) the DHCP messages carry.
    pub relay: Ipv4Addr,
    /// TFTP server used when a reply names none (`siaddr` unset).
    pub server: Ipv4Addr,
    /// Expected files: name → (size, CRC-32). Files not listed are checked
    /// against the size the server announced (`tsize`), when it did.
    pub files: HashMap<String, (u64, u32)>,
    /// Wait between OFFER and REQUEST (OVMF waits about 4 s for more
    /// offers; zero for load runs).
    pub offer_wait: Duration,
    pub dhcp_timeout: Duration,
    pub tftp_timeout: Duration,
    pub tries: u32,
    /// Client ports the machines take in turn, one per transfer.
    pub tftp_ports: u32,
    /// Fetch the script's `http://` URLs over HTTP (otherwise a script
    /// that names one fails the machine).
    pub http: bool,
    /// Longest an HTTP download may take.
    pub http_timeout: Duration,
}

/// A packet to send.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// To the DHCP server, from the relay.
    Dhcp(Vec<u8>),
    /// A TFTP packet from the machine's leased address.
    Tftp {
        /// Which of the client's ports: each transfer takes the next one,
        /// as firmware opens a new port per transfer.
        port: u32,
        src: Ipv4Addr,
        dst: SocketAddrV4,
        bytes: Vec<u8>,
    },
    /// An HTTP GET of `path` from the machine's leased address; its answer
    /// comes back through [`Node::on_http`] with the same `id`.
    Http {
        id: u32,
        src: Ipv4Addr,
        dst: SocketAddrV4,
        path: String,
    },
}

/// What an HTTP download brought, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResult {
    /// A whole response: its status, body size and CRC-32, and the
    /// `Content-Length` it announced.
    Done {
        status: u16,
        size: u64,
        crc: u32,
        length: Option<u64>,
    },
    /// The connection failed or ended early.
    Failed(String),
}

/// A file the script fetches, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BootFile {
    path: String,
    /// HTTP from this server; `None`: TFTP from the next server.
    http: Option<SocketAddrV4>,
}

/// A TFTP datagram for a machine: the client port it reached (its index
/// in turn, see [`Out::Tftp`]), its source and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub port: u32,
    pub from: SocketAddrV4,
    pub bytes: &'a [u8],
}

#[derive(Debug)]
enum Phase {
    Idle,
    Dhcp {
        client: Client,
        kind: Kind,
        tries: u32,
        /// When the OFFER was taken and the REQUEST is due.
        request_at: Option<Instant>,
    },
    Tftp(Box<Transfer>),
    /// Waiting for the driver's HTTP download `id` of `path`.
    Http {
        id: u32,
        path: String,
    },
    /// The script's failure branch: it waits, then fetches its files again.
    Sleep,
    Done,
    Failed,
}

#[derive(Debug)]
pub struct Node {
    pub index: u32,
    pub mac: [u8; 6],
    xid: u32,
    phase: Phase,
    deadline: Option<Instant>,
    started: Option<Instant>,
    /// Leased address, from the first ACK.
    pub addr: Option<Ipv4Addr>,
    next_server: Ipv4Addr,
    /// Every file the script fetches, in order.
    boot_list: Vec<BootFile>,
    /// Index in `boot_list` of the next file to fetch.
    next_file: usize,
    /// The script's pause before it tries again after a failed fetch
    /// (`|| goto …` then `sleep N`), if it has one.
    retry_after: Option<Duration>,
    /// Times the script started over after a failed fetch.
    pub script_retries: u32,
    firmware_file: Option<String>,
    script_file: Option<String>,
    /// The firmware's size probe is behind it.
    probed: bool,
    /// Transfers started.
    transfers: u32,
    /// Stage starts, as offsets from the wave's start.
    pub marks: Vec<(Stage, Duration)>,
    pub finished: Option<Duration>,
    pub cause: Option<String>,
    pub retransmits: u32,
    pub bytes: u64,
    rng: u64,
}

impl Node {
    pub fn new(index: u32, mac: [u8; 6]) -> Self {
        let rng = u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        Self {
            index,
            mac,
            xid: 0,
            phase: Phase::Idle,
            deadline: None,
            started: None,
            addr: None,
            next_server: Ipv4Addr::UNSPECIFIED,
            boot_list: Vec::new(),
            next_file: 0,
            retry_after: None,
            script_retries: 0,
            firmware_file: None,
            script_file: None,
            probed: false,
            transfers: 0,
            marks: Vec::new(),
            finished: None,
            cause: None,
            retransmits: 0,
            bytes: 0,
            rng,
        }
    }

    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// When [`Node::on_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn random(&mut self) -> u64 {
        crate::xorshift64(&mut self.rng)
    }

    fn mark(&mut self, stage: Stage, now: Instant, wave: Instant) {
        if self.marks.last().map(|m| m.0) != Some(stage) {
            self.marks
                .push((stage, now.saturating_duration_since(wave)));
        }
    }

    fn fail(&mut self, cause: String, now: Instant, wave: Instant) {
        self.phase = Phase::Failed;
        self.deadline = None;
        self.cause = Some(cause);
        self.finished = Some(now.saturating_duration_since(wave));
    }

    /// Powers the machine on.
    pub fn start(&mut self, plan: &Plan, now: Instant, wave: Instant, out: &mut Vec<Out>) {
        self.started = Some(now);
        self.mark(Stage::DhcpFirmware, now, wave);
        self.dhcp_begin(Client::Firmware, plan, now, out);
    }

    fn dhcp_begin(&mut self, client: Client, plan: &Plan, now: Instant, out: &mut Vec<Out>) {
        // Both clients pick a fresh transaction id.
        self.xid = (self.random() as u32) ^ self.index.rotate_left(16);
        self.phase = Phase::Dhcp {
            client,
            kind: Kind::Discover,
            tries: 1,
            request_at: None,
        };
        self.dhcp_send(plan, now, out);
    }

    fn dhcp_timeout(&mut self, plan: &Plan, tries: u32) -> Duration {
        // Doubling, as both clients do, with up to a quarter of jitter so a
        // wave's retransmissions spread out.
        let base = plan.dhcp_timeout * 2u32.pow(tries.saturating_sub(1).min(4));
        let jitter = base.as_millis() as u64 / 4;
        base + Duration::from_millis(self.random() % jitter.max(1))
    }

    fn dhcp_send(&mut self, plan: &Plan, now: Instant, out: &mut Vec<Out>) {
        let Phase::Dhcp {
            client,
            kind,
            tries,
            ..
        } = self.phase
        else {
            return;
        };
        let secs = self
            .started
            .map_or(0, |s| now.saturating_duration_since(s).as_secs())
            .min(u64::from(u16::MAX)) as u16;
        out.push(Out::Dhcp(dhcp::build(
            client, kind, self.mac, self.xid, secs, plan.relay,
        )));
        self.deadline = Some(now + self.dhcp_timeout(plan, tries));
    }

    /// A DHCP reply addressed to this machine's MAC.
    pub fn on_dhcp(
        &mut self,
        reply: &Reply,
        plan: &Plan,
        now: Instant,
        wave: Instant,
        out: &mut Vec<Out>,
    ) {
        let Phase::Dhcp {
            client,
            kind,
            request_at,
            ..
        } = self.phase
        else {
            return;
        };
        if reply.xid != self.xid {
            return;
        }
        match (kind, reply.kind) {
            (Kind::Discover, ReplyKind::Offer) if request_at.is_none() => {
                let server = reply.server.unwrap_or(plan.server);
                let request = Kind::Request {
                    addr: reply.yiaddr,
                    server,
                };
                if plan.offer_wait.is_zero() {
                    self.phase = Phase::Dhcp {
                        client,
                        kind: request,
                        tries: 1,
                        request_at: None,
                    };
                    self.dhcp_send(plan, now, out);
                } else {
                    let at = now + plan.offer_wait;
                    self.phase = Phase::Dhcp {
                        client,
                        kind: request,
                        tries: 0,
                        request_at: Some(at),
                    };
                    self.deadline = Some(at);
                }
            }
            (Kind::Request { addr, .. }, ReplyKind::Ack) if request_at.is_none() => {
                if reply.yiaddr != addr {
                    self.fail(
                        format!("ack for {} after offer of {addr}", reply.yiaddr),
                        now,
                        wave,
                    );
                    return;
                }
                self.addr = Some(addr);
                self.next_server = if reply.next_server.is_unspecified() {
                    plan.server
                } else {
                    reply.next_server
                };
                let Some(file) = reply.file.clone() else {
                    self.fail(format!("{client:?} ack names no boot file"), now, wave);
                    return;
                };
                match client {
                    Client::Firmware => {
                        self.firmware_file = Some(file.clone());
                        self.mark(Stage::FirmwareFile, now, wave);
                        self.fetch(&file, Ask::FIRMWARE_PROBE, plan, now, out);
                    }
                    Client::Ipxe => {
                        self.script_file = Some(file.clone());
                        self.mark(Stage::Script, now, wave);
                        self.fetch(&file, Ask::IPXE, plan, now, out);
                    }
                }
            }
            (Kind::Request { .. }, ReplyKind::Nak) => {
                self.fail(format!("{client:?} request refused (NAK)"), now, wave);
            }
            _ => {}
        }
    }

    /// Fetches the next file of the script's list.
    fn fetch_boot_file(&mut self, next: BootFile, plan: &Plan, now: Instant, out: &mut Vec<Out>) {
        let Some(dst) = next.http else {
            return self.fetch(&next.path, Ask::IPXE, plan, now, out);
        };
        let Some(src) = self.addr else {
            return;
        };
        self.transfers += 1;
        let id = self.transfers;
        self.deadline = Some(now + plan.http_timeout);
        out.push(Out::Http {
            id,
            src,
            dst,
            path: next.path.clone(),
        });
        self.phase = Phase::Http {
            id,
            path: next.path,
        };
    }

    /// The id of the HTTP download this machine waits for, if any (the
    /// driver drops connections nobody waits for).
    pub fn http_waiting(&self) -> Option<u32> {
        match self.phase {
            Phase::Http { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The answer to the HTTP download `id`.
    pub fn on_http(
        &mut self,
        id: u32,
        result: HttpResult,
        plan: &Plan,
        now: Instant,
        wave: Instant,
        out: &mut Vec<Out>,
    ) {
        let Phase::Http { id: want, path } = &self.phase else {
            return;
        };
        if *want != id {
            return;
        }
        let path = path.clone();
        self.phase = Phase::Idle;
        match result {
            HttpResult::Done {
                status: 200,
                size,
                crc,
                length,
            } => self.file_done(path, size, crc, length, Vec::new(), plan, now, wave, out),
            HttpResult::Done { status, .. } => {
                self.file_failed(&path, format!("http {status} for {path}"), now, wave);
            }
            HttpResult::Failed(why) => {
                self.file_failed(&path, format!("http {why} for {path}"), now, wave);
            }
        }
    }

    fn fetch(&mut self, file: &str, ask: Ask, plan: &Plan, now: Instant, out: &mut Vec<Out>) {
        let Some(src) = self.addr else {
            return;
        };
        let keep = self.script_file.as_deref() == Some(file);
        let (t, rrq) = Transfer::start(
            file,
            ask,
            keep,
            SocketAddrV4::new(self.next_server, 69),
            plan.tftp_timeout,
            plan.tries,
            now,
        );
        self.deadline = Some(t.deadline());
        self.phase = Phase::Tftp(Box::new(t));
        self.transfers += 1;
        out.push(Out::Tftp {
            port: self.transfers,
            src,
            dst: SocketAddrV4::new(self.next_server, 69),
            bytes: rrq,
        });
    }

    /// A TFTP packet sent to this machine's address, on client port
    /// `port` (its index in turn, see [`Out::Tftp`]).
    pub fn on_tftp(
        &mut self,
        got: Received<'_>,
        plan: &Plan,
        now: Instant,
        wave: Instant,
        out: &mut Vec<Out>,
    ) {
        let Phase::Tftp(t) = &mut self.phase else {
            return;
        };
        // A late packet of an earlier transfer (a repeated OACK or last
        // block) reaches the port that transfer used: not this one's.
        if got.port % plan.tftp_ports.max(1) != self.transfers % plan.tftp_ports.max(1) {
            return;
        }
        let step = t.on_packet(got.from, got.bytes, now);
        self.deadline = Some(t.deadline());
        self.after_step(step, plan, now, wave, out);
    }

    fn after_step(
        &mut self,
        step: tftp::Step,
        plan: &Plan,
        now: Instant,
        wave: Instant,
        out: &mut Vec<Out>,
    ) {
        if let (Some((bytes, dst)), Some(src)) = (step.send, self.addr) {
            out.push(Out::Tftp {
                port: self.transfers,
                src,
                dst,
                bytes,
            });
        }
        let Some(end) = step.end else {
            return;
        };
        let Phase::Tftp(t) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        self.retransmits += t.retransmits;
        let file = t.file().to_owned();
        match end {
            End::Failed(cause) => self.file_failed(&file, cause, now, wave),
            End::Done {
                size,
                crc,
                tsize,
                kept,
            } => self.file_done(file, size, crc, tsize, kept, plan, now, wave, out),
        }
    }

    /// A fetch of `file` failed: the script's retry loop takes it (a boot
    /// file, when the script has one), or the machine fails.
    fn file_failed(&mut self, file: &str, cause: String, now: Instant, wave: Instant) {
        let boot_file = self.script_file.is_some() && self.script_file.as_deref() != Some(file);
        if let Some(pause) = self.retry_after
            && boot_file
            && self.script_retries < MAX_SCRIPT_RETRIES
        {
            // As the script does: wait, then fetch its list again.
            self.script_retries += 1;
            self.phase = Phase::Sleep;
            self.deadline = Some(now + pause);
            self.next_file = 0;
            return;
        }
        self.fail(cause, now, wave);
    }

    /// `file` came whole (`size` bytes, `crc`; `tsize` the size the server
    /// announced; `kept` its bytes when it is the script): checks it and
    /// goes on to the next step.
    #[allow(clippy::too_many_arguments)]
    fn file_done(
        &mut self,
        file: String,
        size: u64,
        crc: u32,
        tsize: Option<u64>,
        kept: Vec<u8>,
        plan: &Plan,
        now: Instant,
        wave: Instant,
        out: &mut Vec<Out>,
    ) {
        let probe = self.firmware_file.as_deref() == Some(file.as_str())
            && self.script_file.is_none()
            && !self.probed;
        if probe {
            self.probed = true;
            return self.fetch(&file, Ask::FIRMWARE, plan, now, out);
        }
        if let Err(cause) = check(&file, size, crc, tsize, plan) {
            return self.fail(cause, now, wave);
        }
        self.bytes += size;
        if self.firmware_file.as_deref() == Some(file.as_str()) && self.script_file.is_none() {
            // The firmware started iPXE, which asks DHCP again.
            self.mark(Stage::DhcpIpxe, now, wave);
            return self.dhcp_begin(Client::Ipxe, plan, now, out);
        }
        if self.script_file.as_deref() == Some(file.as_str()) {
            let text = String::from_utf8_lossy(&kept).into_owned();
            let mut files = Vec::new();
            for (scheme, host, path) in tftp::script_urls(&text) {
                match self.boot_file(&scheme, &host, path, plan) {
                    Ok(f) => files.push(f),
                    Err(cause) => return self.fail(cause, now, wave),
                }
            }
            self.boot_list = files;
            self.next_file = 0;
            self.retry_after = script_retry(&text);
        }
        match self.next_boot_file() {
            Some(next) => {
                self.mark(Stage::BootFiles, now, wave);
                self.fetch_boot_file(next, plan, now, out);
            }
            None => {
                self.phase = Phase::Done;
                self.deadline = None;
                self.finished = Some(now.saturating_duration_since(wave));
            }
        }
    }

    /// How a URL of the script is fetched: TFTP from the next server, or
    /// HTTP from the host it names (`${next-server}` is the next server).
    fn boot_file(
        &self,
        scheme: &str,
        host: &str,
        path: String,
        plan: &Plan,
    ) -> Result<BootFile, String> {
        match scheme {
            "tftp" => Ok(BootFile { path, http: None }),
            "http" if plan.http => {
                let (name, port) = match host.rsplit_once(':') {
                    Some((name, port)) => (
                        name,
                        port.parse()
                            .map_err(|_| format!("the script's http://{host}/: bad port"))?,
                    ),
                    None => (host, 80),
                };
                let addr = if name == "${next-server}" {
                    self.next_server
                } else {
                    name.parse()
                        .map_err(|_| format!("the script's http://{host}/ names no IPv4 address"))?
                };
                Ok(BootFile {
                    path,
                    http: Some(SocketAddrV4::new(addr, port)),
                })
            }
            _ => Err(format!(
                "the script fetches {scheme}://…/{path}, which this run does not speak (HTTP needs --http)"
            )),
        }
    }

    /// The deadline passed.
    pub fn on_timeout(&mut self, plan: &Plan, now: Instant, wave: Instant, out: &mut Vec<Out>) {
        if self.deadline.is_none_or(|d| d > now) {
            return;
        }
        match &mut self.phase {
            Phase::Dhcp {
                client,
                kind,
                tries,
                request_at,
            } => {
                if request_at.take().is_some() {
                    *tries = 1;
                    return self.dhcp_send(plan, now, out);
                }
                if *tries >= plan.tries {
                    let what = match kind {
                        Kind::Discover => "no offer",
                        Kind::Request { .. } => "no ack",
                    };
                    let client = *client;
                    return self.fail(format!("{client:?} dhcp: {what}"), now, wave);
                }
                *tries += 1;
                self.retransmits += 1;
                // A client that got no ACK starts over with a DISCOVER.
                if matches!(kind, Kind::Request { .. }) && *tries > 2 {
                    *kind = Kind::Discover;
                }
                self.dhcp_send(plan, now, out);
            }
            Phase::Tftp(t) => {
                let step = t.on_timeout(now);
                self.deadline = Some(t.deadline());
                self.after_step(step, plan, now, wave, out);
            }
            Phase::Http { path, .. } => {
                let path = path.clone();
                self.phase = Phase::Idle;
                self.deadline = None;
                self.file_failed(&path, format!("http timeout for {path}"), now, wave);
            }
            Phase::Sleep => match self.next_boot_file() {
                Some(next) => self.fetch_boot_file(next, plan, now, out),
                None => self.deadline = None,
            },
            Phase::Idle | Phase::Done | Phase::Failed => self.deadline = None,
        }
    }

    /// The next file of the script's list, if any is left.
    fn next_boot_file(&mut self) -> Option<BootFile> {
        let file = self.boot_list.get(self.next_file).cloned()?;
        self.next_file += 1;
        Some(file)
    }

    /// The wave's time ran out.
    pub fn give_up(&mut self, now: Instant, wave: Instant) {
        if !self.is_over() {
            let stage = self.marks.last().map_or("start", |m| m.0.name());
            self.fail(format!("wave timeout in {stage}"), now, wave);
        }
    }
}

/// Times a node's script starts over after a failed fetch before the
/// node counts as failed (a real one would go on).
const MAX_SCRIPT_RETRIES: u32 = 3;

/// The pause of a script that retries its fetches: it has a failure
/// branch (`|| goto LABEL`) and a `sleep N` (seconds) line.
fn script_retry(script: &str) -> Option<Duration> {
    if !script.contains("|| goto") {
        return None;
    }
    script.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("sleep ")?;
        rest.trim().parse().ok().map(Duration::from_secs)
    })
}

fn check(file: &str, size: u64, crc: u32, tsize: Option<u64>, plan: &Plan) -> Result<(), String> {
    if let Some(&(want, want_crc)) = plan.files.get(file) {
        if size != want {
            return Err(format!("{file}: {size} bytes, expected {want}"));
        }
        if crc != want_crc {
            return Err(format!("{file}: checksum differs"));
        }
    } else if let Some(t) = tsize
        && t != size
    {
        return Err(format!("{file}: {size} bytes, the server announced {t}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(http: bool) -> Plan {
        Plan {
            relay: Ipv4Addr::new(10, 0, 0, 2),
            server: Ipv4Addr::new(10, 0, 0, 1),
            files: HashMap::new(),
            offer_wait: Duration::ZERO,
            dhcp_timeout: Duration::from_secs(1),
            tftp_timeout: Duration::from_secs(1),
            tries: 3,
            tftp_ports: 8,
            http,
            http_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn script_urls_become_tftp_or_http_fetches() {
        let mut node = Node::new(0, [2, 0, 0, 0, 0, 1]);
        node.next_server = Ipv4Addr::new(10, 0, 0, 1);
        let http = plan(true);
        let f = |node: &Node, scheme: &str, host: &str, plan: &Plan| {
            node.boot_file(scheme, host, "refind_x64.efi".into(), plan)
        };
        assert_eq!(
            f(&node, "tftp", "${next-server}", &http).map(|b| b.http),
            Ok(None)
        );
        assert_eq!(
            f(&node, "http", "${next-server}", &http).map(|b| b.http),
            Ok(Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80)))
        );
        assert_eq!(
            f(&node, "http", "10.0.0.9:8080", &http).map(|b| b.http),
            Ok(Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 8080)))
        );
        assert!(f(&node, "http", "boot.example", &http).is_err());
        // Without --http an HTTP script fails its machine, saying why.
        let tftp_only = plan(false);
        let err = f(&node, "http", "${next-server}", &tftp_only).expect_err("no --http");
        assert!(err.contains("needs --http"), "{err}");
    }

    #[test]
    fn a_failed_boot_file_starts_the_scripts_list_over_after_its_pause() {
        let mut node = Node::new(0, [2, 0, 0, 0, 0, 1]);
        let file = |path: &str| BootFile {
            path: path.into(),
            http: None,
        };
        node.script_file = Some("refind.pxe".into());
        node.boot_list = vec![file("refind.conf"), file("refind_x64.efi")];
        node.retry_after = Some(Duration::from_secs(15));
        assert_eq!(
            node.next_boot_file().map(|f| f.path),
            Some("refind.conf".into())
        );
        assert_eq!(
            node.next_boot_file().map(|f| f.path),
            Some("refind_x64.efi".into())
        );
        assert_eq!(node.next_boot_file(), None);
        let (now, wave) = (Instant::now(), Instant::now());
        for retry in 1..=MAX_SCRIPT_RETRIES {
            node.file_failed("refind_x64.efi", "timeout".into(), now, wave);
            assert!(matches!(node.phase, Phase::Sleep), "retry {retry}");
            assert_eq!(node.deadline, Some(now + Duration::from_secs(15)));
            assert_eq!(node.script_retries, retry);
            // The list again from its first file, as the script's loop does.
            assert_eq!(
                node.next_boot_file().map(|f| f.path),
                Some("refind.conf".into())
            );
        }
        node.file_failed("refind_x64.efi", "timeout".into(), now, wave);
        assert!(node.is_over(), "out of retries: the machine fails");
    }

    #[test]
    fn the_shipped_http_script_fetches_both_files_over_http() {
        let shipped = include_str!("../../../assets/tftp/refind-http.pxe");
        let urls = tftp::script_urls(shipped);
        let schemes: Vec<&str> = urls.iter().map(|u| u.0.as_str()).collect();
        assert_eq!(schemes, ["http", "http"], "{urls:?}");
        assert_eq!(script_retry(shipped), Some(Duration::from_secs(15)));
    }

    #[test]
    fn the_shipped_script_retries_after_its_pause() {
        let shipped = include_str!("../../../assets/tftp/refind.pxe");
        assert_eq!(script_retry(shipped), Some(Duration::from_secs(15)));
        // No failure branch, no retry, whatever it sleeps.
        assert_eq!(script_retry("#!ipxe\nsleep 3\nchain x.efi\n"), None);
        // A failure branch without a pause is not taken for a retry loop.
        assert_eq!(
            script_retry("#!ipxe\nchain x.efi || goto end\n:end\n"),
            None
        );
    }
}
