//! The simulator against its own reflector on loopback: every machine
//! goes through the whole flow, the files check out, and the last line
//! keeps its contract.

use std::process::Command;

#[test]
fn a_reflector_wave_boots_every_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("nodes.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_bootwave-wave"))
        .args(["--reflector", "--nodes", "500", "--timeout", "60", "--json"])
        .arg(&json)
        .output()
        .expect("running bootwave-wave");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Binding the relay's port 67 needs root (or CAP_NET_BIND_SERVICE).
    assert!(
        out.status.success(),
        "bootwave-wave failed ({}); it binds port 67, so run as root\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("wave: nodes 500 done 500 failed 0 time ") && last.ends_with(" s"),
        "{stdout}"
    );
    for stage in [
        "dhcp_firmware",
        "firmware_file",
        "dhcp_ipxe",
        "script",
        "boot_files",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(stage) && l.contains(" 500 ")),
            "no {stage} row for 500 machines\n{stdout}"
        );
    }
    let text = std::fs::read_to_string(&json).expect("timelines");
    assert_eq!(text.lines().count(), 500);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["done"], true, "{line}");
        // ipxe.efi, the script (186 bytes), refind.conf and refind_x64.efi of the
        // stand-ins, each checked by size and CRC.
        assert_eq!(v["bytes"], 1_048_576 + 2_000 + 270 * 1024 + 186, "{line}");
    }
}

#[test]
fn a_wave_without_a_server_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootwave-wave"))
        .args(["--nodes", "1"])
        .output()
        .expect("running bootwave-wave");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));
    let out = Command::new(env!("CARGO_BIN_EXE_bootwave-wave"))
        .args(["--nodes", "1", "--server", "127.0.0.2", "--iface", "eth9"])
        .output()
        .expect("running bootwave-wave");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--relay"));
    let out = Command::new(env!("CARGO_BIN_EXE_bootwave-wave"))
        .args(["--nodes", "1", "--reflector", "--http"])
        .output()
        .expect("running bootwave-wave");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--http: the reflector serves TFTP only")
    );
}
