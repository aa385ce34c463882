//! One read transfer: a compact record and its window arithmetic.
//!
//! Blocks are numbered absolutely from 1 (block 0 stands for the OACK); the
//! wire carries the low 16 bits, so numbers wrap from 65535 to 0 as
//! tftp-hpa, dnsmasq and iPXE expect. The window is `[base, next)`: `base`
//! is the first block not yet acknowledged, `next` the first not yet sent in
//! this round. Times are microseconds since the server's epoch.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::FileData;
use super::counters::TftpCounters;
use super::netascii::{self, Cursor};
use super::options::{Negotiated, flag};
use super::tx::{Route, TxQueue};
use super::wire;

/// State bits kept next to the option flags in [`Transfer::flags`].
mod state {
    /// The current window holds a retransmitted block (Karn: no RTT
    /// sample from its ACK).
    pub(super) const RETRANSMITTED: u8 = 0x10;
    /// The client has acknowledged something.
    pub(super) const PROGRESSED: u8 = 0x20;
}

/// A deadline that is never reached.
pub(crate) const NEVER: u64 = u64::MAX;

/// One transfer, kept small so 100,000 of them stay cache-friendly
/// (a test pins the size).
#[derive(Debug)]
pub(crate) struct Transfer {
    /// The bytes being sent.
    pub(crate) file: Arc<dyn FileData>,
    /// The client's address and port (its transfer ID).
    pub(crate) client: SocketAddr,
    /// When the current window times out.
    pub(crate) deadline: u64,
    /// Deadline of this transfer's live timer-heap entry, or [`NEVER`].
    pub(crate) scheduled: u64,
    /// When the current window (or OACK) was sent.
    sent_at: u64,
    /// First unacknowledged block (0: the OACK is outstanding).
    base: u32,
    /// First block not yet sent in this round.
    next: u32,
    /// Number of the final (short or empty) block.
    last: u32,
    /// Current retransmission timeout.
    rto: u32,
    /// Smoothed round-trip time, 0 before the first sample.
    srtt: u32,
    /// Round-trip time variation.
    rttvar: u32,
    /// Negotiated block size.
    blksize: u16,
    /// Negotiated window size.
    windowsize: u16,
    /// Our UDP port for this transfer (our transfer ID).
    pub(crate) local_port: u16,
    /// Our address the client sent its request to.
    local_ip: IpAddr,
    /// Consecutive timeouts of the current window.
    retries: u8,
    /// Accepted option flags (low bits) and [`state`] bits.
    flags: u8,
    /// Negotiated timeout in seconds (valid with `flag::TIMEOUT`).
    timeout_secs: u8,
}

/// Where a netascii transfer stands in its conversion, kept beside the
/// hot record (octet transfers have none): the converted size and the
/// conversion position at the start of one block at or before `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Netascii {
    /// Length of the converted file.
    pub(crate) size: u64,
    /// Conversion position at the start of `block`.
    cursor: Cursor,
    /// The block `cursor` belongs to.
    block: u32,
}

impl Netascii {
    /// The state of a transfer of `size` converted bytes, at block 1.
    pub(crate) fn new(size: u64) -> Self {
        Self {
            size,
            cursor: Cursor::default(),
            block: 1,
        }
    }
}

/// What an ACK did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Duplicate, old or not yet sent: nothing to do.
    Ignored,
    /// The window moved; send the next one.
    Advanced,
    /// The client's timeout ACK of the block before the window, well after
    /// the window went out: send the window again now.
    Resend,
    /// The final block is acknowledged.
    Complete,
}

/// Bounds of the adaptive retransmission timeout, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtoBounds {
    /// Lower bound.
    pub(crate) min: u32,
    /// Upper bound.
    pub(crate) max: u32,
    /// Timeout before the first RTT sample.
    pub(crate) initial: u32,
}

/// Clock granularity added to the RTT variance (RFC 6298 `G`), in µs.
const GRANULARITY_US: u32 = 1_000;

