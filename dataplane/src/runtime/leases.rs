//! Start-up of the lease state: replay every journal in the directory into
//! every shard's DHCP server, write each shard's live leases into a journal
//! named by the new layout, then retire journals of other layouts.

use std::path::Path;

use bootwave_protocol::config::{Config, FsyncPolicy};
use bootwave_protocol::dhcp::{
    DhcpServer, LeaseRecord, LeaseState, LeaseTable, RecordKind, SharedSnapshot,
};
use bootwave_protocol::shard::shard_of;

use super::RuntimeError;
use crate::journal::{self, Journal};

/// The lease state of every shard, ready to serve.
#[derive(Debug)]
pub struct Prepared {
    /// One DHCP server per shard, in shard order, with every journaled
    /// record replayed.
    pub servers: Vec<DhcpServer>,
    /// One open journal per shard, in shard order, holding that shard's
    /// live leases.
    pub journals: Vec<(String, Journal)>,
    /// Records read from the journals found at start.
    pub replayed: usize,
    /// Records that did not decode (skipped).
    pub undecodable: usize,
    /// Journals of other layouts that were retired.
    pub retired: Vec<String>,
}

/// Addresses every DHCP shard must get of each dynamic pool before pools
/// are split across more than one shard.
pub const MIN_SLICE: u64 = 256;

/// How many shards answer DHCP.
///
/// Each DHCP shard hands out only its own slice of every pool, so a small
/// pool split across shards can leave a client without an address while
/// another shard's slice still has one (with a one-address pool and two
/// shards, half the clients would get nothing). One shard answers far more
/// DHCP than any boot wave sends, so pools are split only when every pool
/// gives each shard at least [`MIN_SLICE`] addresses; with no dynamic pool
/// (reservations only) every shard answers. `requested` (the operator's
/// `--dhcp-shards`) wins, within `1..=shards`.
pub fn dhcp_shards(config: &Config, shards: usize, requested: Option<usize>) -> usize {
    let shards = shards.max(1);
    if let Some(n) = requested {
        return n.clamp(1, shards);
    }
    let smallest = config
        .subnets
        .iter()
        .filter(|subnet| !subnet.ranges.is_empty())
        .map(|subnet| {
            subnet
                .ranges
                .iter()
                .map(|r| u64::from(u32::from(r.end)) - u64::from(u32::from(r.start)) + 1)
                .sum::<u64>()
        })
        .min();
    match smallest {
        None => shards,
        Some(size) => usize::try_from(size / MIN_SLICE)
            .unwrap_or(usize::MAX)
            .clamp(1, shards),
    }
}

/// The journal name of shard `shard` of `shards`.
pub fn layout_name(shard: u32, shards: u32) -> String {
    format!("shard-{shard}-of-{shards}")
}

/// Replays `dir` (created if missing) into `shards` new servers and starts
/// one journal per shard.
///
/// Order, so that a crash at any point loses nothing: read every journal
/// without changing it; write each new journal with `create_from` (an
/// existing journal of the same name is replaced atomically, and the old
/// layout's files are still there); only then retire the journals of other
/// layouts. A crash before the retirement leaves both layouts, and the next
/// start replays both (records merge by address and time).
pub fn prepare(
    dir: &Path,
    policy: FsyncPolicy,
    snapshot: &SharedSnapshot,
    shards: u32,
) -> Result<Prepared, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Io {
        what: format!("creating journal directory {}", dir.display()),
        source,
    })?;
    let mut servers: Vec<DhcpServer> = (0..shards)
        .map(|i| DhcpServer::new(snapshot.clone(), i, shards))
        .collect();
    let (mut replayed, mut undecodable) = (0, 0);
    // Streamed: records go to the servers as they are read, never all in
    // memory at once.
    let found = journal::replay_dir_with(dir, |name, bytes| match LeaseRecord::decode(bytes) {
        Ok(record) => {
            replayed += 1;
            for server in &mut servers {
                server.replay(&record);
            }
        }
        Err(err) => {
            undecodable += 1;
            tracing::warn!(journal = %name, error = %err, "skipping an undecodable lease record");
        }
    })?;
    for named in &found {
        if let Some(torn) = named.info.torn_tail() {
            tracing::warn!(journal = %named.name, ?torn, "journal has a torn tail (unacknowledged records dropped)");
        }
    }
    let mut journals = Vec::with_capacity(servers.len());
    for (shard, server) in (0..shards).zip(&servers) {
        let name = layout_name(shard, shards);
        let live = live_records(server.leases(), shard, shards);
        let journal = Journal::create_from(dir, &name, policy, live.iter().map(|r| &r[..]))?;
        journals.push((name, journal));
    }
    let mut retired = Vec::new();
    for named in found {
        if journals.iter().all(|(name, _)| *name != named.name) {
            journal::retire(dir, &named.name)?;
            retired.push(named.name);
        }
    }
    Ok(Prepared {
        servers,
        journals,
        replayed,
        undecodable,
        retired,
    })
}

