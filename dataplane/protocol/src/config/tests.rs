//! Parsing tests: defaults, error positions, and every checked-in config.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const MINIMAL: &str = "[[subnets]]\nnetwork = \"192.168.1.0/28\"\n";

fn ok(text: &str) -> Config {
    match parse(text, "t.toml", Path::new("/etc/bootwave")) {
        Ok(config) => config,
        Err(e) => panic!("rejected: {e}\n{text}"),
    }
}

/// The message of a rejected config, checking that it names `line:col`.
fn err_at(text: &str, line: usize, column: usize) -> String {
    let err = parse(text, "t.toml", Path::new("/")).expect_err("must be rejected");
    assert_eq!(err.location().position, Some((line, column)), "{err}");
    err.to_string()
}

#[test]
fn defaults_follow_documented_values() {
    let c = ok(MINIMAL);
    assert!(c.interfaces.is_empty());
    assert_eq!(c.dhcp.port, 67);
    assert_eq!(c.dhcp.default_lease_time, Duration::from_secs(43_200));
    assert_eq!(c.dhcp.max_lease_time, Duration::from_secs(86_400));
    assert_eq!(c.dhcp.min_lease_time, Duration::ZERO);
    assert_eq!(c.dhcp.offer_hold, Duration::from_secs(30));
    assert_eq!(c.dhcp.decline_quarantine, Duration::from_secs(3600));
    assert!(c.dhcp.authoritative && c.dhcp.allow_bootp);
    assert!(!c.dhcp.ping_check && !c.dhcp.use_host_decl_names);
    assert_eq!(c.dhcp.ping_timeout, Duration::from_millis(200));
    assert_eq!(c.tftp.port, 69);
    assert_eq!(c.tftp.root, PathBuf::from("/srv/tftp"));
    assert_eq!(
        (c.tftp.max_blksize, c.tftp.mtu, c.tftp.max_windowsize),
        (1468, 1500, 64)
    );
    assert_eq!(c.tftp.min_timeout, Duration::from_millis(200));
    assert_eq!(c.tftp.max_timeout, Duration::from_secs(3));
    assert_eq!((c.tftp.max_retries, c.tftp.max_transfers), (10, 100_000));
    assert_eq!(c.journal.dir, PathBuf::from("/var/lib/bootwave"));
    assert_eq!(
        c.journal.fsync,
        FsyncPolicy::Batch(Duration::from_millis(2))
    );
    let s = &c.subnets[0];
    assert_eq!(s.broadcast, Ipv4Addr::new(192, 168, 1, 15));
    assert!(s.ranges.is_empty() && s.routers.is_empty() && s.boot_rules.is_empty());
    assert_eq!(s.unknown_clients, UnknownClients::Allow);
    assert_eq!((s.default_lease_time, s.max_lease_time), (None, None));
}

#[test]
fn relative_paths_resolve_against_base_dir() {
    let c = ok("[tftp]\nroot = \"tftp\"\n[journal]\ndir = \"/var/x\"\n");
    assert_eq!(c.tftp.root, PathBuf::from("/etc/bootwave/tftp"));
    assert_eq!(c.journal.dir, PathBuf::from("/var/x"));
}

