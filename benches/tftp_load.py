#!/usr/bin/env python3
"""Concurrent TFTP download load: many lock-step (or windowed) clients.

Each transfer: RRQ `octet` with `blksize B tsize 0` (like iPXE) and, with
--windowsize W, `windowsize W` (like OVMF); OACK → ACK 0; DATA blocks are
ACKed one by one (no window), or every W blocks / on the last block. On
timeout the last ACK (or the RRQ) is resent, up to --retries times. A server
that ignores an option is followed (512-byte blocks, window 1).

Reported (JSON on stdout): transfers ok / failed, transfers/s, MB/s, bytes,
first-RRQ losses (transfers whose first RRQ got no answer within the
timeout), retransmissions, what the server granted (blksize, windowsize), and
p50/p99 transfer time. Bounded by --transfers and --deadline.
"""

import argparse
import asyncio
import hashlib
import json
import struct
import sys
import time

RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        self.queue.put_nowait((None, exc))


def rrq(filename, options):
    body = filename.encode() + b"\0octet\0"
    for key, value in options.items():
        body += f"{key}\0{value}\0".encode()
    return struct.pack("!H", RRQ) + body


def parse_oack(data):
    parts = data[2:].split(b"\0")
    return {parts[i].decode().lower(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2)}


async def transfer(loop, args, stats):
    transport, ep = await loop.create_datagram_endpoint(Endpoint, local_addr=(args.bind, 0))
    options = {"blksize": args.blksize, "tsize": 0}
    if args.windowsize:
        options["windowsize"] = args.windowsize
    request = rrq(args.file, options)
    server = (args.server, args.port)
    peer = None
    blksize, window = 512, 1
    expected, acked = 1, 0
    digest, size = hashlib.sha256(), 0
    last_sent = request
    tries = 0
    first = True
    started = time.monotonic()
    try:
        transport.sendto(request, server)
        while True:
            try:
                data, addr = await asyncio.wait_for(ep.queue.get(), args.timeout)
            except asyncio.TimeoutError:
                if peer is None and first:
                    stats["first_rrq_losses"] += 1
                first = False
                tries += 1
                if tries > args.retries:
                    stats["failures"]["timeout"] = stats["failures"].get("timeout", 0) + 1
                    return False
                stats["retransmits"] += 1
                transport.sendto(last_sent, peer or server)
                continue
            if data is None or len(data) < 4:
                continue
            if peer is None:
                peer = addr
            elif addr != peer:
                continue  # another TID: not ours
            tries = 0
            op, num = struct.unpack("!HH", data[:4])
            if op == ERROR:
                msg = data[4:].split(b"\0")[0].decode(errors="replace")
                key = f"error {num}: {msg}"
                stats["failures"][key] = stats["failures"].get(key, 0) + 1
                return False
            if op == OACK and expected == 1 and acked == 0:
                granted = parse_oack(data)
                blksize = int(granted.get("blksize", 512))
                window = int(granted.get("windowsize", 1))
                stats["granted"][f"blksize={blksize} windowsize={granted.get('windowsize', '-')}"] = \
                    stats["granted"].get(f"blksize={blksize} windowsize={granted.get('windowsize', '-')}", 0) + 1
                last_sent = struct.pack("!HH", ACK, 0)
                transport.sendto(last_sent, peer)
                continue
            if op != DATA:
                continue
            if num != expected & 0xFFFF:
                # Out of order or duplicate: re-ACK the last in-order block.
                transport.sendto(struct.pack("!HH", ACK, acked & 0xFFFF), peer)
                continue
            payload = data[4:]
            digest.update(payload)
            size += len(payload)
            last = len(payload) < blksize
            if last or expected - acked >= window:
                acked = expected
                last_sent = struct.pack("!HH", ACK, acked & 0xFFFF)
                transport.sendto(last_sent, peer)
            expected += 1
            if last:
                break
        ok = (args.expect_size is None or size == args.expect_size) and \
             (args.expect_sha256 is None or digest.hexdigest() == args.expect_sha256)
        if not ok:
            stats["failures"]["corrupt"] = stats["failures"].get("corrupt", 0) + 1
            return False
        stats["bytes"] += size
        stats["durations"].append(time.monotonic() - started)
        return True
    finally:
        transport.close()


async def main_async(args):
    loop = asyncio.get_running_loop()
    stats = {"bytes": 0, "first_rrq_losses": 0, "retransmits": 0, "failures": {}, "granted": {}, "durations": []}
    sem = asyncio.Semaphore(args.concurrency)

    async def one():
        async with sem:
            try:
                return await transfer(loop, args, stats)
            except Exception as exc:  # noqa: BLE001 - counted, not fatal
                key = f"{type(exc).__name__}: {exc}"
                stats["failures"][key] = stats["failures"].get(key, 0) + 1
                return False

    started = time.monotonic()
    tasks = [asyncio.ensure_future(one()) for _ in range(args.transfers)]
    done, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for task in pending:
        task.cancel()
    elapsed = time.monotonic() - started
    ok = sum(1 for t in done if not t.cancelled() and t.exception() is None and t.result())
    durations = sorted(stats.pop("durations"))
    pick = lambda q: durations[min(len(durations) - 1, round(q * (len(durations) - 1)))] if durations else None
    return {
        "transfers": args.transfers, "ok": ok, "failed": len(done) - ok, "unfinished": len(pending),
        "seconds": round(elapsed, 3), "transfers_per_s": round(ok / elapsed, 1),
        "mb_per_s": round(stats["bytes"] / elapsed / 1e6, 2),
        "p50_s": pick(0.5), "p99_s": pick(0.99), **stats,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server")
    ap.add_argument("file")
    ap.add_argument("--port", type=int, default=69)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--transfers", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--blksize", type=int, default=1432)
    ap.add_argument("--windowsize", type=int, default=0, help="0: do not ask (lock-step)")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--retries", type=int, default=5)
    ap.add_argument("--deadline", type=float, default=60.0, help="hard limit for the whole run, seconds")
    ap.add_argument("--expect-size", type=int)
    ap.add_argument("--expect-sha256")
    args = ap.parse_args()
    args.transfers = min(args.transfers, 20000)
    args.deadline = min(args.deadline, 300.0)
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    sys.exit(main())
