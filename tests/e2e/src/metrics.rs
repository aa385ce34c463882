//! [`Metrics`]: the data plane's Prometheus text, scraped over HTTP inside
//! the server's namespace (`--metrics` on its loopback).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::netns::Netns;

/// How long a scrape may take.
const SCRAPE_LIMIT: Duration = Duration::from_secs(5);

/// One scrape of the exposition text.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The response body (and head).
    pub text: String,
}

impl Metrics {
    /// The sum over every sample of `name` (all shards) whose labels
    /// include each `key="value"` of `labels`; 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.text
            .lines()
            .filter_map(|line| sample(line, name))
            .filter(|(set, _)| {
                labels
                    .iter()
                    .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// `bootwave_dhcp_dropped_total` for `reason` (a `DropReason` name),
    /// over all shards.
    pub fn dhcp_dropped(&self, reason: &str) -> u64 {
        self.sum("bootwave_dhcp_dropped_total", &[("reason", reason)])
    }
}

/// `(labels, value)` of a sample line of metric `name`.
fn sample<'l>(line: &'l str, name: &str) -> Option<(&'l str, u64)> {
    let rest = line.strip_prefix(name)?;
    let (labels, value) = match rest.strip_prefix('{') {
        Some(rest) => rest.split_once("} ")?,
        None => ("", rest.strip_prefix(' ')?),
    };
    Some((labels, value.trim().parse::<f64>().ok()? as u64))
}

/// Scrapes `http://addr/metrics` from inside `ns`.
pub fn scrape_metrics(ns: &Netns, addr: SocketAddr) -> Result<Metrics> {
    let text = ns
        .run_inside(|| -> std::io::Result<String> {
            let mut conn = TcpStream::connect_timeout(&addr, SCRAPE_LIMIT)?;
            conn.set_read_timeout(Some(SCRAPE_LIMIT))?;
            conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            conn.read_to_string(&mut text)?;
            Ok(text)
        })?
        .map_err(|source| HarnessError::Io {
            what: format!("scraping metrics from {addr}"),
            source,
        })?;
    Ok(Metrics { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_samples_across_shards_by_label() {
        let m = Metrics {
            text: "# HELP x y\n\
                bootwave_dhcp_dropped_total{shard=\"0\",reason=\"BadChaddr\"} 2\n\
                bootwave_dhcp_dropped_total{shard=\"1\",reason=\"BadChaddr\"} 3\n\
                bootwave_dhcp_dropped_total{shard=\"1\",reason=\"BadHlen\"} 7\n\
                bootwave_dhcp_dropped_total_other{shard=\"1\",reason=\"BadHlen\"} 9\n\
                bootwave_up 1\n"
                .to_owned(),
        };
        assert_eq!(m.dhcp_dropped("BadChaddr"), 5);
        assert_eq!(m.dhcp_dropped("BadHlen"), 7);
        assert_eq!(m.dhcp_dropped("NoSuch"), 0);
        assert_eq!(
            m.sum(
                "bootwave_dhcp_dropped_total",
                &[("shard", "1"), ("reason", "BadChaddr")]
            ),
            3
        );
        assert_eq!(m.sum("bootwave_up", &[]), 1);
    }
}
