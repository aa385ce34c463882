//! Running ISC perfdhcp in relay mode and reading its final report.
//!
//! Given a unicast server address and `-l <local address>`, perfdhcp (DHCPv4)
//! behaves as a relay agent: it binds UDP port 67 on the local address,
//! sends DISCOVER and REQUEST from `<local>:67` to `<server>:67` with
//! `giaddr = <local>`, `hops = 1` and the broadcast flag clear, and expects
//! the replies unicast to `<giaddr>:67`. The server must therefore choose
//! the pool by `giaddr` and answer a relay; no broadcast is involved.

use std::net::Ipv4Addr;
use std::process::ExitStatus;
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use crate::tools::find_tool;

/// Counters and delays for one half of the DORA exchange.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExchangeStats {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests that got no reply within the drop time.
    pub drops: u64,
    /// Replies matching no outstanding request.
    pub orphans: u64,
    /// Smallest request→reply delay, milliseconds.
    pub min_delay_ms: f64,
    /// Mean delay, milliseconds.
    pub avg_delay_ms: f64,
    /// Largest delay, milliseconds.
    pub max_delay_ms: f64,
    /// Standard deviation of the delay, milliseconds.
    pub std_dev_ms: f64,
}

/// perfdhcp's final report for a DHCPv4 DORA run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PerfdhcpReport {
    /// Achieved 4-way exchanges per second.
    pub rate: f64,
    /// DISCOVER → OFFER.
    pub discover_offer: ExchangeStats,
    /// REQUEST → ACK.
    pub request_ack: ExchangeStats,
}

/// Limits of one bounded perfdhcp run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfdhcpRun {
    /// Distinct simulated clients (`-R`).
    pub clients: u32,
    /// Exchanges started per second (`-r`).
    pub rate: u32,
    /// Total exchanges (`-n`).
    pub exchanges: u32,
}

impl PerfdhcpReport {
    /// Parses the final report perfdhcp prints on stdout.
    pub fn parse(text: &str) -> Result<Self> {
        let rate = text
            .lines()
            .find_map(|line| line.strip_prefix("Rate: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| parse_error("the `Rate:` line", text))?;
        Ok(Self {
            rate,
            discover_offer: section(text, "DISCOVER-OFFER")?,
            request_ack: section(text, "REQUEST-ACK")?,
        })
    }

    /// DORA exchanges completed (ACKs received).
    pub fn completed(&self) -> u64 {
        self.request_ack.received
    }

    /// Exchanges started that did not complete, over exchanges started.
    pub fn drop_ratio(&self) -> f64 {
        let started = self.discover_offer.sent;
        if started == 0 {
            return 0.0;
        }
        (started.saturating_sub(self.completed())) as f64 / started as f64
    }
}

/// Runs perfdhcp inside `ns` as a relay at `relay` (which must be an address
/// of `ns`) against `server`, bounded by `run` and by `limit`; returns the
/// parsed report and perfdhcp's exit status (3 when exchanges were lost).
pub fn run_relay(
    ns: &Netns,
    relay: Ipv4Addr,
    server: Ipv4Addr,
    run: PerfdhcpRun,
    limit: Duration,
) -> Result<(PerfdhcpReport, ExitStatus)> {
    let perfdhcp = find_tool("perfdhcp").unwrap_or_else(|| "perfdhcp".into());
    let args = [
        "-4".to_owned(),
        format!("-R{}", run.clients),
        format!("-r{}", run.rate),
        format!("-n{}", run.exchanges),
        // Wait one second after the last request for late replies.
        "-W1000000".to_owned(),
        format!("-l{relay}"),
        server.to_string(),
    ];
    let mut child = ns.spawn(perfdhcp, &args)?;
    let status = child.wait_timeout(limit)?;
    let report = PerfdhcpReport::parse(&child.stdout()).map_err(|_| HarnessError::Parse {
        what: format!("perfdhcp ({status}) printed no complete report"),
        text: child.tail(),
    })?;
    Ok((report, status))
}

fn section(text: &str, name: &str) -> Result<ExchangeStats> {
    let header = format!("***Statistics for: {name}***");
    let body = text
        .split_once(&header)
        .map(|(_, rest)| rest.split("***").next().unwrap_or(rest))
        .ok_or_else(|| parse_error(&header, text))?;
    let field = |key: &str| -> Result<f64> {
        body.lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| parse_error(&format!("`{key}` in {name}"), text))
    };
    let count = |key: &str| field(key).map(|v| v as u64);
    Ok(ExchangeStats {
        sent: count("sent packets")?,
        received: count("received packets")?,
        drops: count("drops")?,
        orphans: count("orphans")?,
        min_delay_ms: field("min delay")?,
        avg_delay_ms: field("avg delay")?,
        max_delay_ms: field("max delay")?,
        std_dev_ms: field("std deviation")?,
    })
}

fn parse_error(what: &str, text: &str) -> HarnessError {
    HarnessError::Parse {
        what: format!("perfdhcp report has no {what}"),
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Output of perfdhcp 2.2.0 (Debian 12) against dnsmasq 2.90.
    const REPORT: &str = "\
Running: perfdhcp -4 -R 100 -n 200 -r 100 -l 10.77.0.2 10.77.0.1
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 99.4195 4-way exchanges/second, expected rate: 100

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 200
received packets: 199
drops: 1
drops ratio: 0.5 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.168 ms
avg delay: 0.634 ms
max delay: 4.189 ms
std deviation: 0.962 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 199
received packets: 198
drops: 1
drops ratio: 0.000 %
orphans: 2
rejected leases: 0
non unique addresses: 0

min delay: 0.094 ms
avg delay: 0.309 ms
max delay: 3.892 ms
std deviation: 0.668 ms
collected packets: 0
";

    #[test]
    fn parses_both_sections_and_rate() {
        let report = PerfdhcpReport::parse(REPORT).expect("parses");
        assert!((report.rate - 99.4195).abs() < 1e-9);
        assert_eq!(report.discover_offer.sent, 200);
        assert_eq!(report.discover_offer.received, 199);
        assert_eq!(report.discover_offer.drops, 1);
        assert!((report.discover_offer.max_delay_ms - 4.189).abs() < 1e-9);
        assert_eq!(report.request_ack.sent, 199);
        assert_eq!(report.request_ack.orphans, 2);
        assert!((report.request_ack.avg_delay_ms - 0.309).abs() < 1e-9);
        assert_eq!(report.completed(), 198);
        assert!((report.drop_ratio() - 0.01).abs() < 1e-9);
    }

    #[test]
    fn missing_section_is_an_error() {
        let truncated = REPORT
            .split("***Statistics for: REQUEST-ACK***")
            .next()
            .unwrap_or("");
        let err = PerfdhcpReport::parse(truncated).expect_err("no REQUEST-ACK");
        assert!(err.to_string().contains("REQUEST-ACK"), "{err}");
    }
}
