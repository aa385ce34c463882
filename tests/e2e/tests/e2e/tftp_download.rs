//! Real TFTP clients download files intact from each server.

use std::path::Path;

use bootwave_e2e::{Lab, SERVER_ADDR, TftpClient, require_root_and_tools};

use crate::SERVERS;

/// Deterministic file contents (no RNG needed): an LCG byte stream.
pub(crate) fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn every_tftp_client_downloads_exact_bytes() -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "dnsmasq", "curl", "atftp", "busybox", "tftp"]);
    let root = tempfile::tempdir()?;
    // Sizes around block boundaries: empty, exactly one 512 block, a
    // multiple of 1432, and a ~1 MiB file like ipxe.efi.
    let files = [
        ("empty.bin", Vec::new()),
        ("one-block.bin", pattern(512, 1)),
        ("exact-1432.bin", pattern(1432 * 3, 2)),
        ("ipxe.efi", pattern(1_040_000, 3)),
    ];
    for (name, bytes) in &files {
        std::fs::write(root.path().join(name), bytes)?;
    }
    for &server in SERVERS {
        let lab = Lab::star(1)?;
        let spec = lab.spec(Some(root.path().to_owned()), Some("ipxe.efi"));
        let running = server.start(&lab.server, &spec)?;
        let client = &lab.clients[0];
        client
            .ns
            .add_addr(&client.ifname, "10.77.0.200".parse()?, 24)?;
        let out = tempfile::tempdir()?;
        for tool in TftpClient::ALL {
            for (name, bytes) in &files {
                // curl 7.88 cannot fetch an empty file over TFTP from any
                // server ("getpeername() failed"): a client limitation.
                if tool == TftpClient::Curl && bytes.is_empty() {
                    continue;
                }
                let dest = out.path().join(format!("{tool:?}-{name}"));
                tool.get(&client.ns, SERVER_ADDR, name, &dest)
                    .map_err(|e| {
                        anyhow::anyhow!("{server:?} {tool:?} {name}: {e}\n{}", running.child.tail())
                    })?;
                assert_same(&dest, bytes, &format!("{server:?} {tool:?} {name}"))?;
            }
        }
    }
    Ok(())
}

#[test]
fn missing_file_is_an_error_not_a_hang() -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "dnsmasq", "atftp"]);
    let root = tempfile::tempdir()?;
    for &server in SERVERS {
        let lab = Lab::star(1)?;
        let _running = server.start(&lab.server, &lab.spec(Some(root.path().to_owned()), None))?;
        let client = &lab.clients[0];
        client
            .ns
            .add_addr(&client.ifname, "10.77.0.200".parse()?, 24)?;
        let dest = root.path().join("never-written");
        let started = std::time::Instant::now();
        let result = TftpClient::Atftp.get(&client.ns, SERVER_ADDR, "no-such-file", &dest);
        assert!(
            result.is_err(),
            "{server:?}: downloading a missing file must fail"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{server:?}: error came late"
        );
    }
    Ok(())
}

fn assert_same(path: &Path, expected: &[u8], what: &str) -> anyhow::Result<()> {
    let got = std::fs::read(path)?;
    assert_eq!(got.len(), expected.len(), "{what}: length");
    assert!(got == expected, "{what}: contents differ");
    Ok(())
}
