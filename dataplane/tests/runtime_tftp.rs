//! The running binary serves files over TFTP on loopback, lock-step and
//! windowed, on both backends.

mod runtime_support;

use runtime_support::{Running, config_text, free_ports, patterned, test_dir, tftp_get};

fn downloads(backend: &str) {
    let big = patterned(300_000);
    let small = b"#!ipxe\necho hello\n".to_vec();
    let dir = test_dir(&[("big.bin", &big), ("refind.pxe", &small)]);
    let (dhcp, tftp) = free_ports();
    // The client downloads from 127.0.0.1: reserving that address names
    // its MAC in the transfer log lines.
    let host =
        "[[hosts]]\nname = \"n1\"\nmac = \"02:00:00:40:00:01\"\nfixed-address = \"127.0.0.1\"\n";
    let server = Running::start(
        dir.path(),
        &config_text(dhcp, tftp, host),
        dhcp,
        tftp,
        &["--backend", backend, "--shards", "2"],
    );
    assert!(server.summary.contains("2 files"), "{}", server.summary);
    assert_eq!(tftp_get(tftp, "refind.pxe", None, None), small);
    assert_eq!(
        tftp_get(tftp, "big.bin", None, None),
        big,
        "lock-step, 512-byte blocks"
    );
    assert_eq!(
        tftp_get(tftp, "big.bin", Some(1408), Some(8)),
        big,
        "windowed"
    );
    assert_eq!(
        tftp_get(tftp, "big.bin", Some(1024), Some(16)),
        big,
        "full window"
    );
    let starts = |log: &str| {
        log.lines()
            .filter(|l| l.contains("tftp: transfer started") && l.contains("02:00:00:40:00:01"))
            .count()
    };
    let log = server.stderr_when(|log| starts(log) >= 4);
    assert_eq!(
        starts(&log),
        4,
        "one start line per transfer, with the MAC:\n{log}"
    );
    assert!(log.contains("file=refind.pxe"), "{log}");
    // The last ACK of a transfer may still be in flight: wait for it.
    let log = server.stderr_when(|log| log.matches("tftp: transfer ended").count() >= 4);
    assert_eq!(log.matches("tftp: transfer ended").count(), 4, "{log}");
    assert!(server.stop().success());
}

#[test]
fn downloads_with_the_uring_backend() {
    downloads("uring");
}

#[test]
fn downloads_with_the_portable_backend() {
    downloads("portable");
}
