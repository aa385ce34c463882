//! The ping-check timer path in virtual time: the core parks a DISCOVER,
//! resumes it at once on an answer or exactly at its deadline, and skips the
//! probe where ISC dhcpd would.

mod dhcp_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use bootwave_protocol::dhcp::{
    Action, DhcpServer, Handled, LeaseState, Probe, ProbeMethod, Snapshot, UnixTime, Verdict,
};
use dhcp_support::*;
use dhcproto::v4::MessageType as Mt;

const TIMEOUT: Duration = Duration::from_millis(500);

fn ping_server() -> DhcpServer {
    let mut cfg = lab_config();
    cfg.dhcp.ping_check = true;
    cfg.dhcp.ping_timeout = TIMEOUT;
    server(cfg)
}

fn ms(at: UnixTime, ms: u64) -> UnixTime {
    at.saturating_add(Duration::from_millis(ms))
}

fn probe_of(h: &Handled) -> Probe {
    match h.action {
        Action::Probe(p) => p,
        ref other => panic!("expected a probe, got {other:?}"),
    }
}

/// The OFFER in `h`: its yiaddr and xid.
fn offer_of(h: Handled, out: &[u8]) -> (Ipv4Addr, u32) {
    let step = Step::from(h, out);
    let m = step.decoded();
    assert_eq!(m.opts().msg_type(), Some(Mt::Offer));
    (m.yiaddr(), m.xid())
}

#[test]
fn an_answer_resumes_at_once_and_silence_exactly_at_the_deadline() {
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let t0 = t(0);
    let mac = [2, 0, 0, 0, 1, 1];
    let h = s.handle(t0, &bcast(), &IFACE, &discover(mac).build(), &mut out);
    let p1 = probe_of(&h);
    assert_eq!((p1.method, p1.timeout), (ProbeMethod::Arp, TIMEOUT));
    assert_eq!(s.poll_timeout(), Some(ms(t0, 500)));
    // Something answers 10 ms later: resumed now, another address probed.
    let h = s
        .probe_answered(ms(t0, 10), p1.addr, &mut out)
        .expect("a probe of this address runs");
    let p2 = probe_of(&h);
    assert_ne!(p2.addr, p1.addr);
    assert_eq!(
        s.leases().get(p1.addr).map(|l| l.state),
        Some(LeaseState::Abandoned)
    );
    assert_eq!(s.poll_timeout(), Some(ms(t0, 510)));
    // A second answer for the first address is late: nothing parked there.
    assert!(s.probe_answered(ms(t0, 20), p1.addr, &mut out).is_none());
    // Silence: nothing before the deadline, the OFFER exactly at it.
    assert!(s.next_timed_out_probe(ms(t0, 509), &mut out).is_none());
    let h = s
        .next_timed_out_probe(ms(t0, 510), &mut out)
        .expect("a probe is due");
    assert_eq!(offer_of(h, &out).0, p2.addr);
    assert!(s.next_timed_out_probe(ms(t0, 510), &mut out).is_none());
    assert_eq!(s.parked_probes(), 0);
    let c = s.probe_counters();
    assert_eq!((c.parked, c.answered, c.silent), (2, 1, 1));
}

#[test]
fn deadlines_resume_in_order_and_each_waits_its_full_timeout() {
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let t0 = t(0);
    let mut probes = Vec::new();
    for i in 0..3u8 {
        let at = ms(t0, u64::from(i) * 100);
        let h = s.handle(
            at,
            &bcast(),
            &IFACE,
            &discover([2, 0, 0, 0, 2, i]).build(),
            &mut out,
        );
        probes.push(probe_of(&h));
    }
    for (i, p) in probes.iter().enumerate() {
        let deadline = ms(t0, i as u64 * 100 + 500);
        assert_eq!(s.poll_timeout(), Some(deadline));
        let before = UnixTime::from_millis(deadline.as_millis() - 1);
        assert!(s.next_timed_out_probe(before, &mut out).is_none());
        let h = s
            .next_timed_out_probe(deadline, &mut out)
            .expect("a probe is due");
        assert!(matches!(h.action, Action::Send(_)));
        assert_eq!(h.event.addr, Some(p.addr));
    }
    assert_eq!(s.parked_probes(), 0);
    // What is left to wake for is the offers' hold, not a probe.
    assert!(s.poll_timeout() > Some(ms(t0, 700)));
}

#[test]
fn a_full_parking_answers_without_a_probe() {
    let mut s = DhcpServer::new(Snapshot::shared(ping_server_config()), 0, 1)
        .with_probe_parking(2, 1 << 20);
    let mut out = vec![0u8; 1500];
    for i in 0..2u8 {
        let h = s.handle(
            t(0),
            &bcast(),
            &IFACE,
            &discover([2, 0, 0, 0, 3, i]).build(),
            &mut out,
        );
        probe_of(&h);
    }
    let h = s.handle(
        t(0),
        &bcast(),
        &IFACE,
        &discover([2, 0, 0, 0, 3, 9]).build(),
        &mut out,
    );
    assert_eq!(h.event.verdict, Verdict::Offered);
    offer_of(h, &out);
    assert_eq!(s.probe_counters().overflowed, 1);
    assert_eq!(s.parked_probes(), 2);
}

fn ping_server_config() -> bootwave_protocol::config::Config {
    let mut cfg = lab_config();
    cfg.dhcp.ping_check = true;
    cfg.dhcp.ping_timeout = TIMEOUT;
    cfg
}

