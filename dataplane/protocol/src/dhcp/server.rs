//! The per-shard DHCP server: entry points, message dispatch, ping checks
//! and timers.

use std::net::{IpAddr, Ipv4Addr};

use crate::dhcp::event::{DropCounters, DropReason, Event, ShortBytes, Verdict};
use crate::dhcp::exchange::DryWarning;
use crate::dhcp::leases::LeaseTable;
use crate::dhcp::options::{ClientOptions, MessageType};
use crate::dhcp::outcome::{Action, Handled, ProbeToken};
use crate::dhcp::probe::{PROBE_BUFFER_BUDGET, PROBE_CAPACITY, ProbeCounters, ProbeSlots};
use crate::dhcp::record::LeaseRecord;
use crate::dhcp::reply::Request;
use crate::dhcp::snapshot::{SharedSnapshot, Snapshot};
use crate::dhcp::time::UnixTime;
use crate::dhcp::usage::{self, PoolUsage};
use crate::dhcp::wire::{BOOTREQUEST, MAX_MESSAGE_LEN, Packet};
use crate::net::RecvMeta;
use crate::shard::shard_of;

/// Upper bound on the lease capacity reserved at construction (larger pools
/// still work; the table then grows, allocating, past this many leases).
pub const MAX_PREALLOCATED_LEASES: u64 = 1 << 18;

/// The DHCP server of one shard. See the [module docs](crate::dhcp) for the
/// driving loop.
#[derive(Debug)]
pub struct DhcpServer {
    snapshot: SharedSnapshot,
    core: Core,
    probes: ProbeSlots,
    /// A resumed DISCOVER is copied here out of its probe slot.
    scratch: Box<[u8]>,
}

/// Lease state and counters: everything a message may change.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) shard: u32,
    pub(crate) shards: u32,
    pub(crate) leases: LeaseTable,
    counters: DropCounters,
    /// Pool-exhausted warnings, by subnet index.
    pub(crate) dry: Vec<DryWarning>,
}

impl DhcpServer {
    /// The server of shard `shard` (0-based) of `shards`, with lease room for
    /// this shard's slice of every pool plus every host, as configured now.
    pub fn new(snapshot: SharedSnapshot, shard: u32, shards: u32) -> Self {
        let capacity = {
            let snap = snapshot.load();
            let hosts = snap.config().hosts.len() as u64;
            (snap.slice_len(shard, shards.max(1)) + hosts).min(MAX_PREALLOCATED_LEASES)
        };
        Self::with_capacity(snapshot, shard, shards, capacity as usize)
    }

    /// Like [`DhcpServer::new`] with an explicit lease capacity.
    pub fn with_capacity(
        snapshot: SharedSnapshot,
        shard: u32,
        shards: u32,
        capacity: usize,
    ) -> Self {
        let shards = shards.max(1);
        Self {
            snapshot,
            core: Core {
                shard,
                shards,
                leases: LeaseTable::new(shard, shards, capacity),
                counters: DropCounters::default(),
                dry: Vec::new(),
            },
            probes: ProbeSlots::new(PROBE_CAPACITY, PROBE_BUFFER_BUDGET),
            scratch: vec![0u8; MAX_MESSAGE_LEN].into_boxed_slice(),
        }
    }

    /// Bounds the ping-check parking to `capacity` DISCOVERs and `budget`
    /// bytes of datagrams instead of [`PROBE_CAPACITY`] and
    /// [`PROBE_BUFFER_BUDGET`] (DISCOVERs parked now are dropped).
    pub fn with_probe_parking(mut self, capacity: usize, budget: usize) -> Self {
        self.probes = ProbeSlots::new(capacity, budget);
        self
    }

    /// Handles one datagram received on UDP port 67.
    ///
    /// `iface` lists the IPv4 addresses of the ingress interface
    /// (`meta.ifindex`): a non-relayed client belongs to the subnet holding
    /// one of them, and that address becomes the server identifier. A reply
    /// is written at the start of `out` (give at least
    /// [`MAX_MESSAGE_LEN`] bytes).
    pub fn handle(
        &mut self,
        now: UnixTime,
        meta: &RecvMeta,
        iface: &[Ipv4Addr],
        datagram: &[u8],
        out: &mut [u8],
    ) -> Handled {
        let snap = self.snapshot.load();
        self.core.process(
            &snap,
            now,
            meta,
            iface,
            datagram,
            out,
            None,
            &mut self.probes,
        )
    }

