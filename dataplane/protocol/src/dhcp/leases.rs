//! The lease table of one shard.
//!
//! Leases are keyed by address (one lease per address, so an address can
//! never be held for two clients at once) with a client index by MAC.
//! States: `Offered` (held for the client until `until`), `Bound`,
//! `Expired` and `Released` (free, but remembered so a returning client gets
//! its address back), `Declined` (quarantined until `until`) and `Abandoned`
//! (answered a ping; out of use until `until`).
//!
//! Expiry is lazy: every check compares `until` with the caller's `now`, so
//! a lease past its end is free whether or not the sweep has run. The sweep
//! ([`LeaseTable::sweep`], driven by the server's `handle_timeout`) only
//! turns ended bindings into `Expired` records for the journal and drops
//! ended offers and quarantines; it runs at most once per
//! [`SWEEP_GRANULARITY`].
//!
//! The client index never outgrows the address map: an entry leaves when
//! its address passes to another MAC, so memory stays flat however many
//! MACs come and go.
//!
//! After a change of shard count, replay may leave a shard a binding of
//! one of its own clients on an address outside its slice, and leave the
//! slice's new owner a binding of a foreign client on an address of its
//! slice. The client keeps its address (renewals extend it where it is);
//! the slice's owner keeps the address out of use until the next start,
//! since it cannot see those renewals, and the next replay settles it.
//!
//! Capacity is reserved at construction: no packet allocates while the
//! table stays within it.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::Subnet;
use crate::dhcp::hash::{FastMap, map_with_capacity};
use crate::dhcp::pool;
use crate::dhcp::record::{LeaseRecord, RecordBatch, RecordKind};
use crate::dhcp::time::UnixTime;
use crate::shard::shard_of;

/// Smallest interval between two sweeps.
pub const SWEEP_GRANULARITY: Duration = Duration::from_secs(1);

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Offered and held for the client until `until`.
    Offered,
    /// Bound until `until`.
    Bound,
    /// The binding ran out; free.
    Expired,
    /// The client released it; free.
    Released,
    /// Declined by the client; quarantined until `until`.
    Declined,
    /// Answered a ping before being offered; out of use until `until`.
    Abandoned,
}

/// One address and who holds (or last held) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The client.
    pub mac: [u8; 6],
    /// The address.
    pub addr: Ipv4Addr,
    /// The state.
    pub state: LeaseState,
    /// End of the hold, binding or quarantine.
    pub until: UnixTime,
    /// When the lease last changed.
    pub updated: UnixTime,
    /// An offer waiting for a ping-check result.
    pub probing: bool,
}

impl Lease {
    /// Whether the address is out of the pool at `now`.
    pub fn is_active(&self, now: UnixTime) -> bool {
        !matches!(self.state, LeaseState::Expired | LeaseState::Released) && self.until > now
    }

    /// Whether it is bound at `now`.
    pub fn is_bound(&self, now: UnixTime) -> bool {
        self.state == LeaseState::Bound && self.until > now
    }

    /// Whether `mac` may be given this address at `now`: it is free, or
    /// offered or bound to `mac` itself.
    pub fn available_to(&self, mac: &[u8; 6], now: UnixTime) -> bool {
        !self.is_active(now)
            || (self.mac == *mac && matches!(self.state, LeaseState::Offered | LeaseState::Bound))
    }
}

/// The leases of one shard.
#[derive(Debug)]
pub struct LeaseTable {
    shard: u32,
    shards: u32,
    by_addr: FastMap<Ipv4Addr, Lease>,
    by_mac: FastMap<[u8; 6], Ipv4Addr>,
    next_deadline: Option<UnixTime>,
    /// Last address handed out: the next search starts after it.
    cursor: u32,
    /// Leases removed from the address map so far: only a removal can make
    /// an address of the slice unused again.
    removals: u64,
    /// The subnet (network and ranges) whose slice had no unused address
    /// at `removals`: until the next removal a search there skips the walk
    /// for one, which would visit the whole slice for every new client once
    /// each address has had a lease.
    no_unused: Option<(SubnetKey, u64)>,
}

/// A subnet's network and a digest of its ranges.
type SubnetKey = (Ipv4Addr, u8, u64);

