//! How full the pools are: per subnet, the addresses of this shard's slice
//! and how many of them are bound, offered or out of use.

use std::net::Ipv4Addr;

use crate::config::Ipv4Net;
use crate::dhcp::leases::{LeaseState, LeaseTable};
use crate::dhcp::pool::{range_contains, slice_len};
use crate::dhcp::snapshot::Snapshot;
use crate::dhcp::time::UnixTime;

/// The use of one subnet's dynamic addresses in one shard's slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// The subnet.
    pub network: Ipv4Net,
    /// Dynamic addresses in this shard's slice.
    pub size: u64,
    /// Bound to a client.
    pub bound: u64,
    /// Offered and held for a client.
    pub offered: u64,
    /// Declined or answering a ping check: out of use for a while.
    pub quarantined: u64,
}

impl PoolUsage {
    /// Addresses a new client can still be given.
    pub fn free(&self) -> u64 {
        self.size
            .saturating_sub(self.bound + self.offered + self.quarantined)
    }
}

/// The usage of every subnet with dynamic ranges, in configuration order,
/// from one pass over the shard's leases (addresses outside every range,
/// such as reservations, are not counted).
pub(crate) fn pool_usage(
    snap: &Snapshot,
    leases: &LeaseTable,
    shard: u32,
    shards: u32,
    now: UnixTime,
    out: &mut Vec<PoolUsage>,
) {
    out.clear();
    let subnets = &snap.config().subnets;
    out.extend(subnets.iter().map(|s| PoolUsage {
        network: s.net,
        size: slice_len(s, shard, shards),
        bound: 0,
        offered: 0,
        quarantined: 0,
    }));
    for lease in leases.iter().filter(|l| l.is_active(now)) {
        let Some(i) = subnet_of(snap, lease.addr) else {
            continue;
        };
        let usage = &mut out[i];
        match lease.state {
            LeaseState::Bound => usage.bound += 1,
            LeaseState::Offered => usage.offered += 1,
            LeaseState::Declined | LeaseState::Abandoned => usage.quarantined += 1,
            LeaseState::Expired | LeaseState::Released => {}
        }
    }
    out.retain(|u| u.size > 0);
}

/// The index of the subnet whose dynamic ranges hold `addr`.
fn subnet_of(snap: &Snapshot, addr: Ipv4Addr) -> Option<usize> {
    snap.config()
        .subnets
        .iter()
        .position(|s| s.net.contains(addr) && s.ranges.iter().any(|r| range_contains(r, addr)))
}
