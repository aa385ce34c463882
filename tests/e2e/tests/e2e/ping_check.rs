//! Ping check on the wire: on-link candidates are probed with ARP, an
//! address some host holds is never offered, the probes leave nothing in
//! the server's neighbour table, a silent probe holds its offer for the
//! ping timeout and no longer, and a returning client is not probed.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bootwave_e2e::{
    DhcpProbe, Lab, POOL_START, RELAY_ADDR, SERVER_ADDR, Server, discover, request_selecting,
    require_root_and_tools, test_mac,
};
use dhcproto::v4::MessageType;

use crate::on_each_backend;

on_each_backend!(addresses_that_answer_arp_are_not_offered);
fn addresses_that_answer_arp_are_not_offered(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(2)?;
    let addr = |i: u32| Ipv4Addr::from(u32::from(POOL_START) + i);
    let mut spec = lab.spec(None, None);
    spec.pool = (addr(0), addr(2));
    spec.ping_timeout = Some(Duration::from_millis(400));
    // A squatter holds two of the three pool addresses without a lease.
    let (squatter, client) = (&lab.clients[0], &lab.clients[1]);
    squatter
        .ns
        .add_addr(&squatter.ifname, addr(0), lab.prefix())?;
    squatter
        .ns
        .add_addr(&squatter.ifname, addr(1), lab.prefix())?;
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::broadcast(&client.ifname))??;
    let mac = test_mac(0xa7, 1);
    let offer = probe
        .ask(&discover(mac, 0x7001), Duration::from_secs(4))?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no OFFER\n{}", tail()))?;
    assert_eq!(offer.kind, MessageType::Offer, "{server:?}: {offer:?}");
    assert_eq!(
        offer.yiaddr,
        addr(2),
        "{server:?}: offered an address another host answers ARP for\n{}",
        tail()
    );
    // ARP probes create no neighbour entries on the server (ICMP echoes to
    // on-link addresses would leave one per candidate).
    let neighbours = lab.server.ip(&["-4", "neigh", "show"])?;
    for i in 0..3 {
        let probed = addr(i).to_string();
        assert!(
            !neighbours
                .lines()
                .any(|l| l.split_whitespace().next() == Some(probed.as_str())),
            "{server:?}: neighbour entry for probed {probed}:\n{neighbours}"
        );
    }
    // The client takes the address; asking again, it is offered the same
    // one, and the squatted ones stay out of use.
    let server_id = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let ack = probe
        .ask(
            &request_selecting(mac, 0x7002, offer.yiaddr, server_id),
            Duration::from_secs(3),
        )?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no ACK\n{}", tail()))?;
    assert_eq!(ack.kind, MessageType::Ack, "{server:?}: {ack:?}");
    let again = probe
        .ask(&discover(mac, 0x7003), Duration::from_secs(4))?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no second OFFER\n{}", tail()))?;
    assert_eq!(again.yiaddr, addr(2), "{server:?}: {again:?}");
    // A second client finds nothing free: both other addresses answered.
    let other = probe.ask(&discover(test_mac(0xa7, 2), 0x7004), Duration::from_secs(2))?;
    assert!(
        other.as_ref().is_none_or(|o| o.kind != MessageType::Offer),
        "{server:?}: offered a squatted address: {other:?}"
    );
    Ok(())
}

on_each_backend!(relayed_on_link_candidates_wait_their_timeout_only);
/// A relay agent on the server's own link (as perfdhcp is): its clients'
/// candidates are on-link, so they get ARP probes (no neighbour entry),
/// and an unanswered probe releases its offer at the ping timeout, not at
/// some later wake-up of the shard.
fn relayed_on_link_candidates_wait_their_timeout_only(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip"]);
    const TIMEOUT: Duration = Duration::from_millis(300);
    const ROUNDS: u32 = 5;
    let lab = Lab::star(1)?;
    let addr = |i: u32| Ipv4Addr::from(u32::from(POOL_START) + i);
    let mut spec = lab.spec(None, None);
    spec.pool = (addr(0), addr(ROUNDS + 2));
    spec.ping_timeout = Some(TIMEOUT);
    let client = &lab.clients[0];
    client
        .ns
        .add_addr(&client.ifname, RELAY_ADDR, lab.prefix())?;
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::relay(RELAY_ADDR, SERVER_ADDR))??;
    let mut waits = Vec::new();
    let mut offered = Vec::new();
    for i in 0..ROUNDS {
        let started = Instant::now();
        let offer = probe
            .ask(
                &discover(test_mac(0xa8, i), 0x7100 + i),
                Duration::from_secs(3),
            )?
            .ok_or_else(|| anyhow::anyhow!("{server:?}: no OFFER\n{}", tail()))?;
        waits.push(started.elapsed());
        offered.push(offer.yiaddr);
    }
    waits.sort();
    assert!(
        waits[0] >= TIMEOUT - Duration::from_millis(5),
        "{server:?}: an offer came before its probe's timeout: {waits:?}"
    );
    // Each wait is the timeout plus scheduling; a shard that only noticed
    // the deadline at its next unrelated wake-up adds up to 250 ms.
    let median = waits[waits.len() / 2];
    assert!(
        median < TIMEOUT + Duration::from_millis(80),
        "{server:?}: offers wait well past the ping timeout: {waits:?}"
    );
    let neighbours = lab.server.ip(&["-4", "neigh", "show"])?;
    for a in &offered {
        let probed = a.to_string();
        assert!(
            !neighbours
                .lines()
                .any(|l| l.split_whitespace().next() == Some(probed.as_str())),
            "{server:?}: neighbour entry for probed {probed} (ICMP instead of ARP?):\n{neighbours}"
        );
    }
    Ok(())
}
