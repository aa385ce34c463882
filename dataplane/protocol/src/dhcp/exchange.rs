//! The server's answer to each message type (RFC 2131 §4.3), ISC dhcpd
//! style.

use std::net::Ipv4Addr;

use crate::config::{Subnet, UnknownClients};
use crate::dhcp::event::{DropReason, Event, NakReason, Verdict};
use crate::dhcp::leases::LeaseState;
use crate::dhcp::outcome::{Action, Commit, Probe, ProbeToken};
use crate::dhcp::pool;
use crate::dhcp::probe::{ProbeMethod, ProbeSlots};
use crate::dhcp::record::RecordBatch;
use crate::dhcp::reply::{self, ReplyKind, Request, lease_secs};
use crate::dhcp::server::Core;
use crate::dhcp::snapshot::Snapshot;
use crate::dhcp::time::UnixTime;

/// The client state a REQUEST reveals (RFC 2131 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    /// Answering our OFFER (option 54 present).
    Selecting,
    /// Rebooted, asking for its old address (option 50, no `ciaddr`).
    InitReboot,
    /// Extending its lease (`ciaddr`, unicast or broadcast).
    Renewing,
}

/// Whether the request may be answered, or which address it may have.
enum Grant {
    /// The host's fixed address.
    Fixed,
    /// A dynamic address, to bind.
    Dynamic,
}

type Answer = Result<Action, DropReason>;

/// Smallest interval between two pool-exhausted warnings for one subnet.
pub(crate) const DRY_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// When a subnet's pool last ran dry for a client, and how many clients
/// went unanswered since the last warning.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DryWarning {
    last: Option<UnixTime>,
    missed: u64,
}

impl Core {
    fn subnet<'s>(&self, snap: &'s Snapshot, req: &Request<'_>) -> Result<&'s Subnet, DropReason> {
        snap.subnet(req.subnet).ok_or(DropReason::NoSubnet)
    }

    /// The host's fixed address when it lies in the client's subnet, after
    /// refusing unknown clients where the subnet says so.
    fn admit(&self, snap: &Snapshot, req: &Request<'_>) -> Result<Option<Ipv4Addr>, DropReason> {
        let subnet = self.subnet(snap, req)?;
        let Some(host) = snap.host(&req.mac) else {
            if subnet.unknown_clients == UnknownClients::Deny {
                return Err(DropReason::UnknownClient);
            }
            return Ok(None);
        };
        Ok(host.fixed_address.filter(|&a| subnet.net.contains(a)))
    }

    fn in_slice(&self, subnet: &Subnet, addr: Ipv4Addr) -> bool {
        pool::subnet_slice_contains(subnet, addr, self.shard, self.shards)
    }

    /// A dynamic address for the client: its current or last one, else the
    /// one it asks for, else a free one of this shard's slice. Its current
    /// binding counts even outside the slice (replayed after a change of
    /// shard count).
    fn pick(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        now: UnixTime,
    ) -> Result<Ipv4Addr, DropReason> {
        let subnet = self.subnet(snap, req)?;
        let mac = req.mac;
        let usable = |a: Ipv4Addr| self.in_slice(subnet, a) && snap.reserved_for(a).is_none();
        if let Some(l) = self.leases.of_client(&mac)
            && subnet.net.contains(l.addr)
            && snap.reserved_for(l.addr).is_none()
            && (self.in_slice(subnet, l.addr) && l.available_to(&mac, now) || l.is_bound(now))
        {
            return Ok(l.addr);
        }
        if let Some(a) = req.opts.requested_ip
            && usable(a)
            && self.leases.free_for(a, &mac, now)
        {
            return Ok(a);
        }
        let found = self
            .leases
            .find_free(subnet, &mac, now, |a| snap.reserved_for(a).is_some());
        if found.is_none() {
            self.pool_dry(snap, req.subnet, now);
        }
        found.ok_or(DropReason::NoAddress)
    }

