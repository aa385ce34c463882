//! The harness itself: namespaces, links and cleanup behave as promised.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bootwave_e2e::{Lab, Netns, SERVER_ADDR, SERVER_IF, require_root_and_tools, sweep_stale};

#[test]
fn namespaces_and_their_processes_vanish_on_drop() -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "sleep"]);
    let ns = Netns::create("drop")?;
    let name = ns.name().to_owned();
    let mut sleeper = ns.spawn("sleep", &["30"])?;
    let pid = sleeper.pid();
    // `ip netns exec` enters the namespace just before it execs `sleep`.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns.pids()?.contains(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ns.pids()?.contains(&pid), "sleep {pid} runs inside {name}");
    drop(ns);
    assert!(
        !Path::new("/run/netns").join(&name).exists(),
        "{name} deleted"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeper.try_status().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = sleeper
        .try_status()
        .expect("sleep ended with its namespace");
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by the namespace's drop, not by its guard"
    );
    Ok(())
}

#[test]
fn sweeper_removes_namespaces_of_dead_runs_only() -> anyhow::Result<()> {
    let tools = require_root_and_tools(&["ip"]);
    // PIDs never exceed pid_max (at most 2^22), so this owner is dead.
    let stale = "bwt-4194399-0-stale";
    let ip = tools.path("ip");
    let status = std::process::Command::new(ip)
        .args(["netns", "add", stale])
        .status()?;
    assert!(status.success(), "ip netns add {stale}");
    let live = Netns::create("live")?;
    let removed = sweep_stale();
    assert!(removed.iter().any(|n| n == stale), "swept {removed:?}");
    assert!(!Path::new("/run/netns").join(stale).exists());
    assert!(
        Path::new("/run/netns").join(live.name()).exists(),
        "a live run's namespace stays"
    );
    Ok(())
}

#[test]
fn lab_clients_reach_the_server_through_the_bridge() -> anyhow::Result<()> {
    let tools = require_root_and_tools(&["ip", "busybox"]);
    let lab = Lab::star(2)?;
    let client = &lab.clients[1];
    client
        .ns
        .add_addr(&client.ifname, "10.77.0.200".parse()?, 24)?;
    let server = SERVER_ADDR.to_string();
    let out = client.ns.exec(
        tools.path("busybox"),
        &["ping", "-c", "1", "-W", "2", &server],
        Duration::from_secs(10),
    )?;
    assert!(out.contains("1 packets received"), "{out}");
    let addrs = lab
        .server
        .ip(&["-4", "-o", "addr", "show", "dev", SERVER_IF])?;
    assert!(addrs.contains("10.77.0.1/24"), "{addrs}");
    Ok(())
}

#[test]
fn a_panicking_test_still_removes_its_namespace() -> anyhow::Result<()> {
    require_root_and_tools(&["ip"]);
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let ns = Netns::create("panic").expect("namespace");
        tx.send(ns.name().to_owned()).expect("send name");
        panic!("deliberate panic while {} exists", ns.name());
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let name = rx.recv()?;
    assert!(
        !Path::new("/run/netns").join(&name).exists(),
        "{name} removed during unwinding"
    );
    Ok(())
}
