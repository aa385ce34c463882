#!/usr/bin/env python3
"""HTTP boot-file benchmark: bootwave's HTTP server against nginx, one run.

Layout: server namespace `srv0` 10.89.0.1/24 ── veth ── client namespace
`eth0` 10.89.0.2/24 running wrk (`-t2`, keep-alive). Every server is started
fresh for every workload, on the same files, and the servers alternate
within each workload:
- 1m: 1,000 connections, each downloading a 1 MiB file over and over;
- 50m: 1,000 connections downloading a 50 MiB file;
- 4k-10k: 10,000 connections fetching a 4 KiB script over and over.
nginx runs with sendfile on (zero-copy from the page cache); `nginx-copy`
(not run by default) is the same nginx with sendfile off (read + writev
through its buffers, a copy like bootwave's writev from its mapping).

Measured per run: MB/s (bytes wrk read, heads included, / wrk's run time),
requests/s, p50/p99/max latency (`wrk --latency`; wrk times a request from
its write to the last byte, so a connect that waited does not show there:
SYN retransmissions in the client namespace and listen-queue overflows in
the server's are counted for that), failures (wrk's connect/read/write/timeout
errors and statuses ≥ 400, plus reconnects: connections the client opened
beyond its N and its one probe connection, which is how a server's close
shows, since wrk reopens a connection closed under it without counting an
error), server CPU seconds per GB
(utime + stime from /proc/<pid>/stat of the server and its children: nginx
= master + workers), the server's peak RSS (VmHWM, summed over nginx's
processes), wrk's own CPU and the machine's busy cores, from which the
likely limit is named.

Bounds: every wrk run has a fixed duration (at most 120 s) and a hard
timeout; traffic goes only to 10.89.0.1 inside the namespaces made here,
which are removed at exit (netns.py).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SERVER, CLIENT, PREFIX = "10.89.0.1", "10.89.0.2", 24
PORT = 80
THREADS = 2

FILES = {"ipxe.efi": 1 << 20, "initrd.img": 50 << 20, "boot.ipxe": 4096}
WORKLOADS = {
    "1m": {"file": "ipxe.efi", "connections": 1000, "what": "1,000 conns × 1 MiB"},
    "50m": {"file": "initrd.img", "connections": 1000, "what": "1,000 conns × 50 MiB"},
    "4k-10k": {"file": "boot.ipxe", "connections": 10000, "what": "10,000 conns × 4 KiB"},
}

# wrk prints its own summary; done() adds one JSON line the bench reads.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us": %d, "requests": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
"""


def bootwave_toml(state, root, max_conns):
    return f'''interfaces = ["srv0"]

[dhcp]
default-lease-time = 3600
max-lease-time = 3600
authoritative = true
ping-check = false

[tftp]
root = "{root}"

[http]
port = {PORT}
max-connections-per-client = {max_conns}
max-connections = {max_conns}

[journal]
dir = "{state}/journal"
fsync = "batch"

[[subnets]]
network = "10.89.0.0/24"
ranges = ["10.89.0.100-10.89.0.200"]
routers = ["{SERVER}"]
next-server = "{SERVER}"
'''


def nginx_conf(work, root, nofile, backlog, sendfile):
    return f'''daemon off;
master_process on;
user root;
worker_processes {THREADS};
worker_rlimit_nofile {nofile};
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;

events {{
    worker_connections 16384;
}}

http {{
    access_log off;
    sendfile {"on" if sendfile else "off"};
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    open_file_cache max=100 inactive=120s;
    types {{ }}
    default_type application/octet-stream;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;

    server {{
        listen {SERVER}:{PORT} backlog={backlog};
        root {root};
    }}
}}
'''


def start_bootwave(lab, root, work, max_conns):
    state = tempfile.mkdtemp(prefix="bootwave-", dir=work)
    path = os.path.join(state, "bootwave.toml")
    with open(path, "w") as f:
        f.write(bootwave_toml(state, root, max_conns))
    argv = [netns.bootwave_binary(REPO), "--config", path, "--control", "none"]
    return netns.Proc(lab.server, argv, os.path.join(state, "bootwave.log"), env=netns.BOOTWAVE_ENV)


def start_nginx(lab, root, work, nginx_bin, nofile, backlog, sendfile=True):
    state = tempfile.mkdtemp(prefix="nginx-", dir=work)
    path = os.path.join(state, "nginx.conf")
    with open(path, "w") as f:
        f.write(nginx_conf(state, root, nofile, backlog, sendfile))
    argv = [nginx_bin, "-p", state + "/", "-c", path, "-e", os.path.join(state, "nginx-error.log")]
    return netns.Proc(lab.server, argv, os.path.join(state, "nginx.log"))


