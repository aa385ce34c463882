//! When and where to send Router Advertisements: a per-interface state
//! machine driven by received ICMPv6 messages and virtual time.
//!
//! - A valid solicitation from a host's address is answered at once with a
//!   unicast advertisement to that address, up to [`UNICAST_BUDGET`] per
//!   interface per [`BUDGET_WINDOW`].
//! - A solicitation from `::`, or one beyond the budget (thousands of
//!   machines booting together), is answered by one multicast
//!   advertisement to all nodes (`ff02::1`), at most one per
//!   [`MULTICAST_GAP`] per interface: one multicast ends the wait of every
//!   host soliciting on that link.
//! - An advertisement from another router that configures hosts (router
//!   lifetime above 0, M or O flag, or a prefix) makes the responder fall
//!   silent on that interface until restart, so it never competes with a
//!   real IPv6 router. Minimal advertisements (another bootwave) do not.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::wire::{
    ADVERTISEMENT_LEN, OPT_PREFIX_INFO, ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION, RaError,
    RouterAdvertisement, RouterSolicitation,
};

/// Unicast answers per interface per [`BUDGET_WINDOW`].
pub const UNICAST_BUDGET: u32 = 64;
/// The window [`UNICAST_BUDGET`] counts in.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(1);
/// Least time between two multicast advertisements on one interface.
pub const MULTICAST_GAP: Duration = Duration::from_secs(1);
/// All-nodes link-local multicast address.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// What the driver knows about a received ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Ingress interface index (IPV6_PKTINFO).
    pub ifindex: u32,
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// IPv6 hop limit (IPV6_HOPLIMIT).
    pub hop_limit: u8,
}

/// What became of one received message (for logs and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A solicitation answered now (the transmit was queued).
    Answered,
    /// A solicitation left to the next multicast advertisement.
    Deferred,
    /// The interface is not served: nothing is ever sent there.
    NotServed,
    /// The message failed validation.
    Invalid(RaError),
    /// Another router advertises on this interface: silent there.
    OtherRouter(Ipv6Addr),
    /// An advertisement that changes nothing (a minimal one, or one from a
    /// router already known).
    Ignored,
}

/// One advertisement to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Egress interface index (also the scope of `dst`).
    pub ifindex: u32,
    /// Destination: the soliciting host or [`ALL_NODES`].
    pub dst: Ipv6Addr,
    bytes: [u8; ADVERTISEMENT_LEN],
    len: usize,
}

impl Transmit {
    /// The ICMPv6 message (checksum left to the kernel).
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// State of one served interface.
#[derive(Debug, Clone)]
struct Link {
    ifindex: u32,
    advertisement: RouterAdvertisement,
    last_multicast: Option<Instant>,
    multicast_pending: bool,
    window_start: Option<Instant>,
    unicast_in_window: u32,
    other_router: Option<Ipv6Addr>,
}

/// The Router Advertisement responder of the served interfaces.
#[derive(Debug, Clone, Default)]
pub struct Responder {
    links: Vec<Link>,
}

impl Responder {
    /// A responder for the served interfaces, each given as its index and
    /// its Ethernet address (`None` when it has none, e.g. loopback).
    pub fn new(links: impl IntoIterator<Item = (u32, Option<[u8; 6]>)>) -> Self {
        let links = links
            .into_iter()
            .map(|(ifindex, mac)| Link {
                ifindex,
                advertisement: RouterAdvertisement::minimal(mac),
                last_multicast: None,
                multicast_pending: false,
                window_start: None,
                unicast_in_window: 0,
                other_router: None,
            })
            .collect();
        Self { links }
    }

    /// Handles one ICMPv6 message; advertisements to send go to `out`.
    pub fn handle(
        &mut self,
        now: Instant,
        meta: &Received,
        icmp: &[u8],
        out: &mut Vec<Transmit>,
    ) -> Outcome {
        let Some(link) = self.links.iter_mut().find(|l| l.ifindex == meta.ifindex) else {
            return Outcome::NotServed;
        };
        match icmp.first() {
            Some(&ROUTER_SOLICITATION) => link.solicited(now, meta, icmp, out),
            Some(&ROUTER_ADVERTISEMENT) => link.advertised(meta, icmp),
            Some(&other) => Outcome::Invalid(RaError::WrongType(other)),
            None => Outcome::Invalid(RaError::TooShort {
                kind: ROUTER_SOLICITATION,
                len: 0,
            }),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter(|l| l.multicast_pending)
            .filter_map(|l| l.last_multicast)
            .map(|last| last + MULTICAST_GAP)
            .min()
    }

    /// Sends the deferred multicast advertisements that are due.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        for link in &mut self.links {
            if link.multicast_pending && link.multicast_due(now) {
                link.multicast(now, out);
            }
        }
    }