    /// Resumes a DISCOVER after the ping check `token`: with no answer the
    /// address is offered (and remembered as silent for a few seconds);
    /// when something answered, the address is taken out of use for the
    /// decline quarantine and another is chosen (and probed in turn).
    pub fn probe_result(
        &mut self,
        now: UnixTime,
        token: ProbeToken,
        answered: bool,
        out: &mut [u8],
    ) -> Handled {
        let outcome = if answered {
            Outcome::Answered
        } else {
            Outcome::Silent
        };
        self.resume(now, token, outcome, out)
    }

    /// Resumes a DISCOVER whose probe the driver could not send: the
    /// address is offered unprobed (and not remembered as silent).
    pub fn probe_not_sent(&mut self, now: UnixTime, token: ProbeToken, out: &mut [u8]) -> Handled {
        self.resume(now, token, Outcome::NotSent, out)
    }

    /// Something answered from `addr` (an ICMP echo reply, or an ARP
    /// packet sent by `addr`): resumes the DISCOVER parked on it at once.
    /// `None` when no probe of `addr` runs (a late or foreign answer).
    pub fn probe_answered(
        &mut self,
        now: UnixTime,
        addr: Ipv4Addr,
        out: &mut [u8],
    ) -> Option<Handled> {
        let token = self.probes.token_of(addr)?;
        Some(self.resume(now, ProbeToken(token), Outcome::Answered, out))
    }

    /// Resumes the earliest parked DISCOVER whose probe has timed out at
    /// `now` (silence: its address is offered). Call until `None` after
    /// [`DhcpServer::poll_timeout`] has passed; each call writes one reply
    /// into `out`.
    pub fn next_timed_out_probe(&mut self, now: UnixTime, out: &mut [u8]) -> Option<Handled> {
        let token = self.probes.expired(now)?;
        Some(self.resume(now, ProbeToken(token), Outcome::Silent, out))
    }

    /// DISCOVERs parked for a ping check now.
    pub fn parked_probes(&self) -> usize {
        self.probes.len()
    }

    /// Ping-check counters (cumulative).
    pub fn probe_counters(&self) -> &ProbeCounters {
        &self.probes.counters
    }

    fn resume(
        &mut self,
        now: UnixTime,
        token: ProbeToken,
        outcome: Outcome,
        out: &mut [u8],
    ) -> Handled {
        let snap = self.snapshot.load();
        let Self {
            core,
            probes,
            scratch,
            ..
        } = self;
        let Some(p) = probes.take(token.0, scratch) else {
            return core.dropped(DropReason::StaleProbe, Event::default());
        };
        let probed = match outcome {
            Outcome::Answered => {
                probes.counters.answered += 1;
                probes.forget(p.addr);
                let until = now.saturating_add(snap.config().dhcp.decline_quarantine);
                core.leases.abandon(p.addr, until, now);
                None
            }
            Outcome::Silent => {
                probes.counters.silent += 1;
                probes.remember_silent(p.addr, now);
                Some(p.addr)
            }
            Outcome::NotSent => Some(p.addr),
        };
        let datagram = &scratch[..p.len];
        core.process(
            &snap,
            now,
            &p.meta,
            &[p.server_id],
            datagram,
            out,
            probed,
            probes,
        )
    }

    /// When [`DhcpServer::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        [
            self.core.leases.next_deadline(),
            self.probes.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends expired bindings, offers and quarantines. `Expire` records for
    /// the journal are appended to `records`; no reply waits on them.
    /// Timed-out ping checks are resumed by
    /// [`DhcpServer::next_timed_out_probe`], which writes their offers.
    pub fn handle_timeout(&mut self, now: UnixTime, records: &mut Vec<LeaseRecord>) {
        if self.core.leases.next_deadline().is_some_and(|d| d <= now) {
            self.core.leases.sweep(now, records);
        }
    }

    /// Applies one journaled record at start (see [`LeaseTable::replay`]).
    /// A binding without end (written by older versions for BOOTP clients)
    /// ends after the maximum lease time.
    pub fn replay(&mut self, record: &LeaseRecord) {
        let mut record = *record;
        if record.until == UnixTime::NEVER {
            let max = self.snapshot.load().config().dhcp.max_lease_time;
            record.until = record.at.saturating_add(max);
        }
        self.core.leases.replay(&record);
    }

