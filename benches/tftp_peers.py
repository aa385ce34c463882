#!/usr/bin/env python3
"""TFTP peer benchmark: concurrent downloads against tftpd-hpa, dnsmasq and bootwave.

Layout: server namespace `srv0` 10.77.0.1/24 ── veth ── client namespace
`eth0` 10.77.0.2/24 running benches/tftp_load.py (one asyncio process). Each
server is started fresh per scenario, serving the same root:
- ipxe-lockstep: 200 concurrent downloads of a 1 MiB `ipxe.efi`, blksize 1432,
  no window (what iPXE asks);
- ovmf-window4: the same with blksize 1468 and windowsize 4 (what OVMF asks;
  servers without RFC 7440 ignore the window and run lock-step);
- rrq-burst: 1000 concurrent downloads of a 4 KiB file (first-RRQ losses).
Measured: transfers/s, MB/s, failures, first-RRQ losses, retransmissions,
what was granted, p50/p99 transfer time, and server CPU time per transfer
(utime+stime+cutime+cstime of the server from /proc/<pid>/stat, so tftpd-hpa's
forked per-transfer children are counted once reaped).
"""

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SERVER, CLIENT, PREFIX = "10.77.0.1", "10.77.0.2", 24

SCENARIOS = {
    "ipxe-lockstep": {"file": "ipxe.efi", "transfers": 200, "concurrency": 200, "blksize": 1432, "windowsize": 0},
    "ovmf-window4": {"file": "ipxe.efi", "transfers": 200, "concurrency": 200, "blksize": 1468, "windowsize": 4},
    "rrq-burst": {"file": "refind.conf", "transfers": 1000, "concurrency": 1000, "blksize": 1432, "windowsize": 0},
}
FILES = {"ipxe.efi": 1_048_576, "refind.conf": 4096}


def start_tftpd_hpa(ns, iface, root, workdir):
    # -L: stay in the foreground; -s: chroot to root; -u root: no user switch.
    return netns.Proc(ns, ["in.tftpd", "-L", "-a", f"{SERVER}:69", "-s", root, "-u", "root"],
                      os.path.join(workdir, "tftpd-hpa.log"))


def start_dnsmasq(ns, iface, root, workdir):
    argv = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={iface}",
            "--bind-interfaces", "--user=root", "--pid-file=", "--log-facility=-", "--quiet-tftp",
            "--enable-tftp", f"--tftp-root={root}", "--tftp-max=2000"]
    return netns.Proc(ns, argv, os.path.join(workdir, "dnsmasq.log"))


def start_bootwave(ns, iface, root, workdir, backend):
    state = tempfile.mkdtemp(prefix="bootwave-", dir=workdir)
    path = os.path.join(state, "bootwave.toml")
    with open(path, "w") as f:
        f.write(netns.bootwave_config(iface, SERVER, "10.77.0.0", PREFIX, "10.77.0.10", "10.77.0.250", 3600,
                                      state, tftp_root=root, boot_file="ipxe.efi", **netns.BENCH_FSYNC))
    return netns.Proc(ns, netns.bootwave_argv(REPO, path, backend), os.path.join(state, "bootwave.log"),
                      env=netns.BOOTWAVE_ENV)


SERVERS = {
    "tftpd-hpa": start_tftpd_hpa,
    "dnsmasq": start_dnsmasq,
    "bootwave-uring": lambda ns, iface, root, wd: start_bootwave(ns, iface, root, wd, "uring"),
    "bootwave-portable": lambda ns, iface, root, wd: start_bootwave(ns, iface, root, wd, "portable"),
}


def make_root(root):
    sums = {}
    for name, size in FILES.items():
        data = bytes((i * 2654435761 >> 13) & 0xFF for i in range(size))
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    os.chmod(root, 0o755)
    return sums


