//! Unpredictable transfer ports: consecutive transfers from one client
//! answer from distinct ports, and an ACK from anyone but the transfer's
//! own client address and port gets ERROR 5 and moves nothing.

use std::time::Duration;

use bootwave_e2e::{Lab, SERVER_ADDR, ServeSpec, Server, find_tool, require_root_and_tools};
use bootwave_protocol::config::TftpAdmission;

use crate::on_each_backend;
use crate::tftp_download::pattern;

/// Runs in the client namespace: 60 one-block transfers (each from a fresh
/// client socket), then a windowed transfer poked by a stranger socket.
const CLIENT: &str = r#"
import json, socket, struct, sys
server = sys.argv[1]
def rrq(name, opts=()):
    b = b"\x00\x01" + name + b"\x00octet\x00"
    for k, v in opts:
        b += k + b"\x00" + v + b"\x00"
    return b
ports = []
for i in range(60):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(rrq(b"small.bin"), (server, 69))
    data, peer = s.recvfrom(2048)
    assert data[:2] == b"\x00\x03", data[:4]
    ports.append(peer[1])
    s.sendto(b"\x00\x04" + data[2:4], peer)
    s.close()
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.settimeout(3)
a.sendto(rrq(b"big.bin", [(b"windowsize", b"8"), (b"blksize", b"1024")]), (server, 69))
oack, peer = a.recvfrom(2048)
assert oack[:2] == b"\x00\x06", oack[:4]
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.settimeout(2)
b.sendto(b"\x00\x04\x00\x00", peer)
stranger = b.recvfrom(2048)[0]
# Nothing reached the real client because of the stranger's ACK.
a.settimeout(0.5)
try:
    early = a.recvfrom(2048)[0]
except socket.timeout:
    early = b""
a.settimeout(3)
a.sendto(b"\x00\x04\x00\x00", peer)
blocks = 0
while blocks < 8:
    d, p = a.recvfrom(2048)
    assert p == peer and d[:2] == b"\x00\x03", (p, d[:4])
    blocks += 1
print(json.dumps({"ports": ports, "stranger": list(stranger[:4]), "early": len(early), "blocks": blocks, "listen": 69}))
"#;

on_each_backend!(transfer_ports_are_distinct_and_only_the_peer_moves_a_transfer);
fn transfer_ports_are_distinct_and_only_the_peer_moves_a_transfer(
    server: Server,
) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "python3"]);
    let root = tempfile::tempdir()?;
    std::fs::write(root.path().join("small.bin"), pattern(100, 5))?;
    std::fs::write(root.path().join("big.bin"), pattern(1 << 20, 6))?;
    let lab = Lab::star(1)?;
    // 61 requests from one address in a few seconds: over the default
    // rate, which is not what this test is about.
    let spec = ServeSpec {
        tftp_admission: Some(TftpAdmission::UNLIMITED),
        ..lab.spec(Some(root.path().to_owned()), None)
    };
    let running = server.start(&lab.server, &spec)?;
    let client = &lab.clients[0];
    client
        .ns
        .add_addr(&client.ifname, "10.77.0.200".parse()?, 24)?;
    let python = find_tool("python3").unwrap_or_else(|| "python3".into());
    let addr = SERVER_ADDR.to_string();
    let out = client
        .ns
        .exec(
            &python,
            &["-c", CLIENT, addr.as_str()],
            Duration::from_secs(60),
        )
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| anyhow::anyhow!("{server:?}: {e}: {out}"))?;
    let ports: Vec<u64> = report["ports"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(ports.len(), 60, "{out}");
    let distinct: std::collections::HashSet<u64> = ports.iter().copied().collect();
    assert!(
        distinct.len() >= 48,
        "{server:?}: {} distinct ports of 60: {out}",
        distinct.len()
    );
    assert!(!distinct.contains(&69), "{out}");
    // ERROR 5 (unknown transfer ID) to the stranger, nothing to the client.
    assert_eq!(report["stranger"], serde_json::json!([0, 5, 0, 5]), "{out}");
    assert_eq!(report["early"], serde_json::json!(0), "{out}");
    assert_eq!(report["blocks"], serde_json::json!(8), "{out}");
    Ok(())
}
