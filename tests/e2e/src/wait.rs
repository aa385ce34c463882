//! Waiting, with deadlines, for servers inside a namespace to be ready.

use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use crate::tools::find_tool;

/// Poll interval while waiting for a socket.
const POLL: Duration = Duration::from_millis(50);
/// Deadline for one `ss` call.
const SS_LIMIT: Duration = Duration::from_secs(5);

/// Waits until some socket inside `ns` is bound to UDP `port`, as `ss -uln`
/// reports it, or fails after `limit`.
pub fn wait_udp_bound(ns: &Netns, port: u16, limit: Duration) -> Result<()> {
    let ss = find_tool("ss").unwrap_or_else(|| "ss".into());
    let deadline = Instant::now() + limit;
    loop {
        let out = ns.exec(&ss, &["-H", "-u", "-l", "-n"], SS_LIMIT)?;
        if udp_port_listed(&out, port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Deadline {
                what: format!(
                    "UDP port {port} to be bound in {}; `ss -uln` shows:\n{out}",
                    ns.name()
                ),
                limit,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Whether `ss -H -u -l -n` output lists a socket whose local port is `port`.
pub(crate) fn udp_port_listed(ss_output: &str, port: u16) -> bool {
    let suffix = format!(":{port}");
    ss_output
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .any(|local| local.ends_with(&suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SS: &str = "\
UNCONN 0      0                  0.0.0.0%bwtms0:67        0.0.0.0:*
UNCONN 0      0                       10.77.0.1:69        0.0.0.0:*
UNCONN 0      0      [fe80::40b7:37ff:fe9d:5d95]%bwtms0:6969 [::]:*
";

    #[test]
    fn finds_ports_by_local_address_column() {
        assert!(udp_port_listed(SS, 67));
        assert!(udp_port_listed(SS, 69));
        assert!(udp_port_listed(SS, 6969));
        assert!(!udp_port_listed(SS, 68));
        assert!(!udp_port_listed(SS, 696));
        assert!(!udp_port_listed("", 67));
    }
}
