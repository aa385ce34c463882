//! A fast keyed hasher for the small fixed-size keys of the hot path
//! (4-byte addresses, 6-byte MACs).
//!
//! Each table gets fresh random keys (drawn from the standard library's
//! per-process random state), and every word goes through a folded 64×64→128
//! multiply with a key-dependent accumulator, so an attacker who cannot see
//! the keys cannot aim collisions. The tables are also bounded by the pool
//! size, so a flood of DISCOVERs cannot grow them. SipHash costs several
//! times more on keys this short.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// A `HashMap` with [`KeyedState`].
pub(crate) type FastMap<K, V> = HashMap<K, V, KeyedState>;

/// An empty [`FastMap`] with room for `capacity` entries.
pub(crate) fn map_with_capacity<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, KeyedState::new())
}

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

fn folded_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Random keys for one table.
#[derive(Debug, Clone)]
pub(crate) struct KeyedState {
    seed: u64,
    key: u64,
}

impl KeyedState {
    /// Fresh random keys.
    pub(crate) fn new() -> Self {
        let random = RandomState::new();
        Self {
            seed: random.hash_one(0x5eed_u64),
            key: random.hash_one(0x006b_6579_u64) | 1,
        }
    }
}

impl Default for KeyedState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            acc: self.seed,
            key: self.key,
        }
    }
}

/// The hasher of [`KeyedState`].
#[derive(Debug, Clone)]
pub(crate) struct KeyedHasher {
    acc: u64,
    key: u64,
}

impl KeyedHasher {
    fn mix(&mut self, word: u64) {
        self.acc = folded_mul(self.acc ^ word, MULTIPLIER);
    }
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w) ^ ((chunk.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        folded_mul(self.acc, self.key)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn distinct_keys_hash_apart_and_tables_differ() {
        let a = KeyedState::new();
        let b = KeyedState::new();
        let hashes: HashSet<u64> = (0u32..10_000)
            .map(|i| a.hash_one(Ipv4Addr::from(i)))
            .collect();
        assert_eq!(hashes.len(), 10_000);
        let mac = [0x52u8, 0x54, 0, 0, 0, 1];
        assert_eq!(a.hash_one(mac), a.hash_one(mac));
        assert_ne!(a.hash_one(mac), b.hash_one(mac), "keys are per table");
    }

    #[test]
    fn low_bits_spread_for_sequential_keys() {
        let s = KeyedState::new();
        let mut buckets = [0u32; 64];
        for i in 0u32..64_000 {
            buckets[(s.hash_one(Ipv4Addr::from(0x0a00_0000 + i)) & 63) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (700..=1300).contains(&n)),
            "{buckets:?}"
        );
    }
}
