//! ICMP echo probes inside network namespaces the tests create (see
//! `ops_support` for how a test thread enters one). Needs root.
#![allow(clippy::unwrap_used)]

mod ops_support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bootwave_dataplane::probe::{Prober, SocketKind};
use ops_support::Netns;

/// How long a reply may take; a missing host is given the same time.
const WAIT: Duration = Duration::from_secs(2);

/// Polls `prober` until `want` addresses answered or `wait` passed; returns
/// every address reported.
fn collect(prober: &mut Prober, want: usize, wait: Duration) -> BTreeSet<Ipv4Addr> {
    let deadline = Instant::now() + wait;
    let mut seen = BTreeSet::new();
    while seen.len() < want && Instant::now() < deadline {
        prober.poll_replies(|addr| {
            seen.insert(addr);
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

/// `a` (10.77.0.1) and `b` (10.77.0.2) joined by a veth pair.
fn pair(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    a.ip(&[
        "link",
        "add",
        "pa",
        "type",
        "veth",
        "peer",
        "name",
        "pb",
        "netns",
        b.name(),
    ]);
    a.ip(&["addr", "add", "10.77.0.1/24", "dev", "pa"]);
    b.ip(&["addr", "add", "10.77.0.2/24", "dev", "pb"]);
    a.ip(&["link", "set", "pa", "up"]);
    b.ip(&["link", "set", "pb", "up"]);
    (a, b)
}

fn loopback_answers(kind: SocketKind, ns: &Netns) {
    ns.run(|| {
        let mut prober = Prober::with_kind(kind).unwrap();
        assert_eq!(prober.kind(), kind);
        let hosts = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 7)];
        for (token, host) in hosts.iter().enumerate() {
            prober.send(*host, token as u16).unwrap();
        }
        assert_eq!(collect(&mut prober, 2, WAIT), BTreeSet::from(hosts));
    });
}

#[test]
fn raw_socket_sees_loopback_answer() {
    loopback_answers(SocketKind::Raw, &Netns::new("praw"));
}

#[test]
fn ping_socket_sees_loopback_answer() {
    let ns = Netns::new("pping");
    ns.sysctl("net.ipv4.ping_group_range=0 2147483647");
    loopback_answers(SocketKind::Ping, &ns);
}

#[test]
fn new_prefers_ping_socket_and_falls_back_to_raw() {
    let ns = Netns::new("pnew");
    // A new namespace starts with ping_group_range "1 0": no group admitted.
    assert_eq!(ns.run(|| Prober::new().unwrap().kind()), SocketKind::Raw);
    ns.sysctl("net.ipv4.ping_group_range=0 0");
    assert_eq!(ns.run(|| Prober::new().unwrap().kind()), SocketKind::Ping);
}

/// Sleeps long enough for a loopback reply to be queued on the socket.
fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn raw_socket_ignores_replies_to_another_prober() {
    let ns = Netns::new("pother");
    ns.run(|| {
        let host = Ipv4Addr::LOCALHOST;
        let mut first = Prober::with_kind(SocketKind::Raw).unwrap();
        let mut second = Prober::with_kind(SocketKind::Raw).unwrap();
        first.send(host, 7).unwrap();
        settle();
        // Raw sockets both receive the reply to `first`; `second` awaits the
        // same address and token but sent a request nobody answers.
        ns.sysctl("net.ipv4.icmp_echo_ignore_all=1");
        second.send(host, 7).unwrap();
        settle();
        assert_eq!(second.poll_replies(|a| panic!("{a} reported")), 0);
        assert_eq!(collect(&mut first, 1, WAIT), BTreeSet::from([host]));
    });
}

fn absent_host_stays_silent(tag: &str, ping_sockets: bool) {
    let (a, _b) = pair(tag);
    if ping_sockets {
        a.sysctl("net.ipv4.ping_group_range=0 0");
    }
    a.run(|| {
        let mut prober = Prober::new().unwrap();
        let want = if ping_sockets {
            SocketKind::Ping
        } else {
            SocketKind::Raw
        };
        assert_eq!(prober.kind(), want);
        let present = Ipv4Addr::new(10, 77, 0, 2);
        let absent = Ipv4Addr::new(10, 77, 0, 3);
        prober.send(present, 10).unwrap();
        prober.send(absent, 11).unwrap();
        // The host across the veth answers: the path works…
        let seen = collect(&mut prober, 1, WAIT);
        assert_eq!(seen, BTreeSet::from([present]));
        // …and the address no host holds does not, for as long again.
        let later = collect(&mut prober, 1, WAIT);
        assert!(later.is_empty(), "{later:?} answered");
    });
}

#[test]
fn absent_host_stays_silent_raw() {
    absent_host_stays_silent("pabr", false);
}

#[test]
fn absent_host_stays_silent_ping() {
    absent_host_stays_silent("pabp", true);
}
