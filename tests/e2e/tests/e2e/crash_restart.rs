//! SIGKILL of the data plane in the middle of handing out a thousand leases,
//! then a restart on the same journal: every lease a client saw
//! acknowledged is still bound to its MAC, and no address is bound twice.
//!
//! perfdhcp cannot report which (MAC, address) pairs it was acknowledged,
//! so a relay-style [`DhcpProbe`] drives the exchanges and records each ACK.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bootwave_e2e::{
    DhcpProbe, Lab, RELAY_ADDR, SERVER_ADDR, Server, WIDE_POOL, discover, request_init_reboot,
    require_root_and_tools, test_mac,
};
use dhcproto::v4::MessageType;

use crate::on_each_backend;

const LEASES: u32 = 1000;
const KILL_AFTER: usize = 500;
const BATCH: u32 = 20;
const REPLY_WAIT: Duration = Duration::from_millis(1500);

on_each_backend!(acknowledged_leases_survive_sigkill_and_restart);
fn acknowledged_leases_survive_sigkill_and_restart(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let state = tempfile::tempdir()?;
    let lab = Lab::star_wide(1)?;
    let mut spec = lab.spec(None, None);
    spec.state_dir = Some(state.path().join("journal"));
    let mut running = server.start(&lab.server, &spec)?;
    let client = &lab.clients[0];
    client
        .ns
        .add_addr(&client.ifname, RELAY_ADDR, lab.prefix())?;
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::relay(RELAY_ADDR, SERVER_ADDR))??;

    let acked = Mutex::new(BTreeMap::<[u8; 6], Ipv4Addr>::new());
    let count = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let killed_at = std::thread::scope(|scope| -> anyhow::Result<usize> {
        let load = scope.spawn(|| relay_leases(&probe, &acked, &count, &stop));
        let deadline = Instant::now() + Duration::from_secs(40);
        while count.load(Ordering::SeqCst) < KILL_AFTER && Instant::now() < deadline {
            if load.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let at = count.load(Ordering::SeqCst);
        let status = running.kill9();
        stop.store(true, Ordering::SeqCst);
        let loaded = load.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        loaded?;
        println!("{server:?}: SIGKILL after {at} ACKs ({status:?})");
        Ok(at)
    })?;
    let acked = acked.into_inner().unwrap_or_else(|p| p.into_inner());
    let tail = running.child.tail();
    assert!(
        killed_at >= KILL_AFTER / 2 && acked.len() < LEASES as usize,
        "{server:?}: the kill must land mid-run: {killed_at} ACKs before it, {} in all\n{tail}",
        acked.len()
    );
    let distinct: BTreeSet<_> = acked.values().collect();
    assert_eq!(
        distinct.len(),
        acked.len(),
        "{server:?}: an address acknowledged twice"
    );
    drop(running);

    let running = server.start(&lab.server, &spec)?;
    let context = |what: String| format!("{server:?}: {what}\n{}", running.child.tail());
    // INIT-REBOOT: each client asks for the address it was acknowledged.
    let mut lost = Vec::new();
    for (i, (&mac, &ip)) in acked.iter().enumerate() {
        let xid = 0x4000_0000 | i as u32;
        let reply = probe.ask_twice(&request_init_reboot(mac, xid, ip), Duration::from_secs(1))?;
        match reply {
            Some(r) if r.kind == MessageType::Ack && r.yiaddr == ip => {}
            other => lost.push((mac, ip, other.map(|r| (r.kind, r.yiaddr)))),
        }
    }
    assert!(
        lost.is_empty(),
        "{}",
        context(format!(
            "{} of {} acknowledged leases not confirmed after restart, e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)]
        ))
    );
    // DISCOVER from a sample of the same clients offers the same address.
    for (i, (&mac, &ip)) in acked.iter().step_by(25).enumerate() {
        let offer = probe.ask_twice(
            &discover(mac, 0x5000_0000 | i as u32),
            Duration::from_secs(1),
        )?;
        let offered = offer.as_ref().map(|o| (o.kind, o.yiaddr));
        assert_eq!(
            offered,
            Some((MessageType::Offer, ip)),
            "{}",
            context(format!("DISCOVER of a bound client {mac:02x?}"))
        );
    }
    // New clients never get an address that is bound to someone else.
    for n in 0..100 {
        let mac = test_mac(0xee, n);
        if let Some(offer) =
            probe.ask_twice(&discover(mac, 0x6000_0000 | n), Duration::from_secs(1))?
        {
            assert!(
                !distinct.contains(&offer.yiaddr),
                "{}",
                context(format!(
                    "{} offered to a new client while bound",
                    offer.yiaddr
                ))
            );
        }
    }
    Ok(())
}

/// Runs DORA for `LEASES` MACs in batches until done or `stop`, recording
/// every ACK.
fn relay_leases(
    probe: &DhcpProbe,
    acked: &Mutex<BTreeMap<[u8; 6], Ipv4Addr>>,
    count: &AtomicUsize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mac_of = |xid: u32| test_mac(0xc5, xid & 0xffff);
    for first in (0..LEASES).step_by(BATCH as usize) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let batch: Vec<(u32, [u8; 6])> = (first..(first + BATCH).min(LEASES))
            .map(|i| (i, mac_of(i)))
            .collect();
        for (xid, ack) in probe.dora_batch(&batch, REPLY_WAIT)? {
            let ip = ack.yiaddr;
            assert!(
                (u32::from(WIDE_POOL.0)..=u32::from(WIDE_POOL.1)).contains(&u32::from(ip)),
                "ACK outside the pool: {ack:?}"
            );
            let previous = acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(mac_of(xid), ip);
            assert_eq!(previous, None, "two ACKs for one client");
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
    Ok(())
}
