#!/usr/bin/env python3
"""Bounded memory under churn: the data plane's RSS and journal through
1,000,000 DHCP cycles of fresh MACs.

Layout: server namespace `srv0` 10.80.0.1/16 ── veth ── client namespace
`eth0` 10.80.0.2/16, where this script acts as a relay agent (bound to
10.80.0.2:67, `giaddr` set, as perfdhcp's relay mode): replies come back by
unicast, datagrams reach the owning shard by the kernel's chaddr steering.
Pool 10.80.1.0 – 10.80.255.254 (65,279 addresses), leases of 3600 s.

One cycle is one fresh MAC (never seen before): DISCOVER → OFFER,
REQUEST → ACK, RELEASE. Cycles run in batches (DISCOVERs of the batch back to
back, then the REQUESTs, then the RELEASEs), so the server always has work;
a reply missing after `--quiet` seconds abandons that cycle (counted).

Reported at start, after 100k cycles and at the end (and every `--every`
cycles): the data plane's VmRSS/VmHWM (/proc/<pid>/status), the journal
directory's bytes, and the journal's compactions read from the data plane's
debug log (`journal compacted log=… snapshot=… capture_us=… switch_us=…`):
bytes after each, the largest journal seen between samples, and how long each
compaction kept its shard from traffic (capture of the live set + switch to
the fresh log; the snapshot itself is written on a helper thread).

The server runs with `RUST_LOG=warn,bootwave_dataplane::journal=debug` and
the bench journal setting (`fsync = "batch"`, 2 ms) unless --fsync never.
"""

import argparse
import ctypes
import json
import os
import re
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER, CLIENT, NET, PREFIX = "10.80.0.1", "10.80.0.2", "10.80.0.0", 16
POOL = ("10.80.1.0", "10.80.255.254")
LEASE_SECS = 3600
COOKIE = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK, NAK, RELEASE = 1, 2, 3, 5, 6, 7
MAX_CYCLES = 5_000_000
COMPACTED = re.compile(r"journal compacted.*?log=(\d+).*?snapshot=(\d+).*?capture_us=(\d+).*?switch_us=(\d+)")


def mac_of(n):
    return bytes([0x02, 0x5c]) + struct.pack(">I", n)


def message(kind, mac, xid, giaddr, ciaddr=b"\0\0\0\0", opts=b""):
    head = struct.pack(">BBBBIHH4s4s4s4s", 1, 1, 6, 1, xid, 0, 0, ciaddr, b"\0" * 4, b"\0" * 4, giaddr)
    return head + mac + b"\0" * 10 + b"\0" * 192 + COOKIE + bytes([53, 1, kind]) + opts + b"\xff"


def reply_of(data):
    """(xid, message type, yiaddr) of a BOOTREPLY, or None."""
    if len(data) < 244 or data[0] != 2 or data[236:240] != COOKIE:
        return None
    xid = struct.unpack(">I", data[4:8])[0]
    i = 240
    while i + 1 < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, size = data[i], data[i + 1]
        if code == 53 and size == 1 and i + 2 < len(data):
            return xid, data[i + 2], data[16:20]
        i += 2 + size
    return None


CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if LIBC.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


class Relay:
    """A relay-agent socket in the client namespace."""

    def __init__(self, ns_name, relay, server, quiet):
        # A socket opened inside the namespace stays there: enter, open, leave.
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
        try:
            setns(target)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((relay, 67))
        finally:
            setns(own)
            os.close(own)
            os.close(target)
        self.giaddr = socket.inet_aton(relay)
        self.server = (server, 67)
        self.server_id = bytes([54, 4]) + socket.inet_aton(server)
        self.sock.settimeout(quiet)

    def send(self, data):
        self.sock.sendto(data, self.server)

    def collect(self, wanted, kinds):
        """Replies of a kind in `kinds` for the xids in `wanted`, until all came
        or the line is quiet."""
        got = {}
        while len(got) < len(wanted):
            try:
                data = self.sock.recv(2048)
            except socket.timeout:
                break
            r = reply_of(data)
            if r and r[0] in wanted and r[1] in kinds:
                got[r[0]] = (r[1], r[2])
        return got

    def batch(self, first, size):
        """Runs cycles `first`..`first+size`; returns (released, naks, lost)."""
        xids = {first + i: mac_of(first + i) for i in range(size)}
        for xid, mac in xids.items():
            self.send(message(DISCOVER, mac, xid & 0xFFFFFFFF, self.giaddr))
        offers = self.collect(xids, (OFFER,))
        for xid, (_, ip) in offers.items():
            opts = bytes([50, 4]) + ip + self.server_id
            self.send(message(REQUEST, xids[xid], xid, self.giaddr, opts=opts))
        acks = self.collect(offers, (ACK, NAK))
        released = naks = 0
        for xid, (kind, ip) in acks.items():
            if kind != ACK:
                naks += 1
                continue
            self.send(message(RELEASE, xids[xid], xid, self.giaddr, ciaddr=ip, opts=self.server_id))
            released += 1
        return released, naks, size - len(acks)


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def dir_bytes(path):
    try:
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    except OSError:
        return 0