#[test]
fn full_example_converts_every_key() {
    let c = ok(r#"
interfaces = ["bond0"]
[dhcp]
port = 6767
default-lease-time = "2h"
max-lease-time = 7200
min-lease-time = "5m"
offer-hold = "10s"
decline-quarantine = "1d"
authoritative = false
allow-bootp = false
use-host-decl-names = true
ping-check = true
ping-timeout = "500ms"
unknown-clients = "deny"
[tftp]
port = 6969
max-blksize = 8192
mtu = 9000
max-windowsize = 16
min-timeout = "100ms"
max-timeout = "1s"
max-retries = 3
max-transfers = 50
[journal]
fsync = "always"
[[subnets]]
network = "10.1.0.0/16"
ranges = ["10.1.1.1-10.1.1.100", "10.1.2.5"]
routers = ["10.1.0.1"]
broadcast = "10.1.255.255"
dns-servers = ["9.9.9.9"]
ntp-servers = ["10.1.0.2"]
domain-name = "example.org"
time-offset = -18000
next-server = "10.1.0.3"
default-lease-time = "1h"
max-lease-time = "2h"
unknown-clients = "allow"
[[subnets.boot-rules]]
profile = "rescue"
arch = ["efi-x64", 9]
user-class = "iPXE"
ipxe-encap = true
filename = "rescue.ipxe"
next-server = "10.1.0.4"
[[subnets.boot-rules]]
arch = "bios"
filename = "undionly.kpxe"
[[hosts]]
name = "node-a"
mac = "02-00-00-00-00-0A"
fixed-address = "10.1.3.1"
hostname = "node-a.example.org"
profile = "rescue"
"#);
    assert_eq!(c.interfaces, ["bond0"]);
    assert_eq!(c.dhcp.port, 6767);
    assert_eq!(c.dhcp.min_lease_time, Duration::from_secs(300));
    assert_eq!(c.dhcp.ping_timeout, Duration::from_millis(500));
    assert_eq!(c.journal.fsync, FsyncPolicy::Always);
    assert_eq!(c.tftp.mtu, 9000);
    let s = &c.subnets[0];
    assert_eq!(s.ranges[1].start, s.ranges[1].end);
    assert_eq!(s.time_offset, Some(-18000));
    assert_eq!(s.default_lease_time, Some(Duration::from_secs(3600)));
    assert_eq!(s.unknown_clients, UnknownClients::Allow);
    let rule = &s.boot_rules[0];
    assert_eq!(rule.arch, [ClientArch::EFI_X64, ClientArch::EFI_X64_ALT]);
    assert_eq!(rule.profile.as_deref(), Some("rescue"));
    assert_eq!(rule.ipxe_encap, Some(true));
    assert_eq!(rule.next_server, Some(Ipv4Addr::new(10, 1, 0, 4)));
    assert_eq!(s.boot_rules[1].arch, [ClientArch::BIOS]);
    let h = &c.hosts[0];
    assert_eq!(h.mac, [2, 0, 0, 0, 0, 0x0a]);
    assert_eq!(h.fixed_address, Some(Ipv4Addr::new(10, 1, 3, 1)));
    let summary = c.summary().to_string();
    for needle in [
        "interfaces: bond0",
        "arch efi-x64|efi-x64-alt",
        "→ undionly.kpxe",
        "host node-a: 02:00:00:00:00:0a",
        "1 subnet(s), 1 host(s)",
    ] {
        assert!(
            summary.contains(needle),
            "{needle:?} missing from\n{summary}"
        );
    }
}

#[test]
fn errors_name_line_column_and_key() {
    let range =
        "[[subnets]]\nnetwork = \"192.168.1.0/28\"\nranges = [\"192.168.1.2-192.168.2.9\"]\n";
    let msg = err_at(range, 3, 11);
    assert_eq!(
        msg,
        "t.toml:3:11: subnets[0].ranges[0]: 192.168.2.9 is outside 192.168.1.0/28"
    );

    let mac = format!("{MINIMAL}[[hosts]]\nname = \"a\"\nmac = \"02:00:00:00:00\"\n");
    assert!(err_at(&mac, 5, 7).contains("hosts[0].mac: `02:00:00:00:00` is not a MAC address"));

    let lease = "[dhcp]\ndefault-lease-time = \"2d\"\n";
    assert!(
        err_at(lease, 2, 22)
            .contains("dhcp.default-lease-time: 2d exceeds dhcp.max-lease-time 1d (the default)")
    );

    let both = "[dhcp]\ndefault-lease-time = 100\nmax-lease-time = 50\n";
    assert!(
        err_at(both, 3, 18)
            .contains("dhcp.max-lease-time: 50s is less than dhcp.default-lease-time 100s")
    );

    let net = "[[subnets]]\nnetwork = \"192.168.1.1/24\"\n";
    assert!(err_at(net, 2, 11).contains(
        "subnets[0].network: 192.168.1.1/24 has host bits set (the network is 192.168.1.0/24)"
    ));

    let blk = "[tftp]\nmax-blksize = 4\n";
    assert!(err_at(blk, 2, 15).contains("tftp.max-blksize: 4 is outside 8-65464"));

    let win = "[tftp]\nmax-windowsize = 0\n";
    assert!(err_at(win, 2, 18).contains("tftp.max-windowsize: must be at least 1"));

    let rule =
        format!("{MINIMAL}[[subnets.boot-rules]]\narch = [7, \"amiga\"]\nfilename = \"x\"\n");
    assert!(
        err_at(&rule, 4, 12)
            .contains("subnets[0].boot-rules[0].arch: unknown architecture `amiga`")
    );

    let empty_file = format!("{MINIMAL}[[subnets.boot-rules]]\nfilename = \"\"\n");
    assert!(
        err_at(&empty_file, 4, 12)
            .contains("subnets[0].boot-rules[0].filename: the file name is empty")
    );

    let duration = "[tftp]\nmin-timeout = \"fast\"\n";
    assert!(err_at(duration, 2, 15).contains("tftp.min-timeout: `fast` is not a duration"));

    let fsync = "[journal]\nfsync = \"never\"\nfsync-interval = \"5ms\"\n";
    assert!(err_at(fsync, 3, 18).contains("only applies to fsync = \"batch\""));
}

#[test]
fn syntax_errors_name_line_and_column() {
    let unknown = "[dhcp]\nlease-time = 5\n";
    let msg = err_at(unknown, 2, 1);
    assert!(msg.contains("unknown field `lease-time`"), "{msg}");
    let wrong_type = "[tftp]\nport = \"69\"\n";
    assert!(err_at(wrong_type, 2, 8).starts_with("t.toml:2:8: "));
    let broken = "[dhcp\n";
    assert!(err_at(broken, 1, 6).starts_with("t.toml:1:6"));
    let missing = "[[subnets]]\nranges = []\n";
    assert!(err_at(missing, 1, 1).contains("missing field `network`"));
}

#[test]
fn subnet_checks() {
    let overlap = "[[subnets]]\nnetwork = \"10.0.0.0/8\"\n[[subnets]]\nnetwork = \"10.1.0.0/16\"\n";
    assert!(
        err_at(overlap, 4, 11)
            .contains("subnets[1].network: 10.1.0.0/16 overlaps subnets[0] (10.0.0.0/8)")
    );
    let router_out = format!("{MINIMAL}routers = [\"192.168.2.1\"]\n");
    assert!(err_at(&router_out, 3, 12).contains("routers[0]: 192.168.2.1 is outside"));
    let router_bcast = format!("{MINIMAL}routers = [\"192.168.1.15\"]\n");
    assert!(err_at(&router_bcast, 3, 12).contains("network or broadcast address"));
    let router_in_range =
        format!("{MINIMAL}routers = [\"192.168.1.1\"]\nranges = [\"192.168.1.1-192.168.1.4\"]\n");
    assert!(err_at(&router_in_range, 4, 11).contains("includes the router 192.168.1.1"));
    let ranges_overlap =
        format!("{MINIMAL}ranges = [\"192.168.1.2-192.168.1.5\", \"192.168.1.5-192.168.1.6\"]\n");
    assert!(err_at(&ranges_overlap, 3, 38).contains("ranges[1]: overlaps ranges[0]"));
    let inverted = format!("{MINIMAL}ranges = [\"192.168.1.9-192.168.1.5\"]\n");
    assert!(err_at(&inverted, 3, 11).contains("ends before it starts"));
    let next = format!("{MINIMAL}next-server = \"255.255.255.255\"\n");
    assert!(err_at(&next, 3, 15).contains("next-server: 255.255.255.255 is not a unicast address"));
    let sub_default = "[dhcp]\ndefault-lease-time = \"30m\"\nmax-lease-time = \"1h\"\n[[subnets]]\nnetwork = \"10.0.0.0/8\"\ndefault-lease-time = \"2h\"\n";
    let msg = err_at(sub_default, 6, 22);
    assert!(
        msg.contains("subnets[0].default-lease-time: 2h exceeds dhcp.max-lease-time 1h"),
        "{msg}"
    );
    let sub_max = "[[subnets]]\nnetwork = \"10.0.0.0/8\"\nmax-lease-time = \"1h\"\n";
    let msg = err_at(sub_max, 3, 18);
    assert!(
        msg.contains("subnets[0].max-lease-time: 1h is less than dhcp.default-lease-time 12h"),
        "{msg}"
    );
}

#[test]
fn host_checks() {
    let base = format!("{MINIMAL}ranges = [\"192.168.1.2-192.168.1.5\"]\n");
    let host = |name: &str, mac: &str, extra: &str| {
        format!("[[hosts]]\nname = \"{name}\"\nmac = \"{mac}\"\n{extra}")
    };
    let dup_mac = format!(
        "{base}{}{}",
        host("a", "02:00:00:00:00:01", ""),
        host("b", "02-00-00-00-00-01", "")
    );
    assert!(
        err_at(&dup_mac, 9, 7).contains("hosts[1].mac: 02:00:00:00:00:01 is already hosts[0] (a)")
    );
    let dup_name = format!(
        "{base}{}{}",
        host("a", "02:00:00:00:00:01", ""),
        host("a", "02:00:00:00:00:02", "")
    );
    assert!(err_at(&dup_name, 8, 8).contains("hosts[1].name: `a` is already hosts[0]"));
    let outside = format!(
        "{base}{}",
        host("a", "02:00:00:00:00:01", "fixed-address = \"10.0.0.1\"\n")
    );
    assert!(err_at(&outside, 7, 17).contains("10.0.0.1 is not inside any declared subnet"));
    let in_pool = format!(
        "{base}{}",
        host(
            "a",
            "02:00:00:00:00:01",
            "fixed-address = \"192.168.1.3\"\n"
        )
    );
    assert!(err_at(&in_pool, 7, 17).contains("inside the dynamic range 192.168.1.2-192.168.1.5"));
    let fixed = "fixed-address = \"192.168.1.9\"\n";
    let taken = format!(
        "{base}{}{}",
        host("a", "02:00:00:00:00:01", fixed),
        host("b", "02:00:00:00:00:02", fixed)
    );
    assert!(
        err_at(&taken, 11, 17)
            .contains("hosts[1].fixed-address: 192.168.1.9 is already hosts[0] (a)")
    );
    let profile = format!(
        "{base}{}",
        host("a", "02:00:00:00:00:01", "profile = \"resuce\"\n")
    );
    assert!(err_at(&profile, 7, 11).contains("no boot rule uses the profile `resuce`"));
    let bad_name = format!("{base}{}", host("a b", "02:00:00:00:00:01", ""));
    assert!(err_at(&bad_name, 5, 8).contains("is not a valid name"));
}

/// Every configuration file checked in under `assets/` must parse.
#[test]
fn every_shipped_config_parses() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets");
    let mut files = Vec::new();
    for dir in [assets.clone(), assets.join("examples")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|p| p.ends_with("bootwave.toml")),
        "assets/bootwave.toml missing: {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let base = path.parent().expect("has a directory");
        let name = path.display().to_string();
        if let Err(e) = parse(&text, &name, base) {
            panic!("{e}");
        }
    }
}