    /// The lease table.
    pub fn leases(&self) -> &LeaseTable {
        &self.core.leases
    }

    /// How full this shard's slice of each pool is at `now`, written into
    /// `out` (one pass over the leases: call it every second or so, not
    /// per message).
    pub fn pool_usage(&self, now: UnixTime, out: &mut Vec<PoolUsage>) {
        let snap = self.snapshot.load();
        usage::pool_usage(
            &snap,
            &self.core.leases,
            self.core.shard,
            self.core.shards,
            now,
            out,
        );
    }

    /// Messages dropped so far, by reason.
    pub fn counters(&self) -> &DropCounters {
        &self.core.counters
    }

    /// `(shard, shards)`.
    pub fn shard(&self) -> (u32, u32) {
        (self.core.shard, self.core.shards)
    }
}

/// How a ping check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Answered,
    Silent,
    NotSent,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        snap: &Snapshot,
        now: UnixTime,
        meta: &RecvMeta,
        iface: &[Ipv4Addr],
        datagram: &[u8],
        out: &mut [u8],
        probed: Option<Ipv4Addr>,
        probes: &mut ProbeSlots,
    ) -> Handled {
        let mut event = Event::default();
        match self.dispatch(
            snap, now, meta, iface, datagram, out, probed, probes, &mut event,
        ) {
            Ok(action) => Handled { action, event },
            Err(reason) => self.dropped(reason, event),
        }
    }

    fn dropped(&mut self, reason: DropReason, mut event: Event) -> Handled {
        self.counters.bump(reason);
        if reason == DropReason::NotOurShard {
            tracing::trace!(mac = ?event.mac, xid = event.xid, "dhcp: client of another shard");
        } else {
            tracing::debug!(?reason, mac = ?event.mac, xid = event.xid, "dhcp: message dropped");
        }
        event.verdict = Verdict::Dropped(reason);
        Handled {
            action: Action::None,
            event,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        snap: &Snapshot,
        now: UnixTime,
        meta: &RecvMeta,
        iface: &[Ipv4Addr],
        datagram: &[u8],
        out: &mut [u8],
        probed: Option<Ipv4Addr>,
        probes: &mut ProbeSlots,
        event: &mut Event,
    ) -> Result<Action, DropReason> {
        let packet = Packet::new_checked(datagram)?;
        event.xid = packet.xid();
        if packet.op() != BOOTREQUEST {
            return Err(DropReason::NotRequest);
        }
        let mac = packet
            .ethernet_addr()
            .ok_or(DropReason::UnsupportedHardware)?;
        event.mac = mac;
        if shard_of(&mac, self.shards) != self.shard {
            return Err(DropReason::NotOurShard);
        }
        // Zero, broadcast and multicast (group bit) are no client's address.
        if mac == [0; 6] || mac[0] & 1 == 1 {
            return Err(DropReason::BadChaddr);
        }
        let opts = ClientOptions::parse(&packet)?;
        event.arch = opts.client_arch;
        event.user_class = opts.user_class.is_some();
        event.user_class_value = ShortBytes::new(opts.user_class.unwrap_or_default());
        event.ipxe_encap = opts.ipxe_encap;
        event.vendor_class = ShortBytes::new(opts.vendor_class.unwrap_or_default());
        let kind = match opts.message_type {
            None => None,
            Some(v) => Some(MessageType::from_u8(v).ok_or(DropReason::UnknownMessageType)?),
        };
        event.message = kind;
        match kind {
            None if !snap.config().dhcp.allow_bootp => return Err(DropReason::BootpDisabled),
            Some(MessageType::Offer | MessageType::Ack | MessageType::Nak) => {
                return Err(DropReason::NotRequest);
            }
            _ => {}
        }
        let relays = &snap.config().dhcp.relays;
        if !packet.giaddr().is_unspecified()
            && !relays.is_empty()
            && !matches!(meta.src.ip(), IpAddr::V4(src) if relays.iter().any(|n| n.contains(src)))
        {
            return Err(DropReason::UntrustedRelay);
        }
        let (subnet, server_id) = locate(snap, &packet, meta, iface)?;
        let ciaddr = client_addr(snap, &packet, kind, meta, subnet)?;
        let ciaddr_held = ciaddr.is_some_and(|c| {
            snap.host(&mac).is_some_and(|h| h.fixed_address == Some(c))
                || self
                    .leases
                    .get(c)
                    .is_some_and(|l| l.mac == mac && l.is_bound(now))
        });
        let req = Request {
            packet,
            opts,
            kind,
            mac,
            meta,
            iface,
            server_id,
            subnet,
            ciaddr,
            ciaddr_held,
        };
        match req.kind {
            None => self.bootp(snap, &req, now, out, event),
            Some(MessageType::Discover) => {
                self.discover(snap, &req, now, out, probed, probes, event)
            }
            Some(MessageType::Request) => self.request(snap, &req, now, out, event),
            Some(MessageType::Decline) => self.decline(snap, &req, now, event),
            Some(MessageType::Release) => self.release(&req, now, event),
            Some(MessageType::Inform) => self.inform(snap, &req, out, event),
            Some(MessageType::Offer | MessageType::Ack | MessageType::Nak) => {
                Err(DropReason::NotRequest)
            }
        }
    }
}