def compactions(log_path):
    with open(log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    return [tuple(int(x) for x in m.groups()) for m in COMPACTED.finditer(text)]


def start_server(name, lab, workdir, fsync):
    """The server `name` in the lab's server namespace; its log path."""
    log = os.path.join(workdir, f"{name}.log")
    if name == "dnsmasq":
        argv = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                f"--interface={lab.server_if}", "--bind-interfaces", "--user=root", "--pid-file=",
                "--log-facility=-", "--quiet-dhcp", "--leasefile-ro", "--dhcp-authoritative", "--no-ping",
                f"--dhcp-range={POOL[0]},{POOL[1]},255.255.0.0,{LEASE_SECS}", "--dhcp-lease-max=65279"]
        return netns.Proc(lab.server, argv, log), log
    state = os.path.join(workdir, name)
    os.mkdir(state)
    config = os.path.join(state, "bootwave.toml")
    with open(config, "w") as f:
        f.write(netns.bootwave_config(lab.server_if, SERVER, NET, PREFIX, POOL[0], POOL[1], LEASE_SECS,
                                      state, **fsync))
    backend = name.removeprefix("bootwave-")
    proc = netns.Proc(lab.server, netns.bootwave_argv(REPO, config, backend), log,
                      env={"RUST_LOG": "warn,bootwave_dataplane::journal=debug"})
    return proc, log


def run(name, lab, workdir, args, cycles, batch):
    """One server through `cycles` cycles; its samples and compactions."""
    fsync = netns.BENCH_FSYNC if args.fsync == "batch" else {"fsync": "never"}
    proc, log = start_server(name, lab, workdir, fsync)
    netns.wait_udp_bound(lab.server, 67, proc=proc)
    journal = os.path.join(workdir, name, "journal")
    relay = Relay(lab.client.name, CLIENT, SERVER, args.quiet)
    samples = []
    peak = 0

    def sample(done, released, naks, lost, seconds):
        s = {"server": name, "cycles": done, "released": released, "naks": naks, "lost": lost,
             "seconds": round(seconds, 1), "journal_bytes": dir_bytes(journal),
             "journal_peak_bytes": peak, "compactions": len(compactions(log)), **rss_kib(proc.pid)}
        samples.append(s)
        print(f"{name:17} {done:>8} cycles {s['seconds']:6.1f} s  RSS {s['VmRSS'] / 1024:6.1f} MiB  "
              f"HWM {s['VmHWM'] / 1024:6.1f} MiB  journal {s['journal_bytes'] / 1024:7.0f} KiB  "
              f"(peak {peak / 1024:7.0f} KiB)  compactions {s['compactions']}  "
              f"lost {lost}  naks {naks}", flush=True)

    started = time.monotonic()
    done = released = naks = lost = 0
    sample(0, 0, 0, 0, 0.0)
    checkpoints = sorted({min(c, cycles) for c in range(args.every, cycles + args.every, args.every)}
                         | {min(100_000, cycles)})
    while done < cycles:
        if time.monotonic() - started > args.limit:
            print(f"stopped at the {args.limit} s limit", flush=True)
            break
        if not proc.alive():
            sys.exit(f"{name} died:\n{proc.tail()}")
        size = min(batch, cycles - done)
        r, n, l = relay.batch(done, size)
        released, naks, lost = released + r, naks + n, lost + l
        done += size
        if done % (batch * 16) < batch:
            peak = max(peak, dir_bytes(journal))
        if checkpoints and done >= checkpoints[0]:
            while checkpoints and done >= checkpoints[0]:
                checkpoints.pop(0)
            sample(done, released, naks, lost, time.monotonic() - started)
    took = time.monotonic() - started
    time.sleep(1)
    peak = max(peak, dir_bytes(journal))
    sample(done, released, naks, lost, took)
    cpu = proc.cpu_seconds()
    proc.stop()
    relay.sock.close()
    print(f"{name}: {done / took:.0f} cycles/s, server CPU {cpu:.1f} s in {took:.1f} s", flush=True)
    return samples, compactions(log)