    /// Says, at most once per [`DRY_WARNING_INTERVAL`] per subnet, that a
    /// client went without an address because this shard's slice of the
    /// subnet's pools is used up.
    fn pool_dry(&mut self, snap: &Snapshot, subnet: usize, now: UnixTime) {
        let Some(net) = snap.subnet(subnet).map(|s| s.net) else {
            return;
        };
        if self.dry.len() <= subnet {
            self.dry.resize(subnet + 1, DryWarning::default());
        }
        let w = &mut self.dry[subnet];
        w.missed += 1;
        if w.last
            .is_some_and(|at| now < at.saturating_add(DRY_WARNING_INTERVAL))
        {
            return;
        }
        let slice = snap
            .subnet(subnet)
            .map_or(0, |s| pool::slice_len(s, self.shard, self.shards));
        tracing::warn!(
            subnet = %net,
            shard = self.shard,
            shards = self.shards,
            slice_addresses = slice,
            clients_unanswered = w.missed,
            "dhcp: pool exhausted: no free address in this shard's slice of the subnet, clients go unanswered"
        );
        w.last = Some(now);
        w.missed = 0;
    }

    /// DISCOVER → OFFER (or a ping check first).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn discover(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        now: UnixTime,
        out: &mut [u8],
        probed: Option<Ipv4Addr>,
        probes: &mut ProbeSlots,
        event: &mut Event,
    ) -> Answer {
        let settings = &snap.config().dhcp;
        let fixed = self.admit(snap, req)?;
        if probed.is_none() && probes.replace(&req.mac, req.meta, req.packet.into_inner()) {
            // A retransmission while its probe runs: the offer will answer
            // this newest copy (its xid); nothing is parked twice.
            event.verdict = Verdict::Probing;
            return Ok(Action::None);
        }
        let subnet = self.subnet(snap, req)?;
        let secs = lease_secs(settings, subnet, req.opts.lease_time);
        let addr = match fixed {
            Some(a) => a,
            None => self.pick(snap, req, now)?,
        };
        event.addr = Some(addr);
        let hold = now.saturating_add(settings.offer_hold);
        if fixed.is_none()
            && settings.ping_check
            && probed != Some(addr)
            && let Some(action) = self.probe(snap, req, now, addr, probes, event)
        {
            return Ok(action);
        }
        let tx = reply::write(snap, req, ReplyKind::Offer, addr, Some(secs), out, event)?;
        if fixed.is_none() {
            self.leases.hold(req.mac, addr, hold, false, now);
        }
        event.verdict = Verdict::Offered;
        Ok(Action::Send(tx))
    }

    /// Parks the DISCOVER for a ping check of `addr`, unless the address
    /// needs none: it is held for this client (its binding or offer), it
    /// was last bound to this client (a returning client), or it stayed
    /// silent to a probe a few seconds ago. `None`: offer it now (also when
    /// the parking is full).
    fn probe(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        now: UnixTime,
        addr: Ipv4Addr,
        probes: &mut ProbeSlots,
        event: &mut Event,
    ) -> Option<Action> {
        let settings = &snap.config().dhcp;
        let own = self.leases.get(addr).filter(|l| l.mac == req.mac);
        if own.is_some_and(|l| matches!(l.state, LeaseState::Bound | LeaseState::Expired)) {
            probes.counters.skipped_returning += 1;
            return None;
        }
        if own.is_some_and(|l| l.is_active(now) && !l.probing) {
            return None;
        }
        if probes.recently_silent(addr, now) {
            probes.counters.skipped_recent += 1;
            return None;
        }
        let token = probes
            .park(
                now,
                settings.ping_timeout,
                req.meta,
                req.server_id,
                req.mac,
                addr,
                req.packet.into_inner(),
            )
            .ok()?;
        let hold = now.saturating_add(settings.offer_hold.max(settings.ping_timeout));
        self.leases.hold(req.mac, addr, hold, true, now);
        event.verdict = Verdict::Probing;
        // ARP reaches the candidate only when its subnet is on the ingress
        // link, which is also the case of a relay on that link. An ICMP echo
        // to an on-link address would sit in the kernel's neighbour queue
        // (and table) instead of reaching the wire.
        let on_link = snap
            .subnet(req.subnet)
            .is_some_and(|n| req.iface.iter().any(|&a| n.net.contains(a)));
        let method = if on_link {
            ProbeMethod::Arp
        } else {
            ProbeMethod::Icmp
        };
        Some(Action::Probe(Probe {
            token: ProbeToken(token),
            addr,
            ifindex: req.meta.ifindex,
            timeout: settings.ping_timeout,
            method,
        }))
    }

    /// REQUEST → ACK, NAK or silence.
    pub(crate) fn request(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        now: UnixTime,
        out: &mut [u8],
        event: &mut Event,
    ) -> Answer {
        let ciaddr = Some(req.packet.ciaddr()).filter(|a| !a.is_unspecified());
        let (addr, state) = if let Some(id) = req.opts.server_id {
            if !req.is_ours(id) {
                self.leases.withdraw_offer(&req.mac);
                return Err(DropReason::OtherServer);
            }
            let addr = req
                .opts
                .requested_ip
                .or(ciaddr)
                .ok_or(DropReason::MissingAddress)?;
            (addr, RequestState::Selecting)
        } else if let (Some(a), None) = (req.opts.requested_ip, ciaddr) {
            (a, RequestState::InitReboot)
        } else {
            (
                ciaddr.ok_or(DropReason::MissingAddress)?,
                RequestState::Renewing,
            )
        };
        event.addr = Some(addr);
        let fixed = self.admit(snap, req)?;
        let grant = match self.judge(snap, req, addr, fixed, state, now)? {
            Ok(grant) => grant,
            Err(reason) => return self.nak(snap, req, reason, out, event),
        };
        let subnet = self.subnet(snap, req)?;
        let secs = lease_secs(&snap.config().dhcp, subnet, req.opts.lease_time);
        let tx = reply::write(snap, req, ReplyKind::Ack, addr, Some(secs), out, event)?;
        event.verdict = Verdict::Acked;
        event.lease_secs = Some(secs);
        if let Grant::Fixed = grant {
            return Ok(Action::Send(tx));
        }
        let mut batch = RecordBatch::default();
        self.leases
            .bind(req.mac, addr, now.add_secs(secs), now, &mut batch);
        Ok(Action::Commit(Commit::new(batch, Some(tx))))
    }

    /// Whether `addr` may be (re)bound to the client: a grant, a NAK reason,
    /// or silence.
    fn judge(
        &self,
        snap: &Snapshot,
        req: &Request<'_>,
        addr: Ipv4Addr,
        fixed: Option<Ipv4Addr>,
        state: RequestState,
        now: UnixTime,
    ) -> Result<Result<Grant, NakReason>, DropReason> {
        let subnet = self.subnet(snap, req)?;
        if !subnet.net.contains(addr) {
            return Ok(Err(NakReason::WrongSubnet));
        }
        if let Some(f) = fixed {
            return Ok(if f == addr {
                Ok(Grant::Fixed)
            } else {
                Err(NakReason::NotOurs)
            });
        }
        let own_binding = self
            .leases
            .get(addr)
            .is_some_and(|l| l.mac == req.mac && l.is_bound(now));
        if snap.reserved_for(addr).is_some() || !(self.in_slice(subnet, addr) || own_binding) {
            return Ok(Err(NakReason::NotOurs));
        }
        match self.leases.get(addr) {
            Some(l)
                if l.mac == req.mac
                    && matches!(
                        l.state,
                        LeaseState::Offered
                            | LeaseState::Bound
                            | LeaseState::Expired
                            | LeaseState::Released
                    ) =>
            {
                Ok(Ok(Grant::Dynamic))
            }
            Some(l) if l.is_active(now) => Ok(Err(NakReason::LeaseGone)),
            _ => match state {
                RequestState::Selecting => Ok(Err(NakReason::NotOffered)),
                RequestState::InitReboot if self.leases.of_client(&req.mac).is_none() => {
                    Err(DropReason::NoRecord)
                }
                _ => Ok(Err(NakReason::LeaseGone)),
            },
        }
    }

    fn nak(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        reason: NakReason,
        out: &mut [u8],
        event: &mut Event,
    ) -> Answer {
        if !snap.config().dhcp.authoritative {
            return Err(DropReason::NotAuthoritative);
        }
        let tx = reply::write(
            snap,
            req,
            ReplyKind::Nak,
            Ipv4Addr::UNSPECIFIED,
            None,
            out,
            event,
        )?;
        event.verdict = Verdict::Nacked(reason);
        Ok(Action::Send(tx))
    }

    /// DECLINE: quarantine the address; no reply.
    pub(crate) fn decline(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        now: UnixTime,
        event: &mut Event,
    ) -> Answer {
        if req.opts.server_id.is_some_and(|id| !req.is_ours(id)) {
            return Err(DropReason::OtherServer);
        }
        let addr = req.opts.requested_ip.ok_or(DropReason::MissingAddress)?;
        event.addr = Some(addr);
        let until = now.saturating_add(snap.config().dhcp.decline_quarantine);
        let record = self
            .leases
            .decline(req.mac, addr, until, now)
            .ok_or(DropReason::NotHeld)?;
        let mut batch = RecordBatch::default();
        batch.push(record);
        event.verdict = Verdict::Declined;
        Ok(Action::Commit(Commit::new(batch, None)))
    }

    /// RELEASE: free the binding; no reply.
    pub(crate) fn release(
        &mut self,
        req: &Request<'_>,
        now: UnixTime,
        event: &mut Event,
    ) -> Answer {
        if req.opts.server_id.is_some_and(|id| !req.is_ours(id)) {
            return Err(DropReason::OtherServer);
        }
        let addr = req.packet.ciaddr();
        event.addr = Some(addr);
        let record = self
            .leases
            .release(req.mac, addr, now)
            .ok_or(DropReason::NotHeld)?;
        let mut batch = RecordBatch::default();
        batch.push(record);
        event.verdict = Verdict::Released;
        Ok(Action::Commit(Commit::new(batch, None)))
    }

    /// INFORM → ACK with configuration only.
    pub(crate) fn inform(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        out: &mut [u8],
        event: &mut Event,
    ) -> Answer {
        self.admit(snap, req)?;
        let tx = reply::write(
            snap,
            req,
            ReplyKind::Inform,
            Ipv4Addr::UNSPECIFIED,
            None,
            out,
            event,
        )?;
        event.verdict = Verdict::Informed;
        Ok(Action::Send(tx))
    }

    /// BOOTP request → BOOTREPLY: the fixed address, or where the subnet
    /// says `dynamic-bootp`, a pool address bound for
    /// `dynamic-bootp-lease-length` (BOOTP clients never renew).
    pub(crate) fn bootp(
        &mut self,
        snap: &Snapshot,
        req: &Request<'_>,
        now: UnixTime,
        out: &mut [u8],
        event: &mut Event,
    ) -> Answer {
        let fixed = self.admit(snap, req)?;
        let subnet = self.subnet(snap, req)?;
        let addr = match fixed {
            Some(a) => a,
            None if subnet.dynamic_bootp => self.pick(snap, req, now)?,
            None => return Err(DropReason::BootpNotDynamic),
        };
        let length = subnet
            .dynamic_bootp_lease_length
            .or(subnet.default_lease_time)
            .unwrap_or(snap.config().dhcp.default_lease_time);
        event.addr = Some(addr);
        let tx = reply::write(snap, req, ReplyKind::Bootp, addr, None, out, event)?;
        event.verdict = Verdict::BootReply;
        if fixed.is_some() {
            return Ok(Action::Send(tx));
        }
        let mut batch = RecordBatch::default();
        self.leases
            .bind(req.mac, addr, now.saturating_add(length), now, &mut batch);
        Ok(Action::Commit(Commit::new(batch, Some(tx))))
    }
}
