//! perfdhcp, acting as a relay agent, completes every DORA exchange.

use std::time::Duration;

use bootwave_e2e::{
    Lab, PerfdhcpRun, RELAY_ADDR, SERVER_ADDR, Server, require_root_and_tools, run_relay,
};

use crate::{SERVERS, on_each_backend};

#[test]
fn perfdhcp_relay_run_completes_all_exchanges() -> anyhow::Result<()> {
    for &server in SERVERS {
        relay_run(
            server,
            false,
            PerfdhcpRun {
                clients: 100,
                rate: 100,
                exchanges: 200,
            },
        )?;
    }
    Ok(())
}

// dnsmasq is no reference here: it offers one free address to several
// concurrent clients and NAKs all but the first REQUEST (≈ 1/3 lost).
on_each_backend!(perfdhcp_serves_a_thousand_clients_without_drops);
fn perfdhcp_serves_a_thousand_clients_without_drops(server: Server) -> anyhow::Result<()> {
    relay_run(
        server,
        true,
        PerfdhcpRun {
            clients: 1000,
            rate: 500,
            exchanges: 1000,
        },
    )
}

/// One bounded perfdhcp run; `wide` uses the /16 lab with 2048 addresses.
fn relay_run(server: Server, wide: bool, run: PerfdhcpRun) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "dnsmasq", "perfdhcp"]);
    let lab = if wide {
        Lab::star_wide(1)?
    } else {
        Lab::star(1)?
    };
    let running = server.start(&lab.server, &lab.spec(None, None))?;
    let client = &lab.clients[0];
    client
        .ns
        .add_addr(&client.ifname, RELAY_ADDR, lab.prefix())?;
    let (report, status) = run_relay(
        &client.ns,
        RELAY_ADDR,
        SERVER_ADDR,
        run,
        Duration::from_secs(40),
    )?;
    let context = format!("{server:?}: {report:?}\n{}", running.child.tail());
    // perfdhcp may start one exchange more than asked when it falls behind
    // its rate (1,001 of 1,000): every exchange it started must complete.
    let n = u64::from(run.exchanges);
    let sent = report.discover_offer.sent;
    assert!((n..=n + 1).contains(&sent), "{context}");
    assert_eq!(report.discover_offer.received, sent, "{context}");
    assert_eq!(report.request_ack.sent, sent, "{context}");
    assert_eq!(report.completed(), sent, "{context}");
    assert_eq!(
        report.discover_offer.drops + report.request_ack.drops,
        0,
        "{context}"
    );
    assert_eq!(
        report.discover_offer.orphans + report.request_ack.orphans,
        0,
        "{context}"
    );
    assert!(report.discover_offer.max_delay_ms < 1000.0, "{context}");
    assert!(status.success(), "perfdhcp exit {status}: {context}");
    Ok(())
}
