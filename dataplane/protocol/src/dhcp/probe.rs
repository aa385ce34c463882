//! Ping checks: DISCOVERs parked while their address is probed, their
//! deadlines, and the addresses probed (and silent) a moment ago.
//!
//! The core owns the whole timer path. A parked DISCOVER waits in a slab
//! slot until the driver reports an answer from its address
//! ([`DhcpServer::probe_answered`](crate::dhcp::DhcpServer::probe_answered))
//! or until its deadline, exactly `ping-timeout` after it was parked
//! ([`DhcpServer::poll_timeout`](crate::dhcp::DhcpServer::poll_timeout) and
//! [`DhcpServer::next_timed_out_probe`](crate::dhcp::DhcpServer::next_timed_out_probe)).
//!
//! # Memory bound
//!
//! The slab grows on demand up to [`PROBE_CAPACITY`] slots and never
//! shrinks; each slot keeps its datagram buffer for reuse, and the buffers
//! together never exceed [`PROBE_BUFFER_BUDGET`] bytes. A slot costs about
//! [`PROBE_SLOT_OVERHEAD`] bytes besides its datagram (slot, two index
//! entries, a heap entry), so a full slab of typical 350-byte DISCOVERs
//! takes about 30 MiB, and never more than 6 MiB of overhead plus the
//! 32 MiB buffer budget (≈ 38 MiB) per shard. A DISCOVER that finds no room
//! is answered at once, without a probe, and counted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::dhcp::hash::{FastMap, map_with_capacity};
use crate::dhcp::time::UnixTime;
use crate::net::RecvMeta;

/// Most DISCOVERs parked at once per shard.
pub const PROBE_CAPACITY: usize = 65_536;
/// Most bytes of parked datagrams per shard.
pub const PROBE_BUFFER_BUDGET: usize = 32 << 20;
/// Approximate bytes per parked DISCOVER besides its datagram.
pub const PROBE_SLOT_OVERHEAD: usize = 96;
/// How long an address that stayed silent is trusted without a new probe.
pub const RECENT_PROBE_WINDOW: Duration = Duration::from_secs(5);
/// Most addresses remembered as recently probed.
pub const RECENT_PROBE_CAPACITY: usize = 65_536;
/// Fewest entries the deadline heap keeps before it is purged of finished
/// probes.
const HEAP_SLACK: usize = 1024;

/// How a candidate address is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeMethod {
    /// One ARP request on the ingress interface: the candidate's subnet
    /// holds an address of that interface (the client is on-link, or its
    /// relay is on the same link).
    Arp,
    /// One ICMP echo request, routed (the candidate's subnet lies behind a
    /// relay).
    Icmp,
}

/// Ping-check counters of one shard (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeCounters {
    /// DISCOVERs parked for a probe.
    pub parked: u64,
    /// Probes that timed out in silence (the address was offered).
    pub silent: u64,
    /// Probes something answered (the address was abandoned).
    pub answered: u64,
    /// DISCOVERs answered without a probe because the parking was full.
    pub overflowed: u64,
    /// Probes skipped: the address was the client's own binding.
    pub skipped_returning: u64,
    /// Probes skipped: the address stayed silent to a probe moments ago.
    pub skipped_recent: u64,
    /// Retransmitted DISCOVERs that replaced the one parked for their client.
    pub replaced: u64,
}

/// A DISCOVER parked while its address is probed.
#[derive(Debug)]
struct Slot {
    /// 0 while free.
    token: u64,
    deadline: UnixTime,
    meta: RecvMeta,
    server_id: Ipv4Addr,
    addr: Ipv4Addr,
    mac: [u8; 6],
    datagram: Vec<u8>,
}

/// What a finished probe hands back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parked {
    pub(crate) meta: RecvMeta,
    pub(crate) server_id: Ipv4Addr,
    pub(crate) addr: Ipv4Addr,
    pub(crate) len: usize,
}

/// Why a DISCOVER could not be parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// The parked DISCOVERs of one shard.
#[derive(Debug)]
pub(crate) struct ProbeSlots {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_addr: FastMap<Ipv4Addr, u32>,
    by_mac: FastMap<[u8; 6], u32>,
    /// `(deadline, token, slot)`, earliest first; finished probes stay
    /// until they reach the top or a purge.
    deadlines: BinaryHeap<Reverse<(UnixTime, u64, u32)>>,
    next_token: u64,
    buffered: usize,
    capacity: usize,
    budget: usize,
    recent: RecentProbes,
    pub(crate) counters: ProbeCounters,
    /// When the last overflow was logged, and how many since.
    overflow_log: (Option<UnixTime>, u64),
}