def report(name, samples, done_compactions):
    first, last = samples[0], samples[-1]
    mid = next((s for s in samples if s["cycles"] >= 100_000), last)
    print(f"\n{name}: VmRSS start {first['VmRSS'] / 1024:.1f} MiB, after {mid['cycles']} cycles "
          f"{mid['VmRSS'] / 1024:.1f} MiB, after {last['cycles']} {last['VmRSS'] / 1024:.1f} MiB "
          f"(high-water {last['VmHWM'] / 1024:.1f} MiB)")
    if not done_compactions:
        return
    after = [lg + sn for lg, sn, _, _ in done_compactions]
    stalls = sorted(c + s for _, _, c, s in done_compactions)
    q = lambda p: netns.percentile(stalls, p)
    print(f"{name}: {len(done_compactions)} compactions; journal after each {min(after) / 1024:.0f}–"
          f"{max(after) / 1024:.0f} KiB (one shard's log + snapshot); largest journal directory seen "
          f"{last['journal_peak_bytes'] / 1024:.0f} KiB; at the end {last['journal_bytes'] / 1024:.0f} KiB")
    print(f"{name}: shard blocked per compaction (capture + switch): p50 {q(0.5) / 1000:.1f} ms, "
          f"max {stalls[-1] / 1000:.1f} ms; capture max "
          f"{max(c for _, _, c, _ in done_compactions) / 1000:.1f} ms, switch max "
          f"{max(s for _, _, _, s in done_compactions) / 1000:.1f} ms")


SERVERS = ["bootwave-uring", "bootwave-portable", "dnsmasq"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", choices=SERVERS + ["bootwave"],
                    help="server (repeatable; bootwave = uring + portable; default: bootwave-uring, dnsmasq)")
    ap.add_argument("--cycles", type=int, default=1_000_000, help=f"cycles in all (at most {MAX_CYCLES})")
    ap.add_argument("--every", type=int, default=100_000, help="report every N cycles")
    ap.add_argument("--batch", type=int, default=64, help="cycles in flight together")
    ap.add_argument("--quiet", type=float, default=0.5, help="seconds without a reply that end a batch's wait")
    ap.add_argument("--limit", type=int, default=900, help="seconds one server's run may take")
    ap.add_argument("--fsync", choices=["batch", "never"], default="batch")
    ap.add_argument("--json", help="write the samples as JSON here")
    args = ap.parse_args()
    servers = args.server or ["bootwave-uring", "dnsmasq"]
    servers = [b for s in servers for b in (["bootwave-uring", "bootwave-portable"] if s == "bootwave" else [s])]
    cycles = min(max(args.cycles, args.batch), MAX_CYCLES)
    batch = min(max(args.batch, 1), 1024)

    netns.init()
    if "dnsmasq" in servers:
        netns.require("dnsmasq")
    print(f"load average before the run: {os.getloadavg()}", flush=True)
    lab = netns.PairLab(SERVER, CLIENT, PREFIX)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bwt-dhcp-memory-") as workdir:
        for name in servers:
            results[name] = run(name, lab, workdir, args, cycles, batch)
    lab.delete()
    for name, (samples, done_compactions) in results.items():
        report(name, samples, done_compactions)
    if "dnsmasq" in results:
        peer = results["dnsmasq"][0][-1]["VmRSS"]
        for name, (samples, _) in results.items():
            if name != "dnsmasq":
                print(f"{name}: RSS at the end ×{samples[-1]['VmRSS'] / peer:.2f} of dnsmasq's "
                      f"(dnsmasq keeps leases in memory only)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({n: {"samples": s, "compactions": c} for n, (s, c) in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
