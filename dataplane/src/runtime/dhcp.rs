//! The DHCP half of a shard: feeds datagrams to the core, journals lease
//! records and holds each reply until its records are acknowledged.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bootwave_protocol::config::format_mac;
use bootwave_protocol::dhcp::{
    Action, Destination, DhcpServer, DropReason, Event, Handled, Lease, LeaseRecord, LeaseState,
    MAX_MESSAGE_LEN, PoolUsage, Probe, ProbeCounters, ProbeMethod, Transmit, UnixTime, Verdict,
};
use bootwave_protocol::net::RecvMeta;

use super::interfaces::Served;
use super::log_budget::{LineKind, LogBudget};
use super::service::SocketRole;
use super::stats::{Counters, ProbeOutcome, RuntimeDrop};
use crate::driver::{SourceHint, Tx};
use crate::events::{EventBus, LeaseMirror};
use crate::journal::{CompactionPolicy, Journal, JournalError, ShardJournal};
use crate::neigh::{NeighTable, NeighWarning};
use crate::probe::{ArpProber, Prober};

/// Longest chain of ping checks resolved in one go when probes cannot be
/// sent (each unsent probe offers its address, so chains stay short).
const MAX_PROBE_CHAIN: usize = 8;
/// How often the pools are counted for metrics and status (one pass over
/// the shard's leases).
const USAGE_EVERY: Duration = Duration::from_secs(1);
/// Most answers read from a probe socket per wake-up.
const MAX_ANSWERS: usize = 256;
/// Addresses whose lease changed, kept between two flushes without
/// growing: more than a loop iteration handles.
const TOUCHED_CAPACITY: usize = 256;

/// UDP ports replies go to. On the standard port 67, relays listen on 67
/// and clients on 68; a server moved to port `p` (tests, side-by-side
/// runs) talks to relays on `p` and to clients on `p + 1`, as ISC dhcpd
/// does with `-p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpPorts {
    /// Where relays listen.
    pub relay: u16,
    /// Where clients listen.
    pub client: u16,
}

impl DhcpPorts {
    /// The ports for a server listening on `server_port`.
    pub fn for_server(server_port: u16) -> Self {
        if server_port == bootwave_protocol::dhcp::SERVER_PORT {
            Self {
                relay: bootwave_protocol::dhcp::SERVER_PORT,
                client: bootwave_protocol::dhcp::CLIENT_PORT,
            }
        } else {
            Self {
                relay: server_port,
                client: server_port.wrapping_add(1),
            }
        }
    }
}

/// A reply waiting for its lease records to be acknowledged.
#[derive(Debug)]
struct Held {
    /// Acknowledged once the journal's `acked_seq` reaches this.
    seq_end: u64,
    dst: SocketAddrV4,
    src: SourceHint,
    bytes: Vec<u8>,
}

/// The optional helpers of a shard: probers and neighbour table.
#[derive(Debug, Default)]
pub struct Helpers {
    /// Sends ICMP ping checks (relayed candidates, and on-link ones when
    /// `arp` is `None`); with neither prober, probes count as unanswered at
    /// once.
    pub prober: Option<Prober>,
    /// Sends ARP probes for on-link candidates.
    pub arp: Option<ArpProber>,
    /// Adds ARP entries for unicast to `yiaddr`; `None`: broadcast instead.
    pub neigh: Option<NeighTable>,
}

/// Where a DHCP shard reports what it does: the boot-event bus and its
/// lease mirror.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The shard's index, carried by its events.
    pub shard: u32,
    /// Where events go (only while someone watches).
    pub bus: EventBus,
    /// The copy of the shard's leases the control endpoint lists.
    pub mirror: Arc<LeaseMirror>,
}

