//! The running binary serves files over TFTP on loopback, lock-step and
//! windowed, on both backends.

mod runtime_support;

use runtime_support::{Running, config_text, free_ports, patterned, test_dir, tftp_get};

fn downloads(backend: &str) {
    let big = patterned(300_000);
    let small = b"#!ipxe\necho hello\n".to_vec();
    let dir = test_dir(&[("big.bin", &big), ("refind.pxe", &small)]);
    let (dhcp, tftp) = free_ports();
    let server = Running::start(
        dir.path(),
        &config_text(dhcp, tftp, ""),
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