#[test]
fn shipped_config_declares_the_guide_setup() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/bootwave.toml");
    let text = std::fs::read_to_string(&path).expect("assets/bootwave.toml");
    let c = parse(&text, "bootwave.toml", Path::new("/opt/bw")).expect("valid");
    assert_eq!(c.tftp.root, PathBuf::from("/opt/bw/tftp"));
    let s = &c.subnets[0];
    assert_eq!(s.net.to_string(), "192.168.1.0/28");
    assert_eq!(
        (s.ranges[0].start, s.ranges[0].end),
        (Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 5))
    );
    assert_eq!(s.routers, [Ipv4Addr::new(192, 168, 1, 1)]);
    assert_eq!(s.next_server, Some(Ipv4Addr::new(192, 168, 1, 1)));
    assert!(c.dhcp.ping_check);
    assert_eq!(c.dhcp.default_lease_time, Duration::from_secs(7200));
    assert_eq!(c.dhcp.max_lease_time, Duration::from_secs(7200));
    let files: Vec<(&[ClientArch], Option<&str>, &str)> = s
        .boot_rules
        .iter()
        .map(|r| {
            (
                r.arch.as_slice(),
                r.user_class.as_deref(),
                r.filename.as_str(),
            )
        })
        .collect();
    let x64: &[ClientArch] = &[ClientArch::EFI_X64, ClientArch::EFI_X64_ALT];
    let ia32: &[ClientArch] = &[ClientArch::EFI_IA32];
    assert_eq!(
        files,
        [
            (x64, Some("iPXE"), "refind.pxe"),
            (x64, None, "ipxe.efi"),
            (ia32, Some("iPXE"), "refind.pxe"),
            (ia32, None, "ipxe32.efi"),
        ]
    );
    assert_eq!(c.hosts[0].name, "node_1");
    assert_eq!(c.hosts[0].hostname.as_deref(), Some("node_1"));
}

