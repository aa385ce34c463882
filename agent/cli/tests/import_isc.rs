//! `bootwave import isc-dhcpd` on the fixtures: the produced configuration,
//! the remarks, and the command's exit codes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bootwave_isc::{self as isc, FsLoader, Import, Severity};
use bootwave_protocol::config::{self, ClientArch, Config, FsyncPolicy, UnknownClients};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../isc/tests/fixtures")
        .join(name)
}

fn import(name: &str) -> (Import, Config) {
    let options = isc::Options {
        tftp_root: Some("/srv/tftp".into()),
    };
    let import = isc::import(&fixture(name), &options, &mut FsLoader).expect("imports");
    let config =
        config::parse(&import.toml, name, Path::new("/")).expect("bootwave accepts the output");
    (import, config)
}

/// `(line, severity)` of every remark about file `file`.
fn remarks(import: &Import, file: &str) -> Vec<(u32, Severity)> {
    import
        .diagnostics
        .iter()
        .filter(|d| d.file.ends_with(file))
        .map(|d| (d.line, d.severity))
        .collect()
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[test]
fn uefi_ipxe_fixture_becomes_ordered_boot_rules() {
    let (import, c) = import("uefi-ipxe.conf");
    assert_eq!(c.dhcp.default_lease_time, Duration::from_secs(3600));
    assert_eq!(c.dhcp.max_lease_time, Duration::from_secs(3600));
    assert!(c.dhcp.ping_check && c.dhcp.allow_bootp && !c.dhcp.authoritative);
    assert_eq!(c.tftp.root, PathBuf::from("/srv/tftp"));
    assert_eq!(
        c.journal.fsync,
        FsyncPolicy::Batch(Duration::from_millis(2))
    );
    let [s] = c.subnets.as_slice() else {
        panic!("one subnet: {:?}", c.subnets)
    };
    assert_eq!(s.net.to_string(), "10.20.30.0/27");
    assert_eq!(
        (s.ranges[0].start, s.ranges[0].end),
        (ip(10, 20, 30, 10), ip(10, 20, 30, 20))
    );
    assert_eq!(s.routers, [ip(10, 20, 30, 1)]);
    assert_eq!(s.broadcast, ip(10, 20, 30, 31));
    assert_eq!(s.next_server, Some(ip(10, 20, 30, 2)));
    assert_eq!(s.unknown_clients, UnknownClients::Allow);
    let rules: Vec<(Vec<ClientArch>, Option<&str>, &str)> = s
        .boot_rules
        .iter()
        .map(|r| (r.arch.clone(), r.user_class.as_deref(), r.filename.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            (vec![ClientArch::EFI_X64], Some("iPXE"), "boot.ipxe"),
            (vec![ClientArch::EFI_X64], None, "snponly.efi"),
            (vec![ClientArch::EFI_IA32], Some("iPXE"), "boot.ipxe"),
            (vec![ClientArch::EFI_IA32], None, "snponly32.efi"),
        ]
    );
    let [h] = c.hosts.as_slice() else {
        panic!("one host")
    };
    assert_eq!(
        (h.name.as_str(), h.mac),
        ("rack1-node7", [2, 0, 0x5e, 0x10, 0, 7])
    );
    assert_eq!(h.hostname.as_deref(), Some("rack1-node7"));
    assert_eq!(h.fixed_address, None);
    // Nothing is lost: only infos (allow booting, definitions, subnet-level
    // ping-check, server-name as host name).
    assert!(!import.has_warnings(), "{:?}", import.diagnostics);
    assert_eq!(
        remarks(&import, "uefi-ipxe.conf"),
        [
            (5, Severity::Info),
            (10, Severity::Info),
            (26, Severity::Info),
            (46, Severity::Info)
        ]
    );
}

#[test]
fn nfs_root_fixture_keeps_options_and_warns_about_reverse_dns() {
    let (import, c) = import("nfs-root.conf");
    assert_eq!(c.dhcp.default_lease_time, Duration::from_secs(43_200));
    assert_eq!(c.dhcp.max_lease_time, Duration::from_secs(172_800));
    assert!(c.dhcp.authoritative && c.dhcp.allow_bootp && c.dhcp.use_host_decl_names);
    let [s] = c.subnets.as_slice() else {
        panic!("one subnet")
    };
    assert_eq!(s.net.to_string(), "172.16.5.0/24");
    assert_eq!(
        (s.ranges[0].start, s.ranges[0].end),
        (ip(172, 16, 5, 100), ip(172, 16, 5, 150))
    );
    assert_eq!(s.routers, [ip(172, 16, 5, 1)]);
    assert_eq!(s.broadcast, ip(172, 16, 5, 255));
    assert_eq!(s.dns_servers, [ip(192, 0, 2, 53)]);
    assert_eq!(s.domain_name.as_deref(), Some("lab.example"));
    assert_eq!(s.time_offset, Some(3600));
    assert_eq!(s.next_server, Some(ip(172, 16, 5, 1)));
    let [rule] = s.boot_rules.as_slice() else {
        panic!("one rule")
    };
    assert!(rule.arch.is_empty() && rule.user_class.is_none() && rule.profile.is_none());
    assert_eq!(rule.filename, "pxelinux.0");
    assert!(c.hosts.is_empty());
    assert_eq!(
        remarks(&import, "nfs-root.conf"),
        [
            (1, Severity::Info),
            (8, Severity::Info),
            (9, Severity::Info),
            (13, Severity::Warning),
            (14, Severity::Info)
        ]
    );
    let warning = &import.diagnostics[3];
    assert!(warning.message.contains("get-lease-hostnames"), "{warning}");
}

#[test]
fn layered_fixture_scopes_groups_includes_and_approximations() {
    let (import, c) = import("layered.conf");
    assert_eq!(c.subnets.len(), 2);
    let (a, b) = (&c.subnets[0], &c.subnets[1]);
    // The fixed address of spare-a is cut out of the pool.
    let pools: Vec<(Ipv4Addr, Ipv4Addr)> = a.ranges.iter().map(|r| (r.start, r.end)).collect();
    assert_eq!(
        pools,
        [
            (ip(198, 51, 100, 10), ip(198, 51, 100, 19)),
            (ip(198, 51, 100, 21), ip(198, 51, 100, 40))
        ]
    );
    assert_eq!(a.ntp_servers, [ip(198, 51, 100, 123)]);
    assert_eq!(b.unknown_clients, UnknownClients::Deny);
    let files = |s: &config::Subnet| -> Vec<(Option<String>, Option<bool>, String)> {
        s.boot_rules
            .iter()
            .map(|r| (r.profile.clone(), r.ipxe_encap, r.filename.clone()))
            .collect()
    };
    let p = |s: &str| Some(s.to_owned());
    assert_eq!(
        files(a),
        [
            (p("group-26"), None, "rescue.efi".into()),
            (p("db1"), None, "db.efi".into()),
            (None, None, "undionly.kpxe".into())
        ]
    );
    assert_eq!(
        files(b),
        [
            (p("group-26"), None, "rescue.efi".into()),
            (None, Some(true), "http://198.51.100.2/boot.ipxe".into()),
            (None, None, "undionly.kpxe".into()),
        ]
    );
    let hosts: Vec<(&str, Option<&str>, Option<Ipv4Addr>)> = c
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.profile.as_deref(), h.fixed_address))
        .collect();
    assert_eq!(
        hosts,
        [
            ("spare-a", Some("group-26"), Some(ip(198, 51, 100, 20))),
            ("spare-b", Some("group-26"), None),
            ("db1", Some("db1"), Some(ip(198, 51, 100, 50))),
        ]
    );
    assert_eq!(c.hosts[2].hostname.as_deref(), Some("db1.lab"));
    let main = remarks(&import, "/layered.conf");
    let warnings: Vec<u32> = main
        .iter()
        .filter(|(_, s)| *s == Severity::Warning)
        .map(|(l, _)| *l)
        .collect();
    assert_eq!(warnings, [20, 34], "{:?}", import.diagnostics);
    assert_eq!(
        remarks(&import, "layered-hosts.conf"),
        [(6, Severity::Warning)]
    );
    // Comments in the output name the included file's lines too.
    assert!(
        import.toml.contains("layered-hosts.conf:5"),
        "{}",
        import.toml
    );
}

