#!/usr/bin/env python3
"""DHCPv4 with ping check on: new and returning clients, perfdhcp in broadcast mode.

Layout: server namespace `srv0` 10.76.0.1/14 ── veth ── client namespace `eth0`
10.76.0.2/14, where perfdhcp runs as a set of on-link clients (`-l eth0`,
broadcast DISCOVERs). The pool is 10.76.1.0 – 10.79.255.254 (261,887
addresses). The server namespace gets the neighbour-table sizes of
assets/sysctl.d/60-bootwave-neighbours.conf, as a fleet's boot server would.

Servers, each restarted fresh for every step:
- bootwave-uring / bootwave-portable: `ping-check = true`, `ping-timeout = 200ms`
  (the guide's dhcpd.conf, imported);
- bootwave-noping: the uring backend with `ping-check = false`, the reference
  for what the check costs;
- dnsmasq with its ping check on (no `--no-ping`).

Two kinds of step for each rate of the ladder:
- new: `-R 200000`, far above what a step sends (≤ 50,000), so nearly every
  DISCOVER is from a MAC the server has never seen and its address is probed;
- returning: a warm-up run at a low rate first binds `--returning` clients
  (perfdhcp's MACs are the same set for the same `-R`), then the measured run
  uses the same clients at the step's rate: their addresses are their own
  bindings and need no probe.

Drops are (DISCOVERs sent − ACKs received) / DISCOVERs sent, as in
dhcp-peers.sh. The summary gives, per server and kind, the highest rate with
drops ≤ 2.5 %, with ratios to bootwave-noping and to dnsmasq measured in the
same run. perfdhcp tops out near 12,800 exchanges/s on this machine kind: a
step at that level measures the load generator.
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from dhcp_peers import parse_perfdhcp  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER, CLIENT, NET, PREFIX = "10.76.0.1", "10.76.0.2", "10.76.0.0", 14
POOL = ("10.76.1.0", "10.79.255.254")
POOL_SIZE = 4 * 65536 - 256 - 1
NEW_CLIENTS = 200_000
# Draws per "new" step at most: then at most ~1 in 8 DISCOVERs repeats a MAC.
MAX_NEW_DRAWS = 50_000
LEASE_SECS = 3600
PING_TIMEOUT = "200ms"
MAX_DROP = 0.025
SYSCTL = os.path.join(REPO, "assets", "sysctl.d", "60-bootwave-neighbours.conf")


def start_dnsmasq(ns, iface, workdir):
    argv = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={iface}",
            "--bind-interfaces", "--user=root", "--pid-file=", "--log-facility=-", "--quiet-dhcp",
            "--leasefile-ro", "--dhcp-authoritative",
            f"--dhcp-range={POOL[0]},{POOL[1]},255.252.0.0,{LEASE_SECS}",
            f"--dhcp-lease-max={POOL_SIZE}"]
    return netns.Proc(ns, argv, os.path.join(workdir, "dnsmasq.log"))


def start_bootwave(ns, iface, workdir, backend, ping):
    state = tempfile.mkdtemp(prefix="bootwave-", dir=workdir)
    path = os.path.join(state, "bootwave.toml")
    text = netns.bootwave_config(iface, SERVER, NET, PREFIX, POOL[0], POOL[1], LEASE_SECS, state,
                                 **netns.BENCH_FSYNC)
    if ping:
        text = text.replace("ping-check = false", f'ping-check = true\nping-timeout = "{PING_TIMEOUT}"')
    with open(path, "w") as f:
        f.write(text)
    return netns.Proc(ns, netns.bootwave_argv(REPO, path, backend), os.path.join(state, "bootwave.log"),
                      env=netns.BOOTWAVE_ENV)


SERVERS = {
    "dnsmasq": start_dnsmasq,
    "bootwave-uring": lambda ns, iface, wd: start_bootwave(ns, iface, wd, "uring", True),
    "bootwave-portable": lambda ns, iface, wd: start_bootwave(ns, iface, wd, "portable", True),
    "bootwave-noping": lambda ns, iface, wd: start_bootwave(ns, iface, wd, "uring", False),
}


def apply_sysctl(ns):
    """The shipped neighbour-table sizes, inside the server namespace only.
    Keys the kernel keeps global (the `default` gc thresholds exist only in
    the initial namespace) are left alone and listed: the host's own settings
    are never changed."""
    with open(SYSCTL) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                probe = ns.run("test", "-e", "/proc/sys/" + key.replace(".", "/"), timeout=10)
                if probe.returncode != 0:
                    print(f"{key}: not per namespace here, left at the host's value", flush=True)
                    continue
                netns.sh(*ns.argv("sysctl", "-q", "-w", f"{key}={value}"))


def perfdhcp(lab, clients, rate, seconds):
    argv = ["perfdhcp", "-4", f"-R{clients}", f"-r{rate}", f"-p{seconds}", "-W1000000",
            f"-l{lab.client_if}"]
    out = lab.client.run(*argv, timeout=seconds + 30)
    stats, _ = parse_perfdhcp(out.stdout)
    if "DISCOVER-OFFER" not in stats or "REQUEST-ACK" not in stats:
        raise RuntimeError(f"perfdhcp output unreadable ({out.returncode}):\n{out.stdout[-2000:]}\n"
                           f"{out.stderr[-2000:]}")
    return stats["DISCOVER-OFFER"]["sent packets"], stats["REQUEST-ACK"]["received packets"]


def run_step(lab, name, kind, rate, seconds, returning, workdir):
    proc = SERVERS[name](lab.server, lab.server_if, workdir)
    try:
        netns.wait_udp_bound(lab.server, 67, proc=proc)
        if kind == "new":
            clients = NEW_CLIENTS
        else:
            clients = returning
            # Five draws per client at 1,000/s bind all but ~0.7 % of them.
            warm = max(2, min(25, 5 * returning // 1000))
            perfdhcp(lab, clients, 1000, warm)
        sent, done = perfdhcp(lab, clients, rate, seconds)
        if not proc.alive():
            raise RuntimeError(f"{name} died:\n{proc.tail()}")
    finally:
        proc.stop()
    return {"server": name, "kind": kind, "rate": rate, "seconds": seconds, "clients": clients,
            "sent_per_s": sent / seconds, "exchanges_per_s": done / seconds,
            "drop_ratio": (sent - done) / sent if sent else 1.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", choices=sorted(SERVERS) + ["bootwave"],
                    help="server (repeatable; bootwave = uring + portable; bootwave-noping and dnsmasq are "
                         "always run as references)")
    ap.add_argument("--rates", default="500,1000,2000,4000,8000", help="rate ladder, new clients/s")
    ap.add_argument("--seconds", type=int, default=4, help="period of each step (max 20)")
    ap.add_argument("--returning", type=int, default=4000, help="clients of the returning steps")
    ap.add_argument("--kind", choices=["new", "returning", "both"], default="both")
    ap.add_argument("--json", help="write all steps as JSON here")
    args = ap.parse_args()
    servers = args.server or ["bootwave"]
    servers = [b for s in servers for b in (["bootwave-uring", "bootwave-portable"] if s == "bootwave" else [s])]
    for ref in ("dnsmasq", "bootwave-noping"):
        if ref not in servers:
            servers.insert(0, ref)
    rates = [int(r) for r in args.rates.split(",")][:10]
    seconds = min(max(args.seconds, 1), 20)
    if rates and max(rates) * seconds > MAX_NEW_DRAWS:
        sys.exit(f"rate × seconds must stay ≤ {MAX_NEW_DRAWS} so that steps of new clients stay new")
    returning = min(max(args.returning, 100), 20_000)
    kinds = ["new", "returning"] if args.kind == "both" else [args.kind]

    netns.init()
    netns.require("perfdhcp", "dnsmasq", "sysctl")
    print(f"load average before the run: {os.getloadavg()}", flush=True)
    lab = netns.PairLab(SERVER, CLIENT, PREFIX)
    apply_sysctl(lab.server)
    steps = []
    with tempfile.TemporaryDirectory(prefix="bwt-dhcp-ping-") as workdir:
        for kind in kinds:
            for name in servers:
                for rate in rates:
                    step = run_step(lab, name, kind, rate, seconds, returning, workdir)
                    steps.append(step)
                    print(f"{kind:9} {name:17} rate {rate:6}: {step['exchanges_per_s']:8.0f} ex/s  "
                          f"drops {step['drop_ratio'] * 100:5.1f}%", flush=True)
    lab.delete()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(steps, f, indent=1)
    summarize(steps, servers, kinds)


def summarize(steps, servers, kinds):
    """Per kind and server: the highest rate with drops ≤ MAX_DROP (or `<`
    the lowest rate when none passes), as ratios to bootwave-noping and to
    dnsmasq (ping check on) of the same run."""
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "–"
    print(f"\nHighest rate with drops ≤ {MAX_DROP * 100:.1f}% (0 = no step passed):")
    print("| clients | server | rate/s | ×bootwave-noping | ×dnsmasq (ping on) | drops at that rate |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        best = {}
        for name in servers:
            ok = [s for s in steps if s["server"] == name and s["kind"] == kind and s["drop_ratio"] <= MAX_DROP]
            best[name] = max(ok, key=lambda s: s["rate"]) if ok else None
        rate = lambda n: best[n]["rate"] if best[n] else 0
        for name in servers:
            drops = f"{best[name]['drop_ratio'] * 100:.1f}%" if best[name] else "–"
            print(f"| {kind} | {name} | {rate(name)} | {ratio(rate(name), rate('bootwave-noping'))} | "
                  f"{ratio(rate(name), rate('dnsmasq'))} | {drops} |")


if __name__ == "__main__":
    main()
