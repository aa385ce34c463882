//! One TFTP download as a booting machine runs it (RFC 1350 with the
//! option extension, `blksize`, `tsize` and RFC 7440 `windowsize`), sans
//! I/O: packets and time in, packets out.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// Most bytes of a file kept in memory (only scripts are kept, to read
/// the files they name).
const MAX_KEPT: usize = 64 * 1024;

/// The options a client asks for, in the order it sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub tsize: bool,
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
    /// Ask for the size only, then end the transfer with ERROR 8, as UEFI
    /// firmware does before its real download.
    pub probe: bool,
}

impl Ask {
    /// OVMF's size probe: `tsize 0 blksize 1468 windowsize 4`.
    pub const FIRMWARE_PROBE: Self = Self {
        tsize: true,
        blksize: Some(1468),
        windowsize: Some(4),
        probe: true,
    };
    /// OVMF's download: `blksize 1468 windowsize 4`.
    pub const FIRMWARE: Self = Self {
        tsize: false,
        blksize: Some(1468),
        windowsize: Some(4),
        probe: false,
    };
    /// iPXE's downloads: `blksize 1432 tsize 0`, lock-step.
    pub const IPXE: Self = Self {
        tsize: true,
        blksize: Some(1432),
        windowsize: None,
        probe: false,
    };
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The whole file arrived (or, for a probe, its size).
    Done {
        size: u64,
        crc: u32,
        tsize: Option<u64>,
        kept: Vec<u8>,
    },
    Failed(String),
}

/// What the client does after a packet or a timeout.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// A packet to send to the server's transfer address.
    pub send: Option<(Vec<u8>, SocketAddrV4)>,
    pub end: Option<End>,
}

#[derive(Debug)]
pub struct Transfer {
    file: String,
    ask: Ask,
    keep: bool,
    server: SocketAddrV4,
    /// The server's transfer port, from its first answer.
    tid: Option<SocketAddrV4>,
    blksize: usize,
    window: u16,
    tsize: Option<u64>,
    expect: u16,
    since_ack: u16,
    /// A gap was answered with the last block in order.
    resynced: bool,
    size: u64,
    crc: crc32fast::Hasher,
    kept: Vec<u8>,
    last_sent: Vec<u8>,
    tries: u32,
    max_tries: u32,
    timeout: Duration,
    deadline: Instant,
    /// Packets sent again after a timeout.
    pub retransmits: u32,
}

impl Transfer {
    /// Starts a download of `file` from `server` (port 69); returns the
    /// transfer and its request.
    pub fn start(
        file: &str,
        ask: Ask,
        keep: bool,
        server: SocketAddrV4,
        timeout: Duration,
        max_tries: u32,
        now: Instant,
    ) -> (Self, Vec<u8>) {
        let mut rrq = Vec::with_capacity(64);
        rrq.extend_from_slice(&RRQ.to_be_bytes());
        for part in [file, "octet"] {
            rrq.extend_from_slice(part.as_bytes());
            rrq.push(0);
        }
        let mut opt = |k: &str, v: &str| {
            rrq.extend_from_slice(k.as_bytes());
            rrq.push(0);
            rrq.extend_from_slice(v.as_bytes());
            rrq.push(0);
        };
        // OVMF puts tsize first, iPXE last: both orders are what they send.
        if ask.tsize && ask.windowsize.is_some() {
            opt("tsize", "0");
        }
        if let Some(b) = ask.blksize {
            opt("blksize", &b.to_string());
        }
        if let Some(w) = ask.windowsize {
            opt("windowsize", &w.to_string());
        }
        if ask.tsize && ask.windowsize.is_none() {
            opt("tsize", "0");
        }
        let t = Self {
            file: file.to_owned(),
            ask,
            keep,
            server,
            tid: None,
            blksize: 512,
            window: 1,
            tsize: None,
            expect: 1,
            since_ack: 0,
            resynced: false,
            size: 0,
            crc: crc32fast::Hasher::new(),
            kept: Vec::new(),
            last_sent: rrq.clone(),
            tries: 1,
            max_tries,
            timeout,
            deadline: now + timeout,
            retransmits: 0,
        };
        (t, rrq)
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A packet from `from`.
    pub fn on_packet(&mut self, from: SocketAddrV4, bytes: &[u8], now: Instant) -> Step {
        if from.ip() != self.server.ip() {
            return Step::default();
        }
        match self.tid {
            None => self.tid = Some(from),
            // A packet of another transfer (e.g. one a repeated request
            // started): not ours.
            Some(tid) if tid != from => return Step::default(),
            Some(_) => {}
        }
        if bytes.len() < 4 {
            return Step::default();
        }
        let op = u16::from_be_bytes([bytes[0], bytes[1]]);
        match op {
            OACK => self.on_oack(&bytes[2..], now),
            DATA => {
                let block = u16::from_be_bytes([bytes[2], bytes[3]]);
                self.on_data(block, &bytes[4..], now)
            }
            ERROR => {
                let code = u16::from_be_bytes([bytes[2], bytes[3]]);
                let text = bytes[4..].split(|&b| b == 0).next().unwrap_or_default();
                Step {
                    send: None,
                    end: Some(End::Failed(format!(
                        "tftp error {code} for {}: {}",
                        self.file,
                        String::from_utf8_lossy(text)
                    ))),
                }
            }
            _ => Step::default(),
        }
    }

    fn on_oack(&mut self, body: &[u8], now: Instant) -> Step {
        if self.expect != 1 || self.size != 0 {
            // A repeated OACK: our ACK 0 was lost.
            return self.resend(now);
        }
        let mut parts = body.split(|&b| b == 0);
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            let k = String::from_utf8_lossy(k).to_ascii_lowercase();
            let v: Option<u64> = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
            match (k.as_str(), v) {
                ("blksize", Some(v)) if (8..=65_464).contains(&v) => self.blksize = v as usize,
                ("windowsize", Some(v)) if (1..=65_535).contains(&v) => self.window = v as u16,
                ("tsize", Some(v)) => self.tsize = Some(v),
                _ => {}
            }
        }
        if self.ask.probe {
            let mut err = vec![0, ERROR as u8, 0, 8];
            err.extend_from_slice(b"User aborted the transfer\0");
            return Step {
                send: self.tid.map(|t| (err, t)),
                end: Some(self.done()),
            };
        }
        self.ack(0, now)
    }

