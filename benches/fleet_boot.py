#!/usr/bin/env python3
"""Summarises benches/fleet-boot runs as markdown tables.

Usage: fleet_boot.py TMPDIR VMS NPROC RUN|WORKDIR|LOAD_BEFORE|LOAD_AFTER|RC ...

Per run it reads TMPDIR/RUN.times (written by tests/firmware/run --times:
server ra case vm mac seconds start-epoch) and WORKDIR/fleet.pcap (the
capture on the server's bridge: DHCP, TFTP requests, ICMPv6), and prints
the power-on-to-marker times (p50, max) and the time per boot stage.
"""

import re
import statistics
import subprocess
import sys

TIMESTAMP = re.compile(r"^(\d+\.\d+) ")

# Boot stages: (label, event that starts it, event that ends it).
STAGES = [
    ("power-on → firmware DHCP (OVMF, PXE start)", "start", "fw_dhcp"),
    ("firmware DHCP → ipxe.efi request", "fw_dhcp", "rrq:ipxe.efi"),
    ("ipxe.efi transfer + iPXE start", "rrq:ipxe.efi", "ipxe_dhcp"),
    ("iPXE DHCP + IPv6 wait → refind.pxe request", "ipxe_dhcp", "rrq:refind.pxe"),
    ("refind.pxe, refind.conf → refind_x64.efi request", "rrq:refind.pxe", "rrq:refind_x64.efi"),
    ("rEFInd transfer, scan, disk loader → marker", "rrq:refind_x64.efi", "marker"),
]


def packets(pcap):
    """Yields (epoch seconds, text) per packet of the capture."""
    out = subprocess.run(
        ["tcpdump", "-tt", "-r", pcap, "-n", "-e", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        errors="replace",
        check=False,
    ).stdout
    current = None
    for line in out.splitlines():
        m = TIMESTAMP.match(line)
        if m:
            if current is not None:
                yield current
            current = (float(m.group(1)), line.strip())
        elif current is not None:
            current = (current[0], current[1] + " " + line.strip())
    if current is not None:
        yield current


def events(pcap, macs):
    """First time of each event per MAC: fw_dhcp, ipxe_dhcp, rrq:FILE, rs, ra."""
    seen = {mac: {} for mac in macs}
    for t, pkt in packets(pcap):
        fields = pkt.split(" ")
        src = fields[1].lower() if len(fields) > 1 else ""
        dst = fields[3].lower().rstrip(",") if len(fields) > 3 else ""
        names = []
        if "BOOTP/DHCP, Request" in pkt and src in seen:
            # OVMF sends no option 77; iPXE does (tcpdump cannot decode
            # its value, so its presence is what counts).
            names.append("ipxe_dhcp" if "User-Class (77)" in pkt else "fw_dhcp")
        m = re.search(r'RRQ "([^"]*)"', pkt)
        if m and src in seen:
            names.append("rrq:" + m.group(1))
        if "router solicitation" in pkt and src in seen:
            names.append("rs")
        if "router advertisement" in pkt:
            targets = seen.keys() if dst.startswith("33:33:") else [dst]
            for mac in targets:
                if mac in seen and "rs" in seen[mac]:
                    seen[mac].setdefault("ra", t)
        for name in names:
            seen[src].setdefault(name, t)
    return seen


def fmt(values):
    if not values:
        return "–"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def main(argv):
    tmp, vms, nproc = argv[1], int(argv[2]), argv[3]
    runs = [a.split("|") for a in argv[4:]]
    header = "| run | machines booted | power-on → marker p50 / max (s) | load average before → after |"
    rows = [header, "| --- | --- | --- | --- |"]
    stage_cols = []
    for name, work, before, after, rc in runs:
        boots = []
        try:
            with open(f"{tmp}/{name}.times", encoding="utf-8") as f:
                boots = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            pass
        secs = [float(b[5]) for b in boots]
        rows.append(
            f"| {name} | {len(boots)}/{vms}{'' if rc == '0' else ' (run failed)'} | {fmt(secs)} | {before} → {after} |"
        )
        per_mac = events(f"{work}/fleet.pcap", [b[4] for b in boots]) if work else {}
        for b in boots:
            ev = per_mac.get(b[4], {})
            ev["start"] = float(b[6])
            ev["marker"] = float(b[6]) + float(b[5])
        stages = []
        for label, a, z in STAGES:
            vals = [e[z] - e[a] for e in per_mac.values() if a in e and z in e]
            stages.append(fmt(vals))
        rs_ra = [(e["ra"] - e["rs"]) * 1000 for e in per_mac.values() if "ra" in e and "rs" in e]
        stages.append(
            f"{statistics.median(rs_ra):.1f} / {max(rs_ra):.1f} ms" if rs_ra else "no RA"
        )
        stage_cols.append((name, stages))
    print(f"{vms} machines started together; {nproc} CPUs shared with other work; TCG.\n")
    print("\n".join(rows))
    print()
    print("Time per stage, p50 / max over the machines (s), from the capture on the server's bridge:\n")
    print("| stage | " + " | ".join(n for n, _ in stage_cols) + " |")
    print("| --- |" + " --- |" * len(stage_cols))
    labels = [s[0] for s in STAGES] + ["first router solicitation → router advertisement"]
    for i, label in enumerate(labels):
        print(f"| {label} | " + " | ".join(c[i] for _, c in stage_cols) + " |")


if __name__ == "__main__":
    main(sys.argv)