#[test]
fn ipv6_router_advertisements_default_to_minimal_and_accept_off() {
    assert_eq!(
        ok(MINIMAL).ipv6.router_advertisements,
        RouterAdvertisements::Minimal
    );
    let off = ok(&format!(
        "[ipv6]\nrouter-advertisements = \"off\"\n{MINIMAL}"
    ));
    assert_eq!(off.ipv6.router_advertisements, RouterAdvertisements::Off);
    let minimal = ok(&format!(
        "[ipv6]\nrouter-advertisements = \"minimal\"\n{MINIMAL}"
    ));
    assert_eq!(
        minimal.ipv6.router_advertisements,
        RouterAdvertisements::Minimal
    );
    let msg = err_at(
        &format!("[ipv6]\nrouter-advertisements = \"full\"\n{MINIMAL}"),
        2,
        25,
    );
    assert!(
        msg.contains("ipv6.router-advertisements") && msg.contains("`full`"),
        "{msg}"
    );
    err_at(&format!("[ipv6]\nprefix = \"fd00::/64\"\n{MINIMAL}"), 2, 1);
}

#[test]
fn tftp_admission_keys_default_convert_and_refuse_zero() {
    assert_eq!(ok("").tftp.admission, TftpAdmission::DEFAULT);
    assert_eq!(
        (
            TftpAdmission::DEFAULT.max_transfers_per_client,
            TftpAdmission::DEFAULT.new_transfers_per_second
        ),
        (16, 20)
    );
    let c = ok(
        "[tftp]\nmax-transfers-per-client = 4\nnew-transfers-per-second = 2\nnew-transfers-burst = 8\n",
    );
    assert_eq!(
        c.tftp.admission,
        TftpAdmission {
            max_transfers_per_client: 4,
            new_transfers_per_second: 2,
            new_transfers_burst: 8,
        }
    );
    let zero = "[tftp]\nmax-transfers-per-client = 0\n";
    assert!(err_at(zero, 2, 28).contains("tftp.max-transfers-per-client: must be at least 1"));
    let zero = "[tftp]\nnew-transfers-burst = 0\n";
    assert!(err_at(zero, 2, 23).contains("tftp.new-transfers-burst: must be at least 1"));
}