/// The client's subnet and the server identifier to answer with: by
/// `giaddr` for relayed messages, else by the ingress interface's
/// addresses (the one whose subnet holds `ciaddr` when the link carries
/// several subnets). A `ciaddr` off the link never chooses the subnet.
fn locate(
    snap: &Snapshot,
    packet: &Packet<&[u8]>,
    meta: &RecvMeta,
    iface: &[Ipv4Addr],
) -> Result<(usize, Ipv4Addr), DropReason> {
    let unicast_to_us = match meta.dst_ip {
        IpAddr::V4(d) if iface.contains(&d) => Some(d),
        _ => None,
    };
    let giaddr = packet.giaddr();
    if !giaddr.is_unspecified() {
        let subnet = snap.subnet_index(giaddr).ok_or(DropReason::NoSubnet)?;
        let id = unicast_to_us
            .or_else(|| iface.first().copied())
            .ok_or(DropReason::NoServerAddress)?;
        return Ok((subnet, id));
    }
    if iface.is_empty() {
        return Err(DropReason::NoServerAddress);
    }
    let ciaddr = packet.ciaddr();
    let on_link = iface
        .iter()
        .filter_map(|&a| snap.subnet_index(a).map(|s| (s, a)));
    let holding = |&(s, _): &(usize, Ipv4Addr)| {
        !ciaddr.is_unspecified() && snap.subnet(s).is_some_and(|n| n.net.contains(ciaddr))
    };
    let (subnet, id) = on_link
        .clone()
        .find(holding)
        .or_else(|| on_link.clone().next())
        .ok_or(DropReason::NoSubnet)?;
    let same_subnet = |a: Ipv4Addr| snap.subnet(subnet).is_some_and(|n| n.net.contains(a));
    Ok((
        subnet,
        unicast_to_us.filter(|&a| same_subnet(a)).unwrap_or(id),
    ))
}

/// The `ciaddr` a reply may go to (RFC 2131 §4.1): inside the subnet the
/// datagram came from and, unless relayed, the datagram's source address.
/// A DISCOVER's `ciaddr` means nothing. A REQUEST whose `ciaddr` lies in
/// another subnet is left to be refused; one from another source, and an
/// INFORM or BOOTP request with a `ciaddr` that fails either test, is
/// dropped.
fn client_addr(
    snap: &Snapshot,
    packet: &Packet<&[u8]>,
    kind: Option<MessageType>,
    meta: &RecvMeta,
    subnet: usize,
) -> Result<Option<Ipv4Addr>, DropReason> {
    let ciaddr = packet.ciaddr();
    if ciaddr.is_unspecified()
        || matches!(
            kind,
            Some(MessageType::Discover | MessageType::Decline | MessageType::Release)
        )
    {
        return Ok(None);
    }
    let inside = snap.subnet(subnet).is_some_and(|s| s.net.contains(ciaddr));
    let from_it = !packet.giaddr().is_unspecified() || meta.src.ip() == IpAddr::V4(ciaddr);
    match (inside, from_it) {
        (true, true) => Ok(Some(ciaddr)),
        (false, _) if kind == Some(MessageType::Request) => Ok(None),
        _ => Err(DropReason::BadCiaddr),
    }
}
