//! Start-up summary, the interface safety rule, and a clean exit on
//! SIGTERM.

mod runtime_support;

use std::time::Duration;

use runtime_support::{Relay, Running, discover, free_ports, test_dir};

#[test]
fn no_matching_interface_keeps_dhcp_idle_but_running() {
    let dir = test_dir(&[("a.txt", b"a")]);
    let (dhcp, tftp) = free_ports();
    // The only subnet is on no interface of this machine, and loopback is
    // never chosen implicitly: nothing may answer DHCP.
    let config = format!(
        "[dhcp]\nport = {dhcp}\n[tftp]\nport = {tftp}\nroot = \"tftp\"\n[journal]\ndir = \"state\"\n\
         [[subnets]]\nnetwork = \"127.0.0.0/8\"\nranges = [\"127.0.10.1-127.0.10.9\"]\n"
    );
    let server = Running::start(dir.path(), &config, dhcp, tftp, &["--shards", "1"]);
    assert!(
        server.summary.contains("NONE: DHCP is idle"),
        "{}",
        server.summary
    );
    assert!(server.summary.contains("1 files"), "{}", server.summary);
    let relay = Relay::new(dhcp);
    assert_eq!(
        relay.exchange(&discover([2, 0, 0, 0, 0, 9], 7), Duration::from_millis(800)),
        None,
        "a DISCOVER from an unserved interface got an answer"
    );
    // TFTP still answers on loopback.
    assert_eq!(runtime_support::tftp_get(tftp, "a.txt", None, None), b"a");
    assert!(server.stop().success());
}

#[test]
fn sigterm_exits_zero_and_summary_names_everything() {
    let dir = test_dir(&[]);
    let (dhcp, tftp) = free_ports();
    let server = Running::start(
        dir.path(),
        &runtime_support::config_text(dhcp, tftp, ""),
        dhcp,
        tftp,
        &["--shards", "2", "--log-format", "json"],
    );
    for needle in [
        "interface   lo (index",
        &format!("udp port {dhcp}"),
        &format!("udp port {tftp}"),
        "journal",
        "shards      2",
        "backend",
        "tftp data   ports",
    ] {
        assert!(
            server.summary.contains(needle),
            "missing {needle:?} in\n{}",
            server.summary
        );
    }
    let status = server.stop();
    assert_eq!(status.code(), Some(0));
}