    fn on_data(&mut self, block: u16, data: &[u8], now: Instant) -> Step {
        if self.ask.probe {
            return Step {
                send: None,
                end: Some(End::Failed(format!(
                    "{}: the server sent data to a size probe",
                    self.file
                ))),
            };
        }
        if block != self.expect {
            // Out of order or repeated: acknowledge the last block in order
            // so the server resumes from there (RFC 7440).
            // Once per gap: the rest of a broken window needs no answer.
            if self.resynced {
                return Step::default();
            }
            self.resynced = true;
            return self.ack(self.expect.wrapping_sub(1), now);
        }
        self.resynced = false;
        self.crc.update(data);
        self.size += data.len() as u64;
        if self.keep && self.kept.len() + data.len() <= MAX_KEPT {
            self.kept.extend_from_slice(data);
        }
        self.expect = block.wrapping_add(1);
        self.since_ack += 1;
        if data.len() < self.blksize {
            let mut step = self.ack(block, now);
            step.end = Some(self.done());
            return step;
        }
        if self.since_ack >= self.window {
            return self.ack(block, now);
        }
        self.tries = 1;
        self.deadline = now + self.timeout;
        Step::default()
    }

    fn ack(&mut self, block: u16, now: Instant) -> Step {
        let mut ack = vec![0, ACK as u8];
        ack.extend_from_slice(&block.to_be_bytes());
        self.last_sent.clone_from(&ack);
        self.since_ack = 0;
        self.tries = 1;
        self.deadline = now + self.timeout;
        Step {
            send: self.tid.map(|t| (ack, t)),
            end: None,
        }
    }

    fn resend(&mut self, now: Instant) -> Step {
        self.retransmits += 1;
        self.deadline = now + self.timeout * 2u32.pow(self.tries.min(3));
        self.tries += 1;
        Step {
            send: Some((self.last_sent.clone(), self.tid.unwrap_or(self.server))),
            end: None,
        }
    }

    fn done(&mut self) -> End {
        End::Done {
            size: self.size,
            crc: std::mem::take(&mut self.crc).finalize(),
            tsize: self.tsize,
            kept: std::mem::take(&mut self.kept),
        }
    }

    /// The deadline passed: send the last packet again, or give up.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        if self.tries >= self.max_tries {
            return Step {
                send: None,
                end: Some(End::Failed(format!(
                    "tftp timeout for {} after {} bytes",
                    self.file, self.size
                ))),
            };
        }
        self.since_ack = 0;
        self.resend(now)
    }
}

