//! One simulated machine through the whole boot flow, sans I/O: firmware
//! DHCP, the firmware's size probe and download of the first file, iPXE
//! DHCP, the script, then every file the script names.

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
    /// Files still to fetch (the script's list).
    queue: Vec<String>,
    /// Every file the script fetches, in order.
    boot_list: Vec<String>,
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
            queue: Vec::new(),
            boot_list: Vec::new(),
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
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
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
        let (size, crc, tsize, kept) = match end {
            End::Failed(cause) => {
                let boot_file = self.script_file.is_some()
                    && self.script_file.as_deref() != Some(file.as_str());
                if let Some(pause) = self.retry_after
                    && boot_file
                    && self.script_retries < MAX_SCRIPT_RETRIES
                {
                    // As the script does: wait, then fetch its list again.
                    self.script_retries += 1;
                    self.phase = Phase::Sleep;
                    self.deadline = Some(now + pause);
                    self.queue = self.boot_list.iter().rev().cloned().collect();
                    return;
                }
                return self.fail(cause, now, wave);
            }
            End::Done {
                size,
                crc,
                tsize,
                kept,
            } => (size, crc, tsize, kept),
        };
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
            for (scheme, _host, path) in tftp::script_urls(&text) {
                if scheme != "tftp" {
                    return self.fail(
                        format!(
                            "the script fetches {scheme}://…/{path}, which this run does not speak"
                        ),
                        now,
                        wave,
                    );
                }
                files.push(path);
            }
            self.boot_list.clone_from(&files);
            self.retry_after = script_retry(&text);
            files.reverse();
            self.queue = files;
        }
        match self.queue.pop() {
            Some(next) => {
                self.mark(Stage::BootFiles, now, wave);
                self.fetch(&next, Ask::IPXE, plan, now, out);
            }
            None => {
                self.phase = Phase::Done;
                self.deadline = None;
                self.finished = Some(now.saturating_duration_since(wave));
            }
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
            Phase::Sleep => match self.queue.pop() {
                Some(next) => self.fetch(&next, Ask::IPXE, plan, now, out),
                None => self.deadline = None,
            },
            Phase::Idle | Phase::Done | Phase::Failed => self.deadline = None,
        }
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