impl Transfer {
    /// A transfer of `file` (`size` bytes as sent: converted for
    /// netascii) to `client` from `local_port`, nothing sent yet. `None`
    /// if the file needs more blocks than we can number.
    pub(crate) fn new(
        file: Arc<dyn FileData>,
        size: u64,
        client: SocketAddr,
        local: (IpAddr, u16),
        negotiated: &Negotiated,
        rto: &RtoBounds,
    ) -> Option<Self> {
        let last = u32::try_from(size / u64::from(negotiated.blksize) + 1)
            .ok()
            .filter(|&last| last < u32::MAX)?;
        let fixed = negotiated.flags & flag::TIMEOUT != 0;
        let has_oack = negotiated.flags != 0;
        Some(Self {
            file,
            client,
            deadline: NEVER,
            scheduled: NEVER,
            sent_at: 0,
            base: u32::from(!has_oack),
            next: u32::from(!has_oack),
            last,
            rto: if fixed {
                u32::from(negotiated.timeout_secs) * 1_000_000
            } else {
                rto.initial
            },
            srtt: 0,
            rttvar: 0,
            blksize: negotiated.blksize,
            windowsize: negotiated.windowsize,
            local_port: local.1,
            local_ip: local.0,
            retries: 0,
            flags: negotiated.flags,
            timeout_secs: negotiated.timeout_secs,
        })
    }

    /// Whether the client has acknowledged nothing yet (a repeated RRQ is
    /// then a retransmission, not a new download).
    pub(crate) fn untouched(&self) -> bool {
        self.flags & state::PROGRESSED == 0
    }

    /// Whether the OACK is still waiting for its ACK 0.
    pub(crate) fn awaiting_oack_ack(&self) -> bool {
        self.base == 0
    }

    /// Whether the final block was sent and every block before it
    /// acknowledged: only the final ACK is outstanding.
    pub(crate) fn only_final_ack_missing(&self) -> bool {
        self.base == self.last && self.next > self.last
    }

    /// Bytes of a `size`-byte transfer the client has acknowledged.
    pub(crate) fn acked_bytes(&self, size: u64) -> u64 {
        let blocks = u64::from(self.base.saturating_sub(1));
        (blocks * u64::from(self.blksize)).min(size)
    }

    /// The current retransmission timeout in microseconds.
    pub(crate) fn rto(&self) -> u32 {
        self.rto
    }

    /// Applies an ACK of wire block `block` received at `now`.
    pub(crate) fn on_ack(&mut self, block: u16, now: u64, bounds: &RtoBounds) -> AckOutcome {
        let delta = u32::from(block.wrapping_sub(self.base as u16));
        let acked = u64::from(self.base) + u64::from(delta);
        if acked >= u64::from(self.next) {
            // The client's timeout ACK of the block before the window: it
            // got none of it, and it is still there. Its retries start
            // over (a client gives up long after a server that counts only
            // its own timeouts would), and the window goes out again at
            // once when it was sent more than two round trips (and the
            // minimum timeout) ago. A duplicate that our own resend caused
            // comes back within a round trip and sends nothing, so a client
            // that ACKs every duplicate cannot double the traffic.
            if self.flags & state::PROGRESSED != 0
                && self.base > 0
                && block == (self.base as u16).wrapping_sub(1)
            {
                self.retries = 0;
                let guard = u64::from(self.srtt.saturating_mul(2).max(bounds.min));
                if now.saturating_sub(self.sent_at) >= guard {
                    return AckOutcome::Resend;
                }
            }
            return AckOutcome::Ignored;
        }
        if self.flags & state::RETRANSMITTED == 0 {
            self.sample_rtt(now.saturating_sub(self.sent_at), bounds);
        }
        self.flags |= state::PROGRESSED;
        self.retries = 0;
        // `acked < next <= last + 1 < u32::MAX`, so this fits.
        self.base = acked as u32 + 1;
        if self.base > self.last {
            return AckOutcome::Complete;
        }
        AckOutcome::Advanced
    }

    /// Registers a timeout of the current window; `false` when the
    /// transfer has used up its retries.
    pub(crate) fn on_timeout(&mut self, max_retries: u8, max_rto: u32) -> bool {
        if self.retries >= max_retries {
            return false;
        }
        self.retries += 1;
        if self.flags & flag::TIMEOUT == 0 {
            self.rto = self.rto.saturating_mul(2).min(max_rto).max(1);
        }
        true
    }

