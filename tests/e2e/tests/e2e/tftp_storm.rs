//! A boot storm: a thousand concurrent lock-step transfers (blksize 1432,
//! no window, as iPXE asks) all finish with the right bytes, driven by
//! `benches/tftp_load.py` inside the client namespace.

use std::path::Path;
use std::time::Duration;

use bootwave_e2e::{Lab, SERVER_ADDR, ServeSpec, Server, find_tool, require_root_and_tools};
use bootwave_protocol::config::TftpAdmission;

use crate::on_each_backend;
use crate::tftp_download::pattern;

const TRANSFERS: u32 = 1000;
const FILE_LEN: usize = 64 * 1024;
const DEADLINE_SECS: u64 = 50;

on_each_backend!(a_thousand_concurrent_lockstep_transfers_finish, dnsmasq);
fn a_thousand_concurrent_lockstep_transfers_finish(server: Server) -> anyhow::Result<()> {
    let tools = require_root_and_tools(&["ip", "ss", "python3", "sha256sum", "prlimit", "dnsmasq"]);
    let root = tempfile::tempdir()?;
    let file = root.path().join("ipxe.efi");
    std::fs::write(&file, pattern(FILE_LEN, 77))?;
    let sha = std::process::Command::new(tools.path("sha256sum"))
        .arg(&file)
        .output()?;
    let sha = String::from_utf8(sha.stdout)?;
    let sha = sha.split_whitespace().next().unwrap_or_default().to_owned();
    assert_eq!(sha.len(), 64, "sha256sum output");
    let lab = Lab::star(1)?;
    // A thousand transfers from one client address: a load test, so the
    // per-client admission defaults (16 held, 20/s) are lifted.
    let spec = ServeSpec {
        tftp_admission: Some(TftpAdmission::UNLIMITED),
        ..lab.spec(Some(root.path().to_owned()), None)
    };
    let running = server.start(&lab.server, &spec)?;
    let client = &lab.clients[0];
    client
        .ns
        .add_addr(&client.ifname, "10.77.0.200".parse()?, 24)?;
    let load = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/tftp_load.py");
    let python = find_tool("python3").unwrap_or_else(|| "python3".into());
    let n = TRANSFERS.to_string();
    let deadline = DEADLINE_SECS.to_string();
    let size = FILE_LEN.to_string();
    let server_addr = SERVER_ADDR.to_string();
    let load = load.to_string_lossy().into_owned();
    let python = python.to_string_lossy().into_owned();
    let args = [
        "--nofile=8192",
        python.as_str(),
        load.as_str(),
        server_addr.as_str(),
        "ipxe.efi",
        "--transfers",
        &n,
        "--concurrency",
        &n,
        "--blksize",
        "1432",
        "--windowsize",
        "0",
        "--deadline",
        &deadline,
        "--expect-size",
        &size,
        "--expect-sha256",
        &sha,
    ];
    let out = client
        .ns
        .exec(
            tools.path("prlimit"),
            &args,
            Duration::from_secs(DEADLINE_SECS + 20),
        )
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
    println!("{server:?}: {out}");
    let field = |key: &str| -> Option<f64> {
        let at = out.find(&format!("\"{key}\""))?;
        let rest = out[at + key.len() + 2..].trim_start_matches([':', ' ']);
        let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
        rest[..end].trim().parse().ok()
    };
    let context = format!("{server:?}: {out}\n{}", running.child.tail());
    assert_eq!(field("ok"), Some(f64::from(TRANSFERS)), "{context}");
    assert_eq!(field("unfinished"), Some(0.0), "{context}");
    Ok(())
}
