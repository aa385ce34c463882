//! A TFTP client model that speaks like the firmware and tools that boot
//! from us: OVMF, iPXE, curl, busybox, tftp-hpa and atftp.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::tftp::wire::{self, Packet};

/// How a client asks and behaves.
#[derive(Debug, Clone)]
pub(super) struct ClientSpec {
    /// File name as sent.
    pub(super) filename: Vec<u8>,
    /// Mode as sent.
    pub(super) mode: &'static str,
    /// Options as sent, in order.
    pub(super) options: Vec<(&'static str, String)>,
    /// OVMF: ask with `tsize` first, refuse the OACK with ERROR 8, then ask
    /// again without `tsize` from a new port.
    pub(super) size_probe: bool,
    /// Time without news before the last packet is resent.
    pub(super) timeout: Duration,
    /// Resends before giving up.
    pub(super) max_retries: u32,
}

impl ClientSpec {
    fn new(filename: &str, options: &[(&'static str, &str)]) -> Self {
        Self {
            filename: filename.as_bytes().to_vec(),
            mode: "octet",
            options: options.iter().map(|&(n, v)| (n, v.to_owned())).collect(),
            size_probe: false,
            timeout: Duration::from_secs(1),
            max_retries: 8,
        }
    }

    /// OVMF (EDK II): a size probe, then a windowed download.
    pub(super) fn ovmf(filename: &str) -> Self {
        Self {
            size_probe: true,
            ..Self::new(
                filename,
                &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
            )
        }
    }

    /// iPXE: lock-step with a large block.
    pub(super) fn ipxe(filename: &str) -> Self {
        Self::new(filename, &[("blksize", "1432"), ("tsize", "0")])
    }

    /// curl's TFTP client.
    pub(super) fn curl(filename: &str) -> Self {
        Self::new(
            filename,
            &[("tsize", "0"), ("blksize", "512"), ("timeout", "6")],
        )
    }

    /// busybox tftp with `-b blksize`.
    pub(super) fn busybox(filename: &str, blksize: u16) -> Self {
        Self::new(
            filename,
            &[("blksize", &blksize.to_string()), ("tsize", "0")],
        )
    }

    /// tftp-hpa's client: RFC 1350 only.
    pub(super) fn tftp_hpa(filename: &str) -> Self {
        Self::new(filename, &[])
    }

    /// atftp with a window.
    pub(super) fn atftp(filename: &str, blksize: u16, windowsize: u16) -> Self {
        Self::new(
            filename,
            &[
                ("blksize", &blksize.to_string()),
                ("windowsize", &windowsize.to_string()),
                ("tsize", "0"),
            ],
        )
    }

    /// Any option set.
    pub(super) fn custom(filename: &str, options: &[(&'static str, &str)]) -> Self {
        Self::new(filename, options)
    }

    /// The same with netascii mode.
    pub(super) fn netascii(mut self) -> Self {
        self.mode = "netascii";
        self
    }
}

/// Where a client stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ClientState {
    /// RRQ sent, nothing back yet.
    Requesting,
    /// Receiving blocks.
    Receiving,
    /// The file arrived whole.
    Done,
    /// The server sent an ERROR.
    Failed {
        /// Its code.
        code: u16,
        /// Its message.
        message: String,
    },
    /// Ran out of retries.
    GaveUp,
    /// Unplugged: ignores everything, sends nothing.
    Vanished,
}

/// A datagram the client wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientSend {
    pub(super) src: SocketAddr,
    pub(super) dest: SocketAddr,
    pub(super) bytes: Vec<u8>,
}

/// One client's state.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) spec: ClientSpec,
    pub(super) addr: SocketAddr,
    server: SocketAddr,
    tid: Option<SocketAddr>,
    pub(super) state: ClientState,
    pub(super) blksize: usize,
    pub(super) windowsize: u16,
    expected: u64,
    in_window: u16,
    gap_acked: bool,
    pub(super) data: Vec<u8>,
    /// `tsize` from the last OACK.
    pub(super) tsize: Option<u64>,
    /// Options of the last OACK, lowercased.
    pub(super) oack: Option<Vec<(String, String)>>,
    probing: bool,
    last: Option<ClientSend>,
    deadline: Option<Instant>,
    retries: u32,
    /// DATA packets received, duplicates included.
    pub(super) data_received: u64,
    /// ACKs sent, repeats included.
    pub(super) acks_sent: u64,
}

impl Client {
    pub(super) fn new(spec: ClientSpec, addr: SocketAddr, server: SocketAddr) -> Self {
        let probing = spec.size_probe;
        Self {
            spec,
            addr,
            server,
            tid: None,
            state: ClientState::Requesting,
            blksize: 512,
            windowsize: 1,
            expected: 1,
            in_window: 0,
            gap_acked: false,
            data: Vec::new(),
            tsize: None,
            oack: None,
            probing,
            last: None,
            deadline: None,
            retries: 0,
            data_received: 0,
            acks_sent: 0,
        }
    }

    /// Sends the first RRQ.
    pub(super) fn start(&mut self, now: Instant) -> Vec<ClientSend> {
        let mut options = self.spec.options.clone();
        if self.spec.size_probe && !self.probing {
            options.retain(|(name, _)| *name != "tsize");
        }
        let pairs: Vec<(&str, &str)> = options.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut bytes = Vec::new();
        wire::emit_request(
            &mut bytes,
            false,
            &self.spec.filename,
            self.spec.mode,
            &pairs,
        );
        vec![self.send(now, self.server, bytes, true)]
    }

