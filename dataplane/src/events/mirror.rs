//! A shard's leases, copied where the control thread can read them.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};

use bootwave_protocol::dhcp::{Lease, LeaseState, LeaseTable, PoolUsage, UnixTime};
use bootwave_protocol::shard::shard_of;

/// Addresses a shard may collect while a reader holds its mirror; past
/// this it waits for the lock once (a reader holds it for one copy).
pub const MAX_DEFERRED: usize = 65_536;

/// The leases of the clients one DHCP shard owns, by address.
///
/// The shard's own table also remembers other shards' bindings inside its
/// slice (so that a change of shard count never gives an address twice);
/// those are left out here, so every lease appears on exactly one shard.
#[derive(Debug)]
pub struct LeaseMirror {
    shard: u32,
    shards: u32,
    leases: Mutex<HashMap<Ipv4Addr, Lease>>,
    /// How full the shard's pool slices were when last counted.
    pools: Mutex<Vec<PoolUsage>>,
}

impl LeaseMirror {
    /// An empty mirror of shard `shard` of `shards` DHCP shards.
    pub fn new(shard: u32, shards: u32) -> Self {
        Self {
            shard,
            shards: shards.max(1),
            leases: Mutex::new(HashMap::new()),
            pools: Mutex::new(Vec::new()),
        }
    }

    /// The shard mirrored.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Copies every lease of `table` this shard owns (at start, after
    /// replay).
    pub fn seed(&self, table: &LeaseTable) {
        let mut leases = self.lock();
        leases.clear();
        leases.extend(table.iter().filter(|l| self.owns(l)).map(|l| (l.addr, *l)));
    }

    /// Brings the addresses in `touched` up to date from `table` and
    /// empties `touched`. When a reader holds the mirror the update is
    /// left for the next call (`touched` is kept) unless `touched` has
    /// grown past [`MAX_DEFERRED`]. Returns whether it was applied.
    pub fn update(&self, table: &LeaseTable, touched: &mut Vec<Ipv4Addr>) -> bool {
        if touched.is_empty() {
            return true;
        }
        let mut leases = match self.leases.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if touched.len() < MAX_DEFERRED => {
                return false;
            }
            Err(std::sync::TryLockError::WouldBlock) => self.lock(),
        };
        for addr in touched.drain(..) {
            match table.get(addr).filter(|l| self.owns(l)) {
                Some(lease) => leases.insert(addr, *lease),
                None => leases.remove(&addr),
            };
        }
        true
    }

    /// The leases held at `now`: offers, quarantines and abandoned
    /// addresses whose time is over are left out (the shard's next sweep
    /// drops them without a record).
    pub fn leases(&self, now: UnixTime) -> Vec<Lease> {
        self.lock()
            .values()
            .filter(|l| match l.state {
                LeaseState::Offered | LeaseState::Declined | LeaseState::Abandoned => l.until > now,
                LeaseState::Bound | LeaseState::Expired | LeaseState::Released => true,
            })
            .copied()
            .collect()
    }

    /// The MAC bound to `addr` on this shard, if any (HTTP's client
    /// lookup; waits only for a shard's copy in progress).
    pub fn mac_of(&self, addr: Ipv4Addr) -> Option<[u8; 6]> {
        self.lock()
            .get(&addr)
            .filter(|l| matches!(l.state, LeaseState::Bound))
            .map(|l| l.mac)
    }

    fn owns(&self, lease: &Lease) -> bool {
        shard_of(&lease.mac, self.shards) == self.shard
    }

    /// Replaces the pool usage the shard counted last.
    pub fn set_pools(&self, usage: &[PoolUsage]) {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.clear();
        pools.extend_from_slice(usage);
    }

    /// The pool usage the shard counted last (empty before the first count).
    pub fn pools(&self) -> Vec<PoolUsage> {
        self.pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, Lease>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bootwave_protocol::dhcp::{LeaseRecord, RecordKind};

    use super::*;

    fn bind(table: &mut LeaseTable, mac: [u8; 6], last: u8, kind: RecordKind) {
        table.replay(&LeaseRecord {
            kind,
            mac,
            addr: Ipv4Addr::new(10, 0, 0, last),
            at: UnixTime::from_secs(10),
            until: UnixTime::from_secs(1_000),
        });
    }

    /// A MAC that `shard_of` gives to `shard` of 2.
    fn mac_of_shard(shard: u32, n: u8) -> [u8; 6] {
        (0..=255u8)
            .map(|i| [2, 0, 0, n, 0, i])
            .find(|mac| shard_of(mac, 2) == shard)
            .unwrap()
    }

    #[test]
    fn seeds_only_the_leases_of_its_own_clients() {
        let (ours, theirs) = (mac_of_shard(0, 1), mac_of_shard(1, 2));
        let mut table = LeaseTable::new(0, 2, 8);
        bind(&mut table, ours, 10, RecordKind::Bind);
        bind(&mut table, theirs, 11, RecordKind::Bind);
        let mirror = LeaseMirror::new(0, 2);
        mirror.seed(&table);
        let leases = mirror.leases(UnixTime::from_secs(20));
        assert_eq!(leases.len(), 1);
        assert_eq!((leases[0].mac, leases[0].state), (ours, LeaseState::Bound));
    }

    #[test]
    fn updates_follow_the_table_and_wait_for_a_reader() {
        let mac = mac_of_shard(0, 3);
        let mut table = LeaseTable::new(0, 1, 8);
        let mirror = LeaseMirror::new(0, 1);
        bind(&mut table, mac, 10, RecordKind::Bind);
        let mut touched = vec![Ipv4Addr::new(10, 0, 0, 10)];
        {
            let _reader = mirror.leases.lock().unwrap();
            assert!(!mirror.update(&table, &mut touched), "deferred");
            assert_eq!(touched.len(), 1, "kept for the next flush");
        }
        assert!(mirror.update(&table, &mut touched));
        assert!(touched.is_empty());
        bind(&mut table, mac, 10, RecordKind::Release);
        touched.push(Ipv4Addr::new(10, 0, 0, 10));
        mirror.update(&table, &mut touched);
        let leases = mirror.leases(UnixTime::from_secs(20));
        assert_eq!(leases[0].state, LeaseState::Released);
    }

    #[test]
    fn ended_offers_and_quarantines_are_not_listed() {
        let mac = mac_of_shard(0, 4);
        let mut table = LeaseTable::new(0, 1, 8);
        bind(&mut table, mac, 12, RecordKind::Decline);
        let mirror = LeaseMirror::new(0, 1);
        mirror.seed(&table);
        assert_eq!(mirror.leases(UnixTime::from_secs(999)).len(), 1);
        assert!(mirror.leases(UnixTime::from_secs(1_000)).is_empty());
    }
}
