//! Whom the DHCP server answers, on the wire: BOOTP clients get a pool
//! address only where the subnet says `dynamic-bootp`, and then for a
//! bounded time; a SELECTING REQUEST for another server releases the held
//! offer; forged `ciaddr` and foreign MACs change no lease; bad `chaddr`
//! is dropped; with `[dhcp] relays` only the listed relays are answered;
//! a restart with another shard count keeps every lease.
//! Every refusal is checked in `bootwave_dhcp_dropped_total`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bootwave_e2e::{
    DhcpProbe, HostSpec, JournalSync, LAB_PREFIX, Lab, POOL_START, RELAY_ADDR, RunningServer,
    SERVER_ADDR, ServeSpec, Server, bootp_request, discover, inform, release, request_init_reboot,
    request_renewing, request_selecting, require_root_and_tools, test_mac,
};
use dhcproto::v4::MessageType;
use dhcproto::{Encodable, Encoder};

use crate::on_each_backend;

/// Where the data plane serves metrics, on the server namespace's loopback.
const METRICS: &str = "127.0.0.1:9167";
/// How long a probe waits for a reply that should come.
const REPLY: Duration = Duration::from_secs(2);
/// How long a probe listens for a reply that must not come.
const SILENCE: Duration = Duration::from_millis(800);
/// Counters are published every 250 ms.
const PUBLISHED: Duration = Duration::from_millis(600);

