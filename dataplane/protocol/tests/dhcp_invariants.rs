//! Invariants under random traffic: random sequences of DISCOVER, REQUEST,
//! DECLINE, RELEASE and time advances from random MACs, broadcast to every
//! shard of one configuration.
//!
//! - no address is ever bound (or acknowledged) to two MACs at once, across
//!   all shards;
//! - a reserved address is never offered or bound to another MAC;
//! - each shard hands out only its own slice of the pool;
//! - pool slices never overlap and cover every range.

mod dhcp_support;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bootwave_protocol::config::{AddrRange, Host};
use bootwave_protocol::dhcp::{
    Action, DhcpServer, LeaseState, MAX_MESSAGE_LEN, Snapshot, UnixTime, slice_addrs,
    slice_contains, subnet_slice_contains,
};
use dhcp_support::*;
use dhcproto::v4::MessageType as Mt;
use proptest::prelude::*;

const SHARDS: u32 = 3;
const RESERVED: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 15);

#[derive(Debug, Clone)]
enum Op {
    Discover(usize),
    /// SELECTING the last offer, or (`Some`) an arbitrary pool address.
    Select(usize, Option<u8>),
    InitReboot(usize, u8),
    Renew(usize),
    Decline(usize),
    Release(usize),
    Advance(u32),
}

fn macs() -> Vec<[u8; 6]> {
    let mut v: Vec<[u8; 6]> = (0..9).map(|i| [2, 0, 0, 0, 9, i]).collect();
    v.push(FIXED_MAC);
    v
}

fn op() -> impl Strategy<Value = Op> {
    let m = 0..10usize;
    prop_oneof![
        4 => m.clone().prop_map(Op::Discover),
        4 => (m.clone(), proptest::option::weighted(0.2, 10u8..30)).prop_map(|(m, a)| Op::Select(m, a)),
        1 => (m.clone(), 10u8..30).prop_map(|(m, a)| Op::InitReboot(m, a)),
        2 => m.clone().prop_map(Op::Renew),
        1 => m.clone().prop_map(Op::Decline),
        1 => m.prop_map(Op::Release),
        2 => (0u32..5000).prop_map(Op::Advance),
    ]
}

/// A /24 with a 20-address pool (.10–.29) holding one reservation (.15).
fn contended_config() -> bootwave_protocol::config::Config {
    let mut cfg = lab_config();
    cfg.subnets[0].ranges = vec![AddrRange {
        start: Ipv4Addr::new(192, 168, 1, 10),
        end: Ipv4Addr::new(192, 168, 1, 29),
    }];
    cfg.dhcp.offer_hold = std::time::Duration::from_secs(60);
    cfg.dhcp.default_lease_time = std::time::Duration::from_secs(3000);
    cfg.hosts = vec![Host {
        name: "reserved".into(),
        mac: FIXED_MAC,
        fixed_address: Some(RESERVED),
        hostname: None,
        profile: None,
        labels: Default::default(),
    }];
    cfg
}

struct World {
    shards: Vec<DhcpServer>,
    now: UnixTime,
    macs: Vec<[u8; 6]>,
    last_offer: HashMap<[u8; 6], Ipv4Addr>,
    last_ack: HashMap<[u8; 6], Ipv4Addr>,
    /// Acknowledged bindings still in force, by address: (MAC, end).
    acked: HashMap<Ipv4Addr, ([u8; 6], UnixTime)>,
    /// ACKs, NAKs and accepted RELEASE/DECLINE seen (to show the run is
    /// not vacuous).
    stats: [u32; 3],
}

impl World {
    fn new() -> Self {
        let snap = Snapshot::shared(contended_config());
        Self {
            shards: (0..SHARDS)
                .map(|i| DhcpServer::new(snap.clone(), i, SHARDS))
                .collect(),
            now: t(0),
            macs: macs(),
            last_offer: HashMap::new(),
            last_ack: HashMap::new(),
            acked: HashMap::new(),
            stats: [0; 3],
        }
    }

    fn message(&self, op: &Op) -> Option<([u8; 6], Vec<u8>, bool)> {
        let pool = |a: u8| Ipv4Addr::new(192, 168, 1, a);
        Some(match *op {
            Op::Discover(m) => (self.macs[m], discover(self.macs[m]).build(), false),
            Op::Select(m, pick) => {
                let mac = self.macs[m];
                let addr = pick
                    .map(pool)
                    .or_else(|| self.last_offer.get(&mac).copied())?;
                (mac, select(mac, addr, SERVER).build(), false)
            }
            Op::InitReboot(m, a) => {
                let mac = self.macs[m];
                (mac, Msg::dhcp(3, mac).ip_opt(50, pool(a)).build(), false)
            }
            Op::Renew(m) => {
                let mac = self.macs[m];
                let addr = *self.last_ack.get(&mac)?;
                (mac, Msg::dhcp(3, mac).ciaddr(addr).build(), true)
            }
            Op::Decline(m) => {
                let mac = self.macs[m];
                let addr = *self.last_ack.get(&mac)?;
                let d = Msg::dhcp(4, mac)
                    .ip_opt(50, addr)
                    .ip_opt(54, SERVER)
                    .build();
                (mac, d, false)
            }
            Op::Release(m) => {
                let mac = self.macs[m];
                let addr = *self.last_ack.get(&mac)?;
                let d = Msg::dhcp(7, mac).ciaddr(addr).ip_opt(54, SERVER).build();
                (mac, d, true)
            }
            Op::Advance(_) => return None,
        })
    }

