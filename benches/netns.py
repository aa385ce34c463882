"""Shared plumbing for the peer benchmarks: namespaces, guarded processes, CPU time.

Safety rules (the same as the Rust harness in tests/e2e):
- every address lives inside namespaces created here (`bwt-<pid>-<n>-<label>`);
  no server binds in the machine's own namespace;
- namespaces and processes are removed on exit, on SIGINT/SIGTERM, and stale
  ones from crashed runs (their PID is gone) are swept at start;
- every run is bounded in count and time by the caller.
"""

import atexit
import os
import re
import signal
import subprocess
import sys
import time

PREFIX = "bwt-"
NETNS_DIR = "/run/netns"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_counter = 0
_namespaces = []  # created by this process, deleted at exit
_processes = []   # Proc objects still to stop at exit


def sh(*argv, check=True, timeout=20):
    """Runs a command in the current namespace; returns stdout."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def _ns_pids(name):
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _kill_inside(name):
    for pid in _ns_pids(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sweep_stale():
    """Deletes `bwt-<pid>-…` namespaces whose PID no longer runs."""
    removed = []
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return removed
    for name in names:
        m = re.match(r"^bwt-(\d+)-", name)
        if not m or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        _kill_inside(name)
        if subprocess.run(["ip", "netns", "del", name], capture_output=True).returncode == 0:
            removed.append(name)
    return removed


class Netns:
    """A namespace `bwt-<pid>-<n>-<label>` with loopback up, deleted at exit."""

    def __init__(self, label):
        global _counter
        self.name = f"{PREFIX}{os.getpid()}-{_counter}-{label}"
        _counter += 1
        sh("ip", "netns", "add", self.name)
        _namespaces.append(self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args):
        return sh("ip", "-n", self.name, *args)

    def argv(self, *argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv, timeout):
        out = subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout)
        return out

    def delete(self):
        _kill_inside(self.name)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        if self.name in _namespaces:
            _namespaces.remove(self.name)


class Proc:
    """A process inside a namespace, stopped (SIGTERM, then SIGKILL) at exit."""

    def __init__(self, ns, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        full_env = dict(os.environ, **(env or {}))
        self.popen = subprocess.Popen(ns.argv(*argv), stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=full_env)
        self.pid = self.popen.pid
        _processes.append(self)
        self.meter = CpuMeter(self.pid)

    def cpu_seconds(self):
        """CPU time of the server and every process it forked (see CpuMeter)."""
        return self.meter.seconds()

    def alive(self):
        return self.popen.poll() is None

    def tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self.log.close()
        self.meter.close()
        if self in _processes:
            _processes.remove(self)


class CpuMeter:
    """CPU time of a process tree, exited descendants included.

    The process is moved into its own cgroup `bwt-<pid>-<n>` (v1 cpuacct or
    v2), whose counter includes children that have exited: tftpd-hpa forks one
    child per transfer and ignores SIGCHLD, so /proc/<pid>/stat's cutime would
    miss them. Without a writable cgroup, falls back to /proc/<pid>/stat.
    """

    def __init__(self, pid):
        global _counter
        self.pid, self.path, self.kind = pid, None, "proc"
        name = f"{PREFIX}{os.getpid()}-{_counter}-cpu"
        _counter += 1
        for root, kind in (("/sys/fs/cgroup/cpuacct", "v1"), ("/sys/fs/cgroup", "v2")):
            if kind == "v2" and not os.path.exists(os.path.join(root, "cgroup.controllers")):
                continue
            if not os.path.isdir(root):
                continue
            path = os.path.join(root, name)
            try:
                os.mkdir(path)
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
                continue
            self.path, self.kind = path, kind
            break

    def seconds(self):
        if self.kind == "v1":
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        if self.kind == "v2":
            with open(os.path.join(self.path, "cpu.stat")) as f:
                stat = dict(line.split() for line in f)
            return int(stat["usage_usec"]) / 1e6
        return cpu_ticks(self.pid) / CLK_TCK

    def close(self):
        if self.path:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def sweep_stale_cgroups():
    for root in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            m = re.match(r"^bwt-(\d+)-", name)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                try:
                    os.rmdir(os.path.join(root, name))
                except OSError:
                    pass


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is fields[0]; utime..cstime are 14..17 in
    # proc(5) numbering, i.e. fields[11..15] here.
    return sum(int(x) for x in fields[11:15])


def wait_udp_bound(ns, port, limit=10.0, proc=None):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out = ns.run("ss", "-H", "-u", "-l", "-n", timeout=5).stdout
        for line in out.splitlines():
            cols = line.split()
            if len(cols) > 3 and cols[3].endswith(f":{port}"):
                return
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.argv[0]} exited:\n{proc.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"UDP port {port} not bound in {ns.name} after {limit}s"
                       + (f"\n{proc.tail()}" if proc else ""))


class PairLab:
    """Server namespace and client namespace joined by one veth pair.

    server `srv0` holds server_addr/prefix; client `eth0` holds client_addr/prefix.
    """

    def __init__(self, server_addr, client_addr, prefix):
        self.server = Netns("srv")
        self.client = Netns("cli")
        self.server_if, self.client_if = "srv0", "eth0"
        self.server.ip("link", "add", self.server_if, "type", "veth", "peer", "name",
                       self.client_if, "netns", self.client.name)
        self.server.ip("addr", "add", f"{server_addr}/{prefix}", "dev", self.server_if)
        self.client.ip("addr", "add", f"{client_addr}/{prefix}", "dev", self.client_if)
        self.server.ip("link", "set", self.server_if, "up")
        self.client.ip("link", "set", self.client_if, "up")

    def delete(self):
        self.client.delete()
        self.server.delete()


def _cleanup():
    for proc in list(_processes):
        try:
            proc.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    for name in list(_namespaces):
        _kill_inside(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    _namespaces.clear()


def _on_signal(signum, _frame):
    sys.exit(128 + signum)


def init():
    """Checks root, sweeps stale namespaces, installs cleanup handlers."""
    if os.geteuid() != 0:
        sys.exit("peer benchmarks need root (network namespaces); run as root")
    for tool in ("ip", "ss"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ["PATH"].split(":")):
            sys.exit(f"missing tool {tool}; tests/run installs the packages")
    removed = sweep_stale()
    sweep_stale_cgroups()
    if removed:
        print(f"swept stale namespaces: {' '.join(removed)}", file=sys.stderr)
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def require(*tools):
    missing = [t for t in tools if not any(os.access(os.path.join(d, t), os.X_OK)
                                           for d in os.environ["PATH"].split(":") + ["/usr/sbin", "/sbin"])]
    if missing:
        sys.exit(f"missing tools: {' '.join(missing)}; tests/run installs the packages")


def bootwave_binary(repo):
    """target/release/bootwave-dataplane (or $BOOTWAVE_DATAPLANE)."""
    path = os.environ.get("BOOTWAVE_DATAPLANE") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target")), "release", "bootwave-dataplane")
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} not found: build it with `cargo build --release -p bootwave-dataplane`")
    return path


# The journal setting the peer benches run bootwave with: the shipped default
# of assets/bootwave.toml, fsync batched every 2 ms.
BENCH_FSYNC = {"fsync": "batch", "fsync_interval": "2ms"}

# The data plane logs one line per answered DHCP packet at `info`; the peers
# run with per-lease logging off (dnsmasq --quiet-dhcp/--quiet-tftp, Kea at
# WARN), so bootwave runs at `warn` too.
BOOTWAVE_ENV = {"RUST_LOG": "warn"}


def bootwave_argv(repo, config_path, backend):
    """The data plane's command line on `backend` (uring | portable | auto)."""
    return [bootwave_binary(repo), "--config", config_path, "--backend", backend]