def children(pid):
    """PIDs whose parent is `pid`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(name))
    return out


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children(p))
    return pids


def utime_stime(pid):
    """utime + stime of one process, seconds (threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / netns.CLK_TCK


def tree_cpu(pids):
    total = 0.0
    for p in pids:
        try:
            total += utime_stime(p)
        except OSError:
            pass
    return total


def tree_hwm_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def busy_jiffies():
    """Non-idle jiffies of all CPUs (/proc/stat)."""
    with open("/proc/stat") as f:
        cols = [int(x) for x in f.readline().split()[1:]]
    idle = cols[3] + cols[4]
    return sum(cols[:8]) - idle


def tcp_counters(ns):
    """Tcp (snmp) and TcpExt (netstat) counters of a namespace."""
    out = ns.run("cat", "/proc/net/snmp", "/proc/net/netstat", timeout=10).stdout.splitlines()
    counters = {}
    for head, vals in zip(out[::2], out[1::2]):
        names, values = head.split(), vals.split()
        if names[0] in ("Tcp:", "TcpExt:"):
            for n, v in zip(names[1:], values[1:]):
                counters[names[0][:-1] + "." + n] = int(v)
    return counters


def wait_tcp_listening(ns, port, proc, limit=15.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out = ns.run("ss", "-H", "-t", "-l", "-n", timeout=5).stdout
        if any(len(c) > 3 and c[3].endswith(f":{port}") for c in (l.split() for l in out.splitlines())):
            return
        if not proc.alive():
            raise RuntimeError(f"{proc.argv[0]} exited:\n{proc.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"TCP port {port} not listening in {ns.name} after {limit}s\n{proc.tail()}")


def run_wrk(lab, url, connections, duration, timeout, lua):
    argv = lab.client.argv("wrk", f"-t{THREADS}", f"-c{connections}", f"-d{duration}s", "--latency",
                           "--timeout", f"{timeout}s", "-s", lua, url)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise RuntimeError(f"wrk did not finish within {duration + 60}s")
    wall = time.monotonic() - t0
    # ip netns exec execs wrk, so its rusage is wrk's.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({p.returncode}): {err.strip()[-2000:]}\n{out[-2000:]}")
    result = json.loads(line[len("WRKJSON "):])
    result["wall_s"] = wall
    result["wrk_text"] = "\n".join(l for l in out.splitlines() if not l.startswith("WRKJSON "))
    return result, usage.ru_utime + usage.ru_stime


def measure(lab, server, workload, root, work, args):
    spec = WORKLOADS[workload]
    conns = spec["connections"]
    duration = args.duration_large if workload == "50m" else args.duration
    # A response slower than this counts as a timeout; the 50 MiB
    # downloads of 1,000 connections take most of the run each.
    timeout = duration + 5 if workload == "50m" else args.timeout
    if server == "bootwave":
        proc = start_bootwave(lab, root, work, args.max_connections)
    else:
        proc = start_nginx(lab, root, work, args.nginx, args.nofile, args.backlog,
                           sendfile=server == "nginx")
    try:
        wait_tcp_listening(lab.server, PORT, proc)
        time.sleep(0.3)  # nginx forks its workers after listening
        pids = tree(proc.pid)
        cli0, srv0 = tcp_counters(lab.client), tcp_counters(lab.server)
        cpu0, busy0 = tree_cpu(pids), busy_jiffies()
        wrk_cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu0 = wrk_cpu0.ru_utime + wrk_cpu0.ru_stime
        r, wrk_cpu1 = run_wrk(lab, f"http://{SERVER}:{PORT}/{spec['file']}", conns, duration, timeout, args.lua)
        cpu1, busy1 = tree_cpu(pids), busy_jiffies()
        cli1, srv1 = tcp_counters(lab.client), tcp_counters(lab.server)
        alive = proc.alive()
        hwm = tree_hwm_kib(pids)
        workers = len(pids)
    finally:
        proc.stop()
    secs = r["duration_us"] / 1e6
    delta = lambda a, b, k: b.get(k, 0) - a.get(k, 0)
    opened = delta(cli0, cli1, "Tcp.ActiveOpens")
    r.update(
        server=server, workload=workload, connections=conns, duration_s=duration, timeout_s=timeout,
        server_alive=alive, server_processes=workers, server_cpu_s=cpu1 - cpu0, peak_rss_mib=hwm / 1024,
        wrk_cpu_s=wrk_cpu1 - wrk_cpu0, busy_cores=(busy1 - busy0) / netns.CLK_TCK / r["wall_s"],
        # wrk opens one probe connection to the address before its N.
        reconnects=max(0, opened - conns - 1), client_opens=opened,
        syn_retrans=delta(cli0, cli1, "TcpExt.TCPSynRetrans"),
        client_resets=delta(cli0, cli1, "Tcp.EstabResets"),
        listen_overflows=delta(srv0, srv1, "TcpExt.ListenOverflows"),
        listen_drops=delta(srv0, srv1, "TcpExt.ListenDrops"),
    )
    r["mb_per_s"] = r["bytes"] / 1e6 / secs
    r["req_per_s"] = r["requests"] / secs
    gb = r["bytes"] / 1e9
    r["cpu_s_per_gb"] = r["server_cpu_s"] / gb if gb else float("nan")
    # On a veth pair part of one side's TCP work runs in the other's
    # context (softirq), so server and wrk together are also given.
    r["total_cpu_s_per_gb"] = (r["server_cpu_s"] + r["wrk_cpu_s"]) / gb if gb else float("nan")
    r["cpu_us_per_req"] = r["server_cpu_s"] * 1e6 / r["requests"] if r["requests"] else float("nan")
    r["wrk_util"] = r["wrk_cpu_s"] / (secs * THREADS)
    # Busy cores not spent in the server or wrk: other processes on the
    # machine, plus kernel threads (ksoftirqd) that serve this traffic.
    r["other_cores"] = max(0.0, r["busy_cores"] - (r["server_cpu_s"] + r["wrk_cpu_s"]) / r["wall_s"])
    r["failures"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"] + r["reconnects"]
    r["limit"] = limit_of(r)
    return r


def limit_of(r):
    """The likely limit of a run, from wrk's CPU and the machine's."""
    notes = []
    if r["wrk_util"] >= 0.85:
        notes.append(f"wrk ({r['wrk_util'] * 100:.0f} % of its {THREADS} threads)")
    if r["busy_cores"] >= 1.8:
        notes.append(f"cores ({r['busy_cores']:.2f} of 2 busy"
                     + (f", {r['other_cores']:.2f} not server or wrk)" if r["other_cores"] >= 0.2 else ")"))
    return ", ".join(notes) or f"server ({r['server_cpu_s'] / r['wall_s']:.2f} cores)"


def fmt_ms(us):
    if not us:
        return "–"
    return f"{us / 1000:.1f}" if us < 1_000_000 else f"{us / 1000:,.0f}"


def describe(r):
    return (f"{r['workload']:7} {r['server']:9} {r['mb_per_s']:9.1f} MB/s {r['req_per_s']:9.1f} req/s  "
            f"p50/p99/max {fmt_ms(r['p50_us'])}/{fmt_ms(r['p99_us'])}/{fmt_ms(r['max_us'])} ms  "
            f"cpu {r['server_cpu_s']:.2f} s = {r['cpu_s_per_gb']:.3f} s/GB, {r['cpu_us_per_req']:.1f} µs/req  "
            f"rss {r['peak_rss_mib']:.1f} MiB  failures {r['failures']} (connect {r['connect']} read {r['read']} "
            f"write {r['write']} timeout {r['timeout']} status {r['status']} reconnects {r['reconnects']}, client opens {r['client_opens']})  "
            f"wrk {r['wrk_util'] * 100:.0f} %  busy {r['busy_cores']:.2f} cores (others {r['other_cores']:.2f})  syn-retrans {r['syn_retrans']}  "
            f"listen overflows {r['listen_overflows']}  alive {r['server_alive']}")


def summarize(results, label_of):
    print("\n| workload | server | MB/s | × nginx | req/s | p50 / p99 ms | server CPU s/GB | × nginx | "
          "server + wrk CPU s/GB | × nginx | CPU µs/req | peak RSS MiB | done | failures | SYN retransmits | "
          "wrk CPU | likely limit |")
    print("|" + " --- |" * 17)
    ratio = lambda a, b: f"{a / b:.2f}" if b else "–"
    for r in results:
        ref = next((x for x in results if x["workload"] == r["workload"] and x["server"] == "nginx"), None)
        print(f"| {WORKLOADS[r['workload']]['what']} | {label_of(r['server'])} | {r['mb_per_s']:,.0f} | "
              f"{ratio(r['mb_per_s'], ref and ref['mb_per_s']) if ref else '–'} | {r['req_per_s']:,.1f} | "
              f"{fmt_ms(r['p50_us'])} / {fmt_ms(r['p99_us'])} | {r['cpu_s_per_gb']:.3f} | "
              f"{ratio(r['cpu_s_per_gb'], ref and ref['cpu_s_per_gb']) if ref else '–'} | "
              f"{r['total_cpu_s_per_gb']:.3f} | "
              f"{ratio(r['total_cpu_s_per_gb'], ref and ref['total_cpu_s_per_gb']) if ref else '–'} | "
              f"{r['cpu_us_per_req']:,.1f} | {r['peak_rss_mib']:.1f} | {r['requests']:,} | {r['failures']} | {r['syn_retrans']} | "
              f"{r['wrk_util'] * 100:.0f} % | {r['limit']} |")
    verdicts = []
    for w in WORKLOADS:
        b = next((x for x in results if x["workload"] == w and x["server"] == "bootwave"), None)
        n = next((x for x in results if x["workload"] == w and x["server"] == "nginx"), None)
        if not (b and n):
            continue
        tput, cpu = b["mb_per_s"] / n["mb_per_s"], b["cpu_s_per_gb"] / n["cpu_s_per_gb"]
        total = b["total_cpu_s_per_gb"] / n["total_cpu_s_per_gb"]
        ok = tput >= 0.9 and cpu <= 1.1 and (b["failures"] == 0 or w != "4k-10k")
        verdicts.append(f"{w}: throughput {tput:.2f}× (goal ≥ 0.9), server CPU/GB {cpu:.2f}× (goal ≤ 1.1), "
                        f"bootwave failures {b['failures']}: {'met' if ok else 'NOT met'} "
                        f"(server + wrk CPU/GB {total:.2f}×)")
    if verdicts:
        print("\nGoal (bootwave against nginx in this run):")
        for v in verdicts:
            print("  " + v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", choices=["bootwave", "nginx", "nginx-copy"],
                    help="default bootwave, nginx; nginx-copy = nginx with sendfile off (read + write)")
    ap.add_argument("--workload", action="append", choices=list(WORKLOADS))
    ap.add_argument("--duration", type=int, default=10, help="seconds per 1m and 4k-10k run (max 120)")
    ap.add_argument("--duration-large", type=int, default=60, help="seconds per 50m run (max 120)")
    ap.add_argument("--timeout", type=int, default=10,
                    help="wrk --timeout of the 1m and 4k-10k runs: a slower response is a failure")
    ap.add_argument("--max-connections", type=int, default=16384, help="bootwave's [http] caps")
    ap.add_argument("--nginx", default="nginx", help="nginx binary")
    ap.add_argument("--workdir", help="where files, configs and logs go (default: a temp dir)")
    ap.add_argument("--json", help="write all results as JSON here")
    ap.add_argument("--summarize", metavar="JSON", help="print the table of an earlier --json file and exit")
    args = ap.parse_args()
    if args.summarize:
        with open(args.summarize) as f:
            results = json.load(f)
        for r in results:
            gb = r["bytes"] / 1e9
            r.setdefault("total_cpu_s_per_gb", (r["server_cpu_s"] + r["wrk_cpu_s"]) / gb if gb else float("nan"))
        version = next((r["nginx_version"] for r in results if r.get("nginx_version")), "")
        summarize(results, lambda s: s.replace("nginx", f"nginx {version}".strip(), 1))
        return
    args.duration = max(1, min(args.duration, 120))
    args.duration_large = max(1, min(args.duration_large, 120))
    servers = args.server or ["bootwave", "nginx"]
    workloads = args.workload or list(WORKLOADS)

    # 10,000 connections need 10,000 descriptors in wrk and in the servers.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(WORKLOADS[w]["connections"] for w in workloads) + 1000
    if hard < need:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {need}: raise it (ulimit -Hn) first")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.nofile = hard
    netns.init()
    netns.require("wrk", "ip", "ss")
    if "bootwave" in servers:
        netns.bootwave_binary(REPO)
    print(f"load average before the run: {os.getloadavg()}", flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="bwhttp-", dir=args.workdir) as work:
        os.chmod(work, 0o755)
        root = os.path.join(work, "root")
        os.mkdir(root)
        for name, size in FILES.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(os.urandom(size))
        args.lua = os.path.join(work, "done.lua")
        with open(args.lua, "w") as f:
            f.write(WRK_LUA)
        lab = netns.PairLab(SERVER, CLIENT, PREFIX)
        # bootwave listens with a backlog of max(max-connections, 1024),
        # which the kernel caps at somaxconn; nginx gets the same queue.
        somaxconn = int(lab.server.run("cat", "/proc/sys/net/core/somaxconn", timeout=5).stdout)
        args.backlog = min(max(args.max_connections, 1024), somaxconn)
        print(f"listen backlog (both servers): {args.backlog}", flush=True)
        for w in workloads:
            for s in servers:
                r = measure(lab, s, w, root, work, args)
                results.append(r)
                print(describe(r), flush=True)
                if not r["server_alive"]:
                    print(f"  {s} exited during the run", flush=True)
        lab.delete()
    version = nginx_version(args.nginx) if any(s.startswith("nginx") for s in servers) else ""
    for r in results:
        r["nginx_version"] = version
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    summarize(results, lambda s: s.replace("nginx", f"nginx {version}".strip(), 1))
    print(f"\nload average after the run: {os.getloadavg()}")


def nginx_version(binary):
    out = subprocess.run([binary, "-v"], capture_output=True, text=True)
    text = (out.stderr or out.stdout).strip()
    return text.split("/", 1)[1].split()[0] if "/" in text else ""


if __name__ == "__main__":
    main()
