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
        "tftp data   a random ephemeral port per transfer",
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

/// `GET /metrics` from `addr`, the body only.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[test]
fn metrics_count_dhcp_and_tftp() {
    let dir = test_dir(&[("f.bin", b"0123456789")]);
    let (dhcp, tftp) = free_ports();
    let server = Running::start(
        dir.path(),
        &runtime_support::config_text(dhcp, tftp, ""),
        dhcp,
        tftp,
        &["--shards", "2", "--metrics", "127.0.0.1:0"],
    );
    let addr = server
        .summary
        .lines()
        .find_map(|l| l.split("http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in\n{}", server.summary))
        .to_owned();
    let relay = Relay::new(dhcp);
    relay.lease([2, 0, 0, 0x30, 0, 1], 0x77);
    assert_eq!(
        runtime_support::tftp_get(tftp, "f.bin", None, None),
        b"0123456789"
    );
    let sum = |text: &str, prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let mut text = String::new();
    for _ in 0..40 {
        text = scrape(&addr);
        if sum(&text, "bootwave_tftp_transfers_completed_total") == 1
            && sum(&text, "bootwave_journal_records_total") >= 1
            && sum(
                &text,
                "bootwave_dhcp_pool_addresses{subnet=\"127.0.0.0/8\",shard=\"0\",state=\"bound\"}",
            ) + sum(
                &text,
                "bootwave_dhcp_pool_addresses{subnet=\"127.0.0.0/8\",shard=\"1\",state=\"bound\"}",
            ) == 1
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let discovers: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("bootwave_dhcp_messages_total") && l.contains("type=\"discover\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    // The relayed DISCOVER reaches only the owning shard (chaddr steering).
    assert_eq!(discovers, 1, "{text}");
    assert_eq!(
        sum(&text, "bootwave_tftp_transfers_completed_total"),
        1,
        "{text}"
    );
    assert!(sum(&text, "bootwave_journal_records_total") >= 1, "{text}");
    // 200 pool addresses across the two slices: one bound, the rest free.
    let pool = |state: &str| {
        (0..2)
            .map(|shard| {
                sum(
                    &text,
                    &format!("bootwave_dhcp_pool_addresses{{subnet=\"127.0.0.0/8\",shard=\"{shard}\",state=\"{state}\"}}"),
                )
            })
            .sum::<u64>()
    };
    assert_eq!((pool("bound"), pool("free")), (1, 199), "{text}");
    assert!(
        text.contains("bootwave_journal_commit_seconds_bucket"),
        "{text}"
    );
    assert!(server.stop().success());
}

#[test]
fn ping_check_holds_back_addresses_that_answer() {
    let dir = test_dir(&[]);
    let (dhcp, tftp) = free_ports();
    // Every 127.0.0.0/8 address answers an echo on loopback, so every
    // probed address must be taken out of use and no OFFER may leave.
    let config = runtime_support::config_text(dhcp, tftp, "").replace(
        "ping-check = false",
        "ping-check = true\nping-timeout = \"100ms\"",
    );
    let server = Running::start(
        dir.path(),
        &config,
        dhcp,
        tftp,
        &["--shards", "1", "--metrics", "127.0.0.1:0"],
    );
    if !(server.summary.contains("ping-check on (") && server.summary.contains("ICMP")) {
        panic!("no ICMP prober in this environment:\n{}", server.summary);
    }
    let relay = Relay::new(dhcp);
    let reply = relay.exchange(
        &discover([2, 0, 0, 0x40, 0, 1], 0x31),
        Duration::from_millis(1500),
    );
    assert_eq!(reply, None, "an address that answered a ping was offered");
    let addr = server
        .summary
        .lines()
        .find_map(|l| l.split("http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("metrics address")
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(&addr);
    let answered: u64 = text
        .lines()
        .filter(|l| l.starts_with("bootwave_dhcp_ping_checks_total") && l.contains("\"answered\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(answered >= 1, "{text}");
    assert!(server.stop().success());
}