def run(lab, server, scenario, root, sums, workdir, deadline):
    spec = SCENARIOS[scenario]
    proc = SERVERS[server](lab.server, lab.server_if, root, workdir)
    try:
        netns.wait_udp_bound(lab.server, 69, proc=proc)
        cpu0 = proc.cpu_seconds()
        argv = [sys.executable, os.path.join(HERE, "tftp_load.py"), SERVER, spec["file"],
                "--transfers", str(spec["transfers"]), "--concurrency", str(spec["concurrency"]),
                "--blksize", str(spec["blksize"]), "--windowsize", str(spec["windowsize"]),
                "--deadline", str(deadline), "--expect-size", str(FILES[spec["file"]]),
                "--expect-sha256", sums[spec["file"]]]
        out = lab.client.run(*argv, timeout=deadline + 30)
        time.sleep(0.5)  # let tftpd-hpa reap its last children
        cpu1 = proc.cpu_seconds()
        alive = proc.alive()
    finally:
        proc.stop()
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"tftp_load failed ({out.returncode}): {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    cpu_s = cpu1 - cpu0
    result.update(server=server, scenario=scenario, server_alive=alive, server_cpu_s=cpu_s,
                  cpu_ms_per_transfer=cpu_s * 1e3 / result["ok"] if result["ok"] else float("nan"))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", choices=sorted(SERVERS) + ["bootwave"],
                    help="server to measure (repeatable; bootwave = both backends; default tftpd-hpa, dnsmasq)")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--deadline", type=float, default=120.0, help="limit per run, seconds (max 300)")
    ap.add_argument("--json", help="write all results as JSON here")
    args = ap.parse_args()
    servers = args.server or ["tftpd-hpa", "dnsmasq"]
    servers = [b for s in servers for b in (["bootwave-uring", "bootwave-portable"] if s == "bootwave" else [s])]
    scenarios = args.scenario or list(SCENARIOS)
    deadline = min(args.deadline, 300.0)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    netns.init()
    netns.require("dnsmasq", *(["in.tftpd"] if "tftpd-hpa" in servers else []))
    print(f"load average before the run: {os.getloadavg()}", flush=True)
    lab = netns.PairLab(SERVER, CLIENT, PREFIX)
    results = []
    with tempfile.TemporaryDirectory(prefix="bwt-tftp-bench-") as workdir:
        root = os.path.join(workdir, "root")
        os.mkdir(root)
        sums = make_root(root)
        for scenario in scenarios:
            for server in servers:
                r = run(lab, server, scenario, root, sums, workdir, deadline)
                results.append(r)
                print(f"{scenario:14} {server:10} ok {r['ok']:5}/{r['transfers']:<5} {r['transfers_per_s']:8.1f} tr/s "
                      f"{r['mb_per_s']:7.2f} MB/s  unfinished {r['unfinished']}  first-RRQ losses {r['first_rrq_losses']:4}  "
                      f"retx {r['retransmits']:5}  cpu {r['cpu_ms_per_transfer']:.2f} ms/tr  "
                      f"p50/p99 {r['p50_s'] or float('nan'):.3f}/{r['p99_s'] or float('nan'):.3f} s  "
                      f"granted {r['granted']}  failures {r['failures']}", flush=True)
    lab.delete()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    summarize(results)


def summarize(results):
    """Per scenario, every server's figures and their ratios to tftpd-hpa
    (when it ran) measured in the same run."""
    ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b else "–"
    print("\n| scenario | server | ok | tr/s | ×hpa | MB/s | first-RRQ losses | retx | CPU ms/tr | ×hpa | "
          "p50 / p99 s | granted |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ref = next((x for x in results if x["scenario"] == r["scenario"] and x["server"] == "tftpd-hpa"), None)
        print(f"| {r['scenario']} | {r['server']} | {r['ok']}/{r['transfers']} | {r['transfers_per_s']:.1f} | "
              f"{ratio(r['transfers_per_s'], ref and ref['transfers_per_s'])} | {r['mb_per_s']:.2f} | "
              f"{r['first_rrq_losses']} | {r['retransmits']} | {r['cpu_ms_per_transfer']:.2f} | "
              f"{ratio(r['cpu_ms_per_transfer'], ref and ref['cpu_ms_per_transfer'])} | "
              f"{r['p50_s'] or float('nan'):.3f} / {r['p99_s'] or float('nan'):.3f} | {r['granted']} |")


if __name__ == "__main__":
    main()