#[test]
fn a_returning_client_is_not_probed() {
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let mac = [2, 0, 0, 0, 4, 1];
    let h = s.handle(t(0), &bcast(), &IFACE, &discover(mac).build(), &mut out);
    let p = probe_of(&h);
    let h = s
        .next_timed_out_probe(ms(t(0), 500), &mut out)
        .expect("a probe is due");
    let (addr, _) = offer_of(h, &out);
    assert_eq!(addr, p.addr);
    let h = s.handle(
        t(1),
        &bcast(),
        &IFACE,
        &select(mac, addr, SERVER).build(),
        &mut out,
    );
    assert!(matches!(h.action, Action::Commit(_)));
    // Rebooted while bound, and again long after the lease ran out.
    for at in [t(60), t(1_000_000)] {
        let h = s.handle(at, &bcast(), &IFACE, &discover(mac).build(), &mut out);
        assert_eq!(offer_of(h, &out).0, addr);
    }
    assert_eq!(s.probe_counters().skipped_returning, 2);
    assert_eq!(s.probe_counters().parked, 1);
}

#[test]
fn an_address_silent_a_moment_ago_is_not_probed_again() {
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let a = [2, 0, 0, 0, 5, 1];
    let h = s.handle(t(0), &bcast(), &IFACE, &discover(a).build(), &mut out);
    let p = probe_of(&h);
    let h = s
        .next_timed_out_probe(ms(t(0), 500), &mut out)
        .expect("a probe is due");
    offer_of(h, &out);
    // The client takes another server's offer; its address is free again.
    let h = s.handle(
        t(1),
        &bcast(),
        &IFACE,
        &select(a, p.addr, RELAY).build(),
        &mut out,
    );
    assert_eq!(h.action, Action::None);
    // Another client asks for that address within the window: no probe.
    let b = [2, 0, 0, 0, 5, 2];
    let ask = discover(b).ip_opt(50, p.addr).build();
    let h = s.handle(t(2), &bcast(), &IFACE, &ask, &mut out);
    assert_eq!(offer_of(h, &out).0, p.addr);
    assert_eq!(s.probe_counters().skipped_recent, 1);
    // B goes too; once the window has passed the address is probed again.
    let h = s.handle(
        t(3),
        &bcast(),
        &IFACE,
        &select(b, p.addr, RELAY).build(),
        &mut out,
    );
    assert_eq!(h.action, Action::None);
    let c = [2, 0, 0, 0, 5, 3];
    let ask = discover(c).ip_opt(50, p.addr).build();
    let h = s.handle(t(6), &bcast(), &IFACE, &ask, &mut out);
    assert_eq!(probe_of(&h).addr, p.addr);
}

#[test]
fn a_retransmission_replaces_the_parked_discover_and_gets_the_offer() {
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let mac = [2, 0, 0, 0, 6, 1];
    let t0 = t(0);
    let h = s.handle(
        t0,
        &bcast(),
        &IFACE,
        &discover(mac).xid(1).build(),
        &mut out,
    );
    let p = probe_of(&h);
    let h = s.handle(
        ms(t0, 300),
        &bcast(),
        &IFACE,
        &discover(mac).xid(2).build(),
        &mut out,
    );
    assert_eq!(
        (h.action, h.event.verdict),
        (Action::None, Verdict::Probing)
    );
    assert_eq!(s.parked_probes(), 1);
    assert_eq!(s.probe_counters().replaced, 1);
    // The probe keeps its deadline; the offer answers the newest xid.
    assert_eq!(s.poll_timeout(), Some(ms(t0, 500)));
    let h = s
        .next_timed_out_probe(ms(t0, 500), &mut out)
        .expect("a probe is due");
    assert_eq!(offer_of(h, &out), (p.addr, 2));
}

#[test]
fn relayed_candidates_are_probed_with_icmp() {
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let relayed = discover([2, 0, 0, 0, 7, 1]).giaddr(RELAY).build();
    let h = s.handle(t(0), &unicast(RELAY, 67), &IFACE, &relayed, &mut out);
    let p = probe_of(&h);
    assert_eq!(p.method, ProbeMethod::Icmp);
    assert!(p.addr.octets().starts_with(&[10, 20]));
    // An ICMP send that failed: offered unprobed, not remembered as silent.
    let h = s.probe_not_sent(t(0), p.token, &mut out);
    assert!(matches!(h.action, Action::Send(_)));
    assert_eq!(s.probe_counters().silent, 0);
}

#[test]
fn a_relay_on_the_ingress_link_gets_arp_probes() {
    // A relay agent on the server's own link (giaddr inside the ingress
    // interface's subnet): the candidates are on-link, so ARP reaches them
    // where an ICMP echo would wait in the kernel's neighbour queue.
    let mut s = ping_server();
    let mut out = vec![0u8; 1500];
    let relay = Ipv4Addr::new(192, 168, 1, 2);
    let relayed = discover([2, 0, 0, 0, 7, 2]).giaddr(relay).build();
    let h = s.handle(t(0), &unicast(relay, 67), &IFACE, &relayed, &mut out);
    let p = probe_of(&h);
    assert_eq!(p.method, ProbeMethod::Arp);
    assert!(p.addr.octets().starts_with(&[192, 168, 1]));
}