fn bootwave(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootwave"))
        .args(args)
        .output()
        .expect("bootwave runs")
}

#[test]
fn command_prints_toml_and_remarks() {
    let file = fixture("nfs-root.conf");
    let out = bootwave(&["import", "isc-dhcpd", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    config::parse(&stdout, "stdout", Path::new("/")).expect("stdout is a valid config");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        stderr.contains("nfs-root.conf:13: warning: not converted: get-lease-hostnames"),
        "{stderr}"
    );
}

#[test]
fn strict_refuses_warnings_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out.toml");
    let out_arg = out_path.to_str().expect("utf-8 path");
    let nfs = fixture("nfs-root.conf");
    let out = bootwave(&[
        "import",
        "isc-dhcpd",
        nfs.to_str().expect("utf-8"),
        "--strict",
        "-o",
        out_arg,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out_path.exists(), "nothing written under --strict");
    // A clean input passes --strict and lands atomically in -o.
    let uefi = fixture("uefi-ipxe.conf");
    let out = bootwave(&[
        "import",
        "isc-dhcpd",
        uefi.to_str().expect("utf-8"),
        "--strict",
        "--tftp-root",
        "/tftp",
        "-o",
        out_arg,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&out_path).expect("written");
    let c = config::parse(&text, "out.toml", dir.path()).expect("valid");
    assert_eq!(c.tftp.root, PathBuf::from("/tftp"));
    let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
}

#[test]
fn malformed_input_exits_1_with_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.conf");
    std::fs::write(
        &path,
        "subnet 10.0.0.0 netmask 255.0.0.0 {\n  range 10.0.0.5 10.0.0.9;\n",
    )
    .expect("write");
    let out = bootwave(&["import", "isc-dhcpd", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        stderr.contains("broken.conf:1: this `{` is never closed"),
        "{stderr}"
    );
    let missing = bootwave(&["import", "isc-dhcpd", "/nonexistent/dhcpd.conf"]);
    assert_eq!(missing.status.code(), Some(1));
}