/// The records that rebuild the leases of the clients shard `shard` owns:
/// a binding or quarantine as one record; a released or expired address as
/// a binding that ended when it was released, followed by the release, so
/// a returning client still gets its address back. Offers and abandoned
/// addresses are not journaled.
pub fn live_records(
    table: &LeaseTable,
    shard: u32,
    shards: u32,
) -> Vec<[u8; bootwave_protocol::dhcp::RECORD_LEN]> {
    let mut out = Vec::new();
    for lease in table.iter().filter(|l| shard_of(&l.mac, shards) == shard) {
        let record = |kind, until| LeaseRecord {
            kind,
            mac: lease.mac,
            addr: lease.addr,
            at: lease.updated,
            until,
        };
        match lease.state {
            LeaseState::Bound => out.push(record(RecordKind::Bind, lease.until).encode()),
            LeaseState::Declined => out.push(record(RecordKind::Decline, lease.until).encode()),
            LeaseState::Released | LeaseState::Expired => {
                let kind = if lease.state == LeaseState::Released {
                    RecordKind::Release
                } else {
                    RecordKind::Expire
                };
                out.push(record(RecordKind::Bind, lease.updated).encode());
                out.push(record(kind, lease.updated).encode());
            }
            LeaseState::Offered | LeaseState::Abandoned => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bootwave_protocol::dhcp::UnixTime;

    use super::*;

    fn record(kind: RecordKind, mac: [u8; 6], last: u8, at: u64, until: u64) -> LeaseRecord {
        LeaseRecord {
            kind,
            mac,
            addr: Ipv4Addr::new(10, 0, 0, last),
            at: UnixTime::from_secs(at),
            until: UnixTime::from_secs(until),
        }
    }

    #[test]
    fn live_records_rebuild_the_same_table() {
        let (a, b, c) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]);
        let mut table = LeaseTable::new(0, 1, 8);
        for r in [
            record(RecordKind::Bind, a, 10, 1, 100),
            record(RecordKind::Bind, b, 11, 2, 100),
            record(RecordKind::Release, b, 11, 3, 3),
            record(RecordKind::Decline, c, 12, 4, 50),
        ] {
            table.replay(&r);
        }
        let mut rebuilt = LeaseTable::new(0, 1, 8);
        for bytes in live_records(&table, 0, 1) {
            rebuilt.replay(&LeaseRecord::decode(&bytes).expect("decodes"));
        }
        let mut want: Vec<_> = table.iter().copied().collect();
        let mut got: Vec<_> = rebuilt.iter().copied().collect();
        want.sort_by_key(|l| l.addr);
        got.sort_by_key(|l| l.addr);
        assert_eq!(got, want);
        assert_eq!(
            rebuilt.of_client(&b).map(|l| l.addr),
            Some(Ipv4Addr::new(10, 0, 0, 11))
        );
    }

    fn config_with_pools(pools: &[&str]) -> Config {
        let mut text = String::new();
        for (i, range) in pools.iter().enumerate() {
            text.push_str(&format!(
                "[[subnets]]\nnetwork = \"10.{i}.0.0/16\"\nranges = [{range}]\n"
            ));
        }
        bootwave_protocol::config::parse(&text, "t.toml", Path::new("/")).expect("valid config")
    }

    #[test]
    fn small_pools_stay_on_one_dhcp_shard() {
        let guide = config_with_pools(&["\"10.0.0.2-10.0.0.5\""]);
        assert_eq!(dhcp_shards(&guide, 8, None), 1);
        let one = config_with_pools(&["\"10.0.0.10-10.0.0.10\""]);
        assert_eq!(dhcp_shards(&one, 2, None), 1);
    }

    #[test]
    fn pools_split_when_every_slice_is_large_enough() {
        // 1,024 addresses: four slices of 256.
        let big = config_with_pools(&["\"10.0.0.1-10.0.4.0\""]);
        assert_eq!(dhcp_shards(&big, 8, None), 4);
        assert_eq!(dhcp_shards(&big, 2, None), 2);
        // The smallest pool decides; ranges of one subnet add up.
        let mixed = config_with_pools(&[
            "\"10.0.0.1-10.0.4.0\"",
            "\"10.1.0.1-10.1.1.0\", \"10.1.1.1-10.1.2.0\"",
        ]);
        assert_eq!(dhcp_shards(&mixed, 8, None), 2);
    }

    #[test]
    fn reservations_only_use_every_shard_and_the_operator_wins() {
        let none = config_with_pools(&[]);
        assert_eq!(dhcp_shards(&none, 4, None), 4);
        let guide = config_with_pools(&["\"10.0.0.2-10.0.0.5\""]);
        assert_eq!(dhcp_shards(&guide, 4, Some(3)), 3);
        assert_eq!(dhcp_shards(&guide, 4, Some(9)), 4);
        assert_eq!(dhcp_shards(&guide, 4, Some(0)), 1);
    }
}
