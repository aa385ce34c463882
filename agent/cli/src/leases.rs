//! `bootwave leases`: the leases of every data plane.

use std::time::{SystemTime, UNIX_EPOCH};

use bootwave_proto::v1;
use serde_json::json;

use super::output::{json_line, table};
use super::{Client, EXIT_UNAVAILABLE, Failure};

/// Lists the leases (only `mac`, only inside `subnet`); a data plane that
/// could not be asked makes the command fail with [`EXIT_UNAVAILABLE`]
/// after printing what the others hold.
pub(super) async fn run(
    client: &mut Client,
    mac: Option<String>,
    subnet: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let request = v1::ListLeasesRequest {
        mac: mac.unwrap_or_default(),
        subnet: subnet.unwrap_or_default(),
    };
    let reply = client.list_leases(request).await?.into_inner();
    if json {
        let leases: Vec<_> = reply
            .leases
            .iter()
            .map(|l| {
                json!({
                    "mac": l.mac,
                    "address": l.address,
                    "state": l.state,
                    "expires_unix_s": l.expires_unix_s,
                    "shard": l.shard,
                    "dataplane": l.dataplane,
                })
            })
            .collect();
        json_line(&json!({"leases": leases, "errors": reply.errors}));
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let rows: Vec<_> = reply
            .leases
            .iter()
            .map(|l| {
                vec![
                    l.mac.clone(),
                    l.address.clone(),
                    l.state.clone(),
                    expires(l.expires_unix_s, now),
                    l.shard.to_string(),
                    l.dataplane.clone(),
                ]
            })
            .collect();
        table(
            &["MAC", "ADDRESS", "STATE", "EXPIRES", "SHARD", "DATAPLANE"],
            &rows,
        );
    }
    if reply.errors.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: EXIT_UNAVAILABLE,
        message: format!("not every data plane answered: {}", reply.errors.join("; ")),
    })
}

/// "in 9m 30s", "expired", or "never".
fn expires(at_unix_s: i64, now_unix_s: i64) -> String {
    if at_unix_s == 0 {
        return "never".into();
    }
    match at_unix_s - now_unix_s {
        left if left <= 0 => "expired".into(),
        left if left < 60 => format!("in {left}s"),
        left if left < 3600 => format!("in {}m {}s", left / 60, left % 60),
        left => format!("in {}h {}m", left / 3600, left % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_relative_to_now() {
        assert_eq!(expires(0, 100), "never");
        assert_eq!(expires(100, 100), "expired");
        assert_eq!(expires(130, 100), "in 30s");
        assert_eq!(expires(100 + 570, 100), "in 9m 30s");
        assert_eq!(expires(100 + 7260, 100), "in 2h 1m");
    }
}
