//! The `bootwave` binary against a running agent: output, JSON, exit codes,
//! `apply --dry-run`.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use agent_support::*;

impl Cli {
    fn apply_stdin(&self, toml: &str, dry_run: bool) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        if dry_run {
            args.push("--dry-run");
        }
        let mut child = Command::new(cli_binary())
            .args(&args)
            .env("BOOTWAVE_AGENT", &self.agent)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(toml.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

const FILE: &str = r#"
[[subnets]]
network = "10.0.0.0/24"
ranges = ["10.0.0.100-10.0.0.200"]
[[subnets.boot-rules]]
arch = "efi-x64"
filename = "ipxe.efi"

[[hosts]]
name = "n1"
mac = "02:00:00:00:00:01"
fixed-address = "10.0.0.5"
"#;

#[test]
fn host_commands_json_and_exit_codes() {
    let (_dir, state, socket) = temp();
    let mut agent = spawn_agent(&state, &socket);
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };

    let dry = cli.apply_stdin(FILE, true);
    assert_eq!(dry.status.code(), Some(0));
    let text = String::from_utf8(dry.stdout).unwrap();
    assert!(
        text.contains("+ subnet 10.0.0.0/24") && text.contains("+ host 02:00:00:00:00:01"),
        "{text}"
    );
    let status: serde_json::Value = serde_json::from_str(&cli.ok(&["--json", "status"])).unwrap();
    assert_eq!(status["generation"], 0, "dry run changed nothing");

    let applied = cli.apply_stdin(FILE, false);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let again = cli.apply_stdin(FILE, false);
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("no changes")
    );

    let out = cli.ok(&[
        "--json",
        "host",
        "add",
        "02:00:00:00:00:02",
        "--ip",
        "10.0.0.6",
        "--label",
        "rack=r2",
        "--hostname",
        "n2",
    ]);
    let reply: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["generation"], 2);
    let table = cli.ok(&["host", "ls"]);
    assert!(table.starts_with("MAC"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let list: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "host", "ls", "--label", "rack=r2"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["hostname"], "n2");
    let show: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "host", "show", "02:00:00:00:00:02"])).unwrap();
    assert_eq!(show["labels"]["rack"], "r2");
    let explain: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "explain", "02:00:00:00:00:02"])).unwrap();
    assert_eq!(explain["firmware"]["filename"], "ipxe.efi");

    assert_eq!(cli.run(&["host", "add", "zz"]).status.code(), Some(1));
    assert_eq!(
        cli.run(&["host", "show", "02:00:00:00:00:09"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(cli.run(&["host", "frob"]).status.code(), Some(2));
    // The flag form of the MAC, as scripts write it.
    cli.ok(&[
        "host",
        "add",
        "--mac",
        "02:00:00:00:00:03",
        "--hostname",
        "n3",
    ]);
    let show: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "host", "show", "--mac", "02:00:00:00:00:03"]))
            .unwrap();
    assert_eq!(show["hostname"], "n3");
    cli.ok(&["host", "rm", "--mac", "02:00:00:00:00:03"]);
    assert_eq!(
        cli.run(&["host", "add"]).status.code(),
        Some(2),
        "a MAC is required"
    );
    assert_eq!(
        cli.run(&[
            "host",
            "add",
            "02:00:00:00:00:04",
            "--mac",
            "02:00:00:00:00:05"
        ])
        .status
        .code(),
        Some(2),
        "one MAC, not two"
    );
    cli.ok(&["host", "rm", "02:00:00:00:00:02"]);
    assert_eq!(
        cli.run(&["host", "rm", "02:00:00:00:00:02"]).status.code(),
        Some(3)
    );

    agent.kill();
    let gone = cli.run(&["status"]);
    assert_eq!(
        gone.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

const BOOTP_FILE: &str = r#"
[dhcp]
relays = ["10.1.0.0/16", "192.0.2.7"]

[[subnets]]
network = "10.0.0.0/24"
ranges = ["10.0.0.100-10.0.0.200"]
dynamic-bootp = true
dynamic-bootp-lease-length = "30m"
"#;

#[test]
fn apply_round_trips_dynamic_bootp_and_relays() {
    let (_dir, state, socket) = temp();
    let mut agent = spawn_agent(&state, &socket);
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };
    let applied = cli.apply_stdin(BOOTP_FILE, false);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let show = cli.json(&["subnet", "show", "10.0.0.0/24"]);
    assert_eq!(show["dynamic_bootp"], true, "{show}");
    assert_eq!(show["dynamic_bootp_lease_length_s"], 1800, "{show}");
    // The stored state is the file: applying it again changes nothing,
    // also after the agent restarts on its database.
    for round in 0..2 {
        let again = cli.apply_stdin(BOOTP_FILE, true);
        let text = String::from_utf8(again.stdout).unwrap();
        assert!(text.contains("no changes"), "round {round}: {text}");
        agent.kill();
        let _ = std::fs::remove_file(&socket);
        agent = spawn_agent(&state, &socket);
    }
    let other = BOOTP_FILE.replace("\"192.0.2.7\"", "\"192.0.2.8\"");
    let diff = cli.apply_stdin(&other, true);
    let text = String::from_utf8(diff.stdout).unwrap();
    assert_eq!(text.trim(), "~ dhcp settings", "{text}");
    let no_bootp = BOOTP_FILE.replace(
        "dynamic-bootp = true\ndynamic-bootp-lease-length = \"30m\"\n",
        "",
    );
    let diff = cli.apply_stdin(&no_bootp, true);
    let text = String::from_utf8(diff.stdout).unwrap();
    assert_eq!(text.trim(), "~ subnet 10.0.0.0/24", "{text}");
    cli.ok(&[
        "subnet",
        "add",
        "--network",
        "10.2.0.0/24",
        "--range",
        "10.2.0.10-10.2.0.20",
        "--dynamic-bootp",
        "--dynamic-bootp-lease-length",
        "600",
    ]);
    let show = cli.json(&["subnet", "show", "10.2.0.0/24"]);
    assert_eq!(
        (
            &show["dynamic_bootp"],
            &show["dynamic_bootp_lease_length_s"]
        ),
        (&serde_json::json!(true), &serde_json::json!(600)),
        "{show}"
    );
    let refused = cli.run(&[
        "subnet",
        "add",
        "--network",
        "10.3.0.0/24",
        "--dynamic-bootp-lease-length",
        "600",
    ]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a length needs --dynamic-bootp"
    );
}

#[test]
fn completions_are_printed() {
    let out = Command::new(cli_binary())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().contains("_bootwave"));
}

#[test]
fn import_pipes_into_apply() {
    let (_dir, state, socket) = temp();
    let _agent = spawn_agent(&state, &socket);
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/isc/tests/fixtures/uefi-ipxe.conf"
    );
    let import = Command::new(cli_binary())
        .args(["import", "isc-dhcpd", fixture])
        .output()
        .unwrap();
    assert_eq!(import.status.code(), Some(0));
    let toml = String::from_utf8(import.stdout).unwrap();
    let applied = cli.apply_stdin(&toml, false);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let subnets: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "subnet", "ls"])).unwrap();
    assert!(!subnets.as_array().unwrap().is_empty());
    let status: serde_json::Value = serde_json::from_str(&cli.ok(&["--json", "status"])).unwrap();
    assert_eq!(status["generation"], 1, "one generation for the whole file");
}
