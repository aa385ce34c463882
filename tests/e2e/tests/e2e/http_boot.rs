//! The HTTP boot-file server: curl downloads are byte-identical with the
//! store (GET, HEAD, Range), hostile paths are refused, slow-loris and
//! header-flood clients are cut off while a normal one is served, a reserved host's
//! address gets its rendered script, and a file replaced mid-download
//! finishes with the old version.

use std::time::{Duration, Instant};

use bootwave_e2e::{Lab, SERVER_ADDR, ServeSpec, Server, find_tool, require_root_and_tools};

use crate::on_each_backend;
use crate::tftp_download::pattern;

/// The reserved host's MAC and address; `OTHER` is a second address of the
/// same client that no host holds.
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];
const RESERVED: &str = "10.77.0.5";
const OTHER: &str = "10.77.0.6";

/// In the client namespace: a slow-loris connection that sends one header
/// byte every 200 ms, and meanwhile a normal request on another
/// connection. Prints how long the slow one lasted and what the normal one
/// got.
const SLOW_LORIS: &str = r#"
import json, socket, sys, time, http.client
server = sys.argv[1]
slow = socket.create_connection((server, 80), timeout=10)
slow.sendall(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n")
start = time.monotonic()
normal = None
cut = None
while time.monotonic() - start < 8:
    try:
        slow.sendall(b"X")
        slow.settimeout(0.2)
        if slow.recv(1) == b"":
            cut = time.monotonic() - start
            break
    except socket.timeout:
        pass
    except OSError:
        cut = time.monotonic() - start
        break
    if normal is None and time.monotonic() - start > 0.5:
        c = http.client.HTTPConnection(server, 80, timeout=5)
        c.request("GET", "/small.bin")
        r = c.getresponse()
        normal = [r.status, len(r.read())]
print(json.dumps({"cut": cut, "normal": normal}))
"#;

/// In the client namespace: a client that floods headers as fast as it can
/// (never ending its head), and after it a normal request. Prints what the
/// flood got back, how many bytes it could send, and what the normal
/// request got.
const HEADER_FLOOD: &str = r#"
import json, socket, sys, http.client
server = sys.argv[1]
flood = socket.create_connection((server, 80), timeout=5)
sent = 0
try:
    flood.sendall(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n")
    while sent < 4 << 20:
        flood.sendall(b"X-Flood: " + b"a" * 100 + b"\r\n")
        sent += 111
except OSError:
    pass
answer = b""
try:
    flood.settimeout(2)
    while True:
        chunk = flood.recv(4096)
        if not chunk:
            break
        answer += chunk
except OSError:
    pass
c = http.client.HTTPConnection(server, 80, timeout=5)
c.request("GET", "/small.bin")
r = c.getresponse()
print(json.dumps({"sent": sent, "status": answer.split(b"\r\n")[0].decode(errors="replace"), "normal": [r.status, len(r.read())]}))
"#;

on_each_backend!(http_serves_the_store_and_refuses_attacks);
fn http_serves_the_store_and_refuses_attacks(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "curl", "python3"]);
    let root = tempfile::tempdir()?;
    let big = pattern(32 << 20, 7);
    // Bodies of 64 KiB to 8 MiB go out with sendfile, the others by copy.
    let mid = pattern((3 << 20) + 5, 6);
    let small = pattern(1000, 8);
    std::fs::write(root.path().join("big.bin"), &big)?;
    std::fs::write(root.path().join("mid.bin"), &mid)?;
    std::fs::write(root.path().join("small.bin"), &small)?;
    std::fs::write(root.path().join("boot.ipxe"), b"#!ipxe\necho plain\n")?;
    let lab = Lab::star(1)?;
    let mac = MAC.map(|b| format!("{b:02x}")).join(":");
    let spec = ServeSpec {
        extra_toml: format!(
            r##"
[http]
header-timeout = "2s"

[[profiles]]
name = "web"
script = "boot.ipxe"
template = "#!ipxe\necho rendered for {{{{hostname}}}} {{{{mac}}}}\n"

[[hosts]]
name = "node-1"
mac = "{mac}"
fixed-address = "{RESERVED}"
profile = "web"
"##
        ),
        ..lab.spec(Some(root.path().to_owned()), None)
    };
    let running = server.start(&lab.server, &spec)?;
    let client = &lab.clients[0];
    client.ns.set_mac(&client.ifname, MAC)?;
    for addr in [RESERVED, OTHER] {
        client.ns.add_addr(&client.ifname, addr.parse()?, 24)?;
    }
    let curl = find_tool("curl").unwrap_or_else(|| "curl".into());
    let out = tempfile::tempdir()?;
    let base = format!("http://{SERVER_ADDR}");
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("{server:?}: {what}: {e}\n{}", running.child.tail())
    };
    let fetch = |args: &[&str]| -> anyhow::Result<String> {
        let mut all = vec!["-sS", "--max-time", "20", "--interface", OTHER];
        all.extend_from_slice(args);
        client
            .ns
            .exec(&curl, &all, Duration::from_secs(30))
            .map_err(|e| fail(&format!("curl {args:?}"), &e))
    };

    // GET, HEAD and Range: byte-identical with the store.
    let dest = out.path().join("big.bin");
    let dest_s = dest.to_string_lossy().into_owned();
    let url = format!("{base}/big.bin");
    fetch(&["-o", &dest_s, &url])?;
    assert!(std::fs::read(&dest)? == big, "{server:?}: GET body differs");
    let head = fetch(&["-I", &url])?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", big.len())),
        "{head}"
    );
    assert!(
        head.contains("ETag: ") && head.contains("Last-Modified: "),
        "{head}"
    );
    fetch(&["-r", "1000-1999", "-o", &dest_s, &url])?;
    assert!(
        std::fs::read(&dest)? == big[1000..2000],
        "{server:?}: range differs"
    );
    // The same from a file sent with sendfile: whole, a range across
    // pages, and replaced on disk mid-download (the old version comes).
    let mid_url = format!("{base}/mid.bin");
    fetch(&["-o", &dest_s, &mid_url])?;
    assert!(
        std::fs::read(&dest)? == mid,
        "{server:?}: sendfile GET differs"
    );
    fetch(&["-r", "70000-1099999", "-o", &dest_s, &mid_url])?;
    assert!(
        std::fs::read(&dest)? == mid[70000..1100000],
        "{server:?}: sendfile range differs"
    );
    let mut download = client.ns.spawn(
        &curl,
        &[
            "-sS",
            "--max-time",
            "30",
            "--interface",
            OTHER,
            "--limit-rate",
            "1M",
            "-o",
            &dest_s,
            &mid_url,
        ],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let tmp = root.path().join(".mid.tmp");
    std::fs::write(&tmp, pattern(mid.len(), 5))?;
    std::fs::rename(&tmp, root.path().join("mid.bin"))?;
    let status = download.wait_timeout(Duration::from_secs(30))?;
    assert!(
        status.success(),
        "{server:?}: limited sendfile download failed"
    );
    assert!(
        std::fs::read(&dest)? == mid,
        "{server:?}: mid-download swap changed the bytes sent with sendfile"
    );
    let code = fetch(&[
        "-r",
        "999999999-",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ])?;
    assert_eq!(code, "416", "{server:?}");
    // Two requests on one kept-alive connection: the second connects
    // nothing.
    let small_url = format!("{base}/small.bin");
    let w = "%{num_connects}";
    let connects = fetch(&[
        "-o",
        "/dev/null",
        "-w",
        w,
        &small_url,
        "-o",
        "/dev/null",
        "-w",
        w,
        &small_url,
    ])?;
    assert_eq!(connects, "10", "{server:?}: keep-alive");

    // Hostile paths.
    let long = format!("/{}", "a".repeat(300));
    for (path, want) in [
        ("/../etc/passwd", "400"),
        ("/%2e%2e/etc/passwd", "400"),
        ("/..%2f..%2fetc%2fpasswd", "400"),
        ("//etc/passwd", "400"),
        ("/small.bin%00.png", "400"),
        (long.as_str(), "414"),
        ("/no-such-file", "404"),
    ] {
        let url = format!("{base}{path}");
        let code = fetch(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ])?;
        assert_eq!(code, want, "{server:?}: {path}");
    }
    let code = fetch(&[
        "-X",
        "POST",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &small_url,
    ])?;
    assert_eq!(code, "405", "{server:?}");

    // The reserved address gets its rendered script, another the file.
    let script = format!("{base}/boot.ipxe");
    let rendered = client
        .ns
        .exec(
            &curl,
            &["-sS", "--interface", RESERVED, &script],
            Duration::from_secs(20),
        )
        .map_err(|e| fail("script", &e))?;
    assert_eq!(
        rendered,
        format!("#!ipxe\necho rendered for node-1 {mac}\n"),
        "{server:?}"
    );
    assert_eq!(fetch(&[&script])?, "#!ipxe\necho plain\n", "{server:?}");

    // Slow loris cut off after the header timeout; a normal client served.
    let python = find_tool("python3").unwrap_or_else(|| "python3".into());
    let addr = SERVER_ADDR.to_string();
    let report = client
        .ns
        .exec(
            &python,
            &["-c", SLOW_LORIS, addr.as_str()],
            Duration::from_secs(30),
        )
        .map_err(|e| fail("slow loris", &e))?;
    let report: serde_json::Value = serde_json::from_str(report.trim())?;
    let cut = report["cut"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (1.5..5.0).contains(&cut),
        "{server:?}: slow loris lasted {report}"
    );
    assert_eq!(
        report["normal"],
        serde_json::json!([200, small.len()]),
        "{server:?}"
    );

    // A header flood is answered 431 and cut off long before 4 MiB (the
    // head is bounded by max-request-size); a normal client is served.
    let report = client
        .ns
        .exec(
            &python,
            &["-c", HEADER_FLOOD, addr.as_str()],
            Duration::from_secs(30),
        )
        .map_err(|e| fail("header flood", &e))?;
    let report: serde_json::Value = serde_json::from_str(report.trim())?;
    assert_eq!(
        report["status"], "HTTP/1.1 431 Request Header Fields Too Large",
        "{server:?}: {report}"
    );
    assert!(
        report["sent"].as_u64().unwrap_or(u64::MAX) < 4 << 20,
        "{server:?}: the flood was never cut off: {report}"
    );
    assert_eq!(
        report["normal"],
        serde_json::json!([200, small.len()]),
        "{server:?}"
    );

    // Replaced on disk mid-download: the download gets the old version.
    let limited = ["--limit-rate", "4M", "-o", &dest_s, &url];
    let mut download = client.ns.spawn(
        &curl,
        &["-sS", "--max-time", "30", "--interface", OTHER]
            .iter()
            .chain(limited.iter())
            .copied()
            .collect::<Vec<_>>(),
    )?;
    std::thread::sleep(Duration::from_millis(700));
    let newer = pattern(big.len(), 9);
    let tmp = root.path().join(".big.tmp");
    std::fs::write(&tmp, &newer)?;
    std::fs::rename(&tmp, root.path().join("big.bin"))?;
    let started = Instant::now();
    let status = download.wait_timeout(Duration::from_secs(30))?;
    assert!(status.success(), "{server:?}: limited download failed");
    // At 4 MB/s, 4 s after the swap means at least 16 MB were still to
    // come from the server then: more than the socket buffers hold.
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "{server:?}: download ended {:?} after the swap",
        started.elapsed()
    );
    assert!(
        std::fs::read(&dest)? == big,
        "{server:?}: mid-download swap changed the bytes"
    );
    // The next download has the new version (after the store reloaded).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        fetch(&["-o", &dest_s, &url])?;
        if std::fs::read(&dest)? == newer {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{server:?}: new version never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