    fn apply(&mut self, op: &Op) {
        if let Op::Advance(secs) = *op {
            self.now = self.now.add_secs(secs);
            let mut records = Vec::new();
            for s in &mut self.shards {
                s.handle_timeout(self.now, &mut records);
            }
            return;
        }
        let Some((mac, datagram, from_client)) = self.message(op) else {
            return;
        };
        let meta = match (from_client, self.last_ack.get(&mac)) {
            (true, Some(&a)) => unicast(a, 68),
            _ => bcast(),
        };
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let mut answers = 0;
        for i in 0..self.shards.len() {
            let h = self.shards[i].handle(self.now, &meta, &IFACE, &datagram, &mut out);
            let tx = match h.action {
                Action::None | Action::Probe(_) => None,
                Action::Send(tx) => Some(tx),
                Action::Commit(c) => {
                    if matches!(op, Op::Release(_) | Op::Decline(_)) {
                        let addr = c.records()[0].addr;
                        self.acked.remove(&addr);
                        self.last_ack.remove(&mac);
                        self.stats[2] += 1;
                    }
                    c.persisted()
                }
            };
            let Some(tx) = tx else { continue };
            answers += 1;
            self.observe(mac, &out[..tx.len]);
        }
        assert!(answers <= 1, "one shard answers a client");
    }

    fn observe(&mut self, mac: [u8; 6], reply: &[u8]) {
        let m = decode(reply);
        let addr = m.yiaddr();
        let kind = m.opts().msg_type();
        if matches!(kind, Some(Mt::Offer | Mt::Ack)) && addr == RESERVED {
            assert_eq!(mac, FIXED_MAC, "reserved address given to another MAC");
        }
        match kind {
            Some(Mt::Offer) => {
                self.last_offer.insert(mac, addr);
            }
            Some(Mt::Ack) => {
                let secs = match m.opts().get(dhcproto::v4::OptionCode::AddressLeaseTime) {
                    Some(dhcproto::v4::DhcpOption::AddressLeaseTime(s)) => *s,
                    other => panic!("ACK without lease time: {other:?}"),
                };
                if let Some(&(other, until)) = self.acked.get(&addr) {
                    assert!(
                        other == mac || until <= self.now,
                        "{addr} acknowledged to {mac:02x?} while bound to {other:02x?}"
                    );
                }
                self.acked.retain(|_, (m, _)| *m != mac);
                self.acked.insert(addr, (mac, self.now.add_secs(secs)));
                self.last_ack.insert(mac, addr);
                self.stats[0] += 1;
            }
            Some(Mt::Nak) => self.stats[1] += 1,
            _ => {}
        }
    }

    fn check_tables(&self) {
        let mut holder: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
        let cfg = contended_config();
        for (i, s) in self.shards.iter().enumerate() {
            for l in s.leases().iter() {
                let held = l.is_active(self.now)
                    && matches!(l.state, LeaseState::Offered | LeaseState::Bound);
                if !held {
                    continue;
                }
                assert_ne!(l.addr, RESERVED, "reserved address in a lease table");
                assert!(
                    subnet_slice_contains(&cfg.subnets[0], l.addr, i as u32, SHARDS),
                    "shard {i} holds {} outside its slice",
                    l.addr
                );
                if let Some(prev) = holder.insert(l.addr, l.mac) {
                    assert_eq!(prev, l.mac, "{} held for two MACs", l.addr);
                }
            }
        }
    }
}

#[test]
fn a_long_deterministic_run_exercises_every_path() {
    let mut world = World::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for _ in 0..3000 {
        let m = next(10) as usize;
        let op = match next(14) {
            0..=3 => Op::Discover(m),
            4..=7 => Op::Select(m, (next(5) == 0).then(|| 10 + next(20) as u8)),
            8 => Op::InitReboot(m, 10 + next(20) as u8),
            9 | 10 => Op::Renew(m),
            11 => Op::Decline(m),
            12 => Op::Release(m),
            _ => Op::Advance(next(5000) as u32),
        };
        world.apply(&op);
        world.check_tables();
    }
    let [acks, naks, frees] = world.stats;
    assert!(
        acks > 100 && naks > 10 && frees > 10,
        "acks {acks}, naks {naks}, frees {frees}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_double_binding_across_shards(ops in proptest::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            world.check_tables();
        }
    }

    #[test]
    fn pool_slices_partition_every_range(
        start in any::<u32>(),
        len in 0u32..3000,
        shards in 1u32..17,
    ) {
        let end = start.saturating_add(len);
        let range = AddrRange { start: Ipv4Addr::from(start), end: Ipv4Addr::from(end) };
        let mut owners: HashMap<u32, u32> = HashMap::new();
        for shard in 0..shards {
            for a in slice_addrs(&range, shard, shards, 0, u32::MAX) {
                prop_assert!(slice_contains(&range, a, shard, shards));
                prop_assert!(owners.insert(u32::from(a), shard).is_none(), "overlap at {}", a);
            }
        }
        prop_assert_eq!(owners.len() as u64, u64::from(end - start) + 1);
    }
}
