#!/usr/bin/env bash
# Lock-step TFTP storm on loopback: N concurrent 1 MiB downloads (blksize
# 1432, one ACK per block, as iPXE fetches) against the data plane on each
# backend, one after the other, in a private network namespace. Prints one JSON line per server (aggregate MB/s, server CPU
# per transfer, RSS per concurrent transfer). See BENCHMARKS.md.
# Usage: sudo benches/tftp-storm.sh [TRANSFERS] [CONCURRENCY] [SERVERS...]
#        SERVERS: uring portable (default: both)
#        BOOTWAVE_DATAPLANE=PATH: another build of the data plane to measure
#        (e.g. an earlier commit's, for a before/after figure in one run)
set -euo pipefail
cd "$(dirname "$0")/.."
transfers=${1:-1000}
concurrency=${2:-1000}
shift $(( $# > 2 ? 2 : $# ))
servers=("$@")
[ ${#servers[@]} -eq 0 ] && servers=(uring portable)
size=$((1 << 20))

cargo build --release --bin bootwave-dataplane --example tftp_storm >&2
bin=target/release
dataplane=${BOOTWAVE_DATAPLANE:-$bin/bootwave-dataplane}
work=$(mktemp -d /tmp/bw-tftp-storm.XXXXXX)
ns=bw-tftp-storm-$$
cleanup() {
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p "$work/root" "$work/state"
head -c "$size" /dev/urandom > "$work/root/ipxe.efi"
cat > "$work/bootwave.toml" <<TOML
interfaces = []
[tftp]
root = "$work/root"
max-transfers-per-client = 100000
new-transfers-per-second = 100000
new-transfers-burst = 100000
[journal]
dir = "$work/state"
[[subnets]]
network = "10.199.0.0/24"
ranges = ["10.199.0.10-10.199.0.20"]
TOML

for server in "${servers[@]}"; do
    case $server in
        uring|portable)
            ip netns exec "$ns" prlimit --nofile=8192 "$dataplane" \
                --config "$work/bootwave.toml" --backend "$server" --log-format human \
                >"$work/$server.log" 2>&1 &
            ;;
        *) echo "unknown server $server" >&2; exit 2 ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        ip netns exec "$ns" ss -uln | grep -q '127.0.0.1:69\b\|0.0.0.0:69\b\|\*:69\b' && break
        sleep 0.1
    done
    printf '%s %s %s ' "$server" "$dataplane" "$(ip netns exec "$ns" cat /proc/loadavg | cut -d' ' -f1-3)"
    ip netns exec "$ns" prlimit --nofile=8192 "$bin/examples/tftp_storm" 127.0.0.1:69 ipxe.efi \
        --size "$size" --transfers "$transfers" --concurrency "$concurrency" --blksize 1432 \
        --pid "$server_pid" --deadline 300 || true
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    server_pid=
done