#[test]
fn relays_and_dynamic_bootp_keys() {
    let c = ok(&format!(
        "[dhcp]\nrelays = [\"10.0.0.0/8\", \"192.0.2.7\"]\n{MINIMAL}dynamic-bootp = true\ndynamic-bootp-lease-length = \"1h\"\n"
    ));
    assert_eq!(
        c.dhcp.relays,
        vec![
            Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).expect("net"),
            Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 7), 32).expect("net"),
        ]
    );
    assert!(c.subnets[0].dynamic_bootp);
    assert_eq!(
        c.subnets[0].dynamic_bootp_lease_length,
        Some(Duration::from_secs(3600))
    );
    let d = ok(MINIMAL);
    assert!(d.dhcp.relays.is_empty() && !d.subnets[0].dynamic_bootp);

    let twice = "[dhcp]\nrelays = [\"10.0.0.1\", \"10.0.0.1/32\"]\n";
    assert!(err_at(twice, 2, 23).contains("dhcp.relays[1]: 10.0.0.1/32 is listed twice"));
    let alone = format!("{MINIMAL}dynamic-bootp-lease-length = 60\n");
    assert!(
        err_at(&alone, 3, 30).contains(
            "subnets[0].dynamic-bootp-lease-length: only applies with dynamic-bootp = true"
        )
    );
    let long = format!("{MINIMAL}dynamic-bootp = true\ndynamic-bootp-lease-length = \"2d\"\n");
    assert!(err_at(&long, 4, 30).contains("exceeds the maximum lease time 1d"));
}

