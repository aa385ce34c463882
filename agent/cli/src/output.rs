//! Human tables and JSON for the command output.

use bootwave_proto::convert::rule_to_wire;
use bootwave_proto::v1;
use serde_json::{Value, json};

/// Prints rows as left-aligned columns under a header.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a JSON value on one line.
pub(super) fn json_line(value: &Value) {
    println!("{value}");
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

/// A host as a table row.
pub(super) fn host_row(h: &v1::Host) -> Vec<String> {
    let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vec![
        h.mac.clone(),
        or_dash(&h.fixed_address),
        or_dash(&h.hostname),
        or_dash(&h.profile),
        or_dash(&h.subnet),
        or_dash(&labels.join(",")),
    ]
}

/// The header of [`host_row`].
pub(super) const HOST_HEADER: &[&str] = &["MAC", "IP", "HOSTNAME", "PROFILE", "SUBNET", "LABELS"];

/// A host as JSON.
pub(super) fn host_json(h: &v1::Host) -> Value {
    json!({
        "mac": h.mac,
        "name": h.name,
        "fixed_address": h.fixed_address,
        "hostname": h.hostname,
        "subnet": h.subnet,
        "profile": h.profile,
        "labels": h.labels,
    })
}

/// A boot rule as JSON.
pub(super) fn rule_json(r: &v1::BootRule) -> Value {
    json!({
        "profile": r.profile,
        "arch": r.arch,
        "user_class": r.user_class,
        "ipxe_encap": r.ipxe_encap,
        "filename": r.filename,
        "next_server": r.next_server,
        "http": r.http,
    })
}

/// A subnet as JSON.
pub(super) fn subnet_json(s: &v1::Subnet) -> Value {
    let ranges: Vec<String> = s
        .ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect();
    json!({
        "network": s.network,
        "ranges": ranges,
        "routers": s.routers,
        "dns": s.dns,
        "ntp": s.ntp,
        "domain": s.domain,
        "next_server": s.next_server,
        "dynamic_bootp": s.dynamic_bootp,
        "dynamic_bootp_lease_length_s": (s.dynamic_bootp_lease_length_s != 0)
            .then_some(s.dynamic_bootp_lease_length_s),
        "boot_rules": s.boot_rules.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

/// A subnet as a table row.
pub(super) fn subnet_row(s: &v1::Subnet) -> Vec<String> {
    let ranges: Vec<String> = s
        .ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect();
    vec![
        s.network.clone(),
        or_dash(&ranges.join(",")),
        or_dash(&s.routers.join(",")),
        or_dash(&s.next_server),
        s.boot_rules.len().to_string(),
    ]
}

/// A profile as JSON.
pub(super) fn profile_json(p: &v1::Profile) -> Value {
    json!({
        "name": p.name,
        "rules": p.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "ipxe_script": p.ipxe_script,
    })
}

/// A stage decision as JSON.
pub(super) fn stage_json(d: Option<&v1::StageDecision>) -> Value {
    match d {
        Some(d) if d.matched => json!({
            "matched": true,
            "rule_index": d.rule_index,
            "source": d.source,
            "filename": d.filename,
            "next_server": d.next_server,
            "rule": d.rule.as_ref().map(rule_json),
        }),
        _ => json!({ "matched": false }),
    }
}

/// Describes a rule's conditions in one line.
pub(super) fn rule_text(r: &bootwave_protocol::config::BootRule) -> String {
    let w = rule_to_wire(r);
    let mut parts = Vec::new();
    if !w.profile.is_empty() {
        parts.push(format!("profile={}", w.profile));
    }
    if !w.arch.is_empty() {
        let arch: Vec<String> = w.arch.iter().map(ToString::to_string).collect();
        parts.push(format!("arch={}", arch.join(",")));
    }
    if !w.user_class.is_empty() {
        parts.push(format!("user-class={}", w.user_class));
    }
    if let Some(e) = w.ipxe_encap {
        parts.push(format!("ipxe-encap={e}"));
    }
    parts.push(format!("file={}", w.filename));
    if w.http {
        parts.push("http=yes".to_owned());
    }
    parts.join(" ")
}

/// What the data planes last saw from a MAC, as JSON.
pub(super) fn last_seen_json(s: &v1::LastSeen) -> Value {
    json!({
        "time_unix_ms": s.time_unix_ms,
        "time": rfc3339(s.time_unix_ms),
        "dataplane": s.dataplane,
        "arch": s.arch,
        "user_class": s.user_class,
        "vendor_class": s.vendor_class,
        "address": s.address,
        "last_dhcp": s.last_dhcp,
        "last_file": s.last_file,
        "last_file_outcome": s.last_file_outcome,
        "last_error": s.last_error,
    })
}

/// What the data planes last saw from a MAC, for people.
pub(super) fn print_last_seen(s: &v1::LastSeen) {
    let arch = s.arch.map_or("-".to_owned(), |a| a.to_string());
    println!(
        "last seen: {} on {}: {} (arch {arch}, user class {}, address {})",
        seen_at(s.time_unix_ms, now_unix_ms()),
        or_dash(&s.dataplane),
        or_dash(&s.last_dhcp),
        or_dash(&s.user_class),
        or_dash(&s.address)
    );
    if !s.last_file.is_empty() {
        println!("last file: {} {}", s.last_file, s.last_file_outcome);
    }
    if !s.last_error.is_empty() {
        println!("last error: {}", s.last_error);
    }
}

/// `3 s ago (2026-12-03T07:34:20Z)`: how long before `now_ms` the time
/// `unix_ms` was, and the time itself (UTC, whole seconds).
pub(super) fn seen_at(unix_ms: i64, now_ms: i64) -> String {
    let ago = now_ms.saturating_sub(unix_ms).max(0) / 1000;
    let ago = match ago {
        0..60 => format!("{ago} s ago"),
        60..3600 => format!("{} min ago", ago / 60),
        3600..86_400 => format!("{} h ago", ago / 3600),
        _ => format!("{} d ago", ago / 86_400),
    };
    format!("{ago} ({})", rfc3339(unix_ms))
}

/// `unix_ms` as an RFC 3339 UTC time in whole seconds.
fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix_ms} ms since the epoch"))
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One row per data plane and subnet, the shards' slices added up, in the
/// order the data planes report them.
pub(super) fn pool_rows(planes: &[v1::DataplaneInfo]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for plane in planes {
        let mut subnets: Vec<(&str, [u64; 5])> = Vec::new();
        for p in &plane.pools {
            let counts = [p.size, p.free, p.offered, p.bound, p.quarantined];
            match subnets.iter_mut().find(|(s, _)| *s == p.subnet) {
                Some((_, sum)) => {
                    for (a, b) in sum.iter_mut().zip(counts) {
                        *a += b;
                    }
                }
                None => subnets.push((&p.subnet, counts)),
            }
        }
        for (subnet, counts) in subnets {
            let mut row = vec![plane.endpoint.clone(), subnet.to_owned()];
            row.extend(counts.iter().map(u64::to_string));
            rows.push(row);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::{pool_rows, seen_at};
    use bootwave_proto::v1;

    #[test]
    fn pool_rows_add_up_the_shards_of_each_subnet() {
        let pool = |subnet: &str, shard, size, free, bound| v1::PoolUsage {
            subnet: subnet.into(),
            shard,
            size,
            free,
            bound,
            ..Default::default()
        };
        let plane = v1::DataplaneInfo {
            endpoint: "unix:/run/dp.sock".into(),
            pools: vec![
                pool("10.0.0.0/24", 0, 100, 90, 10),
                pool("10.1.0.0/24", 0, 50, 50, 0),
                pool("10.0.0.0/24", 1, 100, 99, 1),
            ],
            ..Default::default()
        };
        let rows = pool_rows(&[plane]);
        assert_eq!(
            rows,
            vec![
                vec![
                    "unix:/run/dp.sock",
                    "10.0.0.0/24",
                    "200",
                    "189",
                    "0",
                    "11",
                    "0"
                ],
                vec![
                    "unix:/run/dp.sock",
                    "10.1.0.0/24",
                    "50",
                    "50",
                    "0",
                    "0",
                    "0"
                ],
            ]
        );
    }

    #[test]
    fn last_seen_reads_as_a_time() {
        // 2026-12-03T07:34:20Z
        let t = 1_796_283_260_000;
        assert_eq!(seen_at(t, t + 3_400), "3 s ago (2026-12-03T07:34:20Z)");
        assert_eq!(seen_at(t + 999, t + 999), "0 s ago (2026-12-03T07:34:20Z)");
        assert_eq!(seen_at(t, t + 125_000), "2 min ago (2026-12-03T07:34:20Z)");
        assert_eq!(seen_at(t, t + 7_200_000), "2 h ago (2026-12-03T07:34:20Z)");
        assert_eq!(
            seen_at(t, t + 3 * 86_400_000),
            "3 d ago (2026-12-03T07:34:20Z)"
        );
        // A clock behind the data plane's does not print a negative age.
        assert_eq!(seen_at(t, t - 5_000), "0 s ago (2026-12-03T07:34:20Z)");
    }
}