fn subnet_key(subnet: &Subnet) -> SubnetKey {
    // FNV-1a over the range bounds: no allocation on the hot path.
    let digest = subnet.ranges.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, r| {
        [u32::from(r.start), u32::from(r.end)]
            .iter()
            .fold(h, |h, &v| (h ^ u64::from(v)).wrapping_mul(0x0100_0000_01b3))
    });
    (subnet.net.addr(), subnet.net.prefix(), digest)
}

impl LeaseTable {
    /// An empty table for shard `shard` of `shards`, with room for
    /// `capacity` leases.
    pub fn new(shard: u32, shards: u32, capacity: usize) -> Self {
        Self {
            shard,
            shards: shards.max(1),
            by_addr: map_with_capacity(capacity),
            by_mac: map_with_capacity(capacity),
            next_deadline: None,
            cursor: 0,
            removals: 0,
            no_unused: None,
        }
    }

    /// The lease of `addr`, in whatever state.
    pub fn get(&self, addr: Ipv4Addr) -> Option<&Lease> {
        self.by_addr.get(&addr)
    }

    /// The client's current (or last) lease.
    pub fn of_client(&self, mac: &[u8; 6]) -> Option<&Lease> {
        let addr = self.by_mac.get(mac)?;
        self.by_addr.get(addr).filter(|l| l.mac == *mac)
    }

