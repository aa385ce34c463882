//! Per-host iPXE scripts from the running binary on loopback: two reserved
//! clients fetch the same path and each gets its own rendered script (with
//! a matching `tsize`), an unknown client gets the file of that name, and
//! a reload that switches profiles changes what the next request returns.

mod runtime_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use runtime_support::{Running, config_text, free_ports, test_dir};

/// The RRQ path both profiles serve their script at.
const PATH: &str = "boot.ipxe";
/// The file of that name in the TFTP root, for clients without a script.
const STATIC: &[u8] = b"#!ipxe\necho static file\n";

/// Profiles, then hosts `a` (127.0.0.1) and `b` (127.0.0.3) with the given
/// profiles.
fn hosts(profile_a: &str, profile_b: &str) -> String {
    format!(
        r##"
[[profiles]]
name = "rescue"
script = "{PATH}"
template = """
#!ipxe
echo rescue {{{{hostname}}}} {{{{mac}}}} {{{{ip}}}} rack {{{{label:rack}}}}
chain tftp://{{{{next-server}}}}/rescue/vmlinuz mac=${{net0/mac}}
"""

[[profiles]]
name = "local-disk"
script = "/{PATH}"
template = "#!ipxe\necho local disk for {{{{name}}}} ({{{{mac-hyphen}}}})\nsanboot --drive 0x80\n"

[[hosts]]
name = "a"
hostname = "a.lab"
mac = "02:00:00:50:00:0a"
fixed-address = "127.0.0.1"
profile = "{profile_a}"
labels = {{ rack = "r1" }}

[[hosts]]
name = "b"
mac = "02:00:00:50:00:0b"
fixed-address = "127.0.0.3"
profile = "{profile_b}"
labels = {{ rack = "r2" }}
"##
    )
}

fn rescue(host: &str, mac: &str, ip: &str, rack: &str) -> Vec<u8> {
    format!(
        "#!ipxe\necho rescue {host} {mac} {ip} rack {rack}\nchain tftp://127.0.0.1/rescue/vmlinuz mac=${{net0/mac}}\n"
    )
    .into_bytes()
}

fn local_disk(name: &str, mac: &str) -> Vec<u8> {
    format!("#!ipxe\necho local disk for {name} ({mac})\nsanboot --drive 0x80\n").into_bytes()
}

/// Downloads `name` from `from` with `tsize=0`, lock-step 512-byte blocks;
/// returns the `tsize` the server announced and the bytes.
fn fetch(from: Ipv4Addr, port: u16, name: &str) -> (u64, Vec<u8>) {
    let socket = UdpSocket::bind((from, 0)).expect("bind client");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let rrq = [&[0, 1][..], name.as_bytes(), b"\0octet\0tsize\0", b"0\0"].concat();
    socket.send_to(&rrq, ("127.0.0.1", port)).expect("send RRQ");
    let (mut tsize, mut data, mut expected) = (None, Vec::new(), 1u16);
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let packet = &buf[..n];
        match packet.get(..2) {
            Some([0, 6]) => {
                let fields: Vec<&[u8]> = packet[2..].split(|&b| b == 0).collect();
                let value = fields
                    .chunks(2)
                    .find(|kv| kv[0].eq_ignore_ascii_case(b"tsize"))
                    .and_then(|kv| std::str::from_utf8(kv.get(1)?).ok()?.parse().ok());
                tsize = value;
                socket.send_to(&[0, 4, 0, 0], peer).expect("ACK 0");
            }
            Some([0, 3]) if packet[2..4] == expected.to_be_bytes() => {
                data.extend_from_slice(&packet[4..]);
                socket
                    .send_to(&[&[0, 4][..], &packet[2..4]].concat(), peer)
                    .expect("ACK");
                if n - 4 < 512 {
                    return (tsize.expect("an OACK with tsize"), data);
                }
                expected = expected.wrapping_add(1);
            }
            Some([0, 5]) => panic!(
                "TFTP error for {name}: {:?}",
                String::from_utf8_lossy(packet)
            ),
            _ => {}
        }
    }
    panic!("download of {name} from {from} did not finish");
}

/// Fetches from `from` until the bytes equal `want` (a reload is applied
/// asynchronously) or a bound passes; returns the last bytes.
fn fetch_until(from: Ipv4Addr, port: u16, want: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, got) = fetch(from, port, PATH);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reserved_hosts_get_their_own_script_and_a_reload_switches_profiles() {
    let dir = test_dir(&[(PATH, STATIC)]);
    let (dhcp, tftp) = free_ports();
    let server = Running::start(
        dir.path(),
        &config_text(dhcp, tftp, &hosts("rescue", "local-disk")),
        dhcp,
        tftp,
        &["--backend", "portable", "--shards", "2"],
    );
    let (a, b, unknown) = (
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    );
    let a_rescue = rescue("a.lab", "02:00:00:50:00:0a", "127.0.0.1", "r1");
    let b_local = local_disk("b", "02-00-00-50-00-0b");
    let (tsize, got) = fetch(a, tftp, PATH);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&a_rescue)
    );
    assert_eq!(tsize, a_rescue.len() as u64, "tsize is the rendered size");
    let (tsize, got) = fetch(b, tftp, PATH);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&b_local)
    );
    assert_eq!(tsize, b_local.len() as u64);
    let (tsize, got) = fetch(unknown, tftp, PATH);
    assert_eq!(got, STATIC, "an unknown client gets the file store's file");
    assert_eq!(tsize, STATIC.len() as u64);

    // Swap the profiles and reload: the next requests get the other scripts.
    std::fs::write(
        dir.path().join("bootwave.toml"),
        config_text(dhcp, tftp, &hosts("local-disk", "rescue")),
    )
    .expect("rewrite config");
    server.signal(libc::SIGHUP);
    let b_rescue = rescue("b", "02:00:00:50:00:0b", "127.0.0.3", "r2");
    let a_local = local_disk("a", "02-00-00-50-00-0a");
    let got = fetch_until(b, tftp, &b_rescue);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&b_rescue),
        "{}",
        server.stderr()
    );
    let (tsize, got) = fetch(a, tftp, PATH);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&a_local)
    );
    assert_eq!(tsize, a_local.len() as u64);
    assert!(
        server
            .stderr_when(|log| log.contains("tftp: per-host script rendered"))
            .contains("tftp: per-host script rendered")
    );
    assert!(server.stop().success());
}