    /// The other router seen on `ifindex`, if any.
    pub fn other_router(&self, ifindex: u32) -> Option<Ipv6Addr> {
        self.links
            .iter()
            .find(|l| l.ifindex == ifindex)
            .and_then(|l| l.other_router)
    }
}

impl Link {
    fn solicited(
        &mut self,
        now: Instant,
        meta: &Received,
        icmp: &[u8],
        out: &mut Vec<Transmit>,
    ) -> Outcome {
        let from_unspecified = meta.src.is_unspecified();
        if let Err(err) = RouterSolicitation::new_checked(icmp, meta.hop_limit, from_unspecified) {
            return Outcome::Invalid(err);
        }
        if let Some(router) = self.other_router {
            return Outcome::OtherRouter(router);
        }
        if !from_unspecified && self.take_unicast_budget(now) {
            out.push(self.transmit(meta.src));
            return Outcome::Answered;
        }
        if self.multicast_due(now) {
            self.multicast(now, out);
            return Outcome::Answered;
        }
        self.multicast_pending = true;
        Outcome::Deferred
    }

    fn advertised(&mut self, meta: &Received, icmp: &[u8]) -> Outcome {
        let (ra, options) = match RouterAdvertisement::parse(icmp, meta.hop_limit) {
            Ok(parsed) => parsed,
            Err(err) => return Outcome::Invalid(err),
        };
        let mut prefixes = options.filter(|o| o.kind == OPT_PREFIX_INFO);
        let configures =
            ra.router_lifetime > 0 || ra.managed || ra.other || prefixes.next().is_some();
        if !configures || self.other_router.is_some() {
            return Outcome::Ignored;
        }
        self.other_router = Some(meta.src);
        self.multicast_pending = false;
        Outcome::OtherRouter(meta.src)
    }

