//! The lease journal while running: renewals keep it small (compaction),
//! and a full disk stops ACKs but not OFFERs until space comes back, with
//! no restart.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootwave_e2e::{
    DhcpProbe, JournalSync, Lab, RunningServer, Server, discover, request_init_reboot,
    require_root_and_tools, test_mac,
};
use dhcproto::v4::MessageType;

use crate::on_each_backend;

/// Clients renewing.
const CLIENTS: u32 = 10;
/// Renewals in all.
const RENEWALS: u32 = 100_000;
/// Most the renewals may take.
const RENEW_LIMIT: Duration = Duration::from_secs(240);
/// Bytes the journal directory may hold afterwards.
const JOURNAL_BOUND: u64 = 2 << 20;
/// Size of the tmpfs under the journal in the full-disk test.
const TMPFS_SIZE: &str = "1m";
/// How long the shard may take to resume once space is back.
const RESUME_LIMIT: Duration = Duration::from_secs(8);
/// Where the data plane serves metrics, on the server namespace's loopback.
const METRICS: &str = "127.0.0.1:9167";

on_each_backend!(renewals_keep_the_journal_small);
fn renewals_keep_the_journal_small(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss"]);
    let state = tempfile::tempdir()?;
    let journal = state.path().join("journal");
    let lab = Lab::star_wide(1)?;
    let mut spec = lab.spec(None, None);
    spec.state_dir = Some(journal.clone());
    spec.journal_sync = JournalSync::Never;
    let running = server.start(&lab.server, &spec)?;
    let probe = lab.relay_probe()?;
    let leases = bind(&probe, CLIENTS)?;
    let started = Instant::now();
    let (mut acked, mut largest) = (0u32, 0u64);
    let mut round = 0u32;
    let mut rounds = Vec::with_capacity((RENEWALS / CLIENTS) as usize);
    while acked < RENEWALS && started.elapsed() < RENEW_LIMIT {
        let sent = Instant::now();
        for (i, &(mac, ip)) in leases.iter().enumerate() {
            probe.send(&request_init_reboot(mac, xid(round, i), ip))?;
        }
        acked += acks(&probe, round, leases.len())?;
        rounds.push(sent.elapsed());
        round += 1;
        if round.is_multiple_of(500) {
            largest = largest.max(dir_bytes(&journal));
        }
    }
    let took = started.elapsed();
    let tail = running.child.tail();
    anyhow::ensure!(
        acked >= RENEWALS,
        "{server:?}: {acked} renewals ACKed in {took:?} ({round} rounds)\n{tail}"
    );
    // Let a compaction that is under way end.
    std::thread::sleep(Duration::from_millis(500));
    let end = dir_bytes(&journal);
    largest = largest.max(end);
    rounds.sort_unstable();
    let at = |q: f64| rounds[((rounds.len() - 1) as f64 * q) as usize];
    println!(
        "{server:?}: {acked} renewals by {CLIENTS} clients in {took:?}: journal {end} bytes at the end, {largest} at most; \
         round of {CLIENTS} REQUEST->ACK p50 {:?} p99 {:?} max {:?}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert!(
        largest < JOURNAL_BOUND,
        "{server:?}: journal reached {largest} bytes\n{tail}"
    );
    drop(running);
    // The journal still holds every lease: a restart confirms them.
    let running = server.start(&lab.server, &spec)?;
    for (i, &(mac, ip)) in leases.iter().enumerate() {
        let reply = probe.ask(
            &request_init_reboot(mac, 0x7f00_0000 | i as u32, ip),
            Duration::from_secs(2),
        )?;
        assert_eq!(
            reply.map(|r| (r.kind, r.yiaddr)),
            Some((MessageType::Ack, ip)),
            "{server:?}: lease of client {i} after restart\n{}",
            running.child.tail()
        );
    }
    Ok(())
}

