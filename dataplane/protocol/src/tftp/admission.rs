//! Per-client admission of new transfers: a cap on the transfers one
//! client IP holds, and a token bucket on the read requests it makes.
//!
//! The client table is bounded: an entry is kept while its client holds a
//! transfer (so at most `max_transfers` such entries), and at most
//! `capacity` idle entries (rate state only) are kept beside them, the
//! oldest idle one evicted first. Forgetting an idle client only forgets
//! its spent tokens: it comes back with a full bucket.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::config::TftpAdmission;

/// Token units per request (fixed point: a rate of `r` per second refills
/// `r` units per microsecond).
const UNIT: u64 = 1_000_000;

/// Default bound on idle entries of the client table.
pub const DEFAULT_CLIENT_TABLE_CAPACITY: usize = 65_536;

/// Why a read request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client already holds `max-transfers-per-client` transfers.
    PerClientCap = 0,
    /// The client's token bucket is empty.
    Rate = 1,
    /// The shard's transfer table is full (`max-transfers`).
    TableFull = 2,
    /// No transfer port could be opened (out of file descriptors or
    /// ephemeral ports).
    NoPort = 3,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Self; 4] = [
        Self::PerClientCap,
        Self::Rate,
        Self::TableFull,
        Self::NoPort,
    ];

    /// Short name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::PerClientCap => "per_client_cap",
            Self::Rate => "rate",
            Self::TableFull => "table_full",
            Self::NoPort => "no_port",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    /// Transfers this client holds.
    active: u32,
    /// Tokens in [`UNIT`]s.
    tokens: u64,
    /// When `tokens` was last refilled (µs ticks).
    refilled: u64,
    /// Bumped on each idle transition; matches the client's newest entry
    /// in the idle queue.
    stamp: u64,
}

/// The admission state of one shard.
#[derive(Debug)]
pub(crate) struct Admission {
    max_per_client: u32,
    /// Refill in units per microsecond (= requests per second).
    rate: u64,
    /// Bucket size in units.
    burst: u64,
    capacity: usize,
    clients: HashMap<IpAddr, Client>,
    /// Clients that became idle, oldest first; entries whose stamp no
    /// longer matches are stale and skipped.
    idle: VecDeque<(IpAddr, u64)>,
    /// Entries with `active > 0`.
    busy: usize,
    next_stamp: u64,
    evicted: u64,
}

impl Admission {
    pub(crate) fn new(settings: &TftpAdmission, capacity: usize) -> Self {
        Self {
            max_per_client: settings.max_transfers_per_client.max(1),
            rate: u64::from(settings.new_transfers_per_second.max(1)),
            burst: u64::from(settings.new_transfers_burst.max(1)).saturating_mul(UNIT),
            capacity: capacity.max(1),
            clients: HashMap::new(),
            idle: VecDeque::new(),
            busy: 0,
            next_stamp: 0,
            evicted: 0,
        }
    }

    /// Charges one read request of `ip` at `now`: `Err` when the client
    /// has no token left, or when the request would start a transfer
    /// (`new`) and the client holds its cap of transfers. Every request
    /// that gets an answer spends a token, a refusal for the cap included:
    /// the bucket bounds what a flood of requests (spoofed or not) makes
    /// the server send, ERRORs too.
    pub(crate) fn check(&mut self, ip: IpAddr, now: u64, new: bool) -> Result<(), Refusal> {
        if !self.clients.contains_key(&ip) {
            self.make_room();
            let stamp = self.stamp();
            self.clients.insert(
                ip,
                Client {
                    active: 0,
                    tokens: self.burst,
                    refilled: now,
                    stamp,
                },
            );
            self.idle.push_back((ip, stamp));
        }
        let (rate, burst, cap) = (self.rate, self.burst, self.max_per_client);
        let Some(client) = self.clients.get_mut(&ip) else {
            return Ok(());
        };
        let elapsed = now.saturating_sub(client.refilled);
        client.tokens = client
            .tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(burst);
        client.refilled = client.refilled.max(now);
        if client.tokens < UNIT {
            return Err(Refusal::Rate);
        }
        client.tokens -= UNIT;
        if new && client.active >= cap {
            return Err(Refusal::PerClientCap);
        }
        Ok(())
    }

    /// `ip` started a transfer (after a successful [`Admission::check`]).
    pub(crate) fn started(&mut self, ip: IpAddr) {
        if let Some(client) = self.clients.get_mut(&ip) {
            if client.active == 0 {
                self.busy += 1;
            }
            client.active += 1;
        }
    }

    /// A transfer of `ip` ended.
    pub(crate) fn ended(&mut self, ip: IpAddr) {
        let Some(client) = self.clients.get_mut(&ip).filter(|c| c.active > 0) else {
            return;
        };
        client.active -= 1;
        if client.active > 0 {
            return;
        }
        self.busy -= 1;
        self.next_stamp += 1;
        client.stamp = self.next_stamp;
        self.idle.push_back((ip, self.next_stamp));
        self.make_room();
        self.compact();
    }

    /// Transfers `ip` holds.
    #[cfg(test)]
    pub(crate) fn active(&self, ip: IpAddr) -> u32 {
        self.clients.get(&ip).map_or(0, |c| c.active)
    }