    /// Queues the packets of the current round from `base`: the OACK when
    /// it is outstanding, else a window of DATA. Whatever was sent before
    /// is counted as retransmitted. A netascii transfer converts its blocks
    /// from `netascii`'s position into the queue. Returns the bytes queued.
    pub(crate) fn send_round(
        &mut self,
        now: u64,
        out: &mut TxQueue,
        counters: &mut TftpCounters,
        netascii: Option<&mut Netascii>,
    ) -> usize {
        self.sent_at = now;
        let size = netascii.as_ref().map_or_else(|| self.size(), |n| n.size);
        if self.base == 0 {
            self.mark_retransmitted(self.next > 0, counters, 1);
            self.next = 1;
            let (negotiated, route) = (self.negotiated(), self.route());
            let before = out.control_len();
            out.push_control(route, |buf| negotiated.emit_oack(size, buf));
            return out.control_len() - before;
        }
        let end = self
            .base
            .saturating_add(u32::from(self.windowsize))
            .min(self.last + 1);
        let resent = self.next.min(end).saturating_sub(self.base);
        self.mark_retransmitted(resent > 0, counters, resent);
        let route = self.route();
        if let Some(state) = netascii {
            let bytes = self.send_converted(end, route, out, counters, state);
            counters.data_blocks_sent += u64::from(end - self.base);
            self.next = end;
            return bytes;
        }
        let mut bytes = 0;
        for block in self.base..end {
            let offset = u64::from(block - 1) * u64::from(self.blksize);
            let len = size.saturating_sub(offset).min(u64::from(self.blksize)) as u32;
            out.push_data(
                route,
                wire::data_header(block as u16),
                &self.file,
                offset,
                len,
            );
            counters.bytes_sent += u64::from(len);
            bytes += len as usize + wire::DATA_HEADER_LEN;
        }
        counters.data_blocks_sent += u64::from(end - self.base);
        self.next = end;
        bytes
    }

    /// Queues blocks `base..end` converted to netascii (copies of at most
    /// `blksize` bytes each, written into the queue's arena).
    fn send_converted(
        &self,
        end: u32,
        route: Route,
        out: &mut TxQueue,
        counters: &mut TftpCounters,
        state: &mut Netascii,
    ) -> usize {
        let raw = self.file.bytes();
        let blksize = usize::from(self.blksize);
        if state.block < self.base {
            let skipped = u64::from(self.base - state.block) * blksize as u64;
            state.cursor = netascii::skip(raw, state.cursor, skipped);
            state.block = self.base;
        }
        let mut cursor = state.cursor;
        let before = out.control_len();
        for block in self.base..end {
            let start = out.control_len();
            out.push_control(route, |buf| {
                buf.extend_from_slice(&wire::data_header(block as u16));
                cursor = netascii::fill(raw, cursor, blksize, buf);
            });
            let len = out.control_len() - start - wire::DATA_HEADER_LEN;
            counters.bytes_sent += len as u64;
        }
        out.control_len() - before
    }

    /// Sets or clears the Karn bit for the round being sent and counts
    /// `count` retransmitted packets when it is set.
    fn mark_retransmitted(&mut self, resent: bool, counters: &mut TftpCounters, count: u32) {
        if resent {
            self.flags |= state::RETRANSMITTED;
            counters.retransmits += u64::from(count);
        } else {
            self.flags &= !state::RETRANSMITTED;
        }
    }

    /// Length of the file.
    fn size(&self) -> u64 {
        self.file.bytes().len() as u64
    }

    /// Addressing of our packets to the client.
    pub(crate) fn route(&self) -> Route {
        Route {
            dest: self.client,
            src_ip: self.local_ip,
            local_port: self.local_port,
        }
    }

    /// The options as negotiated, for rebuilding the OACK.
    pub(crate) fn negotiated(&self) -> Negotiated {
        Negotiated {
            flags: self.flags & flag::ALL,
            blksize: self.blksize,
            windowsize: self.windowsize,
            timeout_secs: self.timeout_secs,
        }
    }

    /// RFC 6298 smoothing of one RTT sample (µs); a negotiated timeout
    /// stays fixed.
    fn sample_rtt(&mut self, sample: u64, bounds: &RtoBounds) {
        if self.flags & flag::TIMEOUT != 0 {
            return;
        }
        let sample = sample.min(u64::from(u32::MAX / 8)) as u32;
        if self.srtt == 0 {
            self.srtt = sample.max(1);
            self.rttvar = sample / 2;
        } else {
            let err = self.srtt.abs_diff(sample);
            self.rttvar = (3 * self.rttvar + err) / 4;
            self.srtt = (7 * self.srtt + sample) / 8;
        }
        let rto = self.srtt + (4 * self.rttvar).max(GRANULARITY_US);
        self.rto = rto.clamp(bounds.min, bounds.max);
    }
}
