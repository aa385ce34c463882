//! Large downloads with each real TFTP client: 32 MiB with the options each
//! client asks (65 536 blocks of 512 bytes end exactly at the block-number
//! wrap), and 100 MiB at 512-byte blocks, which wraps the block number
//! three times.

use std::path::Path;
use std::time::{Duration, Instant};

use bootwave_e2e::{Lab, SERVER_ADDR, Server, TftpClient, require_root_and_tools};

use crate::on_each_backend;
use crate::tftp_download::pattern;

const MIB: usize = 1 << 20;

on_each_backend!(tftp_32mib_atftp_blksize_1428_windowsize_16, dnsmasq);
fn tftp_32mib_atftp_blksize_1428_windowsize_16(server: Server) -> anyhow::Result<()> {
    download(server, TftpClient::AtftpWindow16, 32 * MIB, 50)
}

on_each_backend!(tftp_32mib_curl_blksize_1432, dnsmasq);
fn tftp_32mib_curl_blksize_1432(server: Server) -> anyhow::Result<()> {
    download(server, TftpClient::Curl1432, 32 * MIB, 50)
}

on_each_backend!(tftp_32mib_busybox, dnsmasq);
fn tftp_32mib_busybox(server: Server) -> anyhow::Result<()> {
    download(server, TftpClient::Busybox, 32 * MIB, 55)
}

on_each_backend!(tftp_32mib_tftp_hpa, dnsmasq);
fn tftp_32mib_tftp_hpa(server: Server) -> anyhow::Result<()> {
    download(server, TftpClient::TftpHpa, 32 * MIB, 55)
}

// Measured here: about 12 s per backend (the limit below leaves room for a
// loaded machine).
on_each_backend!(tftp_100mib_at_512_byte_blocks_wraps_the_block_number);
fn tftp_100mib_at_512_byte_blocks_wraps_the_block_number(server: Server) -> anyhow::Result<()> {
    download(server, TftpClient::TftpHpa, 100 * MIB, 290)
}

/// Serves a `len`-byte file and downloads it once with `client` within
/// `limit_secs`; prints the time taken.
fn download(server: Server, client: TftpClient, len: usize, limit_secs: u64) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "curl", "atftp", "busybox", "tftp", "dnsmasq"]);
    let root = tempfile::tempdir()?;
    let bytes = pattern(len, 0x5eed);
    std::fs::write(root.path().join("big.bin"), &bytes)?;
    let lab = Lab::star(1)?;
    let running = server.start(&lab.server, &lab.spec(Some(root.path().to_owned()), None))?;
    let ns = &lab.clients[0];
    ns.ns.add_addr(&ns.ifname, "10.77.0.200".parse()?, 24)?;
    let out = tempfile::tempdir()?;
    let dest = out.path().join("big.bin");
    let started = Instant::now();
    client
        .get_within(
            &ns.ns,
            SERVER_ADDR,
            "big.bin",
            &dest,
            Duration::from_secs(limit_secs),
        )
        .map_err(|e| anyhow::anyhow!("{server:?} {client:?}: {e}\n{}", running.child.tail()))?;
    let took = started.elapsed();
    println!(
        "{server:?} {client:?}: {} MiB in {:.1} s ({:.1} MB/s)",
        len / MIB,
        took.as_secs_f64(),
        len as f64 / took.as_secs_f64() / 1e6
    );
    assert_same(&dest, &bytes, &format!("{server:?} {client:?}"))
}

fn assert_same(path: &Path, expected: &[u8], what: &str) -> anyhow::Result<()> {
    let got = std::fs::read(path)?;
    assert_eq!(got.len(), expected.len(), "{what}: length");
    let first_bad = got.iter().zip(expected).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "{what}: first differing byte");
    Ok(())
}
