//! The agent process refuses unsafe starts: an empty bearer token, and a
//! unix socket another agent serves; its log lines carry no terminal
//! escape codes when stderr is a file; reflection answers in v1 and v1alpha.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use agent_support::{Cli, spawn_agent, temp};

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bootwave-agent"));
    c.env_remove("BOOTWAVE_TOKEN").env_remove("RUST_LOG");
    c
}

/// Runs `cmd` to its exit, killing it after 20 s.
fn run_to_exit(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not exit: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_empty_token_file_is_refused_at_start() {
    let (dir, state, _) = temp();
    let token = dir.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let out = run_to_exit(
        agent()
            .arg("--state")
            .arg(&state)
            .args(["--listen", "127.0.0.1:0", "--token-file"])
            .arg(&token),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bearer token is empty") && stderr.contains(&*token.to_string_lossy()),
        "{stderr}"
    );
}

#[test]
fn an_empty_token_in_the_environment_is_refused_at_start() {
    let (_dir, state, _) = temp();
    let out = run_to_exit(
        agent()
            .arg("--state")
            .arg(&state)
            .args(["--listen", "127.0.0.1:0"])
            .env("BOOTWAVE_TOKEN", ""),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BOOTWAVE_TOKEN: the bearer token is empty"),
        "{stderr}"
    );
}

#[test]
fn a_second_agent_on_the_same_socket_leaves_the_first_reachable() {
    let (dir, state, socket) = temp();
    let _first = spawn_agent(&state, &socket);
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };
    cli.ok(&["status"]);
    // Another state directory too: the socket check alone must stop it.
    let out = run_to_exit(
        agent()
            .arg("--state")
            .arg(dir.path().join("other-state"))
            .arg("--listen")
            .arg(format!("unix:{}", socket.display())),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another bootwave-agent serves it"),
        "{stderr}"
    );
    cli.ok(&["status"]);
    // Same state directory: refused, and the first still answers.
    let out = run_to_exit(
        agent()
            .arg("--state")
            .arg(&state)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display())),
    );
    assert!(!out.status.success());
    cli.ok(&["status"]);
}

#[test]
fn log_lines_written_to_a_file_have_no_escape_codes() {
    let (dir, state, socket) = temp();
    let log = dir.path().join("agent.log");
    let mut child = agent()
        .arg("--state")
        .arg(&state)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .env("RUST_LOG", "debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while cli.run(&["status"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the agent never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&text).contains("listening on"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    assert!(
        !text.contains(&0x1b),
        "escape byte in the log file:\n{}",
        String::from_utf8_lossy(&text)
    );
}

/// The names `ListServices` returns over reflection `v1` and `v1alpha`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_is_served_as_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let (_dir, state, socket) = temp();
    let agent = agent_support::start_agent(&state, &socket, vec![]).await;
    let _ = agent_support::client(&agent.endpoint).await;
    let channel = bootwave_proto::channel::connect(&agent.endpoint)
        .await
        .unwrap();

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut c = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut replies = c
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("v1: {reply:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "bootwave.v1.BootwaveService"),
        "{names:?}"
    );

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut c = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let mut replies = c
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("v1alpha: {reply:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "bootwave.v1.BootwaveService"),
        "{names:?}"
    );
    agent.stop().await;
}