/// The DHCP state of one shard.
#[derive(Debug)]
pub struct DhcpSide {
    server: DhcpServer,
    journal: ShardJournal,
    held: VecDeque<Held>,
    out: Box<[u8]>,
    expired: Vec<LeaseRecord>,
    served: Arc<Served>,
    ports: DhcpPorts,
    helpers: Helpers,
    /// Addresses that answered a probe, read from a probe socket and not
    /// yet handed to the core (reused; at most [`MAX_ANSWERS`]).
    answers: Vec<Ipv4Addr>,
    observed: Observed,
    /// Addresses whose lease changed since the mirror was last updated.
    touched: Vec<Ipv4Addr>,
    /// Reserved hosts' ACKs and releases not yet in the mirror.
    fixed: Vec<Lease>,
    /// Bounds the per-message log lines at the default level.
    log_budget: LogBudget,
    /// The core's ping-check counters as last copied into the shard's.
    probes_seen: ProbeCounters,
    /// Rate limit of the warning about refused neighbour entries.
    neigh_warning: NeighWarning,
    /// When the pools are next counted for the mirror, and the buffer.
    usage_at: Instant,
    usage: Vec<PoolUsage>,
    /// A monotonic instant and the wall-clock time read together, which
    /// turn the core's wall-clock deadlines into fixed instants (see
    /// [`Anchor`]).
    anchor: Anchor,
}

/// Maps the core's wall-clock deadlines to monotonic instants that do not
/// move between calls: a deadline already passed maps to an instant at or
/// before the anchor, so the driver, whose `now` was read after it, sees it
/// due. (Mapping against a fresh `Instant::now()` on every call would put
/// an overdue deadline a little after the driver's `now`, forever.)
/// Re-anchored at every timeout round, so a step of the wall clock is
/// followed within one round.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: Instant,
    unix: UnixTime,
}

impl Anchor {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            unix: unix_now(),
        }
    }

    fn instant_of(self, deadline: UnixTime) -> Instant {
        if deadline >= self.unix {
            self.at + deadline.saturating_since(self.unix)
        } else {
            let overdue = self.unix.saturating_since(deadline);
            self.at.checked_sub(overdue).unwrap_or(self.at)
        }
    }
}

impl DhcpSide {
    /// The DHCP side of a shard over its replayed server and open journal;
    /// seeds the lease mirror from the replayed leases.
    pub fn new(
        server: DhcpServer,
        (journal_name, journal): (String, Journal),
        served: Arc<Served>,
        ports: DhcpPorts,
        helpers: Helpers,
        observed: Observed,
    ) -> Self {
        observed.mirror.seed(server.leases());
        Self {
            server,
            journal: ShardJournal::new(
                journal_name,
                journal,
                CompactionPolicy::default(),
                Instant::now(),
            ),
            held: VecDeque::with_capacity(64),
            out: vec![0u8; MAX_MESSAGE_LEN].into_boxed_slice(),
            expired: Vec::new(),
            served,
            ports,
            helpers,
            answers: Vec::with_capacity(MAX_ANSWERS),
            observed,
            touched: Vec::with_capacity(TOUCHED_CAPACITY),
            fixed: Vec::new(),
            log_budget: LogBudget::default(),
            probes_seen: ProbeCounters::default(),
            neigh_warning: NeighWarning::default(),
            usage_at: Instant::now(),
            usage: Vec::new(),
            anchor: Anchor::now(),
        }
    }

    /// Handles one datagram of the DHCP socket.
    pub fn on_datagram(&mut self, meta: &RecvMeta, data: &[u8], tx: &mut Tx, c: &mut Counters) {
        let Some(iface) = self.served.dhcp_addrs(meta.ifindex) else {
            tracing::trace!(ifindex = meta.ifindex, src = %meta.src, "dhcp: datagram from an unserved interface dropped");
            c.drop(RuntimeDrop::UnselectedInterface);
            return;
        };
        let handled = self
            .server
            .handle(unix_now(), meta, iface, data, &mut self.out);
        self.carry_out(handled, tx, c);
    }

