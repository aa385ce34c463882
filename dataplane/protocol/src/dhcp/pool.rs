//! Dynamic pools and how shards split them.
//!
//! Each shard owns a disjoint slice of every dynamic range: the addresses
//! whose offset from the range start is congruent to the shard index modulo
//! the shard count. A shard offers and binds only addresses of its slice, so
//! shards never hand out the same address and need no coordination.

use std::net::Ipv4Addr;

use crate::config::{AddrRange, Subnet};

/// Whether `addr` lies in `range` (inclusive).
pub fn range_contains(range: &AddrRange, addr: Ipv4Addr) -> bool {
    (u32::from(range.start)..=u32::from(range.end)).contains(&u32::from(addr))
}

/// Whether `addr` lies in `range` and in the slice of shard `shard` of
/// `shards`.
pub fn slice_contains(range: &AddrRange, addr: Ipv4Addr, shard: u32, shards: u32) -> bool {
    range_contains(range, addr)
        && (u32::from(addr) - u32::from(range.start)) % shards.max(1) == shard
}

/// Whether `addr` is a dynamic address of `subnet` owned by this shard.
pub fn subnet_slice_contains(subnet: &Subnet, addr: Ipv4Addr, shard: u32, shards: u32) -> bool {
    subnet
        .ranges
        .iter()
        .any(|r| slice_contains(r, addr, shard, shards))
}

/// The addresses of shard `shard`'s slice of `range` within `lo..=hi`, in
/// ascending order.
pub fn slice_addrs(
    range: &AddrRange,
    shard: u32,
    shards: u32,
    lo: u32,
    hi: u32,
) -> impl Iterator<Item = Ipv4Addr> + use<> {
    let shards = u64::from(shards.max(1));
    let start = u64::from(u32::from(range.start));
    let lo = u64::from(lo).max(start);
    let hi = u64::from(hi).min(u64::from(u32::from(range.end)));
    // First address at or above `lo` whose offset ≡ shard (mod shards).
    let rem = (lo - start.min(lo)) % shards;
    let shard = u64::from(shard);
    let first = lo + (shard + shards - rem) % shards;
    (first..=hi)
        .step_by(usize::try_from(shards).unwrap_or(usize::MAX))
        .filter_map(|a| u32::try_from(a).ok().map(Ipv4Addr::from))
}

/// How many addresses of `subnet`'s ranges belong to this shard.
pub fn slice_len(subnet: &Subnet, shard: u32, shards: u32) -> u64 {
    let shards = u64::from(shards.max(1));
    subnet
        .ranges
        .iter()
        .map(|r| {
            let n = u64::from(u32::from(r.end)).saturating_sub(u64::from(u32::from(r.start))) + 1;
            n / shards + u64::from(n % shards > u64::from(shard))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: [u8; 4], b: [u8; 4]) -> AddrRange {
        AddrRange {
            start: Ipv4Addr::from(a),
            end: Ipv4Addr::from(b),
        }
    }

    #[test]
    fn slices_partition_the_range() {
        let r = range([10, 0, 0, 2], [10, 0, 0, 40]);
        for shards in 1..=7u32 {
            let mut seen = vec![0u32; 39];
            for shard in 0..shards {
                for a in slice_addrs(&r, shard, shards, 0, u32::MAX) {
                    assert!(slice_contains(&r, a, shard, shards));
                    seen[(u32::from(a) - u32::from(r.start)) as usize] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "shards={shards}: {seen:?}");
        }
    }

    #[test]
    fn windowed_iteration_respects_bounds() {
        let r = range([10, 0, 0, 0], [10, 0, 0, 20]);
        let lo = u32::from(Ipv4Addr::new(10, 0, 0, 5));
        let got: Vec<u8> = slice_addrs(&r, 1, 3, lo, lo + 9)
            .map(|a| a.octets()[3])
            .collect();
        assert_eq!(got, vec![7, 10, 13]);
        assert_eq!(slice_addrs(&r, 0, 1, lo + 100, lo + 200).count(), 0);
    }

    #[test]
    fn range_ending_at_the_top_does_not_overflow() {
        let r = range([255, 255, 255, 250], [255, 255, 255, 255]);
        assert_eq!(slice_addrs(&r, 0, 2, 0, u32::MAX).count(), 3);
    }
}
