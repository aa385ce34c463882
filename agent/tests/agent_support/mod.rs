//! Helpers shared by the agent tests: an in-process agent on a temporary
//! unix socket, a child agent process, and a recording fake data plane.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootwave_agent::server::{self, AgentConfig, Listen, Listener};
use bootwave_dataplane::control::{self, ApplyFn, ControlHandle, DataplaneStatus, Origin};
use bootwave_proto::v1;
use bootwave_proto::v1::bootwave_service_client::BootwaveServiceClient;
use bootwave_protocol::config::Config;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// An agent served by a task of the test's runtime.
pub struct InProcess {
    pub endpoint: String,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

pub async fn start_agent(state: &Path, socket: &Path, dataplanes: Vec<String>) -> InProcess {
    let listener = Listener::bind(&Listen::Unix(socket.to_owned()))
        .await
        .unwrap();
    let config = AgentConfig {
        state_dir: state.to_owned(),
        dataplanes,
        token: None,
        resync_interval: Duration::from_millis(50),
    };
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server::serve(config, listener, async {
        let _ = rx.await;
    }));
    InProcess {
        endpoint: format!("unix:{}", socket.display()),
        stop: Some(tx),
        task,
    }
}

pub async fn client(endpoint: &str) -> BootwaveServiceClient<Channel> {
    for _ in 0..100 {
        if let Ok(channel) = bootwave_proto::channel::connect(endpoint).await {
            return BootwaveServiceClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("agent at {endpoint} never answered");
}

/// A child `bootwave-agent` process, killed (SIGKILL) and reaped on drop.
pub struct AgentProcess(Child);

impl AgentProcess {
    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child `bootwave-agent` process on a unix socket.
pub fn spawn_agent(state: &Path, socket: &Path) -> AgentProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_bootwave-agent"))
        .arg("--state")
        .arg(state)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let child = AgentProcess(child);
    for _ in 0..250 {
        if socket.exists() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("agent never created {}", socket.display());
}

pub type Applied = Arc<Mutex<Vec<(Config, u64)>>>;

/// A data plane control endpoint that records every applied config.
pub fn fake_dataplane(socket: &Path) -> (ControlHandle, Applied) {
    let applied: Applied = Arc::default();
    let record = applied.clone();
    let apply: ApplyFn = Arc::new(move |config, origin: &Origin| {
        record.lock().unwrap().push((config, origin.generation));
        Ok(())
    });
    let local = bootwave_protocol::config::parse("", "local", Path::new("/")).unwrap();
    let status = Arc::new(|| DataplaneStatus {
        shards: 1,
        backend: "fake".into(),
        http_port: Some(8080),
    });
    (
        control::serve(socket, local, apply, status).unwrap(),
        applied,
    )
}

pub fn subnet() -> v1::Subnet {
    v1::Subnet {
        network: "10.0.0.0/24".into(),
        ranges: vec![v1::AddrRange {
            start: "10.0.0.100".into(),
            end: "10.0.0.200".into(),
        }],
        next_server: "10.0.0.1".into(),
        boot_rules: vec![v1::BootRule {
            arch: vec![7],
            filename: "ipxe.efi".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn host(mac: &str, ip: &str) -> v1::Host {
    v1::Host {
        mac: mac.into(),
        fixed_address: ip.into(),
        ..Default::default()
    }
}

pub fn temp() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("agent.sock");
    (dir, state, socket)
}

/// The `bootwave` binary (crate `bootwave-cli`), beside this test's own
/// target directory: `cargo test --workspace` builds it; a lone
/// `cargo test -p bootwave-agent` needs `cargo build -p bootwave-cli` first.
pub fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let cli = dir.join("bootwave");
    assert!(
        cli.is_file(),
        "{} is missing: build it with `cargo build -p bootwave-cli`",
        cli.display()
    );
    cli
}

/// The `bootwave` binary against the agent at `agent`.
pub struct Cli {
    pub agent: String,
}

impl Cli {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(cli_binary())
            .args(args)
            .env("BOOTWAVE_AGENT", &self.agent)
            .env_remove("BOOTWAVE_TOKEN")
            .output()
            .unwrap()
    }

    /// Stdout of a run that must exit 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `--json` output of a run that must exit 0.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Stderr of a run that must exit with `code`.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    }
}