impl ProbeSlots {
    /// Empty parking for up to `capacity` DISCOVERs holding at most
    /// `budget` bytes of datagrams; nothing is allocated until used.
    pub(crate) fn new(capacity: usize, budget: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_addr: map_with_capacity(0),
            by_mac: map_with_capacity(0),
            deadlines: BinaryHeap::new(),
            next_token: 1,
            buffered: 0,
            capacity: capacity.min(u32::MAX as usize),
            budget,
            recent: RecentProbes::new(RECENT_PROBE_CAPACITY, RECENT_PROBE_WINDOW),
            counters: ProbeCounters::default(),
            overflow_log: (None, 0),
        }
    }

    /// DISCOVERs parked now.
    pub(crate) fn len(&self) -> usize {
        self.by_mac.len()
    }

    /// Parks `datagram` of `mac` for a probe of `addr` until `now +
    /// timeout`. `Err(Full)` when the slab is at its bound.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn park(
        &mut self,
        now: UnixTime,
        timeout: Duration,
        meta: &RecvMeta,
        server_id: Ipv4Addr,
        mac: [u8; 6],
        addr: Ipv4Addr,
        datagram: &[u8],
    ) -> Result<u64, Full> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < self.capacity => {
                self.slots.push(Slot {
                    token: 0,
                    deadline: UnixTime::EPOCH,
                    meta: unspecified_meta(),
                    server_id: Ipv4Addr::UNSPECIFIED,
                    addr: Ipv4Addr::UNSPECIFIED,
                    mac: [0; 6],
                    datagram: Vec::new(),
                });
                (self.slots.len() - 1) as u32
            }
            None => return Err(self.overflow(now)),
        };
        let slot = &mut self.slots[index as usize];
        let grow = datagram.len().saturating_sub(slot.datagram.capacity());
        if self.buffered + grow > self.budget {
            self.free.push(index);
            return Err(self.overflow(now));
        }
        slot.datagram.clear();
        slot.datagram.extend_from_slice(datagram);
        self.buffered += grow;
        // The slot index rides in the low half: a token finds its slot
        // without a search, and the counter in the high half tells a
        // reused slot's new probe from the old one.
        let token = (self.next_token << 32) | u64::from(index);
        self.next_token += 1;
        slot.token = token;
        slot.deadline = now.saturating_add(timeout);
        slot.meta = *meta;
        slot.server_id = server_id;
        slot.addr = addr;
        slot.mac = mac;
        self.by_addr.insert(addr, index);
        self.by_mac.insert(mac, index);
        self.deadlines.push(Reverse((slot.deadline, token, index)));
        self.purge_if_bloated();
        self.counters.parked += 1;
        Ok(token)
    }

    /// Counts an overflow and logs it at most once per second.
    fn overflow(&mut self, now: UnixTime) -> Full {
        self.counters.overflowed += 1;
        let (last, since) = &mut self.overflow_log;
        *since += 1;
        if last.is_none_or(|t| now.saturating_since(t) >= Duration::from_secs(1)) {
            tracing::warn!(
                parked = self.by_mac.len(),
                capacity = self.capacity,
                overflows = *since,
                "ping-check parking full: offers go out without a probe"
            );
            *last = Some(now);
            *since = 0;
        }
        Full
    }

    /// Replaces the DISCOVER parked for `mac`, if any, with a newer one (a
    /// retransmission with a new xid); its probe and deadline stay. True
    /// when one was parked.
    pub(crate) fn replace(&mut self, mac: &[u8; 6], meta: &RecvMeta, datagram: &[u8]) -> bool {
        let Some(&index) = self.by_mac.get(mac) else {
            return false;
        };
        let slot = &mut self.slots[index as usize];
        let grow = datagram.len().saturating_sub(slot.datagram.capacity());
        if self.buffered + grow > self.budget {
            // Keep the older request rather than exceed the budget; it is
            // still answered.
            return true;
        }
        slot.datagram.clear();
        slot.datagram.extend_from_slice(datagram);
        self.buffered += grow;
        slot.meta = *meta;
        self.counters.replaced += 1;
        true
    }

    /// The token of the probe of `addr`, if one runs.
    pub(crate) fn token_of(&self, addr: Ipv4Addr) -> Option<u64> {
        let &index = self.by_addr.get(&addr)?;
        Some(self.slots[index as usize].token).filter(|&t| t != 0)
    }

    /// Frees the slot of `token`, copying its datagram into `into`.
    pub(crate) fn take(&mut self, token: u64, into: &mut [u8]) -> Option<Parked> {
        let index = self.index_of(token)?;
        let slot = &mut self.slots[index as usize];
        slot.token = 0;
        let len = slot.datagram.len().min(into.len());
        into[..len].copy_from_slice(&slot.datagram[..len]);
        let parked = Parked {
            meta: slot.meta,
            server_id: slot.server_id,
            addr: slot.addr,
            len,
        };
        let (addr, mac) = (slot.addr, slot.mac);
        if self.by_addr.get(&addr) == Some(&index) {
            self.by_addr.remove(&addr);
        }
        if self.by_mac.get(&mac) == Some(&index) {
            self.by_mac.remove(&mac);
        }
        self.free.push(index);
        self.drop_finished_tops();
        Some(parked)
    }

    /// The slot of a running probe.
    fn index_of(&self, token: u64) -> Option<u32> {
        let index = (token & 0xffff_ffff) as u32;
        let slot = self.slots.get(index as usize)?;
        (token != 0 && slot.token == token).then_some(index)
    }

    /// The token of the earliest probe whose deadline is at or before
    /// `now`.
    pub(crate) fn expired(&self, now: UnixTime) -> Option<u64> {
        self.deadlines
            .peek()
            .filter(|Reverse((d, _, _))| *d <= now)
            .map(|Reverse((_, t, _))| *t)
    }

    /// The earliest deadline of a running probe.
    pub(crate) fn next_deadline(&self) -> Option<UnixTime> {
        self.deadlines.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Keeps the heap's top a running probe.
    fn drop_finished_tops(&mut self) {
        while let Some(Reverse((_, token, index))) = self.deadlines.peek() {
            if self.slots[*index as usize].token == *token {
                break;
            }
            self.deadlines.pop();
        }
    }

    /// Rebuilds the heap without finished probes once they outnumber the
    /// running ones, so it stays within twice the slab.
    fn purge_if_bloated(&mut self) {
        let running = self.by_mac.len();
        if self.deadlines.len() > 2 * running + HEAP_SLACK {
            let slots = &self.slots;
            self.deadlines
                .retain(|Reverse((_, t, i))| slots[*i as usize].token == *t);
        }
    }

    /// Remembers that `addr` stayed silent to a probe at `now`.
    pub(crate) fn remember_silent(&mut self, addr: Ipv4Addr, now: UnixTime) {
        self.recent.insert(addr, now);
    }

    /// Forgets `addr` (something answered on it).
    pub(crate) fn forget(&mut self, addr: Ipv4Addr) {
        self.recent.remove(addr);
    }

    /// Whether `addr` stayed silent to a probe within the recent window.
    pub(crate) fn recently_silent(&self, addr: Ipv4Addr, now: UnixTime) -> bool {
        self.recent.contains(addr, now)
    }
}

