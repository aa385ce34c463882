//! `--metrics`: scrape the agent after pushes to one live and one missing
//! data plane, and after calls that succeed and fail.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use agent_support::*;
use bootwave_agent::metrics::WaveStages;
use bootwave_agent::server::{self, AgentConfig, Listen, Listener, ServeOptions};
use bootwave_proto::v1;

/// `GET /metrics` over a plain socket; the body.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the sample `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_after_pushes() {
    let (dir, state, socket) = temp();
    let (_plane, applied) = fake_dataplane(&dir.path().join("dp.sock"));
    let live = format!("unix:{}", dir.path().join("dp.sock").display());
    let dead = format!("unix:{}", dir.path().join("missing.sock").display());

    let listener = Listener::bind(&Listen::Unix(socket.clone())).await.unwrap();
    let config = AgentConfig {
        state_dir: state.clone(),
        dataplanes: vec![live.clone(), dead.clone()],
        token: None,
        resync_interval: Duration::from_millis(50),
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let stages = || vec![("dhcp".to_owned(), 3u64), ("done".to_owned(), 5)];
    let options = ServeOptions {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        metrics_bound: Some(bound_tx),
        waves: Some(std::sync::Arc::new(stages) as std::sync::Arc<dyn WaveStages>),
        ..ServeOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve_with(config, options, listener, async {
        let _ = stop_rx.await;
    }));
    let agent = InProcess {
        endpoint: format!("unix:{}", socket.display()),
        stop: Some(stop_tx),
        task,
    };
    let addr = bound_rx.await.unwrap();

    let before = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    assert_eq!(value(&before, "bootwave_agent_generation"), 0.0);
    assert_eq!(value(&before, "bootwave_agent_push_seconds_count"), 0.0);

    let mut client = client(&agent.endpoint).await;
    let reply = client
        .put_subnet(v1::PutSubnetRequest {
            subnet: Some(subnet()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.generation, 1);
    assert_eq!(reply.lagging.len(), 1, "the missing data plane lags");
    assert_eq!(applied.lock().unwrap().last().unwrap().1, 1);
    let missing = client
        .delete_host(v1::DeleteHostRequest {
            mac: "02:00:00:00:00:09".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let text = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    assert_eq!(value(&text, "bootwave_agent_generation"), 1.0);
    let plane = |name: &str, endpoint: &str| {
        value(
            &text,
            &format!("bootwave_agent_dataplane_{name}{{dataplane=\"{endpoint}\"}}"),
        )
    };
    assert_eq!(plane("acked_generation", &live), 1.0);
    assert_eq!(plane("generation_lag", &live), 0.0);
    assert_eq!(plane("reachable", &live), 1.0);
    assert_eq!(plane("acked_generation", &dead), 0.0);
    assert_eq!(plane("generation_lag", &dead), 1.0);
    assert_eq!(plane("reachable", &dead), 0.0);
    // One data plane did not acknowledge: the push is incomplete and not
    // in the histogram.
    assert_eq!(value(&text, "bootwave_agent_push_incomplete_total"), 1.0);
    assert_eq!(value(&text, "bootwave_agent_push_seconds_count"), 0.0);
    let rpc = |method: &str, code: &str| {
        value(
            &text,
            &format!(
                "bootwave_agent_rpc_total{{service=\"bootwave.v1.BootwaveService\",method=\"{method}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(rpc("PutSubnet", "OK"), 1.0);
    assert_eq!(rpc("DeleteHost", "NOT_FOUND"), 1.0);
    assert_eq!(
        value(&text, "bootwave_agent_wave_hosts{stage=\"dhcp\"}"),
        3.0
    );
    assert_eq!(
        value(&text, "bootwave_agent_wave_hosts{stage=\"done\"}"),
        5.0
    );
    assert!(text.contains("# TYPE bootwave_agent_push_seconds histogram\n"));

    agent.stop().await;
    // The agent let go of the state: it opens again at once.
    drop(bootwave_agent::store::Store::open(&state).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_pushes_are_timed() {
    let (dir, state, socket) = temp();
    let (_plane, _applied) = fake_dataplane(&dir.path().join("dp.sock"));
    let live = format!("unix:{}", dir.path().join("dp.sock").display());
    let listener = Listener::bind(&Listen::Unix(socket.clone())).await.unwrap();
    let config = AgentConfig {
        state_dir: state,
        dataplanes: vec![live],
        token: None,
        resync_interval: Duration::from_secs(60),
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let options = ServeOptions {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        metrics_bound: Some(bound_tx),
        ..ServeOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve_with(config, options, listener, async {
        let _ = stop_rx.await;
    }));
    let agent = InProcess {
        endpoint: format!("unix:{}", socket.display()),
        stop: Some(stop_tx),
        task,
    };
    let addr = bound_rx.await.unwrap();
    let mut client = client(&agent.endpoint).await;
    for (i, mac) in ["02:00:00:00:00:01", "02:00:00:00:00:02"]
        .iter()
        .enumerate()
    {
        if i == 0 {
            client
                .put_subnet(v1::PutSubnetRequest {
                    subnet: Some(subnet()),
                })
                .await
                .unwrap();
        }
        let ip = format!("10.0.0.{}", 10 + i);
        let request = v1::PutHostRequest {
            host: Some(host(mac, &ip)),
        };
        assert!(
            client
                .put_host(request)
                .await
                .unwrap()
                .into_inner()
                .lagging
                .is_empty()
        );
    }
    let text = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    assert_eq!(value(&text, "bootwave_agent_push_seconds_count"), 3.0);
    assert_eq!(
        value(&text, "bootwave_agent_push_seconds_bucket{le=\"+Inf\"}"),
        3.0
    );
    let sum = value(&text, "bootwave_agent_push_seconds_sum");
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
    assert_eq!(value(&text, "bootwave_agent_push_incomplete_total"), 0.0);
    // No wave source given and no wave started: the family is there and
    // no stage holds a host.
    assert!(text.contains("# TYPE bootwave_agent_wave_hosts gauge\n"));
    for line in text
        .lines()
        .filter(|l| l.starts_with("bootwave_agent_wave_hosts{"))
    {
        assert!(line.ends_with("} 0"), "{line}");
    }
    agent.stop().await;
}

#[test]
fn the_binary_reads_a_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "state = \"state\"\nlisten = \"nowhere\"\n").unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bootwave-agent"))
            .arg("--config")
            .arg(&file)
            .args(extra)
            .env_remove("BOOTWAVE_TOKEN")
            .output()
            .unwrap()
    };
    let bad = run(&[]);
    assert_ne!(bad.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&format!("{}:2:10: listen:", file.display())),
        "{stderr}"
    );
    std::fs::write(
        &file,
        "state = \"state\"\nlisten = \"unix:/nonexistent/a.sock\"\n",
    )
    .unwrap();
    // A TCP listen flag overrides the file's; without a token or TLS the
    // agent refuses to start.
    let no_auth = run(&["--listen", "127.0.0.1:0"]);
    assert_ne!(no_auth.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&no_auth.stderr);
    assert!(stderr.contains("bearer token"), "{stderr}");

    // The state directory comes from the file, relative to it; the socket
    // from the flag.
    let socket = dir.path().join("agent.sock");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bootwave-agent"))
        .arg("--config")
        .arg(&file)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut child = AgentProcessGuard(child);
    for _ in 0..250 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(socket.exists(), "the agent never listened");
    assert!(dir.path().join("state").is_dir(), "state from the file");
    child.0.kill().unwrap();
}

/// Kills the child on drop.
struct AgentProcessGuard(std::process::Child);

impl Drop for AgentProcessGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
