//! Ping check on the wire: on-link candidates are probed with ARP, an
//! address some host holds is never offered, the probes leave nothing in
//! the server's neighbour table, and a returning client is not probed.

use std::net::Ipv4Addr;
use std::time::Duration;

use bootwave_e2e::{
    DhcpProbe, Lab, POOL_START, Server, discover, request_selecting, require_root_and_tools,
    test_mac,
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
