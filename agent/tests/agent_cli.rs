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
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootwave"))
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

#[test]
fn completions_are_printed() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootwave"))
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
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/uefi-ipxe.conf");
    let import = Command::new(env!("CARGO_BIN_EXE_bootwave"))
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