    /// Carries out one [`Handled`]. A probe that cannot be sent (no
    /// prober, send refused) is reported to the core at once, which offers
    /// the address unprobed (bounded chain).
    fn carry_out(&mut self, mut handled: Handled, tx: &mut Tx, c: &mut Counters) {
        for _ in 0..MAX_PROBE_CHAIN {
            c.dhcp_event(&handled.event);
            if !log_event(&mut self.log_budget, &handled.event) {
                c.log_suppressed();
            }
            self.observe(&handled.event);
            match handled.action {
                Action::None => {}
                Action::Send(t) => self.send(&t, tx, c),
                Action::Commit(commit) => {
                    let seq_end = self.append(commit.records(), c);
                    if let Some(t) = commit.persisted() {
                        match seq_end {
                            Some(seq_end) => self.hold(seq_end, &t, c),
                            None => c.drop(RuntimeDrop::JournalFailed),
                        }
                    }
                }
                Action::Probe(probe) => {
                    if self.start_probe(&probe, c) {
                        return;
                    }
                    c.probe(ProbeOutcome::Unavailable);
                    handled = self
                        .server
                        .probe_not_sent(unix_now(), probe.token, &mut self.out);
                    continue;
                }
            }
            return;
        }
    }

    /// Publishes `event` and notes the address whose lease it may have
    /// changed, for the mirror.
    fn observe(&mut self, event: &Event) {
        self.observed.bus.publish_dhcp(self.observed.shard, event);
        if let (Some(addr), false) = (event.addr, matches!(event.verdict, Verdict::Dropped(_))) {
            self.touched.push(addr);
        }
        self.note_fixed(event);
    }

    /// Notes an ACK to a reserved host (the table holds no lease for it)
    /// or its release (the core drops it: nothing is held), for the mirror.
    fn note_fixed(&mut self, event: &Event) {
        let Some(addr) = event.addr else {
            return;
        };
        let state = match event.verdict {
            Verdict::Acked => LeaseState::Bound,
            Verdict::Dropped(DropReason::NotHeld) => LeaseState::Released,
            _ => return,
        };
        let in_table = self
            .server
            .leases()
            .get(addr)
            .is_some_and(|l| l.mac == event.mac);
        if in_table {
            return;
        }
        let now = unix_now();
        self.fixed.push(Lease {
            mac: event.mac,
            addr,
            state,
            until: now.add_secs(event.lease_secs.unwrap_or(0)),
            updated: now,
            probing: false,
        });
    }

    /// Sends the probe the core asked for: an ARP probe for an on-link
    /// candidate (an ICMP echo when the shard has no packet socket), an
    /// ICMP echo for a relayed one. False when nothing could be sent. The
    /// core keeps the deadline.
    fn start_probe(&mut self, probe: &Probe, c: &mut Counters) -> bool {
        if probe.method == ProbeMethod::Arp
            && let Some(arp) = self.helpers.arp.as_mut()
        {
            match arp.send(probe.ifindex, probe.addr) {
                Ok(()) => {
                    c.probe(ProbeOutcome::Sent);
                    return true;
                }
                Err(err) => tracing::debug!(error = %err, "ARP probe not sent"),
            }
        }
        let Some(prober) = self.helpers.prober.as_mut() else {
            return false;
        };
        // The echo sequence number carries the low bits of the token.
        let seq = (probe.token.get() & 0xffff) as u16;
        if let Err(err) = prober.send(probe.addr, seq) {
            tracing::debug!(error = %err, "ping check not sent");
            return false;
        }
        c.probe(ProbeOutcome::Sent);
        true
    }

    /// The probe sockets, for the shard's ring or poll set: the ICMP one,
    /// then the ARP one, each when present.
    pub fn watched_fds(&self) -> Vec<RawFd> {
        let icmp = self.helpers.prober.iter().map(Prober::raw_fd);
        let arp = self.helpers.arp.iter().map(ArpProber::raw_fd);
        icmp.chain(arp).collect()
    }

