//! Real DHCP clients against one server: a reserved MAC gets its fixed
//! address and host name, dhclient gets a lease, RELEASE frees an address,
//! DECLINE takes one out of use.

use std::net::Ipv4Addr;
use std::time::Duration;

use bootwave_e2e::{
    Dhclient, DhcpProbe, HostSpec, Lab, POOL_END, POOL_START, SERVER_ADDR, Server, decline,
    discover, require_root_and_tools, test_mac, udhcpc_lease,
};
use dhcproto::v4::MessageType;

use crate::on_each_backend;

const RESERVED_MAC: [u8; 6] = [0x02, 0x42, 0x00, 0x00, 0x00, 0x07];
const RESERVED_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 5);

fn in_pool(ip: Ipv4Addr) -> bool {
    (u32::from(POOL_START)..=u32::from(POOL_END)).contains(&u32::from(ip))
}

on_each_backend!(reserved_mac_gets_its_fixed_address_and_hostname, dnsmasq);
fn reserved_mac_gets_its_fixed_address_and_hostname(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "busybox", "dnsmasq"]);
    let lab = Lab::star(2)?;
    let mut spec = lab.spec(None, None);
    spec.hosts.push(HostSpec {
        name: "node-7".to_owned(),
        mac: RESERVED_MAC,
        fixed_address: Some(RESERVED_IP),
        hostname: Some("node-7".to_owned()),
    });
    let running = server.start(&lab.server, &spec)?;
    let (known, stranger) = (&lab.clients[0], &lab.clients[1]);
    known.ns.set_mac(&known.ifname, RESERVED_MAC)?;
    let ctx = |e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail());
    let lease = udhcpc_lease(&known.ns, &known.ifname, None).map_err(ctx)?;
    assert_eq!(lease.ip, RESERVED_IP, "{server:?}: {lease:?}");
    assert_eq!(
        lease.hostname.as_deref(),
        Some("node-7"),
        "{server:?}: {lease:?}"
    );
    assert_eq!(lease.server_id, Some(SERVER_ADDR), "{server:?}");
    let other = udhcpc_lease(&stranger.ns, &stranger.ifname, None).map_err(ctx)?;
    assert!(in_pool(other.ip), "{server:?}: stranger got {other:?}");
    assert_eq!(other.hostname, None, "{server:?}: {other:?}");
    Ok(())
}

on_each_backend!(dhclient_obtains_a_lease, dnsmasq);
fn dhclient_obtains_a_lease(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "dhclient", "dnsmasq"]);
    let lab = Lab::star(1)?;
    let running = server.start(&lab.server, &lab.spec(None, None))?;
    let client = &lab.clients[0];
    let mut dhclient = Dhclient::start(&client.ns, &client.ifname)?;
    let lease = dhclient
        .wait_bound(Duration::from_secs(25))
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    assert!(in_pool(lease.ip), "{server:?}: {lease:?}");
    assert_eq!(lease.server_id, Some(SERVER_ADDR), "{server:?}");
    Ok(())
}

on_each_backend!(release_returns_the_only_address_to_the_pool, dnsmasq);
fn release_returns_the_only_address_to_the_pool(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "busybox", "dhclient", "dnsmasq"]);
    let lab = Lab::star(3)?;
    let mut spec = lab.spec(None, None);
    spec.pool = (POOL_START, POOL_START);
    let running = server.start(&lab.server, &spec)?;
    let ctx = |what: &str, e: bootwave_e2e::HarnessError| {
        anyhow::anyhow!("{server:?}: {what}: {e}\n{}", running.child.tail())
    };
    let [a, b, c] = &lab.clients[..] else {
        unreachable!("three clients")
    };
    // A: dhclient takes the address, then `dhclient -r` releases it.
    let mut dhclient = Dhclient::start(&a.ns, &a.ifname)?;
    let first = dhclient
        .wait_bound(Duration::from_secs(25))
        .map_err(|e| ctx("A", e))?;
    assert_eq!(first.ip, POOL_START, "{server:?}");
    let log = dhclient.release(&a.ns)?;
    // B: udhcpc gets it back, and keeps it.
    let second = udhcpc_lease(&b.ns, &b.ifname, None)
        .map_err(|e| ctx(&format!("B after A's RELEASE ({log})"), e))?;
    assert_eq!(second.ip, POOL_START, "{server:?}");
    // C: the pool of one is now really taken.
    let third = udhcpc_lease(&c.ns, &c.ifname, None);
    assert!(
        third.is_err(),
        "{server:?}: a second holder of a one-address pool: {third:?}"
    );
    Ok(())
}

// dnsmasq is no reference here: it frees a declined dynamic address at once.
on_each_backend!(a_declined_address_is_not_offered_again);
fn a_declined_address_is_not_offered_again(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "busybox"]);
    let lab = Lab::star(2)?;
    let mut spec = lab.spec(None, None);
    let second = Ipv4Addr::from(u32::from(POOL_START) + 1);
    spec.pool = (POOL_START, second);
    let running = server.start(&lab.server, &spec)?;
    let (a, b) = (&lab.clients[0], &lab.clients[1]);
    let probe = a.ns.run_inside(|| DhcpProbe::broadcast(&a.ifname))??;
    let limit = Duration::from_secs(3);
    let mac = test_mac(0xdc, 1);
    let ack = probe
        .dora(mac, 0x1000, limit)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no lease\n{}", running.child.tail()))?;
    assert_eq!(ack.kind, MessageType::Ack, "{server:?}: {ack:?}");
    let declined = ack.yiaddr;
    probe.send(&decline(mac, 0x1001, declined, SERVER_ADDR))?;
    std::thread::sleep(Duration::from_millis(300));
    // Another client gets the other address, not the declined one.
    let lease = udhcpc_lease(&b.ns, &b.ifname, None)
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    assert_ne!(
        lease.ip, declined,
        "{server:?}: declined address leased again"
    );
    // A third client finds the pool empty: the declined address stays out.
    let offer = probe.ask(&discover(test_mac(0xdc, 3), 0x1002), limit)?;
    assert!(
        offer.as_ref().is_none_or(|o| o.kind != MessageType::Offer),
        "{server:?}: offered after DECLINE: {offer:?} (declined {declined})"
    );
    Ok(())
}