    /// Counts one unicast answer against the budget; false when spent.
    fn take_unicast_budget(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= BUDGET_WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.unicast_in_window = 0;
        }
        if self.unicast_in_window >= UNICAST_BUDGET {
            return false;
        }
        self.unicast_in_window += 1;
        true
    }

    /// Whether a multicast advertisement may leave at `now`. A pending one
    /// always has a previous one (otherwise it would have left at once).
    fn multicast_due(&self, now: Instant) -> bool {
        self.last_multicast
            .is_none_or(|last| now.saturating_duration_since(last) >= MULTICAST_GAP)
    }

    fn multicast(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.last_multicast = Some(now);
        self.multicast_pending = false;
        out.push(self.transmit(ALL_NODES));
    }

    fn transmit(&self, dst: Ipv6Addr) -> Transmit {
        let mut bytes = [0; ADVERTISEMENT_LEN];
        let len = self.advertisement.emit(&mut bytes);
        Transmit {
            ifindex: self.ifindex,
            dst,
            bytes,
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVED: u32 = 3;
    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const HOST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe78, 0x01);
    const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99);
    /// A solicitation carrying a source link-layer address option.
    const RS: [u8; 16] = [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0x78, 0, 1];
    /// A solicitation without options (what a host without an address sends).
    const RS_BARE: [u8; 8] = [133, 0, 0, 0, 0, 0, 0, 0];

    fn responder() -> Responder {
        Responder::new([(SERVED, Some(MAC))])
    }

    fn from(src: Ipv6Addr) -> Received {
        Received {
            ifindex: SERVED,
            src,
            hop_limit: 255,
        }
    }

    fn router_ra(lifetime: u16, managed: bool) -> Vec<u8> {
        let mut out = [0; ADVERTISEMENT_LEN];
        let ra = RouterAdvertisement {
            router_lifetime: lifetime,
            managed,
            ..RouterAdvertisement::minimal(Some([9; 6]))
        };
        let len = ra.emit(&mut out);
        out[..len].to_vec()
    }

    #[test]
    fn solicitation_from_a_host_gets_a_unicast_minimal_advertisement() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        assert_eq!(r.handle(t0, &from(HOST), &RS, &mut out), Outcome::Answered);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].ifindex, out[0].dst), (SERVED, HOST));
        let (ra, options) = RouterAdvertisement::parse(out[0].payload(), 255).expect("valid");
        assert_eq!(ra, RouterAdvertisement::minimal(Some(MAC)));
        assert_eq!(ra.router_lifetime, 0);
        assert!(!ra.managed && !ra.other);
        assert_eq!(options.count(), 1, "only the source link-layer address");
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn nothing_is_sent_on_interfaces_that_are_not_served() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        let elsewhere = Received {
            ifindex: SERVED + 1,
            ..from(HOST)
        };
        assert_eq!(r.handle(t0, &elsewhere, &RS, &mut out), Outcome::NotServed);
        assert!(out.is_empty());
        let mut empty = Responder::default();
        assert_eq!(
            empty.handle(t0, &from(HOST), &RS, &mut out),
            Outcome::NotServed
        );
        assert!(out.is_empty());
    }

    #[test]
    fn invalid_solicitations_get_no_answer() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        let forwarded = Received {
            hop_limit: 64,
            ..from(HOST)
        };
        assert_eq!(
            r.handle(t0, &forwarded, &RS, &mut out),
            Outcome::Invalid(RaError::HopLimit(64))
        );
        assert_eq!(
            r.handle(t0, &from(Ipv6Addr::UNSPECIFIED), &RS, &mut out),
            Outcome::Invalid(RaError::LinkAddrFromUnspecified)
        );
        assert_eq!(
            r.handle(t0, &from(HOST), &[128, 0, 0, 0], &mut out),
            Outcome::Invalid(RaError::WrongType(128))
        );
        assert_eq!(
            r.handle(t0, &from(HOST), &[], &mut out),
            Outcome::Invalid(RaError::TooShort { kind: 133, len: 0 })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn unspecified_sources_share_one_paced_multicast() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        let anon = from(Ipv6Addr::UNSPECIFIED);
        assert_eq!(r.handle(t0, &anon, &RS_BARE, &mut out), Outcome::Answered);
        assert_eq!(out.pop().map(|t| t.dst), Some(ALL_NODES));
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(r.handle(t1, &anon, &RS_BARE, &mut out), Outcome::Deferred);
        assert_eq!(r.handle(t1, &anon, &RS_BARE, &mut out), Outcome::Deferred);
        assert!(out.is_empty());
        assert_eq!(r.poll_timeout(), Some(t0 + MULTICAST_GAP));
        r.handle_timeout(t0 + Duration::from_millis(999), &mut out);
        assert!(out.is_empty(), "not before the gap");
        r.handle_timeout(t0 + MULTICAST_GAP, &mut out);
        assert_eq!(out.len(), 1, "two deferred solicitations, one multicast");
        assert_eq!(out[0].dst, ALL_NODES);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn a_burst_beyond_the_unicast_budget_falls_back_to_multicast() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        for _ in 0..UNICAST_BUDGET {
            assert_eq!(r.handle(t0, &from(HOST), &RS, &mut out), Outcome::Answered);
        }
        assert!(out.iter().all(|t| t.dst == HOST));
        out.clear();
        assert_eq!(r.handle(t0, &from(HOST), &RS, &mut out), Outcome::Answered);
        assert_eq!(out.pop().map(|t| t.dst), Some(ALL_NODES));
        assert_eq!(r.handle(t0, &from(HOST), &RS, &mut out), Outcome::Deferred);
        // A new window restores unicast answers.
        let later = t0 + BUDGET_WINDOW;
        assert_eq!(
            r.handle(later, &from(HOST), &RS, &mut out),
            Outcome::Answered
        );
        assert_eq!(out.pop().map(|t| t.dst), Some(HOST));
    }

    #[test]
    fn a_configuring_router_silences_the_link() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        // Another minimal responder changes nothing.
        assert_eq!(
            r.handle(t0, &from(ROUTER), &router_ra(0, false), &mut out),
            Outcome::Ignored
        );
        assert_eq!(r.other_router(SERVED), None);
        assert_eq!(
            r.handle(t0, &from(ROUTER), &router_ra(1800, false), &mut out),
            Outcome::OtherRouter(ROUTER)
        );
        assert_eq!(r.other_router(SERVED), Some(ROUTER));
        assert_eq!(
            r.handle(t0, &from(HOST), &RS, &mut out),
            Outcome::OtherRouter(ROUTER)
        );
        assert!(out.is_empty());
        // The M flag alone (DHCPv6 network) counts too.
        let mut r = responder();
        assert_eq!(
            r.handle(t0, &from(ROUTER), &router_ra(0, true), &mut out),
            Outcome::OtherRouter(ROUTER)
        );
        // A forwarded advertisement is not believed.
        let mut r = responder();
        let forwarded = Received {
            hop_limit: 254,
            ..from(ROUTER)
        };
        assert_eq!(
            r.handle(t0, &forwarded, &router_ra(1800, false), &mut out),
            Outcome::Invalid(RaError::HopLimit(254))
        );
        assert_eq!(r.other_router(SERVED), None);
    }

    #[test]
    fn a_prefix_alone_marks_a_configuring_router() {
        let (mut r, mut out, t0) = (responder(), Vec::new(), Instant::now());
        let mut ra = router_ra(0, false);
        ra.extend_from_slice(&[OPT_PREFIX_INFO, 4]);
        ra.extend_from_slice(&[0; 30]);
        assert_eq!(
            r.handle(t0, &from(ROUTER), &ra, &mut out),
            Outcome::OtherRouter(ROUTER)
        );
    }
}