    /// A probe socket is readable: every answer resumes its parked
    /// DISCOVER now (answers for addresses not probed are ignored).
    pub fn on_readable(&mut self, index: usize, tx: &mut Tx, c: &mut Counters) {
        let mut answers = std::mem::take(&mut self.answers);
        answers.clear();
        let mut keep = |addr| {
            if answers.len() < MAX_ANSWERS {
                answers.push(addr);
            }
        };
        let icmp = usize::from(self.helpers.prober.is_some());
        if index < icmp {
            if let Some(prober) = self.helpers.prober.as_mut() {
                prober.poll_replies(&mut keep);
            }
        } else if let Some(arp) = self.helpers.arp.as_mut() {
            arp.poll_answers(&mut keep);
        }
        for &addr in &answers {
            if let Some(handled) = self.server.probe_answered(unix_now(), addr, &mut self.out) {
                self.carry_out(handled, tx, c);
            }
        }
        self.answers = answers;
    }

    /// Copies what the core counted of its ping checks since the last call.
    fn count_probes(&mut self, c: &mut Counters) {
        let now = *self.server.probe_counters();
        let was = std::mem::replace(&mut self.probes_seen, now);
        for (outcome, now, was) in [
            (ProbeOutcome::Answered, now.answered, was.answered),
            (ProbeOutcome::Silent, now.silent, was.silent),
            (ProbeOutcome::Overflowed, now.overflowed, was.overflowed),
            (
                ProbeOutcome::SkippedReturning,
                now.skipped_returning,
                was.skipped_returning,
            ),
            (
                ProbeOutcome::SkippedRecent,
                now.skipped_recent,
                was.skipped_recent,
            ),
            (ProbeOutcome::Replaced, now.replaced, was.replaced),
        ] {
            c.probes(outcome, now.saturating_sub(was));
        }
    }

    /// Appends `records` to the journal; the sequence number just past the
    /// last one, or `None` when the journal refused them.
    fn append(&mut self, records: &[LeaseRecord], c: &mut Counters) -> Option<u64> {
        if self.journal.is_failed() {
            return None;
        }
        let mut end = None;
        for record in records {
            match self.journal.append(&record.encode()) {
                Ok(seq) => end = Some(seq + 1),
                Err(err) => {
                    self.fail(&err, c);
                    return None;
                }
            }
        }
        end.or(Some(0))
    }

    /// Copies the reply in `out` into a pooled buffer held until `seq_end`
    /// is acknowledged.
    fn hold(&mut self, seq_end: u64, t: &Transmit, c: &mut Counters) {
        let mut bytes = Vec::with_capacity(t.len);
        bytes.extend_from_slice(&self.out[..t.len]);
        let (dst, src) = self.route(t, c);
        self.held.push_back(Held {
            seq_end,
            dst,
            src,
            bytes,
        });
    }

    /// Sends the reply at the start of `out` now.
    fn send(&mut self, t: &Transmit, tx: &mut Tx, c: &mut Counters) {
        let (dst, src) = self.route(t, c);
        let mut bytes = tx.buffer();
        bytes.extend_from_slice(&self.out[..t.len]);
        if tx
            .send(SocketRole::Dhcp.index(), dst, Some(src), bytes)
            .is_err()
        {
            c.drop(RuntimeDrop::SendFailed);
        }
    }

    /// Destination and source of a reply. Broadcasts (and replies to a
    /// client that has no address yet) leave by the ingress interface;
    /// unicast to a relay or a configured client is routed.
    fn route(&mut self, t: &Transmit, c: &mut Counters) -> (SocketAddrV4, SourceHint) {
        let on_link = SourceHint {
            ifindex: t.ifindex,
            addr: t.src_ip,
        };
        let routed = SourceHint {
            ifindex: 0,
            addr: t.src_ip,
        };
        match t.destination {
            Destination::Relay(a) => (SocketAddrV4::new(*a.ip(), self.ports.relay), routed),
            Destination::Unicast(a) => (SocketAddrV4::new(*a.ip(), self.ports.client), routed),
            Destination::Broadcast => (self.broadcast(), on_link),
            // Unicast to an address the client does not hold yet needs a
            // neighbour entry for its MAC; without one, broadcast.
            Destination::Direct { addr, mac } => {
                // Without a table (refused at start, already warned) or a
                // known interface name, broadcast; a table that refuses an
                // entry (full: gc_thresh3) is counted and warned about.
                let added = match (&self.helpers.neigh, self.served.name_of(t.ifindex)) {
                    (Some(table), Some(name)) => table
                        .add(name, *addr.ip(), mac)
                        .inspect_err(|err| self.neigh_warning.note(err, Instant::now()))
                        .is_ok(),
                    _ => false,
                };
                if !added {
                    c.broadcast_fallback();
                }
                if added {
                    (SocketAddrV4::new(*addr.ip(), self.ports.client), on_link)
                } else {
                    (self.broadcast(), on_link)
                }
            }
        }
    }

