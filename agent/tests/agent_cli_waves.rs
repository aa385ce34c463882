//! `bootwave leases` and `bootwave wave …` against an in-process agent fed
//! by a scripted fake data plane: output, JSON lines, exit codes.
#![allow(clippy::unwrap_used)]

mod agent_support;
mod wave_support;

use std::process::{Command, Output};
use std::time::Duration;

use agent_support::*;
use bootwave_proto::v1;
use serde_json::Value;
use wave_support::*;

fn bootwave(agent: &str, args: &[&str]) -> Output {
    Command::new(cli_binary())
        .args(args)
        .env("BOOTWAVE_AGENT", agent)
        .env_remove("BOOTWAVE_TOKEN")
        .output()
        .unwrap()
}

async fn bootwave_async(agent: &str, args: &[&str]) -> Output {
    let agent = agent.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bootwave(&agent, &args)
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn setup(
    hosts: Vec<v1::Host>,
    leases: Vec<v1::Lease>,
) -> (tempfile::TempDir, FakePlane, InProcess) {
    let (dir, state, socket) = temp();
    let plane = FakePlane::start(&dir.path().join("dp.sock"), leases).await;
    let agent = start_agent(&state, &socket, vec![plane.endpoint.clone()]).await;
    let mut c = client(&agent.endpoint).await;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    c.import_hosts(tokio_stream::iter(hosts)).await.unwrap();
    plane.wait_for_follower().await;
    (dir, plane, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wave_start_watch_json_ends_with_every_host_done() {
    let hosts: Vec<v1::Host> = (1..=5).map(|i| labelled_host(i, "r1")).collect();
    let (_dir, plane, agent) = setup(hosts, vec![]).await;
    let endpoint = agent.endpoint.clone();
    let cli = tokio::spawn(async move {
        bootwave_async(
            &endpoint,
            &[
                "wave", "start", "--label", "rack=r1", "--name", "n1", "--watch", "--json",
            ],
        )
        .await
    });
    let mut c = client(&agent.endpoint).await;
    for _ in 0..250 {
        let waves = c.list_waves(v1::ListWavesRequest {}).await.unwrap();
        if !waves.into_inner().waves.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 1..=5u8 {
        for e in boot_flow(&format!("02:00:00:00:01:{i:02x}")) {
            plane.emit(e);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cli)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "the first state, then updates");
    let last = lines.last().unwrap();
    assert_eq!(last["finished"], true);
    assert_eq!(last["name"], "n1");
    assert_eq!(last["counts"]["DONE"], 5);
    let hosts = last["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 5);
    assert!(hosts.iter().all(|h| h["stage"] == "DONE"));
    assert_eq!(hosts[0]["timeline"][5]["detail"], "refind_x64.efi 4.1 kB");

    let ls = bootwave(&agent.endpoint, &["wave", "ls"]);
    let ls = text(&ls.stdout);
    assert!(ls.starts_with("ID"), "{ls}");
    assert!(ls.lines().nth(1).unwrap().contains("finished"), "{ls}");
    let summary = bootwave(&agent.endpoint, &["wave", "summary"]);
    assert_eq!(summary.status.code(), Some(0));
    let summary = text(&summary.stdout);
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("DONE") && l.contains(" 5 ")),
        "{summary}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wave_exits_5_and_its_summary_names_the_failed_hosts() {
    let (_dir, plane, agent) =
        setup(vec![labelled_host(1, "r1"), labelled_host(2, "r1")], vec![]).await;
    let out = bootwave_async(
        &agent.endpoint,
        &[
            "wave",
            "start",
            "--mac",
            "02:00:00:00:01:01",
            "--mac",
            "02:00:00:00:01:02",
            "--timeout",
            "2",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert!(!id.is_empty());
    for e in boot_flow("02:00:00:00:01:01") {
        plane.emit(e);
    }
    plane.emit(dhcp("02:00:00:00:01:02", "NAK", "", ""));
    let watch = bootwave_async(&agent.endpoint, &["wave", "watch", &id]).await;
    assert_eq!(watch.status.code(), Some(5), "{}", text(&watch.stderr));
    assert!(text(&watch.stderr).contains("1 of 2 hosts not done"));
    let summary = bootwave_async(&agent.endpoint, &["wave", "summary", &id, "--json"]).await;
    assert_eq!(summary.status.code(), Some(5));
    let v: Value = serde_json::from_str(&text(&summary.stdout)).unwrap();
    assert_eq!(v["counts"]["FAILED"], 1);
    let human = bootwave_async(&agent.endpoint, &["wave", "summary", &id]).await;
    let human = text(&human.stdout);
    assert!(
        human.lines().any(
            |l| l.starts_with("02:00:00:00:01:02") && l.contains("NAK to REQUEST for 10.0.0.5")
        ),
        "{human}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wave_start_refusals_exit_with_usage_or_error() {
    let (_dir, _plane, agent) = setup(vec![labelled_host(1, "r1")], vec![]).await;
    let none = bootwave_async(&agent.endpoint, &["wave", "start"]).await;
    assert_eq!(none.status.code(), Some(2), "clap wants --label or --mac");
    let bad = bootwave_async(&agent.endpoint, &["wave", "start", "--mac", "nope"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("macs[0]"),
        "{}",
        text(&bad.stderr)
    );
    let missing = bootwave_async(&agent.endpoint, &["wave", "summary"]).await;
    assert_eq!(missing.status.code(), Some(3), "no wave yet: not found");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_print_a_table_or_json() {
    let leases = vec![
        lease("02:00:00:00:01:01", "10.0.0.101"),
        lease("02:00:00:00:01:02", "10.0.0.102"),
    ];
    let (_dir, plane, agent) = setup(vec![], leases).await;
    let table = bootwave_async(&agent.endpoint, &["leases"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("MAC"), "{table}");
    assert_eq!(rows.len(), 3);
    assert!(rows[1].contains("10.0.0.101") && rows[1].contains(&plane.endpoint));
    assert!(rows[1].contains("expired"), "expiry in the past: {table}");

    let json = bootwave_async(
        &agent.endpoint,
        &["leases", "--mac", "02:00:00:00:01:02", "--json"],
    )
    .await;
    let v: Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(v["leases"].as_array().unwrap().len(), 1);
    assert_eq!(v["leases"][0]["address"], "10.0.0.102");
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);

    plane.kill().await;
    let down = bootwave_async(&agent.endpoint, &["leases"]).await;
    assert_eq!(down.status.code(), Some(4), "a data plane did not answer");
    assert!(text(&down.stderr).contains("not every data plane answered"));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_what_was_last_seen() {
    let (_dir, plane, agent) = setup(vec![labelled_host(1, "r1")], vec![]).await;
    let mac = "02:00:00:00:01:01";
    let before = bootwave_async(&agent.endpoint, &["explain", mac]).await;
    assert!(text(&before.stdout).contains("last seen: never"));
    plane.emit(dhcp(mac, "NAK", "iPXE", ""));
    let mut c = client(&agent.endpoint).await;
    for _ in 0..250 {
        let r = c
            .explain(v1::ExplainRequest { mac: mac.into() })
            .await
            .unwrap();
        if r.into_inner().last_seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let human = text(
        &bootwave_async(&agent.endpoint, &["explain", mac])
            .await
            .stdout,
    );
    assert!(
        human.contains("REQUEST -> NAK (arch 7, user class iPXE"),
        "{human}"
    );
    assert!(
        human.contains("last error: NAK to REQUEST for 10.0.0.5"),
        "{human}"
    );
    let json = bootwave_async(&agent.endpoint, &["explain", mac, "--json"]).await;
    let v: Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(v["last_seen"]["last_dhcp"], "REQUEST -> NAK");
    assert_eq!(v["last_seen"]["dataplane"], plane.endpoint.as_str());
    agent.stop().await;
}