    /// Every lease, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_addr.values()
    }

    /// Number of leases (in any state).
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Number of clients indexed by MAC (never more than [`LeaseTable::len`]).
    pub fn clients(&self) -> usize {
        self.by_mac.len()
    }

    /// Whether `addr` may be given to `mac` at `now`: no lease, or one that
    /// is free or already `mac`'s, and never a binding replayed for another
    /// shard's client.
    pub fn free_for(&self, addr: Ipv4Addr, mac: &[u8; 6], now: UnixTime) -> bool {
        self.by_addr
            .get(&addr)
            .is_none_or(|l| l.available_to(mac, now) && !self.pinned(l))
    }

    /// Whether the lease is a binding of another shard's client, which this
    /// shard must not give away however old (see the module docs).
    pub fn pinned(&self, lease: &Lease) -> bool {
        lease.state == LeaseState::Bound && !self.owns_client(&lease.mac)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// When [`LeaseTable::sweep`] next has work.
    pub fn next_deadline(&self) -> Option<UnixTime> {
        self.next_deadline
    }

    fn arm(&mut self, until: UnixTime) {
        if until != UnixTime::NEVER {
            self.next_deadline = Some(self.next_deadline.map_or(until, |d| d.min(until)));
        }
    }

    fn owns_client(&self, mac: &[u8; 6]) -> bool {
        shard_of(mac, self.shards) == self.shard
    }

    /// Stores `lease`; the MAC that held the address before loses its index
    /// entry when it pointed here.
    fn put(&mut self, lease: Lease) {
        if let Some(old) = self.by_addr.insert(lease.addr, lease)
            && old.mac != lease.mac
            && self.by_mac.get(&old.mac) == Some(&lease.addr)
        {
            self.by_mac.remove(&old.mac);
        }
    }

    /// Points the client at `addr`, withdrawing an offer it held elsewhere.
    fn set_client(&mut self, mac: [u8; 6], addr: Ipv4Addr) {
        let Some(old) = self.by_mac.insert(mac, addr) else {
            return;
        };
        if old != addr
            && self
                .by_addr
                .get(&old)
                .is_some_and(|l| l.mac == mac && l.state == LeaseState::Offered)
        {
            self.by_addr.remove(&old);
            self.removals += 1;
        }
    }

    /// Holds `addr` for `mac` until `until` (an offer). A binding the client
    /// already has on `addr` stays a binding.
    pub(crate) fn hold(
        &mut self,
        mac: [u8; 6],
        addr: Ipv4Addr,
        until: UnixTime,
        probing: bool,
        now: UnixTime,
    ) {
        let bound = self
            .by_addr
            .get(&addr)
            .is_some_and(|l| l.mac == mac && l.is_bound(now));
        if !bound {
            let lease = Lease {
                mac,
                addr,
                state: LeaseState::Offered,
                until,
                updated: now,
                probing,
            };
            self.put(lease);
            self.arm(until);
        }
        self.set_client(mac, addr);
    }

    /// Withdraws the offer `mac` holds, if any (it chose another server).
    pub(crate) fn withdraw_offer(&mut self, mac: &[u8; 6]) {
        if let Some(l) = self
            .of_client(mac)
            .filter(|l| l.state == LeaseState::Offered)
        {
            let addr = l.addr;
            self.by_addr.remove(&addr);
            self.removals += 1;
            self.by_mac.remove(mac);
        }
    }

    /// Binds `addr` to `mac` until `until`, recording a bind or renewal; a
    /// binding the client held on another address is released first.
    pub(crate) fn bind(
        &mut self,
        mac: [u8; 6],
        addr: Ipv4Addr,
        until: UnixTime,
        now: UnixTime,
        out: &mut RecordBatch,
    ) {
        if let Some(&old) = self.by_mac.get(&mac).filter(|&&old| old != addr)
            && let Some(r) = self.release(mac, old, now)
        {
            out.push(r);
        }
        let renew = self
            .by_addr
            .get(&addr)
            .is_some_and(|l| l.mac == mac && l.is_bound(now));
        let lease = Lease {
            mac,
            addr,
            state: LeaseState::Bound,
            until,
            updated: now,
            probing: false,
        };
        self.put(lease);
        self.set_client(mac, addr);
        self.arm(until);
        let kind = if renew {
            RecordKind::Renew
        } else {
            RecordKind::Bind
        };
        out.push(record(kind, mac, addr, now, until));
    }

    /// Releases the binding of `addr` to `mac`.
    pub(crate) fn release(
        &mut self,
        mac: [u8; 6],
        addr: Ipv4Addr,
        now: UnixTime,
    ) -> Option<LeaseRecord> {
        let l = self
            .by_addr
            .get_mut(&addr)
            .filter(|l| l.mac == mac && l.is_bound(now))?;
        l.state = LeaseState::Released;
        l.until = now;
        l.updated = now;
        Some(record(RecordKind::Release, mac, addr, now, now))
    }

    /// Quarantines `addr`, offered or bound to `mac`, until `until`.
    pub(crate) fn decline(
        &mut self,
        mac: [u8; 6],
        addr: Ipv4Addr,
        until: UnixTime,
        now: UnixTime,
    ) -> Option<LeaseRecord> {
        let l = self.by_addr.get_mut(&addr).filter(|l| {
            l.mac == mac
                && l.is_active(now)
                && matches!(l.state, LeaseState::Offered | LeaseState::Bound)
        })?;
        l.state = LeaseState::Declined;
        l.until = until;
        l.updated = now;
        l.probing = false;
        if self.by_mac.get(&mac) == Some(&addr) {
            self.by_mac.remove(&mac);
        }
        self.arm(until);
        Some(record(RecordKind::Decline, mac, addr, now, until))
    }

    /// Takes `addr` out of use until `until`: something answered a ping.
    pub(crate) fn abandon(&mut self, addr: Ipv4Addr, until: UnixTime, now: UnixTime) {
        let mac = self.by_addr.get(&addr).map_or([0; 6], |l| l.mac);
        if self.by_mac.get(&mac) == Some(&addr) {
            self.by_mac.remove(&mac);
        }
        let lease = Lease {
            mac,
            addr,
            state: LeaseState::Abandoned,
            until,
            updated: now,
            probing: false,
        };
        self.put(lease);
        self.arm(until);
    }

    /// A free address of this shard's slice of `subnet` for `mac`, never
    /// one `reserved` says is reserved. Addresses never used come first (so
    /// a returning client still finds its old one), searching on from the
    /// last one handed out. Once a search found none unused, later ones
    /// skip that walk until a lease leaves the table or the ranges change
    /// (an address freed by a reservation that goes away is found as
    /// unused after the next removal).
    pub(crate) fn find_free(
        &mut self,
        subnet: &Subnet,
        mac: &[u8; 6],
        now: UnixTime,
        reserved: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let (shard, shards, cursor) = (self.shard, self.shards, self.cursor);
        let unused = |a: &Ipv4Addr| !reserved(*a) && !self.by_addr.contains_key(a);
        let free = |a: &Ipv4Addr| !reserved(*a) && self.free_for(*a, mac, now);
        let after = |lo: u32, hi: u32| {
            subnet
                .ranges
                .iter()
                .flat_map(move |r| pool::slice_addrs(r, shard, shards, lo, hi))
        };
        let order = || after(cursor.saturating_add(1), u32::MAX).chain(after(0, cursor));
        let key = subnet_key(subnet);
        let known_full = self.no_unused == Some((key, self.removals));
        let never_used = if known_full {
            None
        } else {
            order().find(unused)
        };
        let found = never_used.or_else(|| order().find(free));
        if never_used.is_none() && !known_full {
            self.no_unused = Some((key, self.removals));
        }
        let found = found?;
        self.cursor = u32::from(found);
        Some(found)
    }

    /// Applies a journaled record while rebuilding state at start.
    ///
    /// Feed every record of the journal to every shard, whatever shard count
    /// wrote it: a shard keeps client state only for the MACs it owns, and
    /// keeps other clients' bindings only so it never hands out an address
    /// still bound elsewhere. A record older than what the table already
    /// knows of the address is ignored, so the order across journals does
    /// not matter.
    pub fn replay(&mut self, r: &LeaseRecord) {
        let newer = self.by_addr.get(&r.addr).is_some_and(|l| l.updated > r.at);
        if newer {
            return;
        }
        let owned = self.owns_client(&r.mac);
        match r.kind {
            RecordKind::Bind | RecordKind::Renew | RecordKind::Decline => {
                let state = if r.kind == RecordKind::Decline {
                    LeaseState::Declined
                } else {
                    LeaseState::Bound
                };
                let lease = Lease {
                    mac: r.mac,
                    addr: r.addr,
                    state,
                    until: r.until,
                    updated: r.at,
                    probing: false,
                };
                self.put(lease);
                if owned && state == LeaseState::Bound {
                    self.by_mac.insert(r.mac, r.addr);
                } else if self.by_mac.get(&r.mac) == Some(&r.addr) {
                    self.by_mac.remove(&r.mac);
                }
                self.arm(r.until);
            }
            RecordKind::Release | RecordKind::Expire => {
                if let Some(l) = self.by_addr.get_mut(&r.addr).filter(|l| l.mac == r.mac) {
                    l.state = if r.kind == RecordKind::Release {
                        LeaseState::Released
                    } else {
                        LeaseState::Expired
                    };
                    l.until = r.at;
                    l.updated = r.at;
                }
            }
        }
    }

    /// Ends what has run out by `now`: bindings become `Expired` (with an
    /// `Expire` record for clients of this shard), ended offers and
    /// quarantines are dropped.
    pub fn sweep(&mut self, now: UnixTime, out: &mut Vec<LeaseRecord>) {
        let (shard, shards) = (self.shard, self.shards);
        let by_mac = &mut self.by_mac;
        let removals = &mut self.removals;
        let mut next: Option<UnixTime> = None;
        self.by_addr.retain(|addr, l| {
            if l.until > now {
                if l.is_active(now) && l.until != UnixTime::NEVER {
                    next = Some(next.map_or(l.until, |n| n.min(l.until)));
                }
                return true;
            }
            match l.state {
                // Another shard's client may have renewed it since.
                LeaseState::Bound if shard_of(&l.mac, shards) != shard => true,
                LeaseState::Bound => {
                    l.state = LeaseState::Expired;
                    l.updated = l.until;
                    out.push(record(RecordKind::Expire, l.mac, *addr, l.until, l.until));
                    true
                }
                LeaseState::Offered | LeaseState::Abandoned | LeaseState::Declined => {
                    if by_mac.get(&l.mac) == Some(addr) {
                        by_mac.remove(&l.mac);
                    }
                    *removals += 1;
                    false
                }
                LeaseState::Expired | LeaseState::Released => true,
            }
        });
        let earliest = now.saturating_add(SWEEP_GRANULARITY);
        self.next_deadline = next.map(|n| n.max(earliest));
    }
}