    fn broadcast(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, self.ports.client)
    }

    /// Group commit of everything appended this iteration, then release of
    /// every reply whose records are acknowledged.
    pub fn flush(&mut self, now: Instant, tx: &mut Tx, c: &mut Counters) {
        let pending = self.journal.pending_records();
        if pending > 0 && !self.journal.is_failed() {
            let started = Instant::now();
            match self.journal.commit(now) {
                Ok(_) => c.journal_commit(pending, started.elapsed()),
                Err(err) => self.fail(&err, c),
            }
        }
        let server = &self.server;
        let upkeep = self.journal.maintain(now, || {
            let (shard, shards) = server.shard();
            super::leases::live_records(server.leases(), shard, shards)
        });
        if let Err(err) = upkeep {
            self.fail(&err, c);
        }
        c.set_journal(&self.journal.gauges());
        self.release(tx);
        self.count_probes(c);
        self.observed
            .mirror
            .update(self.server.leases(), &mut self.touched);
        self.observed.mirror.update_fixed(&mut self.fixed);
        log_summary(&mut self.log_budget, self.observed.shard, now);
    }

    /// Syncs the journal when the batch policy says so, expires leases,
    /// resumes the ping checks whose time is up (the core's deadlines) and
    /// writes a due log summary.
    pub fn on_timeout(&mut self, now: Instant, tx: &mut Tx, c: &mut Counters) {
        log_summary(&mut self.log_budget, self.observed.shard, now);
        if self.usage_at <= now {
            self.server.pool_usage(unix_now(), &mut self.usage);
            self.observed.mirror.set_pools(&self.usage);
            self.usage_at = now + USAGE_EVERY;
        }
        if self.journal.next_sync_at(now).is_some_and(|at| at <= now)
            && let Err(err) = self.journal.sync(now)
        {
            self.fail(&err, c);
        }
        self.anchor = Anchor::now();
        let unix = self.anchor.unix;
        if self.server.poll_timeout().is_some_and(|d| d <= unix) {
            self.expired.clear();
            self.server.handle_timeout(unix, &mut self.expired);
            let expired = std::mem::take(&mut self.expired);
            self.append(&expired, c);
            self.touched.extend(expired.iter().map(|r| r.addr));
            self.expired = expired;
            while let Some(handled) = self.server.next_timed_out_probe(unix, &mut self.out) {
                self.carry_out(handled, tx, c);
            }
        }
    }

    /// When [`DhcpSide::on_timeout`] has work: the next journal sync, or
    /// the core's next lease or ping-check deadline.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let sync = self.journal.next_sync_at(now);
        let upkeep = self.journal.poll_timeout(now);
        let lease = self
            .server
            .poll_timeout()
            .map(|d| self.anchor.instant_of(d));
        let summary = self.log_budget.summary_at();
        [sync, upkeep, lease, summary, Some(self.usage_at)]
            .into_iter()
            .flatten()
            .min()
    }

    fn release(&mut self, tx: &mut Tx) {
        let acked = self.journal.acked_seq();
        while self.held.front().is_some_and(|h| h.seq_end <= acked) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            let _ = tx.send(SocketRole::Dhcp.index(), h.dst, Some(h.src), h.bytes);
        }
    }

    /// A journal failure: every held reply is dropped (its records may be
    /// lost) and replies that need the journal are refused until the
    /// journal's own retry succeeds.
    fn fail(&mut self, err: &JournalError, c: &mut Counters) {
        self.journal.fail(err, Instant::now());
        for _ in self.held.drain(..) {
            c.drop(RuntimeDrop::JournalFailed);
        }
    }

    /// Replies still waiting for the journal.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The DHCP core (counters, leases).
    pub fn server(&self) -> &DhcpServer {
        &self.server
    }

    /// Syncs the journal one last time at shutdown.
    pub fn finish(&mut self, now: Instant) {
        if let Err(err) = self.journal.finish(now) {
            tracing::error!(error = %err, "final journal sync failed");
        }
    }
}

