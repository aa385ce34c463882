//! The Python example client (`agent/examples/python/hosts.py`) against a
//! real agent on a unix socket: stubs generated from `proto/` with
//! grpcio-tools into a temporary directory, no reflection.
//!
//! grpcio and grpcio-tools are installed by pip into a virtual environment
//! under the target directory (`python-example-venv`, made once); this
//! needs `python3` with its `venv` module (Debian: python3-venv, installed
//! by `tests/run`) and the package index. Without them the test fails.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent_support::{Cli, spawn_agent, temp};

/// What pip installs (pinned: the versions this example was written with).
const PACKAGES: [&str; 2] = ["grpcio==1.85.3", "grpcio-tools==1.85.1"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`; panics with its output unless it exits 0.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The virtual environment's python, made and filled on first use.
fn venv_python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let venv = target.join("python-example-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(format!("installed {}", PACKAGES.join(" ")));
    if stamp.exists() {
        return python;
    }
    let system = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .expect("python3 is missing; `tests/run` installs python3 and python3-venv");
    run(Command::new(system).args(["-m", "venv"]).arg(&venv));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES));
    std::fs::write(&stamp, "").unwrap();
    python
}

#[test]
fn the_python_example_lists_and_adds_hosts() {
    let python = venv_python();
    let (dir, state, socket) = temp();
    let generated = dir.path().join("gen");
    std::fs::create_dir(&generated).unwrap();
    let proto = workspace().join("proto");
    let sources: Vec<PathBuf> = std::fs::read_dir(proto.join("bootwave/v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    run(Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto)
        .arg(format!("--python_out={}", generated.display()))
        .arg(format!("--grpc_python_out={}", generated.display()))
        .args(&sources));

    let _agent = spawn_agent(&state, &socket);
    let endpoint = format!("unix:{}", socket.display());
    let cli = Cli {
        agent: endpoint.clone(),
    };
    cli.ok(&[
        "subnet",
        "add",
        "--network",
        "10.0.0.0/24",
        "--range",
        "10.0.0.100-10.0.0.200",
    ]);
    let example = |args: &[&str]| {
        let out = run(Command::new(&python)
            .arg(workspace().join("agent/examples/python/hosts.py"))
            .args(["--agent", &endpoint])
            .args(args)
            .env("PYTHONPATH", &generated)
            .env_remove("BOOTWAVE_TOKEN"));
        String::from_utf8(out.stdout).unwrap()
    };

    let empty = example(&["list"]);
    assert_eq!(
        empty.lines().filter(|l| !l.starts_with('#')).count(),
        0,
        "{empty}"
    );
    let added = example(&[
        "add",
        "--mac",
        "52:54:00:12:34:56",
        "--ip",
        "10.0.0.9",
        "--hostname",
        "node-9",
        "--label",
        "rack=r1",
    ]);
    let generation: u64 = added
        .trim()
        .strip_prefix("generation ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("add printed {added:?}"));
    let listed = example(&["list"]);
    assert!(
        listed.contains("52:54:00:12:34:56\t10.0.0.9\tnode-9\track=r1"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("# generation {generation}")),
        "{listed}"
    );
    // The CLI sees the same host through the same agent.
    let host = cli.json(&["host", "show", "52:54:00:12:34:56"]);
    assert_eq!(host["fixed_address"], "10.0.0.9", "{host}");
    assert_eq!(host["hostname"], "node-9", "{host}");
}
