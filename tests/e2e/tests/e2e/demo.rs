//! `bootwave demo` end to end: the command a newcomer runs first. It must
//! boot every simulated machine through a data plane and an agent in its
//! own namespaces, write the wave's picture and summary, and leave nothing
//! behind (namespaces, processes).

use std::process::Command;
use std::time::{Duration, Instant};

use bootwave_e2e::agent::workspace_binary;
use bootwave_e2e::{Server, require_root_and_tools};

use crate::on_each_backend;

/// Machines in the demo's wave (its default).
const DEFAULT_NODES: u32 = 200;
/// The wave CI runs on both backends beside the default one.
const WAVE_NODES: u32 = 1000;
/// Longest the whole demo may take here (its wave is bounded by
/// `--timeout`, well below this).
const LIMIT: Duration = Duration::from_secs(240);

on_each_backend!(the_demo_boots_every_machine_and_cleans_up);
fn the_demo_boots_every_machine_and_cleans_up(server: Server) -> anyhow::Result<()> {
    demo(server, DEFAULT_NODES, false)
}

on_each_backend!(a_thousand_machine_wave_completes_with_no_failure);
fn a_thousand_machine_wave_completes_with_no_failure(server: Server) -> anyhow::Result<()> {
    demo(server, WAVE_NODES, false)
}

// rEFInd over HTTP: the simulator downloads it with TCP from each
// machine's address, and the agent's wave follows the HTTP events.
on_each_backend!(the_demo_over_http_boots_every_machine);
fn the_demo_over_http_boots_every_machine(server: Server) -> anyhow::Result<()> {
    demo(server, DEFAULT_NODES, true)
}

/// Runs `bootwave demo --nodes N [--http]` and checks everything it leaves.
fn demo(server: Server, nodes: u32, http: bool) -> anyhow::Result<()> {
    require_root_and_tools(&["ip"]);
    let Server::Bootwave(backend) = server else {
        anyhow::bail!("the demo is bootwave's");
    };
    let out = tempfile::Builder::new().prefix("bwt-demo-").tempdir()?;
    let cli = workspace_binary("bootwave", "BOOTWAVE_CLI_BINARY")?;
    let started = Instant::now();
    let mut child = Command::new(&cli)
        .args(["demo", "--nodes", &nodes.to_string(), "--timeout", "120"])
        .args(http.then_some("--http"))
        .arg("--backend")
        .arg(backend.arg())
        .arg("--out")
        .arg(out.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    // Bounded: the demo is killed (and its namespaces checked) past LIMIT.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{server:?}: bootwave demo ran past {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let ctx = || format!("{server:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    eprintln!(
        "{server:?}: demo of {nodes} machines took {:?}",
        started.elapsed()
    );

    anyhow::ensure!(status.success(), "demo exited {status}\n{}", ctx());
    let sim_line = format!("wave: nodes {nodes} done {nodes} failed 0 time ");
    anyhow::ensure!(stdout.contains(&sim_line), "no `{sim_line}`\n{}", ctx());
    anyhow::ensure!(
        stdout.contains("bootwave explain 02:b0:00:00:00:00"),
        "{}",
        ctx()
    );
    if http {
        // The explained machine's last file came over HTTP.
        anyhow::ensure!(
            stdout.contains("last file: http: refind_x64.efi completed"),
            "{}",
            ctx()
        );
    }

    // The agent saw every machine reach DONE.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("wave.json"))?)?;
    assert_eq!(summary["finished"], true, "{}", ctx());
    assert_eq!(summary["counts"]["DONE"], u64::from(nodes), "{summary}");
    // The picture has a row per machine.
    let svg_path = out.path().join("wave.svg");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&svg_path)?.permissions());
    assert_eq!(mode & 0o777, 0o644, "wave.svg is readable by all");
    let svg = std::fs::read_to_string(&svg_path)?;
    assert!(svg.starts_with("<svg "), "{svg:.200}");
    assert_eq!(svg.matches("<g>").count(), nodes as usize);
    assert!(svg.contains(&format!("{nodes} hosts, {nodes} done, 0 failed")));
    // The simulator's per-node timelines: one line per machine.
    let timelines = std::fs::read_to_string(out.path().join("nodes.jsonl"))?;
    assert_eq!(timelines.lines().count(), nodes as usize);
    for line in timelines.lines() {
        let node: serde_json::Value = serde_json::from_str(line)?;
        assert_eq!(node["done"], true, "{line}");
        assert!(node["stages_ms"]["boot_files"].is_u64(), "{line}");
    }

    // Nothing left behind: the demo's namespaces carry its PID.
    let list = Command::new("ip").args(["netns", "list"]).output()?;
    let left = String::from_utf8_lossy(&list.stdout);
    let mine = format!("bwdemo-{pid}-");
    assert!(!left.contains(&mine), "namespaces left behind:\n{left}");
    Ok(())
}