/// The wall clock as the DHCP core reads it.
pub fn unix_now() -> UnixTime {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    UnixTime::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// One log line per handled message: what the client is (MAC, arch, user
/// class, option 175, vendor class) and what it got. With `debug` on, every
/// message is logged at `debug`; at `info`, answers only, within the shard's
/// line budget (the rest are counted for its summary). Every message is an
/// event on the bus either way. False when the budget suppressed the line.
fn log_event(budget: &mut LogBudget, event: &Event) -> bool {
    let answered = !matches!(event.verdict, Verdict::Dropped(_));
    let level = if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::Level::DEBUG
    } else if answered && tracing::enabled!(tracing::Level::INFO) {
        let kind = match event.verdict {
            Verdict::Offered | Verdict::BootReply => LineKind::Offered,
            Verdict::Acked => LineKind::Acked,
            Verdict::Nacked(_) => LineKind::Nacked,
            _ => LineKind::Other,
        };
        if !budget.admit(Instant::now(), kind) {
            return false;
        }
        tracing::Level::INFO
    } else {
        return true;
    };
    let mac = format_mac(&event.mac);
    let file = String::from_utf8_lossy(event.boot_file.as_bytes());
    let vendor = String::from_utf8_lossy(event.vendor_class.as_bytes());
    let arch = event.arch.map(|a| a.0);
    let (message, verdict, addr) = (event.message, event.verdict, event.addr);
    if level == tracing::Level::INFO {
        tracing::info!(%mac, ?message, ?arch, user_class = event.user_class, ipxe = event.ipxe_encap, %vendor, ?addr, %file, ?verdict, "dhcp");
    } else if answered {
        tracing::debug!(%mac, ?message, ?arch, user_class = event.user_class, ipxe = event.ipxe_encap, %vendor, ?addr, %file, ?verdict, "dhcp");
    } else {
        tracing::debug!(%mac, ?message, ?arch, ?verdict, "dhcp");
    }
    true
}