on_each_backend!(dynamic_bootp_binds_for_its_lease_length_only);
/// With `dynamic-bootp` a BOOTP client gets a pool address in a plain
/// BOOTREPLY (no lease time: BOOTP has none), and the binding ends after
/// `dynamic-bootp-lease-length`: the only address is free for a DHCP
/// client then, and not before.
fn dynamic_bootp_binds_for_its_lease_length_only(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    const LENGTH: Duration = Duration::from_secs(4);
    let lab = Lab::star(1)?;
    let mut spec = metered(lab.spec(None, None));
    spec.pool = (POOL_START, POOL_START);
    spec.subnet_toml = format!(
        "dynamic-bootp = true\ndynamic-bootp-lease-length = {}\n",
        LENGTH.as_secs()
    );
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let probe = lab.broadcast_probe()?;
    let (bootp, dhcp) = (test_mac(0xb0, 1), test_mac(0xb0, 2));
    let sent = Instant::now();
    let reply = probe
        .ask_bootp(&bootp_request(bootp, 0xb001), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no BOOTREPLY\n{}", tail()))?;
    assert_eq!(reply.yiaddr, POOL_START, "{server:?}: {reply:?}");
    assert_eq!(reply.chaddr, bootp, "{server:?}: {reply:?}");
    assert_eq!(
        (reply.dhcp_kind, reply.lease_secs),
        (None, None),
        "{server:?}: a BOOTREPLY carries no DHCP message type or lease time"
    );
    // Bound: the DHCP client finds the pool empty…
    let early = probe.ask(&discover(dhcp, 0xb002), SILENCE)?;
    assert_eq!(
        early,
        None,
        "{server:?}: offered a bound address\n{}",
        tail()
    );
    std::thread::sleep(
        (sent + LENGTH - Duration::from_millis(1500)).saturating_duration_since(Instant::now()),
    );
    let late = probe.ask(&discover(dhcp, 0xb003), Duration::from_millis(400))?;
    assert_eq!(
        late,
        None,
        "{server:?}: the BOOTP binding ended before {LENGTH:?}\n{}",
        tail()
    );
    // …until the binding ends.
    let mut xid = 0xb010;
    let offer = loop {
        xid += 1;
        if let Some(offer) = probe.ask(&discover(dhcp, xid), Duration::from_millis(300))? {
            break offer;
        }
        anyhow::ensure!(
            sent.elapsed() < LENGTH + Duration::from_secs(3),
            "{server:?}: the BOOTP binding outlived {LENGTH:?}\n{}",
            tail()
        );
    };
    let ended = sent.elapsed();
    assert_eq!(
        (offer.kind, offer.yiaddr),
        (MessageType::Offer, POOL_START),
        "{server:?}: {offer:?}"
    );
    assert!(
        ended >= LENGTH - Duration::from_secs(1),
        "{server:?}: the BOOTP binding ended after {ended:?}, before its {LENGTH:?}"
    );
    std::thread::sleep(PUBLISHED);
    let metrics = running.metrics(&lab.server)?;
    assert_eq!(
        metrics.sum("bootwave_dhcp_verdicts_total", &[("verdict", "bootreply")]),
        1,
        "{server:?}"
    );
    println!("{server:?}: dynamic BOOTP binding of {LENGTH:?} freed after {ended:?}");
    Ok(())
}

on_each_backend!(bootp_without_dynamic_bootp_is_ignored_and_counted);
/// Without `dynamic-bootp` (the default) a BOOTP client without a fixed
/// address gets nothing and is counted; a reserved host still gets its
/// fixed address, and DHCP clients the pool.
fn bootp_without_dynamic_bootp_is_ignored_and_counted(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(1)?;
    let mut spec = metered(lab.spec(None, None));
    let (known, unknown) = (test_mac(0xb1, 1), test_mac(0xb1, 2));
    let fixed = Ipv4Addr::new(10, 77, 0, 5);
    spec.hosts.push(HostSpec {
        name: "bootp-host".to_owned(),
        mac: known,
        fixed_address: Some(fixed),
        hostname: None,
    });
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let probe = lab.broadcast_probe()?;
    for xid in [0xb101, 0xb102] {
        let reply = probe.ask_bootp(&bootp_request(unknown, xid), SILENCE)?;
        assert_eq!(
            reply,
            None,
            "{server:?}: dynamic address for BOOTP\n{}",
            tail()
        );
    }
    let reply = probe
        .ask_bootp(&bootp_request(known, 0xb103), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no BOOTREPLY for a host\n{}", tail()))?;
    assert_eq!(
        (reply.yiaddr, reply.dhcp_kind),
        (fixed, None),
        "{server:?}: {reply:?}"
    );
    let offer = probe
        .ask(&discover(unknown, 0xb104), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no OFFER\n{}", tail()))?;
    assert_eq!(offer.kind, MessageType::Offer, "{server:?}: {offer:?}");
    std::thread::sleep(PUBLISHED);
    let metrics = running.metrics(&lab.server)?;
    assert_eq!(metrics.dhcp_dropped("BootpNotDynamic"), 2, "{server:?}");
    assert_eq!(
        metrics.sum("bootwave_dhcp_verdicts_total", &[("verdict", "bootreply")]),
        1,
        "{server:?}"
    );
    Ok(())
}

on_each_backend!(selecting_another_server_releases_the_held_offer);
/// A client that takes another server's offer (REQUEST with that server's
/// identifier) gets no reply, and the address offered to it is free for
/// the next client at once, not after the offer hold; a SELECTING REQUEST
/// naming this server for an address it did not offer that MAC is NAKed.
fn selecting_another_server_releases_the_held_offer(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(1)?;
    let mut spec = metered(lab.spec(None, None));
    spec.pool = (POOL_START, POOL_START);
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let probe = lab.broadcast_probe()?;
    let (first, second, third) = (test_mac(0xb2, 1), test_mac(0xb2, 2), test_mac(0xb2, 3));
    let offer = probe
        .ask(&discover(first, 0xb201), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no OFFER\n{}", tail()))?;
    assert_eq!(offer.yiaddr, POOL_START, "{server:?}: {offer:?}");
    // Held for the first client (30 s by default).
    let held = probe.ask(&discover(second, 0xb202), SILENCE)?;
    assert_eq!(
        held,
        None,
        "{server:?}: a held offer given away\n{}",
        tail()
    );
    let elsewhere = Ipv4Addr::new(10, 77, 0, 99);
    let answer = probe.ask(
        &request_selecting(first, 0xb201, offer.yiaddr, elsewhere),
        SILENCE,
    )?;
    assert_eq!(
        answer, None,
        "{server:?}: answered a REQUEST for another server"
    );
    let freed = probe
        .ask(&discover(second, 0xb203), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: the offer was not released\n{}", tail()))?;
    assert_eq!(
        (freed.kind, freed.yiaddr),
        (MessageType::Offer, POOL_START),
        "{server:?}: {freed:?}"
    );
    // A third MAC asks for the address offered to the second.
    let id = freed.server_id.unwrap_or(SERVER_ADDR);
    let nak = probe
        .ask(&request_selecting(third, 0xb204, POOL_START, id), REPLY)?
        .ok_or_else(|| {
            anyhow::anyhow!("{server:?}: no answer to a foreign SELECTING\n{}", tail())
        })?;
    assert_eq!(nak.kind, MessageType::Nak, "{server:?}: {nak:?}");
    let ack = probe
        .ask(&request_selecting(second, 0xb205, POOL_START, id), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no ACK\n{}", tail()))?;
    assert_eq!(
        (ack.kind, ack.yiaddr),
        (MessageType::Ack, POOL_START),
        "{server:?}: {ack:?}"
    );
    std::thread::sleep(PUBLISHED);
    let metrics = running.metrics(&lab.server)?;
    assert_eq!(metrics.dhcp_dropped("OtherServer"), 1, "{server:?}");
    Ok(())
}

on_each_backend!(forged_ciaddr_and_foreign_macs_change_no_lease);
/// RELEASEs and REQUESTs for another client's address, from a MAC that
/// does not hold it or from a source address that is not the `ciaddr`,
/// free nothing and bind nothing; each is refused and counted.
fn forged_ciaddr_and_foreign_macs_change_no_lease(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(1)?;
    let mut spec = metered(lab.spec(None, None));
    let second = Ipv4Addr::from(u32::from(POOL_START) + 1);
    spec.pool = (POOL_START, second);
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    // Both probes live in the client namespace, which holds RELAY_ADDR:
    // broadcasts from it leave with that source address.
    let relay = lab.relay_probe()?;
    let local = lab.broadcast_probe()?;
    let (victim, other, attacker) = (test_mac(0xb3, 1), test_mac(0xb3, 2), test_mac(0xb3, 3));
    let bind = |mac, xid| -> anyhow::Result<Ipv4Addr> {
        match relay.dora(mac, xid, REPLY)? {
            Some(a) if a.kind == MessageType::Ack => Ok(a.yiaddr),
            other => anyhow::bail!("{server:?}: no lease: {other:?}\n{}", tail()),
        }
    };
    let (held, held_other) = (bind(victim, 0xb301)?, bind(other, 0xb302)?);
    let silent = |probe: &DhcpProbe, msg, what: &str| -> anyhow::Result<()> {
        let reply = probe.ask(&msg, SILENCE)?;
        anyhow::ensure!(reply.is_none(), "{server:?}: {what}: {reply:?}\n{}", tail());
        Ok(())
    };
    let nak = |probe: &DhcpProbe, msg, what: &str| -> anyhow::Result<()> {
        let reply = probe.ask(&msg, REPLY)?.map(|r| r.kind);
        anyhow::ensure!(
            reply == Some(MessageType::Nak),
            "{server:?}: {what}: {reply:?}\n{}",
            tail()
        );
        Ok(())
    };
    // RELEASE of the victim's address by another MAC (relayed and local)
    // and by the victim of an address it does not hold: NotHeld.
    silent(
        &relay,
        release(attacker, 0xb310, held, SERVER_ADDR),
        "release by another MAC",
    )?;
    silent(
        &local,
        release(attacker, 0xb311, held, SERVER_ADDR),
        "local release by another MAC",
    )?;
    silent(
        &relay,
        release(victim, 0xb312, held_other, SERVER_ADDR),
        "release of another's address",
    )?;
    // REQUEST/INFORM with the victim's address as `ciaddr` from a host
    // that is not at that address: BadCiaddr.
    silent(
        &local,
        request_renewing(attacker, 0xb313, held),
        "forged ciaddr REQUEST",
    )?;
    silent(
        &local,
        request_renewing(victim, 0xb314, held),
        "forged ciaddr REQUEST with the owner's MAC",
    )?;
    silent(
        &local,
        inform(attacker, 0xb315, held),
        "forged ciaddr INFORM",
    )?;
    // Relayed (ciaddr trusted as the relay's) or INIT-REBOOT by another
    // MAC: refused with a NAK, nothing bound.
    nak(
        &relay,
        request_renewing(attacker, 0xb316, held),
        "renewal of another's lease",
    )?;
    nak(
        &relay,
        request_init_reboot(attacker, 0xb317, held),
        "INIT-REBOOT into another's lease",
    )?;
    // Nothing changed: both clients keep their addresses and the pool
    // has nothing for the attacker.
    for (mac, ip, xid) in [(victim, held, 0xb320), (other, held_other, 0xb321)] {
        let ack = relay.ask(&request_renewing(mac, xid, ip), REPLY)?;
        assert_eq!(
            ack.map(|a| (a.kind, a.yiaddr)),
            Some((MessageType::Ack, ip)),
            "{server:?}: a lease changed\n{}",
            tail()
        );
    }
    silent(
        &relay,
        discover(attacker, 0xb322),
        "an address freed for the attacker",
    )?;
    std::thread::sleep(PUBLISHED);
    let metrics = running.metrics(&lab.server)?;
    assert_eq!(metrics.dhcp_dropped("NotHeld"), 3, "{server:?}");
    assert_eq!(metrics.dhcp_dropped("BadCiaddr"), 3, "{server:?}");
    assert_eq!(
        metrics.sum("bootwave_dhcp_verdicts_total", &[("verdict", "nacked")]),
        2,
        "{server:?}"
    );
    assert!(metrics.dhcp_dropped("NoAddress") >= 1, "{server:?}");
    Ok(())
}

on_each_backend!(only_trusted_relays_are_answered);
/// With `[dhcp] relays` naming one relay, its relayed exchange is served;
/// a relay that is not listed, and a datagram from another source that
/// names the listed relay as its `giaddr`, get nothing and are counted;
/// the listed relay is still served after them.
fn only_trusted_relays_are_answered(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(1)?;
    let mut spec = metered(lab.spec(None, None));
    spec.dhcp_toml = format!("relays = [\"{RELAY_ADDR}/32\"]");
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let trusted = lab.relay_probe()?;
    let client = &lab.clients[0];
    let other_addr = Ipv4Addr::from(u32::from(RELAY_ADDR) + 1);
    client.ns.add_addr(&client.ifname, other_addr, LAB_PREFIX)?;
    let other = client
        .ns
        .run_inside(|| DhcpProbe::relay(other_addr, SERVER_ADDR))??;
    let ack = trusted.dora(test_mac(0xb5, 1), 0xb501, REPLY)?;
    assert_eq!(
        ack.map(|a| a.kind),
        Some(MessageType::Ack),
        "{server:?}: the listed relay got no lease\n{}",
        tail()
    );
    let reply = other.ask(&discover(test_mac(0xb5, 2), 0xb502), SILENCE)?;
    assert!(
        reply.is_none(),
        "{server:?}: an unlisted relay was answered: {reply:?}\n{}",
        tail()
    );
    // From the unlisted source, naming the listed relay: any answer would
    // go to the listed relay's port, where `trusted` listens.
    let mut forged = discover(test_mac(0xb5, 3), 0xb503);
    forged.set_giaddr(RELAY_ADDR).set_hops(1);
    let mut bytes = Vec::new();
    forged.encode(&mut Encoder::new(&mut bytes))?;
    other.send_raw(&bytes)?;
    let reply = trusted.recv(SILENCE)?;
    assert!(
        reply.is_none(),
        "{server:?}: a forged giaddr was answered: {reply:?}\n{}",
        tail()
    );
    let ack = trusted.dora(test_mac(0xb5, 4), 0xb504, REPLY)?;
    assert_eq!(
        ack.map(|a| a.kind),
        Some(MessageType::Ack),
        "{server:?}: the listed relay was refused after the others\n{}",
        tail()
    );
    std::thread::sleep(PUBLISHED);
    let metrics = running.metrics(&lab.server)?;
    assert_eq!(metrics.dhcp_dropped("UntrustedRelay"), 2, "{server:?}");
    Ok(())
}

on_each_backend!(bad_chaddr_is_dropped_and_counted);
/// DISCOVERs with `hlen` above 16 or a zero, broadcast or multicast
/// `chaddr` get no reply and are counted; the server goes on serving.
fn bad_chaddr_is_dropped_and_counted(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(1)?;
    let spec = metered(lab.spec(None, None));
    let running = server.start(&lab.server, &spec)?;
    let tail = || running.child.tail();
    let probe = lab.broadcast_probe()?;
    let bad_macs = [[0; 6], [0xff; 6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]];
    for (i, mac) in (0u32..).zip(bad_macs) {
        let reply = probe.ask(&discover(mac, 0xb400 + i), SILENCE)?;
        assert_eq!(
            reply,
            None,
            "{server:?}: answered chaddr {mac:02x?}\n{}",
            tail()
        );
    }
    let mut long = Vec::new();
    discover(test_mac(0xb4, 1), 0xb410).encode(&mut Encoder::new(&mut long))?;
    long[2] = 17;
    probe.send_raw(&long)?;
    let reply = probe.recv(SILENCE)?;
    assert_eq!(reply, None, "{server:?}: answered hlen 17\n{}", tail());
    let offer = probe
        .ask(&discover(test_mac(0xb4, 2), 0xb411), REPLY)?
        .ok_or_else(|| anyhow::anyhow!("{server:?}: no OFFER after bad chaddr\n{}", tail()))?;
    assert_eq!(offer.kind, MessageType::Offer, "{server:?}: {offer:?}");
    std::thread::sleep(PUBLISHED);
    let metrics = running.metrics(&lab.server)?;
    assert_eq!(metrics.dhcp_dropped("BadChaddr"), 3, "{server:?}");
    assert_eq!(metrics.dhcp_dropped("BadHlen"), 1, "{server:?}");
    Ok(())
}

/// Clients bound before the shard count changes.
const CLIENTS: u32 = 400;

on_each_backend!(a_shard_count_change_keeps_every_lease);
/// Leases bound by one DHCP shard are all confirmed, at the same
/// addresses, after a restart with two (INIT-REBOOT and renewals, each
/// now steered to its new owner), and again after going back to one; a
/// returning client's DISCOVER is offered its address, and new clients
/// never get a bound one.
fn a_shard_count_change_keeps_every_lease(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let state = tempfile::tempdir()?;
    let lab = Lab::star_wide(1)?;
    let mut spec = lab.spec(None, None);
    spec.state_dir = Some(state.path().join("journal"));
    spec.journal_sync = JournalSync::Never;
    spec.shards = Some(1);
    let probe = lab.relay_probe()?;
    let running = server.start(&lab.server, &spec)?;
    let leases = bind_all(&probe, CLIENTS, &running)?;
    let bound: BTreeSet<Ipv4Addr> = leases.values().copied().collect();
    assert_eq!(
        bound.len(),
        leases.len(),
        "{server:?}: an address bound twice"
    );
    drop(running);
    for (round, shards) in [(1u32, 2usize), (2, 1)] {
        spec.shards = Some(shards);
        let running = server.start(&lab.server, &spec)?;
        let context = |what: String| {
            format!(
                "{server:?}, {shards} shards: {what}\n{}",
                running.child.tail()
            )
        };
        let screen = running.child.stdout() + &running.child.stderr();
        assert!(
            screen.contains(&format!("({shards} answering DHCP)")),
            "{}",
            context("the shard count did not change".to_owned())
        );
        let mut lost = Vec::new();
        for (i, (&mac, &ip)) in (0u32..).zip(&leases) {
            let xid = round << 24 | i;
            let msg = if i % 2 == 0 {
                request_init_reboot(mac, xid, ip)
            } else {
                request_renewing(mac, xid, ip)
            };
            match probe.ask_twice(&msg, Duration::from_secs(1))? {
                Some(r) if r.kind == MessageType::Ack && r.yiaddr == ip => {}
                other => lost.push((mac, ip, other.map(|r| (r.kind, r.yiaddr)))),
            }
        }
        assert!(
            lost.is_empty(),
            "{}",
            context(format!(
                "{} of {} leases not confirmed, e.g. {:?}",
                lost.len(),
                leases.len(),
                &lost[..lost.len().min(5)]
            ))
        );
        for (i, (&mac, &ip)) in (0u32..).zip(&leases).step_by(20) {
            let offer = probe.ask_twice(
                &discover(mac, round << 24 | 1 << 20 | i),
                Duration::from_secs(1),
            )?;
            assert_eq!(
                offer.map(|o| (o.kind, o.yiaddr)),
                Some((MessageType::Offer, ip)),
                "{}",
                context(format!("DISCOVER of returning client {mac:02x?}"))
            );
        }
        for n in 0..50 {
            let mac = test_mac(0xd2, round << 8 | n);
            if let Some(offer) = probe.ask_twice(
                &discover(mac, round << 24 | 2 << 20 | n),
                Duration::from_secs(1),
            )? {
                assert!(
                    !bound.contains(&offer.yiaddr),
                    "{}",
                    context(format!(
                        "{} offered to a new client while bound",
                        offer.yiaddr
                    ))
                );
            }
        }
        println!(
            "{server:?}: {} leases confirmed after a restart with {shards} DHCP shards",
            leases.len()
        );
    }
    Ok(())
}

/// DORA for `n` relayed clients in batches; every one must end bound.
fn bind_all(
    probe: &DhcpProbe,
    n: u32,
    running: &RunningServer,
) -> anyhow::Result<BTreeMap<[u8; 6], Ipv4Addr>> {
    let mac_of = |i: u32| test_mac(0xd1, i);
    let mut leases = BTreeMap::new();
    for first in (0..n).step_by(20) {
        let batch: Vec<(u32, [u8; 6])> = (first..(first + 20).min(n))
            .map(|i| (i, mac_of(i)))
            .collect();
        for (xid, ack) in probe.dora_batch(&batch, Duration::from_millis(1500))? {
            leases.insert(mac_of(xid), ack.yiaddr);
        }
    }
    // A datagram lost on a loaded machine: those clients try once more.
    for i in 0..n {
        if leases.contains_key(&mac_of(i)) {
            continue;
        }
        match probe.dora(mac_of(i), 0x0100_0000 | i, REPLY)? {
            Some(a) if a.kind == MessageType::Ack => {
                leases.insert(mac_of(i), a.yiaddr);
            }
            other => anyhow::bail!(
                "client {i} got no lease: {other:?}\n{}",
                running.child.tail()
            ),
        }
    }
    Ok(leases)
}

/// `spec` served with metrics on [`METRICS`].
fn metered(mut spec: ServeSpec) -> ServeSpec {
    spec.metrics = Some(METRICS.parse::<SocketAddr>().expect("a socket address"));
    spec
}
