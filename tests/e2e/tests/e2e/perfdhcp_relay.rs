//! perfdhcp, acting as a relay agent, completes every DORA exchange.

use std::time::Duration;

use bootwave_e2e::{Lab, PerfdhcpRun, RELAY_ADDR, SERVER_ADDR, require_root_and_tools, run_relay};

use crate::SERVERS;

#[test]
fn perfdhcp_relay_run_completes_all_exchanges() -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "dnsmasq", "perfdhcp"]);
    let run = PerfdhcpRun {
        clients: 100,
        rate: 100,
        exchanges: 200,
    };
    for &server in SERVERS {
        let lab = Lab::star(1)?;
        let running = server.start(&lab.server, &lab.spec(None, None))?;
        let client = &lab.clients[0];
        client.ns.add_addr(&client.ifname, RELAY_ADDR, 24)?;
        let (report, status) = run_relay(
            &client.ns,
            RELAY_ADDR,
            SERVER_ADDR,
            run,
            Duration::from_secs(30),
        )?;
        let context = format!("{server:?}: {report:?}\n{}", running.child.tail());
        assert_eq!(
            report.discover_offer.sent,
            u64::from(run.exchanges),
            "{context}"
        );
        assert_eq!(
            report.discover_offer.received,
            u64::from(run.exchanges),
            "{context}"
        );
        assert_eq!(
            report.request_ack.sent,
            u64::from(run.exchanges),
            "{context}"
        );
        assert_eq!(report.completed(), u64::from(run.exchanges), "{context}");
        assert_eq!(
            report.discover_offer.orphans + report.request_ack.orphans,
            0,
            "{context}"
        );
        assert!(report.discover_offer.max_delay_ms < 1000.0, "{context}");
        assert!(status.success(), "perfdhcp exit {status}: {context}");
    }
    Ok(())
}