fn unspecified_meta() -> RecvMeta {
    RecvMeta {
        src: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        dst_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        local_port: 0,
        ifindex: 0,
    }
}

/// Addresses that stayed silent to a probe, each trusted for `window`;
/// at most `capacity` of them (the oldest go first).
#[derive(Debug)]
struct RecentProbes {
    at: FastMap<Ipv4Addr, UnixTime>,
    order: VecDeque<(UnixTime, Ipv4Addr)>,
    capacity: usize,
    window: Duration,
}

impl RecentProbes {
    fn new(capacity: usize, window: Duration) -> Self {
        Self {
            at: map_with_capacity(0),
            order: VecDeque::new(),
            capacity,
            window,
        }
    }

    fn insert(&mut self, addr: Ipv4Addr, now: UnixTime) {
        if self.capacity == 0 {
            return;
        }
        while let Some(&(t, a)) = self.order.front() {
            if self.order.len() < self.capacity && now.saturating_since(t) < self.window {
                break;
            }
            self.order.pop_front();
            if self.at.get(&a) == Some(&t) {
                self.at.remove(&a);
            }
        }
        self.at.insert(addr, now);
        self.order.push_back((now, addr));
    }

    fn remove(&mut self, addr: Ipv4Addr) {
        self.at.remove(&addr);
    }