def bootwave_config(iface, server_addr, net, prefix, pool_start, pool_end, lease_secs, state_dir,
                    tftp_root=None, boot_file=None, fsync="never", fsync_interval="2ms"):
    """bootwave.toml for the benchmark, in the schema of assets/bootwave.toml
    (reference: assets/README.md); the same shape as `bootwave_toml` in
    tests/e2e/src/bootwave_config.rs. Without a TFTP root, `state_dir` (empty
    apart from the journal) is served. fsync "never" (this function's default)
    matches the peers, which keep leases in memory (dnsmasq --leasefile-ro) or
    write without fsync (Kea memfile); the peer benches pass BENCH_FSYNC, the
    shipped default of assets/bootwave.toml (replies wait for the fsync)."""
    q = lambda s: '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'
    text = f'''interfaces = [{q(iface)}]

[dhcp]
default-lease-time = {lease_secs}
max-lease-time = {lease_secs}
authoritative = true
ping-check = false

[tftp]
root = {q(tftp_root or state_dir)}
max-transfers = 20000

[journal]
dir = {q(os.path.join(state_dir, "journal"))}
fsync = {q(fsync)}
{f'fsync-interval = {q(fsync_interval)}' if fsync == 'batch' else ''}

[[subnets]]
network = "{net}/{prefix}"
ranges = ["{pool_start}-{pool_end}"]
routers = [{q(server_addr)}]
next-server = {q(server_addr)}
'''
    if boot_file:
        text += f"\n[[subnets.boot-rules]]\nfilename = {q(boot_file)}\n"
    return text


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]