    /// Whether the client has stopped (done, failed or gone).
    pub(super) fn finished(&self) -> bool {
        !matches!(self.state, ClientState::Requesting | ClientState::Receiving)
    }

    /// Makes the client disappear mid-transfer.
    pub(super) fn vanish(&mut self) {
        self.state = ClientState::Vanished;
        self.deadline = None;
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) -> Vec<ClientSend> {
        if self.deadline.is_none_or(|d| d > now) {
            return Vec::new();
        }
        if self.retries >= self.spec.max_retries {
            self.state = ClientState::GaveUp;
            self.deadline = None;
            return Vec::new();
        }
        self.retries += 1;
        self.deadline = Some(now + self.spec.timeout);
        // RFC 7440: on a timeout, acknowledge what arrived in order.
        self.in_window = 0;
        self.last.clone().into_iter().collect()
    }

    pub(super) fn handle(
        &mut self,
        now: Instant,
        src: SocketAddr,
        bytes: &[u8],
    ) -> Vec<ClientSend> {
        if self.state == ClientState::Vanished {
            return Vec::new();
        }
        match self.tid {
            Some(tid) if tid != src => {
                let mut error = Vec::new();
                wire::emit_error(&mut error, wire::ErrorCode::UnknownTid, "wrong TID");
                return vec![self.raw(src, error)];
            }
            None if self.state == ClientState::Requesting => self.tid = Some(src),
            _ => {}
        }
        match Packet::parse(bytes) {
            Ok(Packet::Oack(options))
                if self.expected == 1 && self.state == ClientState::Requesting =>
            {
                self.on_oack(now, src, options)
            }
            Ok(Packet::Data { block, payload }) => self.on_data(now, src, block, payload),
            Ok(Packet::Error { code, message }) => {
                self.state = ClientState::Failed {
                    code,
                    message: String::from_utf8_lossy(message).into_owned(),
                };
                self.deadline = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_oack(
        &mut self,
        now: Instant,
        src: SocketAddr,
        options: wire::Options<'_>,
    ) -> Vec<ClientSend> {
        let mut seen = Vec::new();
        for (name, value) in options {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(value).into_owned();
            match name.as_str() {
                "blksize" => self.blksize = value.parse().unwrap_or(512),
                "windowsize" => self.windowsize = value.parse().unwrap_or(1),
                "tsize" => self.tsize = value.parse().ok(),
                _ => {}
            }
            seen.push((name, value));
        }
        self.oack = Some(seen);
        if self.probing {
            // OVMF took the size; refuse and ask again from a new port.
            let mut error = Vec::new();
            wire::emit_error(
                &mut error,
                wire::ErrorCode::OptionsRefused,
                "User aborted the transfer",
            );
            let refusal = self.raw(src, error);
            self.probing = false;
            self.tid = None;
            self.addr.set_port(self.addr.port() + 1);
            self.blksize = 512;
            self.windowsize = 1;
            let mut sends = vec![refusal];
            sends.extend(self.start(now));
            return sends;
        }
        self.state = ClientState::Receiving;
        vec![self.send(now, src, wire::ack(0).to_vec(), true)]
    }

    fn on_data(
        &mut self,
        now: Instant,
        src: SocketAddr,
        block: u16,
        payload: &[u8],
    ) -> Vec<ClientSend> {
        self.data_received += 1;
        if self.state == ClientState::Done {
            // Dally: the server missed our final ACK.
            return self
                .last
                .clone()
                .map(|last| self.raw(src, last.bytes))
                .into_iter()
                .collect();
        }
        if self.state == ClientState::Requesting {
            self.state = ClientState::Receiving;
        }
        if block != self.expected as u16 {
            return self.out_of_order(now, src);
        }
        assert!(payload.len() <= self.blksize, "block longer than blksize");
        self.data.extend_from_slice(payload);
        self.expected += 1;
        self.in_window += 1;
        self.gap_acked = false;
        let last = payload.len() < self.blksize;
        if last {
            self.state = ClientState::Done;
            let sends = vec![self.send(now, src, wire::ack(block).to_vec(), false)];
            self.deadline = None;
            return sends;
        }
        // Progress resets the retry budget and the wait.
        self.retries = 0;
        self.deadline = Some(now + self.spec.timeout);
        if self.in_window >= self.windowsize {
            self.in_window = 0;
            return vec![self.send(now, src, wire::ack(block).to_vec(), true)];
        }
        Vec::new()
    }

    /// A duplicate in lock-step is re-acknowledged (RFC 1350 clients do);
    /// a gap in a window is acknowledged once (RFC 7440).
    fn out_of_order(&mut self, now: Instant, src: SocketAddr) -> Vec<ClientSend> {
        let last_good = (self.expected - 1) as u16;
        if self.windowsize == 1 || !self.gap_acked {
            self.gap_acked = true;
            self.in_window = 0;
            return vec![self.send(now, src, wire::ack(last_good).to_vec(), true)];
        }
        Vec::new()
    }

    fn send(&mut self, now: Instant, dest: SocketAddr, bytes: Vec<u8>, arm: bool) -> ClientSend {
        if bytes.get(..2) == Some(&[0, 4]) {
            self.acks_sent += 1;
        }
        let send = self.raw(dest, bytes);
        self.last = Some(send.clone());
        if arm {
            self.deadline = Some(now + self.spec.timeout);
        }
        send
    }

    fn raw(&self, dest: SocketAddr, bytes: Vec<u8>) -> ClientSend {
        ClientSend {
            src: self.addr,
            dest,
            bytes,
        }
    }
}
