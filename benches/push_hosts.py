"""Reservation push benchmark: 100,000 host reservations made live while
perfdhcp loads the server, bootwave (agent → data plane push) against
dnsmasq (hosts file re-read on SIGHUP).

Topology (namespaces created and removed here): a server namespace with
`srv0` 10.77.0.1/16 (perfdhcp's subnet, dynamic pool) and `srv1`
10.78.0.1/15 (the reservations' subnet); a client namespace where perfdhcp
runs as a relay agent (giaddr 10.77.0.2); a probe namespace (10.78.0.2)
that relays DISCOVERs for the last reserved MAC every 10 ms.

For each server, perfdhcp runs for `--seconds` at `--rate`; one second in,
the reservations are handed over (bootwave: one `ImportHosts` call to the
agent, which returns after the data plane acknowledged; dnsmasq: the hosts
file is written, then SIGHUP). Reported: the time until the probe gets an
OFFER of the last host's reserved address ("live"), the import call's own
time (bootwave), and perfdhcp's drops with the push and in a run without.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from dhcp_peers import parse_perfdhcp  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST_HOST = "10.78.0.10"
LEASE_SECS = 3600

PROBE = r'''
import socket, struct, sys, time
mac, want, limit = bytes.fromhex(sys.argv[1].replace(":", "")), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.78.0.2", 67))
s.settimeout(0.01)
pkt = struct.pack("!BBBBIHH4s4s4s4s16s64s128s4s", 1, 1, 6, 1, 0x5eed, 0, 0, bytes(4), bytes(4),
                  bytes(4), socket.inet_aton("10.78.0.2"), mac + bytes(10), bytes(64), bytes(128),
                  bytes([99, 130, 83, 99])) + bytes([53, 1, 1, 255])
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
while time.monotonic() - t0 < limit:
    s.sendto(pkt, ("10.78.0.1", 67))
    try:
        while True:
            data, _ = s.recvfrom(2048)
            if len(data) >= 20 and socket.inet_ntoa(data[16:20]) == want:
                print("live %.1f" % ((time.monotonic() - t0) * 1e3), flush=True)
                sys.exit(0)
    except socket.timeout:
        pass
print("timeout", flush=True)
sys.exit(1)
'''


def last_host(count):
    b = (count - 1).to_bytes(4, "big")
    mac = "02:bb:" + ":".join(f"{x:02x}" for x in b)
    ip = int.from_bytes(bytes(int(x) for x in FIRST_HOST.split(".")), "big") + count - 1
    return mac, ".".join(str(x) for x in ip.to_bytes(4, "big"))


class Lab:
    def __init__(self):
        self.server = netns.Netns("srv")
        self.client = netns.Netns("cli")
        self.probe = netns.Netns("prb")
        for ns, srv_if, srv_addr, cli_addr, prefix in (
                (self.client, "srv0", "10.77.0.1", "10.77.0.2", 16),
                (self.probe, "srv1", "10.78.0.1", "10.78.0.2", 15)):
            self.server.ip("link", "add", srv_if, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            self.server.ip("addr", "add", f"{srv_addr}/{prefix}", "dev", srv_if)
            ns.ip("addr", "add", f"{cli_addr}/{prefix}", "dev", "eth0")
            self.server.ip("link", "set", srv_if, "up")
            ns.ip("link", "set", "eth0", "up")

    def delete(self):
        for ns in (self.probe, self.client, self.server):
            ns.delete()


def binary(name, example=False):
    release = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release")
    path = os.path.join(release, "examples", name) if example else os.path.join(release, name)
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} not found: build it with `cargo build --release -p bootwave-dataplane "
                 "-p bootwave-agent --examples`")
    return path


def bootwave_toml(state):
    return f'''interfaces = ["srv0", "srv1"]

[dhcp]
default-lease-time = {LEASE_SECS}
max-lease-time = {LEASE_SECS}
authoritative = true
ping-check = false

[tftp]
root = "{state}"

[journal]
dir = "{state}/journal"
fsync = "batch"
fsync-interval = "2ms"

[[subnets]]
network = "10.77.0.0/16"
ranges = ["10.77.1.0-10.77.255.254"]

[[subnets]]
network = "10.78.0.0/15"
'''


def perfdhcp(lab, rate, seconds):
    argv = ["perfdhcp", "-4", "-R4096", f"-r{rate}", f"-p{seconds}", "-W1000000", "-l10.77.0.2", "10.77.0.1"]
    return subprocess.Popen(lab.client.argv(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def drops(proc, seconds):
    out, err = proc.communicate(timeout=seconds + 60)
    stats, _ = parse_perfdhcp(out)
    if "DISCOVER-OFFER" not in stats or "REQUEST-ACK" not in stats:
        raise RuntimeError(f"perfdhcp output unreadable:\n{out[-1500:]}\n{err[-1500:]}")
    sent = stats["DISCOVER-OFFER"]["sent packets"]
    done = stats["REQUEST-ACK"]["received packets"]
    return {"sent": int(sent), "exchanges": int(done),
            "drops": int(stats["DISCOVER-OFFER"].get("drops", 0) + stats["REQUEST-ACK"].get("drops", 0))}


def start_probe(lab, mac, ip):
    p = subprocess.Popen(lab.probe.argv("python3", "-c", PROBE, mac, ip, "120"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError("probe did not start")
    return p


def probe_result(p):
    line = p.stdout.readline().strip()
    p.wait(timeout=130)
    if not line.startswith("live "):
        raise RuntimeError(f"the last reservation never became live ({line})")
    return float(line.split()[1])


def run_bootwave(lab, workdir, count, rate, seconds, push):
    state = tempfile.mkdtemp(prefix="bootwave-", dir=workdir)
    config = os.path.join(state, "bootwave.toml")
    with open(config, "w") as f:
        f.write(bootwave_toml(state))
    dp_sock, agent_sock = os.path.join(state, "dp.sock"), os.path.join(state, "agent.sock")
    dp = netns.Proc(lab.server, [binary("bootwave-dataplane"), "--config", config, "--control", f"unix:{dp_sock}"],
                    os.path.join(state, "dataplane.log"), env=netns.BOOTWAVE_ENV)
    agent = netns.Proc(lab.server, [binary("bootwave-agent"), "--listen", f"unix:{agent_sock}", "--state",
                                    os.path.join(state, "agent"), "--dataplane", f"unix:{dp_sock}"],
                       os.path.join(state, "agent.log"), env=netns.BOOTWAVE_ENV)
    try:
        netns.wait_udp_bound(lab.server, 67, proc=dp)
        for _ in range(100):
            if os.path.exists(agent_sock):
                break
            time.sleep(0.05)
        cli = [binary("bootwave"), "--agent", f"unix:{agent_sock}"]
        subprocess.run(cli + ["apply", "-f", config], check=True, capture_output=True, timeout=30)
        mac, ip = last_host(count)
        probe = start_probe(lab, mac, ip) if push else None
        load = perfdhcp(lab, rate, seconds)
        time.sleep(1.0)
        result = {}
        if push:
            probe.stdin.write("go\n")
            probe.stdin.flush()
            out = subprocess.run([binary("import_hosts", example=True), "--agent", f"unix:{agent_sock}", "--count", str(count),
                                  "--first", FIRST_HOST], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"import failed: {out.stderr[-2000:]}")
            result["import_ms"] = json.loads(out.stdout)["elapsed_ms"]
            result["live_ms"] = probe_result(probe)
            t = time.monotonic()
            subprocess.run(cli + ["host", "add", "--mac", "02:cc:00:00:00:01", "--ip", "10.79.255.1"],
                           check=True, capture_output=True, timeout=30)
            result["one_change_ms"] = (time.monotonic() - t) * 1e3
        result.update(drops(load, seconds))
        if not dp.alive():
            raise RuntimeError(f"data plane died:\n{dp.tail()}")
        return result
    finally:
        agent.stop()
        dp.stop()


def run_dnsmasq(lab, workdir, count, rate, seconds, push):
    hosts = os.path.join(workdir, "dnsmasq-hosts")
    open(hosts, "w").close()
    argv = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=srv0", "--interface=srv1",
            "--bind-interfaces", "--user=root", "--pid-file=", "--log-facility=-", "--quiet-dhcp", "--leasefile-ro",
            "--no-ping", "--dhcp-authoritative", f"--dhcp-range=10.77.1.0,10.77.255.254,255.255.0.0,{LEASE_SECS}",
            "--dhcp-range=10.78.0.0,static,255.254.0.0", f"--dhcp-hostsfile={hosts}", "--dhcp-lease-max=200000"]
    proc = netns.Proc(lab.server, argv, os.path.join(workdir, "dnsmasq.log"))
    try:
        netns.wait_udp_bound(lab.server, 67, proc=proc)
        mac, ip = last_host(count)
        probe = start_probe(lab, mac, ip) if push else None
        load = perfdhcp(lab, rate, seconds)
        time.sleep(1.0)
        result = {}
        if push:
            base = int.from_bytes(bytes(int(x) for x in FIRST_HOST.split(".")), "big")
            with open(hosts + ".new", "w") as f:
                for i in range(count):
                    b = i.to_bytes(4, "big")
                    a = (base + i).to_bytes(4, "big")
                    f.write("02:bb:%02x:%02x:%02x:%02x,%d.%d.%d.%d\n" % (*b, *a))
            os.rename(hosts + ".new", hosts)
            probe.stdin.write("go\n")
            probe.stdin.flush()
            proc.popen.send_signal(signal.SIGHUP)
            result["live_ms"] = probe_result(probe)
        result.update(drops(load, seconds))
        return result
    finally:
        proc.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000, help="reservations pushed (max 130,000)")
    ap.add_argument("--rate", type=int, default=1000, help="perfdhcp exchanges/s during the push")
    ap.add_argument("--seconds", type=int, default=12, help="perfdhcp period (max 60)")
    ap.add_argument("--json", help="write the results as JSON here")
    args = ap.parse_args()
    count = min(max(args.count, 1), 130_000)
    seconds = min(max(args.seconds, 3), 60)
    netns.init()
    netns.require("perfdhcp", "dnsmasq")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bw-push-") as workdir:
        lab = Lab()
        try:
            for name, run in (("bootwave", run_bootwave), ("dnsmasq", run_dnsmasq)):
                for push in (False, True):
                    key = f"{name}{'' if push else ' (no push)'}"
                    results[key] = run(lab, workdir, count, args.rate, seconds, push)
                    print(f"{key}: {results[key]}", flush=True)
        finally:
            lab.delete()
    bw, dm = results["bootwave"], results["dnsmasq"]
    print(f"\n{count} reservations, perfdhcp at {args.rate}/s for {seconds} s")
    print(f"{'server':<10} {'live (ms)':>10} {'call (ms)':>10} {'drops with push':>16} {'drops without':>14}")
    for name, r in (("dnsmasq", dm), ("bootwave", bw)):
        call = f"{r['import_ms']:.0f}" if "import_ms" in r else "-"
        print(f"{name:<10} {r['live_ms']:>10.0f} {call:>10} {r['drops']:>16} {results[name + ' (no push)']['drops']:>14}")
    print(f"bootwave live time / dnsmasq: {bw['live_ms'] / dm['live_ms']:.2f}; "
          f"one more host on top (delta push): {bw['one_change_ms']:.0f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"count": count, "rate": args.rate, "seconds": seconds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