on_each_backend!(a_full_journal_disk_stops_acks_until_space_returns);
fn a_full_journal_disk_stops_acks_until_space_returns(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "mount", "umount"]);
    anyhow::ensure!(matches!(server, Server::Bootwave(_)), "bootwave only");
    let state = tempfile::tempdir()?;
    let mount = Tmpfs::mount(&state.path().join("disk"), TMPFS_SIZE)?;
    let journal = mount.path.join("journal");
    let lab = Lab::star_wide(1)?;
    let mut spec = lab.spec(None, None);
    spec.state_dir = Some(journal);
    spec.journal_sync = JournalSync::Never;
    spec.metrics = Some(METRICS.parse()?);
    let running = server.start(&lab.server, &spec)?;
    let context = |what: String| format!("{server:?}: {what}\n{}", running.child.tail());
    let probe = lab.relay_probe()?;
    let leases = bind(&probe, 4)?;
    let gauge = || journal_failed(&running, &lab);
    assert_eq!(gauge()?, 0, "{}", context("healthy journal".into()));
    let (mac, ip) = leases[0];

    // Fill the disk; the log's last page may still take a few groups.
    let filler = mount.path.join("filler");
    fill(&filler)?;
    let mut stopped_after = None;
    for n in 0..2_000u32 {
        let reply = probe.ask(
            &request_init_reboot(mac, 0x1000_0000 | n, ip),
            Duration::from_millis(300),
        )?;
        if reply.is_none_or(|r| r.kind != MessageType::Ack) {
            stopped_after = Some(n);
            break;
        }
    }
    let stopped_after =
        stopped_after.ok_or_else(|| anyhow::anyhow!(context("ACKs never stopped".into())))?;
    // While full: no ACK, OFFERs go on.
    for n in 0..3u32 {
        let reply = probe.ask(
            &request_init_reboot(mac, 0x2000_0000 | n, ip),
            Duration::from_millis(500),
        )?;
        assert!(
            reply.as_ref().is_none_or(|r| r.kind != MessageType::Ack),
            "{}",
            context(format!("an ACK while the disk is full: {reply:?}"))
        );
        let offer = probe.ask(
            &discover(test_mac(0xf1, n), 0x3000_0000 | n),
            Duration::from_secs(1),
        )?;
        assert_eq!(
            offer.map(|o| o.kind),
            Some(MessageType::Offer),
            "{}",
            context("an OFFER while the disk is full".into())
        );
    }
    let log = running.child.stderr();
    assert!(
        log.contains("lease journal failed"),
        "{}",
        context("the failure is logged".into())
    );
    // Published every 250 ms.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(gauge()?, 1, "{}", context("bootwave_journal_failed".into()));

    // Space returns: ACKs resume by themselves.
    std::fs::remove_file(&filler)?;
    let freed = Instant::now();
    let mut resumed = None;
    let mut n = 0u32;
    while freed.elapsed() < RESUME_LIMIT {
        let reply = probe.ask(
            &request_init_reboot(mac, 0x4000_0000 | n, ip),
            Duration::from_millis(250),
        )?;
        n += 1;
        if let Some(r) = reply.filter(|r| r.kind == MessageType::Ack) {
            assert_eq!(r.yiaddr, ip, "{}", context("same address".into()));
            resumed = Some(freed.elapsed());
            break;
        }
    }
    let resumed = resumed.ok_or_else(|| {
        anyhow::anyhow!(context(format!(
            "no ACK within {RESUME_LIMIT:?} of freeing the disk"
        )))
    })?;
    let log = running.child.stderr();
    assert!(
        log.contains("lease journal writable again"),
        "{}",
        context("the recovery is logged".into())
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(gauge()?, 0, "{}", context("bootwave_journal_failed".into()));
    println!(
        "{server:?}: ACKs stopped after {stopped_after} renewals on a full disk, resumed {resumed:?} after space returned"
    );
    // Every client's lease is journaled again: a restart confirms them.
    drop(running);
    let running = server.start(&lab.server, &spec)?;
    let running = &running.child;
    for (i, &(mac, ip)) in leases.iter().enumerate() {
        let reply = probe.ask(
            &request_init_reboot(mac, 0x5000_0000 | i as u32, ip),
            Duration::from_secs(2),
        )?;
        assert_eq!(
            reply.map(|r| (r.kind, r.yiaddr)),
            Some((MessageType::Ack, ip)),
            "{server:?}: lease of client {i} after restart\n{}",
            running.tail()
        );
    }
    drop(mount);
    Ok(())
}

/// `bootwave_journal_failed` of shard 0.
fn journal_failed(running: &RunningServer, lab: &Lab) -> anyhow::Result<u64> {
    let metrics = running.metrics(&lab.server)?;
    anyhow::ensure!(
        metrics.text.contains("bootwave_journal_failed{"),
        "no bootwave_journal_failed in\n{}",
        metrics.text
    );
    Ok(metrics.sum("bootwave_journal_failed", &[("shard", "0")]))
}

/// DORA for `n` clients; their MACs and addresses.
fn bind(probe: &DhcpProbe, n: u32) -> anyhow::Result<Vec<([u8; 6], Ipv4Addr)>> {
    (0..n)
        .map(|i| {
            let mac = test_mac(0xb7, i);
            let ack = probe.dora(mac, 0x0b00_0000 | i, Duration::from_secs(2))?;
            match ack {
                Some(a) if a.kind == MessageType::Ack => Ok((mac, a.yiaddr)),
                other => anyhow::bail!("no lease for client {i}: {other:?}"),
            }
        })
        .collect()
}

/// The xid of client `i` in round `round`.
fn xid(round: u32, i: usize) -> u32 {
    (round * 64) | i as u32
}

/// ACKs of round `round` received until all `n` came or the line went
/// quiet.
fn acks(probe: &DhcpProbe, round: u32, n: usize) -> anyhow::Result<u32> {
    let mut got = 0;
    while got < n as u32 {
        let Some(reply) = probe.recv(Duration::from_millis(500))? else {
            break;
        };
        if reply.kind == MessageType::Ack && reply.xid / 64 == round {
            got += 1;
        }
    }
    Ok(got)
}

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0x5a; 4096];
    for _ in 0..100_000 {
        match file.write(&chunk) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc_enospc()) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("{} never filled up", path.display())
}

/// `ENOSPC` on Linux.
fn libc_enospc() -> i32 {
    28
}

/// A tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "bwt-journal"])
            .arg(path)
            .status()?;
        anyhow::ensure!(status.success(), "mount tmpfs on {}", path.display());
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