fn record(
    kind: RecordKind,
    mac: [u8; 6],
    addr: Ipv4Addr,
    at: UnixTime,
    until: UnixTime,
) -> LeaseRecord {
    LeaseRecord {
        kind,
        mac,
        addr,
        at,
        until,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AddrRange, Ipv4Net, UnknownClients};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn t(s: u64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn subnet(first: u8, last: u8) -> Subnet {
        Subnet {
            net: Ipv4Net::new(ip(0), 24).expect("canonical"),
            ranges: vec![AddrRange {
                start: ip(first),
                end: ip(last),
            }],
            routers: vec![],
            broadcast: ip(255),
            dns_servers: vec![],
            ntp_servers: vec![],
            domain_name: None,
            time_offset: None,
            next_server: None,
            default_lease_time: None,
            max_lease_time: None,
            unknown_clients: UnknownClients::Allow,
            dynamic_bootp: false,
            dynamic_bootp_lease_length: None,
            boot_rules: vec![],
        }
    }

    fn bind(
        table: &mut LeaseTable,
        mac: [u8; 6],
        addr: Ipv4Addr,
        now: u64,
        secs: u64,
    ) -> Vec<LeaseRecord> {
        let mut batch = RecordBatch::default();
        table.bind(mac, addr, t(now + secs), t(now), &mut batch);
        batch.as_slice().to_vec()
    }

    #[test]
    fn bind_then_renew_then_expire() {
        let mut table = LeaseTable::new(0, 1, 8);
        let r = bind(&mut table, A, ip(10), 0, 100);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, RecordKind::Bind);
        let r = bind(&mut table, A, ip(10), 50, 100);
        assert_eq!(r[0].kind, RecordKind::Renew);
        assert_eq!(r[0].until, t(150));
        assert!(table.of_client(&A).is_some_and(|l| l.is_bound(t(149))));
        assert!(
            !table.of_client(&A).is_some_and(|l| l.is_bound(t(150))),
            "lazy expiry"
        );
        assert_eq!(table.next_deadline(), Some(t(100)), "conservative deadline");
        let mut out = Vec::new();
        table.sweep(t(151), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].kind, out[0].at), (RecordKind::Expire, t(150)));
        assert_eq!(
            table.of_client(&A).map(|l| l.state),
            Some(LeaseState::Expired)
        );
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn binding_a_new_address_releases_the_old_one() {
        let mut table = LeaseTable::new(0, 1, 8);
        bind(&mut table, A, ip(10), 0, 100);
        let r = bind(&mut table, A, ip(11), 10, 100);
        let kinds: Vec<_> = r.iter().map(|r| (r.kind, r.addr)).collect();
        assert_eq!(
            kinds,
            vec![(RecordKind::Release, ip(10)), (RecordKind::Bind, ip(11))]
        );
        assert_eq!(
            table.get(ip(10)).map(|l| l.state),
            Some(LeaseState::Released)
        );
    }

    #[test]
    fn offers_hold_and_yield() {
        let mut table = LeaseTable::new(0, 1, 8);
        table.hold(A, ip(10), t(30), false, t(0));
        assert!(!table.get(ip(10)).is_some_and(|l| l.available_to(&B, t(29))));
        assert!(table.get(ip(10)).is_some_and(|l| l.available_to(&B, t(30))));
        // A new offer elsewhere withdraws the first.
        table.hold(A, ip(11), t(30), false, t(1));
        assert!(table.get(ip(10)).is_none());
        table.withdraw_offer(&A);
        assert!(table.is_empty());
    }

    #[test]
    fn decline_quarantines() {
        let mut table = LeaseTable::new(0, 1, 8);
        bind(&mut table, A, ip(10), 0, 100);
        assert!(table.decline(B, ip(10), t(500), t(1)).is_none(), "not B's");
        let r = table.decline(A, ip(10), t(500), t(1)).expect("declined");
        assert_eq!((r.kind, r.until), (RecordKind::Decline, t(500)));
        assert!(table.of_client(&A).is_none());
        assert!(
            !table
                .get(ip(10))
                .is_some_and(|l| l.available_to(&A, t(499)))
        );
        assert!(
            table
                .get(ip(10))
                .is_some_and(|l| l.available_to(&A, t(500)))
        );
    }

    #[test]
    fn find_free_prefers_unused_and_skips_reserved() {
        let s = subnet(1, 4);
        let mut table = LeaseTable::new(0, 1, 8);
        let reserved = |a: Ipv4Addr| a == ip(2);
        let first = table.find_free(&s, &A, t(0), reserved).expect("free");
        assert_eq!(first, ip(1));
        bind(&mut table, A, first, 0, 10);
        assert_eq!(table.find_free(&s, &B, t(0), reserved), Some(ip(3)));
        bind(&mut table, B, ip(3), 0, 10);
        assert_eq!(table.find_free(&s, &B, t(0), reserved), Some(ip(4)));
        bind(&mut table, [9; 6], ip(4), 0, 10);
        assert_eq!(table.find_free(&s, &[7; 6], t(5), reserved), None, "full");
        assert_eq!(
            table.find_free(&s, &[7; 6], t(10), reserved),
            Some(ip(1)),
            "expired reused"
        );
    }

    #[test]
    fn a_full_slice_is_walked_once_until_a_lease_leaves() {
        let s = subnet(1, 4);
        let mut table = LeaseTable::new(0, 1, 8);
        for n in 1u8..=4 {
            bind(&mut table, [n; 6], ip(n), 0, 10);
            assert!(table.release([n; 6], ip(n), t(1)).is_some());
        }
        // Every address had a lease: a released one is handed out, and the
        // walk for an unused one is remembered as fruitless.
        let first = table.find_free(&s, &[7; 6], t(2), |_| false);
        assert_eq!(first, Some(ip(1)));
        assert_eq!(table.no_unused.map(|(_, removals)| removals), Some(0));
        // An offer withdrawn leaves its address unused: preferred again.
        table.hold([7; 6], ip(1), t(30), false, t(2));
        table.withdraw_offer(&[7; 6]);
        assert_eq!(table.find_free(&s, &[8; 6], t(2), |_| false), Some(ip(1)));
        bind(&mut table, [8; 6], ip(1), 2, 10);
        // Ranges that grow are walked again: their new addresses come first.
        let wider = subnet(1, 9);
        assert_eq!(
            table.find_free(&wider, &[6; 6], t(2), |_| false),
            Some(ip(5))
        );
    }

    #[test]
    fn find_free_stays_in_the_slice() {
        let s = subnet(10, 19);
        for shard in 0..3 {
            let mut table = LeaseTable::new(shard, 3, 8);
            while let Some(a) = table.find_free(&s, &A, t(0), |_| false) {
                assert!(pool::slice_contains(&s.ranges[0], a, shard, 3));
                bind(&mut table, [a.octets()[3]; 6], a, 0, 100);
            }
            assert_eq!(table.len() as u64, pool::slice_len(&s, shard, 3));
        }
    }

    #[test]
    fn replay_rebuilds_and_ignores_stale_records() {
        let mut live = LeaseTable::new(0, 1, 8);
        let mut journal = bind(&mut live, A, ip(10), 0, 100);
        journal.extend(bind(&mut live, B, ip(11), 1, 100));
        journal.push(live.release(B, ip(11), t(2)).expect("bound"));
        journal.extend(bind(&mut live, A, ip(10), 3, 1000));
        let mut fresh = LeaseTable::new(0, 1, 8);
        for r in &journal {
            fresh.replay(r);
        }
        // Out-of-order delivery of an old record changes nothing.
        fresh.replay(&journal[0]);
        let a = fresh.of_client(&A).expect("A");
        assert_eq!(
            (a.addr, a.state, a.until),
            (ip(10), LeaseState::Bound, t(1003))
        );
        assert_eq!(
            fresh.get(ip(11)).map(|l| l.state),
            Some(LeaseState::Released)
        );
    }

    #[test]
    fn replay_keeps_foreign_bindings_out_of_use() {
        let foreign = (0u8..=255)
            .map(|n| [2, 0, 0, 0, 1, n])
            .find(|m| shard_of(m, 2) == 1)
            .expect("some MAC hashes to shard 1");
        let mut shard0 = LeaseTable::new(0, 2, 8);
        shard0.replay(&record(RecordKind::Bind, foreign, ip(10), t(0), t(100)));
        assert!(shard0.of_client(&foreign).is_none(), "not our client");
        let s = subnet(10, 10);
        assert_eq!(shard0.find_free(&s, &A, t(50), |_| false), None);
        // Its client may renew it on the shard that owns the client now:
        // the address stays out of use here until the next replay.
        assert_eq!(shard0.find_free(&s, &A, t(100), |_| false), None);
    }
}