/// Writes the budget's summary when one is due.
fn log_summary(budget: &mut LogBudget, shard: u32, now: Instant) {
    let Some(s) = budget.take_summary(now) else {
        return;
    };
    let mut kinds = String::new();
    for (kind, n) in s.by_kind().filter(|(_, n)| *n > 0) {
        use std::fmt::Write as _;
        let _ = write!(kinds, " {kind}={n}");
    }
    tracing::info!(
        shard,
        suppressed = s.total(),
        seconds = s.period.as_secs(),
        "dhcp: per-message log lines over {} per second were suppressed:{kinds} (all lines at debug; every message is a boot event)",
        super::log_budget::LINES_PER_SECOND
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::net::{IpAddr, SocketAddr};
    use std::path::Path;

    use bootwave_protocol::config::MachineInterface;
    use bootwave_protocol::dhcp::Snapshot;
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
    use dhcproto::{Decodable, Encodable, Encoder};

    use crate::sys::ifaddrs::Interface;

    const IFINDEX: u32 = 9;
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    const RELAY: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

    /// A DHCP side over a real journal in `dir`, serving one interface,
    /// with no prober (no ping check) and no neighbour table.
    fn side(dir: &Path, fsync: &str) -> DhcpSide {
        let text = format!(
            "interfaces = [\"eth9\"]\n[dhcp]\nping-check = false\n[journal]\ndir = \"{}\"\nfsync = \"{fsync}\"\n[[subnets]]\nnetwork = \"10.9.0.0/24\"\nranges = [\"10.9.0.10-10.9.0.20\"]\n",
            dir.display()
        );
        let config = bootwave_protocol::config::parse(&text, "test", dir).unwrap();
        let snapshot = Snapshot::shared(config.clone());
        let prepared =
            super::super::leases::prepare(&config.journal.dir, config.journal.fsync, &snapshot, 1)
                .unwrap();
        let machine = [Interface {
            machine: MachineInterface {
                name: "eth9".into(),
                index: IFINDEX,
                addrs: vec![(SERVER, 24)],
            },
            loopback: false,
        }];
        let served = Arc::new(Served::select(&config, &machine));
        let server = prepared.servers.into_iter().next().unwrap();
        let journal = prepared.journals.into_iter().next().unwrap();
        DhcpSide::new(
            server,
            journal,
            served,
            DhcpPorts::for_server(67),
            Helpers {
                prober: None,
                arp: None,
                neigh: None,
            },
            Observed {
                shard: 0,
                bus: EventBus::default(),
                mirror: Arc::new(LeaseMirror::new(0, 1)),
            },
        )
    }

    /// A relayed message of `kind` from `mac` (no neighbour entry or
    /// broadcast needed to answer it).
    fn relayed(
        mac: [u8; 6],
        kind: MessageType,
        requested: Option<Ipv4Addr>,
    ) -> (RecvMeta, Vec<u8>) {
        let mut msg = Message::default();
        msg.set_opcode(Opcode::BootRequest)
            .set_xid(0x0707)
            .set_chaddr(&mac)
            .set_giaddr(RELAY)
            .set_hops(1);
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(ip) = requested {
            msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
            msg.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        }
        let mut bytes = Vec::new();
        msg.encode(&mut Encoder::new(&mut bytes)).unwrap();
        let meta = RecvMeta {
            src: SocketAddr::new(IpAddr::V4(RELAY), 67),
            dst_ip: IpAddr::V4(SERVER),
            local_port: 67,
            ifindex: IFINDEX,
        };
        (meta, bytes)
    }

    /// The `yiaddr` of the one reply queued in `tx`, which it takes.
    fn reply(tx: &mut Tx) -> (MessageType, Ipv4Addr) {
        assert_eq!(tx.queued(), 1, "one reply");
        let t = tx.pop().unwrap();
        let crate::driver::Payload::Bytes(bytes) = &t.payload else {
            panic!("a DHCP reply is one datagram");
        };
        let msg = Message::decode(&mut dhcproto::Decoder::new(bytes)).unwrap();
        let Some(&DhcpOption::MessageType(kind)) =
            msg.opts().get(dhcproto::v4::OptionCode::MessageType)
        else {
            panic!("no message type");
        };
        assert_eq!(t.dst, SocketAddrV4::new(RELAY, 67), "to the relay");
        (kind, msg.yiaddr())
    }

    /// OFFER, then the REQUEST's ACK as far as `on_datagram`: held.
    fn offer_and_request(
        mac: [u8; 6],
        side: &mut DhcpSide,
        tx: &mut Tx,
        c: &mut Counters,
    ) -> Ipv4Addr {
        let (meta, discover) = relayed(mac, MessageType::Discover, None);
        side.on_datagram(&meta, &discover, tx, c);
        let (kind, offered) = reply(tx);
        assert_eq!(kind, MessageType::Offer);
        let (meta, request) = relayed(mac, MessageType::Request, Some(offered));
        side.on_datagram(&meta, &request, tx, c);
        offered
    }

    #[test]
    fn an_ack_leaves_only_once_its_lease_is_journaled_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut side = side(dir.path(), "always");
        let (mut tx, mut c) = (Tx::new(SocketRole::ALL.len()), Counters::default());
        let offered = offer_and_request([2, 0, 0, 0, 0, 7], &mut side, &mut tx, &mut c);
        // An OFFER binds nothing and leaves at once; the ACK is held.
        assert_eq!((tx.queued(), side.held()), (0, 1));
        side.flush(Instant::now(), &mut tx, &mut c);
        assert_eq!(side.held(), 0, "released once written and synced");
        assert_eq!(reply(&mut tx), (MessageType::Ack, offered));
        assert_eq!(c.dropped(RuntimeDrop::JournalFailed), 0);
    }

    #[test]
    fn a_batched_ack_waits_for_the_sync_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut side = side(dir.path(), "batch");
        let (mut tx, mut c) = (Tx::new(SocketRole::ALL.len()), Counters::default());
        let first = offer_and_request([2, 0, 0, 0, 0, 7], &mut side, &mut tx, &mut c);
        let now = Instant::now();
        // The first commit of a quiet journal syncs at once.
        side.flush(now, &mut tx, &mut c);
        assert_eq!(reply(&mut tx), (MessageType::Ack, first));
        // The next one within the batch interval waits for its sync.
        let second = offer_and_request([2, 0, 0, 0, 0, 8], &mut side, &mut tx, &mut c);
        side.flush(now, &mut tx, &mut c);
        assert_eq!(
            (tx.queued(), side.held()),
            (0, 1),
            "written, not synced yet"
        );
        // Still held at the same instant, released once the interval
        // (`fsync-interval`, 2 ms by default) has passed and the shard's
        // timer ran.
        side.on_timeout(now, &mut tx, &mut c);
        side.flush(now, &mut tx, &mut c);
        assert_eq!(
            (tx.queued(), side.held()),
            (0, 1),
            "the interval has not passed"
        );
        let sync = now + bootwave_protocol::config::DEFAULT_FSYNC_INTERVAL;
        side.on_timeout(sync, &mut tx, &mut c);
        side.flush(sync, &mut tx, &mut c);
        assert_eq!(side.held(), 0);
        assert_eq!(reply(&mut tx), (MessageType::Ack, second));
    }

    #[test]
    fn a_journal_failure_drops_every_held_reply_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut side = side(dir.path(), "batch");
        let (mut tx, mut c) = (Tx::new(SocketRole::ALL.len()), Counters::default());
        offer_and_request([2, 0, 0, 0, 0, 7], &mut side, &mut tx, &mut c);
        assert_eq!(side.held(), 1);
        let err = JournalError::Io {
            op: "fdatasync",
            path: dir.path().to_owned(),
            source: std::io::Error::other("disk gone"),
        };
        side.fail(&err, &mut c);
        assert_eq!(side.held(), 0);
        assert_eq!(c.dropped(RuntimeDrop::JournalFailed), 1);
        // The dropped ACK never leaves, whatever the journal does next.
        let later = Instant::now() + Duration::from_secs(5);
        side.on_timeout(later, &mut tx, &mut c);
        side.flush(later, &mut tx, &mut c);
        assert_eq!(tx.queued(), 0);
    }

    #[test]
    fn moved_servers_use_the_next_port_for_clients() {
        assert_eq!(
            DhcpPorts::for_server(67),
            DhcpPorts {
                relay: 67,
                client: 68
            }
        );
        assert_eq!(
            DhcpPorts::for_server(10067),
            DhcpPorts {
                relay: 10067,
                client: 10068
            }
        );
    }

    #[test]
    fn anchored_deadlines_stay_put_and_overdue_ones_are_due() {
        let anchor = Anchor::now();
        let later = anchor.unix.saturating_add(Duration::from_millis(200));
        assert_eq!(
            anchor.instant_of(later),
            anchor.at + Duration::from_millis(200)
        );
        // Overdue: at or before the anchor, so any `now` read after it
        // finds the deadline due, however often it is asked.
        let past = UnixTime::from_millis(anchor.unix.as_millis() - 50);
        assert!(anchor.instant_of(past) <= anchor.at);
        assert_eq!(anchor.instant_of(past), anchor.instant_of(past));
        assert!(anchor.instant_of(UnixTime::EPOCH) <= anchor.at);
    }
}
