//! A flood of DHCP messages keeps the log bounded: per-message lines stop at
//! the per-shard budget and a summary says what was suppressed.

use std::time::{Duration, Instant};

use bootwave_e2e::{DhcpProbe, Lab, Server, discover, require_root_and_tools, test_mac};

use crate::on_each_backend;

/// DISCOVERs sent.
const FLOOD: u32 = 4_000;
/// Longest the flood may take.
const FLOOD_LIMIT: Duration = Duration::from_secs(5);
/// Per-message lines a shard writes per second at `info`.
const LINES_PER_SECOND: u64 = 100;
/// How long to wait for the suppression summary (its period is 10 s).
const SUMMARY_WAIT: Duration = Duration::from_secs(20);

on_each_backend!(a_discover_flood_writes_a_bounded_log_and_a_summary);
fn a_discover_flood_writes_a_bounded_log_and_a_summary(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let lab = Lab::star(1)?;
    let running = server.start(&lab.server, &lab.spec(None, None))?;
    let client = &lab.clients[0];
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::broadcast(&client.ifname))??;
    // One client retransmitting with a new xid each time: every DISCOVER
    // is answered with an OFFER, so every one would be an `info` line.
    let mac = test_mac(0x51, 1);
    let started = Instant::now();
    let mut sent = 0;
    while sent < FLOOD && started.elapsed() < FLOOD_LIMIT {
        probe.send(&discover(mac, 0x5100_0000 + sent))?;
        sent += 1;
    }
    let flood_secs = started.elapsed().as_secs() + 1;
    let deadline = Instant::now() + SUMMARY_WAIT;
    let summary = loop {
        let log = running.child.stderr();
        if let Some(line) = log.lines().find(|l| l.contains("were suppressed")) {
            break line.to_owned();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{server:?}: no suppression summary after {sent} DISCOVERs\n{}",
            running.child.tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = running.child.stderr();
    let per_message = log
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("runtime::dhcp: dhcp "))
        .count() as u64;
    // One DHCP shard (small pool): one budget. The flood spans at most
    // `flood_secs + 1` one-second windows.
    let bound = LINES_PER_SECOND * (flood_secs + 1);
    assert!(
        per_message <= bound,
        "{server:?}: {per_message} per-message lines for {sent} DISCOVERs in {flood_secs} s (bound {bound})"
    );
    assert!(per_message > 0, "{server:?}: the first lines are written");
    let suppressed: u64 = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("suppressed="))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{server:?}: summary without a count: {summary}"))?;
    assert!(
        suppressed > 0 && suppressed + per_message <= u64::from(sent),
        "{server:?}: suppressed={suppressed}, written={per_message}, sent={sent}: {summary}"
    );
    assert!(summary.contains("offered="), "{server:?}: {summary}");
    eprintln!("{server:?}: {sent} DISCOVERs, {per_message} lines, summary: {summary}");
    Ok(())
}
