//! Running the agent commands.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use bootwave_proto::convert::State;
use bootwave_proto::v1;
use serde_json::json;

use super::output::{self, HOST_HEADER};
use super::{AgentCommand, Connection, EXIT_UNAVAILABLE, Failure, HostCommand, apply};

/// Runs `command` against the agent of `conn`.
pub async fn run(command: AgentCommand, conn: &Connection) -> Result<(), Failure> {
    let mut client = super::connect(conn).await?;
    let json = conn.json;
    match command {
        AgentCommand::Host(HostCommand::Add {
            mac,
            ip,
            hostname,
            profile,
            labels,
            subnet,
        }) => {
            let host = v1::Host {
                mac: mac.into_string(),
                fixed_address: ip.unwrap_or_default(),
                hostname: hostname.unwrap_or_default(),
                subnet: subnet.unwrap_or_default(),
                profile: profile.unwrap_or_default(),
                labels: labels.into_iter().collect(),
                name: String::new(),
            };
            let request = v1::PutHostRequest { host: Some(host) };
            changed(client.put_host(request).await?.into_inner(), json)
        }
        AgentCommand::Host(HostCommand::Rm { mac }) => {
            let reply = client
                .delete_host(v1::DeleteHostRequest {
                    mac: mac.into_string(),
                })
                .await?;
            changed(reply.into_inner(), json)
        }
        AgentCommand::Host(HostCommand::Show { mac }) => {
            let host = client
                .get_host(v1::GetHostRequest {
                    mac: mac.into_string(),
                })
                .await?
                .into_inner();
            if json {
                output::json_line(&output::host_json(&host));
            } else {
                output::table(HOST_HEADER, &[output::host_row(&host)]);
            }
            Ok(())
        }
        AgentCommand::Host(HostCommand::Ls {
            labels,
            profile,
            subnet,
        }) => {
            let mut hosts = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = v1::ListHostsRequest {
                    labels: labels.iter().cloned().collect(),
                    subnet: subnet.clone().unwrap_or_default(),
                    profile: profile.clone().unwrap_or_default(),
                    page_size: 0,
                    page_token,
                };
                let reply = client.list_hosts(request).await?.into_inner();
                hosts.extend(reply.hosts);
                if reply.next_page_token.is_empty() {
                    break;
                }
                page_token = reply.next_page_token;
            }
            if json {
                let list: Vec<_> = hosts.iter().map(output::host_json).collect();
                output::json_line(&json!(list));
            } else {
                let rows: Vec<_> = hosts.iter().map(output::host_row).collect();
                output::table(HOST_HEADER, &rows);
            }
            Ok(())
        }
        AgentCommand::Subnet(command) => {
            super::subnet::run_subnet(command, &mut client, json).await
        }
        AgentCommand::Profile(command) => {
            super::subnet::run_profile(command, &mut client, json).await
        }
        AgentCommand::Apply { file, dry_run } => {
            let next = read_state(&file)?;
            let reply = client.get_state(v1::GetStateRequest {}).await?.into_inner();
            let current = State::try_from(reply.state.unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("the agent's state: {e}"))?;
            let diff = apply::diff(&current, &next);
            if json && dry_run {
                let lines: Vec<_> = diff
                    .iter()
                    .map(|d| json!({"op": d.sign.to_string(), "what": d.what}))
                    .collect();
                output::json_line(&json!({"generation": reply.generation, "changes": lines}));
            } else if !json {
                for d in &diff {
                    println!("{} {}", d.sign, d.what);
                }
                if diff.is_empty() {
                    println!("no changes");
                }
            }
            if dry_run || diff.is_empty() {
                return Ok(());
            }
            let request = v1::ApplyStateRequest {
                state: Some(v1::DesiredState::from(&next)),
                expected_generation: reply.generation,
            };
            changed(client.apply_state(request).await?.into_inner(), json)
        }
        AgentCommand::Explain { mac } => {
            let r = client
                .explain(v1::ExplainRequest {
                    mac: mac.into_string(),
                })
                .await?
                .into_inner();
            if json {
                output::json_line(&json!({
                    "generation": r.generation,
                    "known": r.known,
                    "host": r.host.as_ref().map(output::host_json),
                    "subnet": r.subnet,
                    "profile": r.profile,
                    "firmware": output::stage_json(r.firmware.as_ref()),
                    "ipxe": output::stage_json(r.ipxe.as_ref()),
                    "note": r.note,
                    "last_seen": r.last_seen.as_ref().map(output::last_seen_json),
                }));
                return Ok(());
            }
            println!(
                "known:   {}",
                if r.known {
                    "yes"
                } else {
                    "no (unknown client)"
                }
            );
            println!(
                "subnet:  {}",
                if r.subnet.is_empty() { "-" } else { &r.subnet }
            );
            println!("profile: {}", r.profile);
            for (name, stage) in [("firmware (arch 7)", &r.firmware), ("iPXE", &r.ipxe)] {
                match stage {
                    Some(d) if d.matched => {
                        let rule = d.rule.clone().map(bootwave_proto::convert::rule_from_wire);
                        let conditions = match rule {
                            Some(Ok(rule)) => output::rule_text(&rule),
                            _ => String::new(),
                        };
                        let next = if d.next_server.is_empty() {
                            "-"
                        } else {
                            &d.next_server
                        };
                        println!(
                            "{name}: file {} from {next} (rule {} of {}: {conditions})",
                            d.filename, d.rule_index, d.source
                        );
                    }
                    _ => println!("{name}: no rule matches"),
                }
            }
            if !r.note.is_empty() {
                println!("note: {}", r.note);
            }
            match &r.last_seen {
                Some(seen) => output::print_last_seen(seen),
                None => println!("last seen: never (since the agent started)"),
            }
            Ok(())
        }
        AgentCommand::Leases { mac, subnet } => {
            super::leases::run(&mut client, mac, subnet, json).await
        }
        AgentCommand::Wave(command) => super::wave::run(&mut client, command, json).await,
        AgentCommand::Status => {
            let r = client.status(v1::StatusRequest {}).await?.into_inner();
            if json {
                let planes: Vec<_> = r
                    .dataplanes
                    .iter()
                    .map(|d| {
                        json!({
                            "endpoint": d.endpoint,
                            "acked_generation": d.acked_generation,
                            "reachable": d.reachable,
                            "error": d.error,
                            "shards": d.shards,
                            "backend": d.backend,
                            "history": d.history,
                            "unsaved": d.unsaved,
                            "pools": d.pools.iter().map(|p| json!({
                                "subnet": p.subnet,
                                "shard": p.shard,
                                "size": p.size,
                                "free": p.free,
                                "offered": p.offered,
                                "bound": p.bound,
                                "quarantined": p.quarantined,
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                output::json_line(&json!({
                    "generation": r.generation,
                    "history": r.history,
                    "dataplanes": planes,
                }));
                return Ok(());
            }
            println!("generation: {} (history {})", r.generation, r.history);
            let rows: Vec<_> = r
                .dataplanes
                .iter()
                .map(|d| {
                    vec![
                        d.endpoint.clone(),
                        d.acked_generation.to_string(),
                        if d.reachable { "yes" } else { "no" }.to_owned(),
                        d.shards.to_string(),
                        d.backend.clone(),
                        match (d.error.is_empty(), d.unsaved) {
                            (true, true) => {
                                "state in force not saved to its disk (retrying)".to_owned()
                            }
                            (false, true) => {
                                format!("{}; state in force not saved (retrying)", d.error)
                            }
                            _ => d.error.clone(),
                        },
                    ]
                })
                .collect();
            output::table(
                &[
                    "DATAPLANE",
                    "ACKED",
                    "REACHABLE",
                    "SHARDS",
                    "BACKEND",
                    "ERROR",
                ],
                &rows,
            );
            let pools = output::pool_rows(&r.dataplanes);
            if !pools.is_empty() {
                println!();
                output::table(
                    &[
                        "DATAPLANE",
                        "SUBNET",
                        "SIZE",
                        "FREE",
                        "OFFERED",
                        "BOUND",
                        "QUARANTINED",
                    ],
                    &pools,
                );
            }
            Ok(())
        }
    }
}

/// Reports a committed change; a data plane that did not acknowledge it
/// makes the command fail with [`EXIT_UNAVAILABLE`].
pub(super) fn changed(reply: v1::ChangeReply, json: bool) -> Result<(), Failure> {
    if json {
        let lagging: Vec<_> = reply
            .lagging
            .iter()
            .map(|l| json!({"endpoint": l.endpoint, "error": l.error}))
            .collect();
        output::json_line(&json!({"generation": reply.generation, "lagging": lagging}));
    } else {
        println!("generation {}", reply.generation);
    }
    if reply.lagging.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = reply
        .lagging
        .iter()
        .map(|l| format!("{} ({})", l.endpoint, l.error))
        .collect();
    Err(Failure {
        code: EXIT_UNAVAILABLE,
        message: format!(
            "committed as generation {}, not yet acknowledged by: {}",
            reply.generation,
            names.join(", ")
        ),
    })
}

/// Reads a bootwave TOML file (`-`: stdin) into a desired state.
fn read_state(file: &Path) -> Result<State, Failure> {
    let (text, origin, base) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        (text, "<stdin>".to_owned(), std::path::PathBuf::from("."))
    } else {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let base = file.parent().unwrap_or(Path::new(".")).to_owned();
        (text, file.display().to_string(), base)
    };
    let config = bootwave_protocol::config::parse(&text, &origin, &base)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(State::from(&config))
}