    fn contains(&self, addr: Ipv4Addr, now: UnixTime) -> bool {
        self.at
            .get(&addr)
            .is_some_and(|&t| now.saturating_since(t) < self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> UnixTime {
        UnixTime::from_millis(ms)
    }

    fn park(p: &mut ProbeSlots, now: u64, i: u8) -> Result<u64, Full> {
        p.park(
            t(now),
            Duration::from_millis(500),
            &unspecified_meta(),
            Ipv4Addr::new(10, 0, 0, 1),
            [2, 0, 0, 0, 0, i],
            Ipv4Addr::new(10, 0, 1, i),
            &[i; 300],
        )
    }

    #[test]
    fn slots_are_reused_and_deadlines_come_in_order() {
        let mut p = ProbeSlots::new(2, 1 << 20);
        let a = park(&mut p, 0, 1).expect("room to park");
        let b = park(&mut p, 10, 2).expect("room to park");
        assert_eq!(park(&mut p, 20, 3), Err(Full));
        assert_eq!(p.counters.overflowed, 1);
        assert_eq!(p.next_deadline(), Some(t(500)));
        assert_eq!(p.expired(t(499)), None);
        assert_eq!(p.expired(t(500)), Some(a));
        let mut buf = [0u8; 1500];
        let got = p.take(a, &mut buf).expect("parked");
        assert_eq!((got.len, buf[0]), (300, 1));
        assert_eq!(p.next_deadline(), Some(t(510)));
        assert!(p.take(a, &mut buf).is_none());
        let c = park(&mut p, 30, 3).expect("room to park");
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.token_of(Ipv4Addr::new(10, 0, 1, 3)), Some(c));
        assert_eq!(p.take(b, &mut buf).map(|x| x.len), Some(300));
        assert_eq!(p.expired(t(530)), Some(c));
    }

    #[test]
    fn the_buffer_budget_bounds_parking() {
        let mut p = ProbeSlots::new(100, 700);
        park(&mut p, 0, 1).expect("room to park");
        park(&mut p, 0, 2).expect("room to park");
        assert_eq!(park(&mut p, 0, 3), Err(Full));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn the_heap_stays_bounded_under_churn() {
        let mut p = ProbeSlots::new(4, 1 << 20);
        let mut buf = [0u8; 1500];
        for i in 0..100_000u64 {
            let token = park(&mut p, i, (i % 200) as u8).expect("room to park");
            // Answered out of deadline order: its heap entry stays behind.
            if i % 2 == 1 {
                p.take(token, &mut buf).expect("parked");
            }
            if p.len() == 4 {
                let first = p.expired(t(u64::MAX)).expect("one is due");
                p.take(first, &mut buf).expect("parked");
            }
            assert!(p.deadlines.len() <= 2 * 4 + HEAP_SLACK + 1);
        }
    }

    #[test]
    fn recent_probes_expire_and_stay_bounded() {
        let mut r = RecentProbes::new(2, Duration::from_secs(5));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let c = Ipv4Addr::new(10, 0, 0, 3);
        r.insert(a, t(0));
        assert!(r.contains(a, t(4_999)));
        assert!(!r.contains(a, t(5_000)));
        r.insert(b, t(1_000));
        r.insert(c, t(2_000));
        assert!(!r.contains(a, t(2_000)), "the oldest left for room");
        assert!(r.contains(b, t(2_000)) && r.contains(c, t(2_000)));
        assert!(r.order.len() <= 2 && r.at.len() <= 2);
        // Re-inserting refreshes the time; the stale queue entry does not
        // remove the fresh one.
        let mut r = RecentProbes::new(3, Duration::from_secs(5));
        r.insert(b, t(1_000));
        r.insert(b, t(3_000));
        r.insert(a, t(3_500));
        r.insert(c, t(3_600));
        assert!(r.contains(b, t(7_000)));
        assert!(!r.contains(b, t(8_000)));
    }
}
