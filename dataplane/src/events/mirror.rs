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
///
/// Reserved hosts (a fixed address) have no lease in the shard's table:
/// the address is theirs, nothing is journalled. The shard notes each ACK
/// it gives one ([`LeaseMirror::update_fixed`]), so they are listed too,
/// from their first ACK after the data plane started.
#[derive(Debug)]
pub struct LeaseMirror {
    shard: u32,
    shards: u32,
    leases: Mutex<HashMap<Ipv4Addr, Lease>>,
    /// Bindings of reserved hosts, by MAC (one address per host).
    fixed: Mutex<HashMap<[u8; 6], Lease>>,
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
            fixed: Mutex::new(HashMap::new()),
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

    /// Records the bindings of reserved hosts in `pending` (a `Bound`
    /// lease for an ACK, a `Released` one for a release) and empties it,
    /// with the same policy as [`LeaseMirror::update`] towards a reader.
    pub fn update_fixed(&self, pending: &mut Vec<Lease>) -> bool {
        if pending.is_empty() {
            return true;
        }
        let mut fixed = match self.fixed.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if pending.len() < MAX_DEFERRED => {
                return false;
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                self.fixed.lock().unwrap_or_else(PoisonError::into_inner)
            }
        };
        for lease in pending.drain(..) {
            match lease.state {
                LeaseState::Released => {
                    fixed.remove(&lease.mac);
                }
                _ => {
                    fixed.insert(lease.mac, lease);
                }
            }
        }
        true
    }

    /// The leases held at `now`: offers, quarantines and abandoned
    /// addresses whose time is over are left out (the shard's next sweep
    /// drops them without a record). Reserved hosts' bindings follow, as
    /// `Expired` once their lease time has passed.
    pub fn leases(&self, now: UnixTime) -> Vec<Lease> {
        let mut leases: Vec<Lease> = self
            .lock()
            .values()
            .filter(|l| match l.state {
                LeaseState::Offered | LeaseState::Declined | LeaseState::Abandoned => l.until > now,
                LeaseState::Bound | LeaseState::Expired | LeaseState::Released => true,
            })
            .copied()
            .collect();
        let fixed = self.fixed.lock().unwrap_or_else(PoisonError::into_inner);
        leases.extend(fixed.values().map(|l| Lease {
            state: if l.until > now {
                LeaseState::Bound
            } else {
                LeaseState::Expired
            },
            ..*l
        }));
        leases
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
    fn reserved_hosts_are_listed_from_their_ack_until_released() {
        let mac = mac_of_shard(0, 5);
        let mirror = LeaseMirror::new(0, 1);
        let fixed = |last: u8, state: LeaseState| Lease {
            mac,
            addr: Ipv4Addr::new(10, 0, 0, last),
            state,
            until: UnixTime::from_secs(100),
            updated: UnixTime::from_secs(10),
            probing: false,
        };
        let mut pending = vec![fixed(40, LeaseState::Bound)];
        {
            let _reader = mirror.fixed.lock().unwrap();
            assert!(!mirror.update_fixed(&mut pending), "deferred");
        }
        assert!(mirror.update_fixed(&mut pending));
        assert!(pending.is_empty());
        assert_eq!(
            mirror.leases(UnixTime::from_secs(20)),
            [fixed(40, LeaseState::Bound)]
        );
        // A new address for the host replaces the old one.
        mirror.update_fixed(&mut vec![fixed(41, LeaseState::Bound)]);
        assert_eq!(
            mirror.leases(UnixTime::from_secs(20)),
            [fixed(41, LeaseState::Bound)]
        );
        assert_eq!(
            mirror.leases(UnixTime::from_secs(100)),
            [fixed(41, LeaseState::Expired)],
            "past its lease time"
        );
        mirror.update_fixed(&mut vec![fixed(41, LeaseState::Released)]);
        assert!(mirror.leases(UnixTime::from_secs(20)).is_empty());
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