/// The files an iPXE script fetches, in order: every `tftp://HOST/PATH`
/// and `http://HOST/PATH` it names. `HOST` is returned as written.
pub fn script_urls(script: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in script.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            for scheme in ["tftp", "http"] {
                let Some(rest) = word
                    .strip_prefix(scheme)
                    .and_then(|r| r.strip_prefix("://"))
                else {
                    continue;
                };
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                let item = (scheme.to_owned(), host.to_owned(), path.to_owned());
                if !path.is_empty() && !out.contains(&item) {
                    out.push(item);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 69);
    const TID: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 40_000);

    fn data(block: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0, 3];
        p.extend_from_slice(&block.to_be_bytes());
        p.extend(std::iter::repeat_n(7u8, len));
        p
    }

    #[test]
    fn the_firmware_probe_asks_the_size_and_aborts() {
        let now = Instant::now();
        let (mut t, rrq) = Transfer::start(
            "ipxe.efi",
            Ask::FIRMWARE_PROBE,
            false,
            SERVER,
            Duration::from_secs(1),
            4,
            now,
        );
        assert_eq!(
            rrq,
            b"\0\x01ipxe.efi\0octet\0tsize\x000\0blksize\x001468\0windowsize\x004\0".to_vec()
        );
        let step = t.on_packet(TID, b"\0\x06tsize\x001048576\0blksize\x001468\0", now);
        let (err, to) = step.send.expect("error 8");
        assert_eq!(to, TID);
        assert_eq!(&err[..4], &[0, 5, 0, 8]);
        assert!(matches!(
            step.end,
            Some(End::Done {
                tsize: Some(1_048_576),
                ..
            })
        ));
    }

    #[test]
    fn a_windowed_download_acks_each_window_and_the_last_block() {
        let now = Instant::now();
        let (mut t, _) = Transfer::start(
            "ipxe.efi",
            Ask::FIRMWARE,
            false,
            SERVER,
            Duration::from_secs(1),
            4,
            now,
        );
        let s = t.on_packet(TID, b"\0\x06blksize\x00100\0windowsize\x004\0", now);
        assert_eq!(s.send.expect("ack 0").0, vec![0, 4, 0, 0]);
        for b in 1..=3 {
            assert_eq!(t.on_packet(TID, &data(b, 100), now), Step::default());
        }
        let s = t.on_packet(TID, &data(4, 100), now);
        assert_eq!(s.send.expect("ack 4").0, vec![0, 4, 0, 4]);
        // Block 6 before 5: ack 4 again.
        let s = t.on_packet(TID, &data(6, 100), now);
        assert_eq!(s.send.expect("re-ack").0, vec![0, 4, 0, 4]);
        t.on_packet(TID, &data(5, 100), now);
        let s = t.on_packet(TID, &data(6, 10), now);
        assert_eq!(s.send.expect("final ack").0, vec![0, 4, 0, 6]);
        let Some(End::Done { size, crc, .. }) = s.end else {
            panic!("not done");
        };
        assert_eq!(size, 510);
        assert_eq!(crc, crc32fast::hash(&[7u8; 510]));
        // Another port is another transfer.
        let other = SocketAddrV4::new(*TID.ip(), 1);
        assert_eq!(t.on_packet(other, &data(7, 5), now), Step::default());
    }

    #[test]
    fn timeouts_resend_then_fail() {
        let now = Instant::now();
        let (mut t, rrq) = Transfer::start(
            "a",
            Ask::IPXE,
            false,
            SERVER,
            Duration::from_secs(1),
            3,
            now,
        );
        let s = t.on_timeout(now);
        assert_eq!(s.send, Some((rrq.clone(), SERVER)));
        assert!(t.on_timeout(now).send.is_some());
        assert!(matches!(t.on_timeout(now).end, Some(End::Failed(_))));
        assert_eq!(t.retransmits, 2);
    }

    #[test]
    fn a_script_names_its_files_in_order() {
        let script = "#!ipxe\n# tftp://x/comment\nimgfetch --name refind.conf tftp://${next-server}/refind.conf || goto retry\nimgfetch tftp://${next-server}/refind_x64.efi\nchain http://10.0.0.1/boot/a.efi\nchain refind_x64.efi\n";
        let urls = script_urls(script);
        assert_eq!(
            urls,
            vec![
                ("tftp".into(), "${next-server}".into(), "refind.conf".into()),
                (
                    "tftp".into(),
                    "${next-server}".into(),
                    "refind_x64.efi".into()
                ),
                ("http".into(), "10.0.0.1".into(), "boot/a.efi".into()),
            ]
        );
    }
}