    /// Entries in the client table.
    #[cfg(test)]
    pub(crate) fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Idle clients forgotten to keep the table bounded.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// Evicts the oldest idle clients until one more idle entry fits.
    fn make_room(&mut self) {
        while self.clients.len() - self.busy >= self.capacity {
            let Some((ip, stamp)) = self.idle.pop_front() else {
                return;
            };
            if self
                .clients
                .get(&ip)
                .is_some_and(|c| c.active == 0 && c.stamp == stamp)
            {
                self.clients.remove(&ip);
                self.evicted += 1;
            }
        }
    }

    /// Drops stale idle-queue entries once they outnumber the live ones,
    /// so the queue stays within a constant factor of the table.
    fn compact(&mut self) {
        if self.idle.len() <= 2 * self.clients.len() + 64 {
            return;
        }
        let clients = &self.clients;
        self.idle.retain(|(ip, stamp)| {
            clients
                .get(ip)
                .is_some_and(|c| c.active == 0 && c.stamp == *stamp)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn admission(cap: u32, rate: u32, burst: u32, capacity: usize) -> Admission {
        Admission::new(
            &TftpAdmission {
                max_transfers_per_client: cap,
                new_transfers_per_second: rate,
                new_transfers_burst: burst,
            },
            capacity,
        )
    }

    #[test]
    fn cap_counts_held_transfers_per_ip() {
        let mut a = admission(2, 1000, 1000, 16);
        for _ in 0..2 {
            assert_eq!(a.check(ip(1), 0, true), Ok(()));
            a.started(ip(1));
        }
        assert_eq!(a.check(ip(1), 0, true), Err(Refusal::PerClientCap));
        a.ended(ip(9));
        assert_eq!(
            a.active(ip(1)),
            2,
            "an unknown client's end changes nothing"
        );
        assert_eq!(
            a.check(ip(2), 0, true),
            Ok(()),
            "another host is not affected"
        );
        a.ended(ip(1));
        assert_eq!(a.active(ip(1)), 1);
        assert_eq!(a.check(ip(1), 0, true), Ok(()));
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut a = admission(u32::MAX, 20, 4, 16);
        for _ in 0..4 {
            assert_eq!(a.check(ip(1), 0, true), Ok(()));
        }
        assert_eq!(a.check(ip(1), 0, true), Err(Refusal::Rate));
        // 20 per second: one token every 50 ms.
        assert_eq!(a.check(ip(1), 49_999, true), Err(Refusal::Rate));
        assert_eq!(a.check(ip(1), 50_000, true), Ok(()));
        assert_eq!(a.check(ip(1), 50_000, true), Err(Refusal::Rate));
        // A long pause refills to the burst, no more.
        for _ in 0..4 {
            assert_eq!(a.check(ip(1), 3_600_000_000, true), Ok(()));
        }
        assert_eq!(a.check(ip(1), 3_600_000_000, true), Err(Refusal::Rate));
        assert_eq!(a.check(ip(2), 0, true), Ok(()), "buckets are per client");
    }

    #[test]
    fn cap_refusals_spend_a_token_and_rate_refusals_none() {
        let mut a = admission(1, 1, 4, 16);
        a.check(ip(1), 0, true).expect("first");
        a.started(ip(1));
        // Answered with ERROR 0, so charged: the bucket bounds the ERRORs
        // a flood gets back.
        for _ in 0..3 {
            assert_eq!(a.check(ip(1), 0, true), Err(Refusal::PerClientCap));
        }
        for _ in 0..10 {
            assert_eq!(a.check(ip(1), 0, true), Err(Refusal::Rate));
        }
        // A repeated request of a held transfer is not held to the cap but
        // spends a token like any answer.
        assert_eq!(a.check(ip(1), 0, false), Err(Refusal::Rate));
        assert_eq!(a.check(ip(1), 1_000_000, false), Ok(()));
        a.ended(ip(1));
        assert_eq!(a.check(ip(1), 1_999_999, true), Err(Refusal::Rate));
        assert_eq!(a.check(ip(1), 2_000_000, true), Ok(()), "refilled");
    }

    #[test]
    fn table_keeps_busy_clients_and_evicts_oldest_idle() {
        let mut a = admission(4, 1, 1, 3);
        a.check(ip(1), 0, true).expect("1");
        a.started(ip(1));
        for n in 2..=4 {
            a.check(ip(n), 0, true).expect("idle client");
        }
        // Three idle entries (2, 3, 4) fill the bound; the busy one is extra.
        assert_eq!(a.clients(), 4);
        a.check(ip(5), 0, true).expect("5");
        assert_eq!((a.clients(), a.evicted()), (4, 1));
        // 2 was the oldest idle entry: it comes back with a full bucket,
        // while 3, still known, has spent its only token.
        assert_eq!(a.check(ip(3), 0, true), Err(Refusal::Rate));
        assert_eq!(a.check(ip(2), 0, true), Ok(()));
        assert_eq!(a.active(ip(1)), 1, "a busy client is never evicted");
        for n in 100..10_100 {
            let _ = a.check(ip(n), 0, true);
        }
        assert_eq!(a.clients(), 4);
        assert_eq!(a.active(ip(1)), 1);
    }

    #[test]
    fn idle_queue_stays_bounded_under_churn() {
        let mut a = admission(4, u32::MAX, u32::MAX, 8);
        for round in 0..100_000u64 {
            let host = ip((round % 3) as u32);
            a.check(host, round, true).expect("admitted");
            a.started(host);
            a.ended(host);
        }
        assert!(a.idle.len() <= 2 * a.clients() + 65, "{}", a.idle.len());
        assert_eq!(a.busy, 0);
    }
}