#[test]
fn http_section() {
    let off = ok("[tftp]\n");
    assert!(!off.http.enabled, "no [http]: not served");
    let on = ok("[http]\n");
    assert!(on.http.enabled);
    assert_eq!(
        (
            on.http.port,
            on.http.max_connections_per_client,
            on.http.max_connections
        ),
        (80, 32, 16_384)
    );
    assert_eq!(
        (
            on.http.header_timeout,
            on.http.idle_timeout,
            on.http.max_request_size
        ),
        (Duration::from_secs(10), Duration::from_secs(60), 8192)
    );
    let c = ok(
        "[http]\nenabled = false\nport = 8080\nmax-connections-per-client = 4\nmax-connections = 10\nheader-timeout = \"2s\"\nidle-timeout = \"5s\"\nmax-request-size = 2048\n",
    );
    assert!(!c.http.enabled);
    assert_eq!((c.http.port, c.http.max_connections_per_client), (8080, 4));
    assert_eq!(c.http.header_timeout, Duration::from_secs(2));
    assert!(err_at("[http]\nport = 0\n", 2, 8).contains("http.port: must be a port number"));
    let over = "[http]\nmax-connections = 2\nmax-connections-per-client = 3\n";
    assert!(err_at(over, 3, 30).contains("is more than http.max-connections (2)"));
    assert!(err_at("[http]\nmax-request-size = 10\n", 2, 20).contains("http.max-request-size"));
    assert!(err_at("[http]\nheader-timeout = \"0s\"\n", 2, 18).contains("http.header-timeout"));
    let unknown = parse("[http]\nportt = 1\n", "t.toml", Path::new("/")).expect_err("unknown key");
    assert!(unknown.to_string().contains("portt"), "{unknown}");
}

#[test]
fn http_boot_rules_take_a_path() {
    let rule = |extra: &str| {
        format!("[http]\n{MINIMAL}[[subnets.boot-rules]]\narch = 16\nhttp = true\n{extra}")
    };
    let c = ok(&rule("filename = \"efi/ipxe.efi?x=1\"\n"));
    let r = &c.subnets[0].boot_rules[0];
    assert!(r.http);
    assert_eq!(r.filename, "efi/ipxe.efi?x=1");
    // No next-server: the answering server's own address, port 80.
    let shown = c.summary().to_string();
    assert!(
        shown.contains("→ http://<this server>/efi/ipxe.efi?x=1"),
        "{shown}"
    );
    assert!(!shown.contains("warning"));
    // The rule's next-server and the [http] port, as the reply writes them.
    let on = ok(&format!(
        "[http]\nport = 8080\n{MINIMAL}[[subnets.boot-rules]]\narch = 16\nhttp = true\nnext-server = \"192.168.1.2\"\nfilename = \"/efi/ipxe.efi\"\n"
    ));
    let shown = on.summary().to_string();
    assert!(
        shown.contains("→ http://192.168.1.2:8080/efi/ipxe.efi\n"),
        "{shown}"
    );
    let plain = ok(&format!(
        "{MINIMAL}[[subnets.boot-rules]]\nfilename = \"x\"\n"
    ));
    assert!(!plain.subnets[0].boot_rules[0].http, "off by default");

    let url = rule("filename = \"http://10.0.0.1/ipxe.efi\"\n");
    assert!(err_at(&url, 7, 12).contains("boot-rules[0].filename: is already a URL"));
    let space = rule("filename = \"my file\"\n");
    assert!(err_at(&space, 7, 12).contains("contains ' '"));
    let long = rule(&format!(
        "filename = \"{}\"\n",
        "a".repeat(MAX_HTTP_PATH + 1)
    ));
    assert!(err_at(&long, 7, 12).contains("at most 226"));
    let longest = ok(&rule(&format!(
        "filename = \"{}\"\n",
        "a".repeat(MAX_HTTP_PATH)
    )));
    assert_eq!(longest.subnets[0].boot_rules[0].filename.len(), 226);

    // Without [http] on this data plane: accepted, and `check` says who
    // must serve the URLs.
    let elsewhere = ok(&format!(
        "{MINIMAL}[[subnets.boot-rules]]\nhttp = true\nfilename = \"ipxe.efi\"\n"
    ));
    let summary = elsewhere.summary().to_string();
    assert!(summary.contains("http: off"), "{summary}");
    assert!(
        summary.contains("warning: 1 boot rule(s) with `http = true`"),
        "{summary}"
    );
}

#[test]
fn http_listen_backlog_follows_max_connections() {
    // The default holds a 10,000-connection burst (the kernel then caps it
    // at net.core.somaxconn); a small cap keeps the former 1024.
    assert_eq!(ok("[http]\n").http.listen_backlog(), 16_384);
    let small = ok("[http]\nmax-connections = 10\nmax-connections-per-client = 4\n");
    assert_eq!(small.http.listen_backlog(), 1024);
    let huge = HttpSettings {
        max_connections: u32::MAX,
        ..HttpSettings::default()
    };
    assert_eq!(huge.listen_backlog(), i32::MAX);
}
