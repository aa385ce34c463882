#!/usr/bin/env bash
# Reboot-wave benchmark: waves of simulated machines (bootwave-wave) through
# the whole network boot against each server, in one run, same namespace
# layout and files, plus the simulator's own ceiling (its reflector).
#
# Usage: sudo benches/wave.sh [NODES...]          (default: 1000 10000)
#        SERVERS="reflector bootwave-uring" sudo benches/wave.sh 1000
#        LOSS=10 sudo benches/wave.sh 1000      (10 % of datagrams lost each way)
#        TFTP_RETRIES=10 …                       (bootwave's [tftp] max-retries)
#        OUT=DIR …                               (keep each run's output and
#                                                 per-machine JSON lines in DIR)
#
# Servers: reflector, bootwave-uring, bootwave-portable, dnsmasq (Debian's
# dnsmasq 2.90: DHCP + TFTP, --tftp-max raised, its ping check off as
# bootwave's is), and bootwave-uring-http / bootwave-portable-http (never by
# default): iPXE gets refind-http.pxe and the machines load rEFInd and its
# configuration over HTTP (bootwave-wave --http). Layout (as `bootwave demo`): namespace SRV holds the server
# on 10.200.0.1/24; namespace SIM holds the relay address 10.200.0.2 and
# every machine's leased address (10.201.0.0/16 is local there); SRV routes
# 10.201.0.0/16 via the relay. Traffic stays inside the two namespaces.
#
# Per run: machines done/failed, wave time, retransmits, server CPU per
# machine (utime + stime of the server process), peak RSS (VmHWM) and its
# growth over the wave per machine, and the
# time's ratio to the reflector's (a server within 20 % of it is labelled
# generator-bound: the simulator, not the server, is the limit).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "wave.sh: run as root (network namespaces)" >&2; exit 2; }

nodes_list=("${@:-1000 10000}")
read -r -a nodes_list <<<"${nodes_list[*]}"
servers=${SERVERS:-"reflector bootwave-uring bootwave-portable dnsmasq"}
timeout_s=${WAVE_TIMEOUT:-300}
# This kernel may lack netem: the simulator loses datagrams itself.
loss=${LOSS:-0}

cargo build -q --release --locked -p bootwave-dataplane -p bootwave-wave
bin=target/release
if [[ $servers == *dnsmasq* ]] && ! command -v dnsmasq >/dev/null; then
    echo "wave.sh: dnsmasq is not installed (apt-get install dnsmasq-base)" >&2
    exit 2
fi

tag=bwwave-$$
srv=$tag-srv
sim=$tag-sim
work=$(mktemp -d /tmp/$tag.XXXXXX)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    for ns in "$srv" "$sim"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The files: the shipped script and rEFInd configuration, stand-ins of the
# boot programs' sizes.
files=$work/tftp
mkdir -p "$files"
cp assets/tftp/refind.pxe assets/tftp/refind-http.pxe assets/tftp/refind.conf "$files/"
head -c $((1024 * 1024)) /dev/urandom >"$files/ipxe.efi"
head -c $((270 * 1024)) /dev/urandom >"$files/refind_x64.efi"

ip netns add "$srv"
ip netns add "$sim"
ip link add "${tag}a" netns "$srv" type veth peer name "${tag}b" netns "$sim"
ip -n "$srv" link set lo up
ip -n "$sim" link set lo up
ip -n "$srv" addr add 10.200.0.1/24 dev "${tag}a"
ip -n "$sim" addr add 10.200.0.2/24 dev "${tag}b"
ip -n "$srv" link set "${tag}a" up
ip -n "$sim" link set "${tag}b" up
ip -n "$srv" route add 10.201.0.0/16 via 10.200.0.2
ip -n "$sim" route add local 10.201.0.0/16 dev lo

cat >"$work/bootwave.toml" <<EOF
interfaces = ["${tag}a"]

[dhcp]
default-lease-time = "2h"
max-lease-time = "2h"
authoritative = true
ping-check = false
relays = ["10.200.0.2"]

[tftp]
root = "$files"
max-transfers = 16384
${TFTP_RETRIES:+max-retries = $TFTP_RETRIES}

[journal]
dir = "$work/journal"
fsync = "batch"

[[subnets]]
network = "10.200.0.0/15"
ranges = ["10.201.100.0-10.201.255.250"]
routers = ["10.200.0.2"]
next-server = "10.200.0.1"

[[subnets.boot-rules]]
arch = ["efi-x64", "efi-x64-alt"]
user-class = "iPXE"
filename = "refind.pxe"

[[subnets.boot-rules]]
arch = ["efi-x64", "efi-x64-alt"]
filename = "ipxe.efi"
EOF

# The HTTP variant: [http] on port 80, and iPXE's script loads over HTTP.
sed -e 's/^filename = "refind.pxe"$/filename = "refind-http.pxe"/' \
    -e 's/^\[journal\]$/[http]\nport = 80\n\n[journal]/' \
    "$work/bootwave.toml" >"$work/bootwave-http.toml"
grep -q refind-http.pxe "$work/bootwave-http.toml" && grep -q '^\[http\]' "$work/bootwave-http.toml" ||
    { echo "wave.sh: could not write the HTTP variant's configuration" >&2; exit 2; }

start_server() { # NAME -> sets server_pid
    rm -rf "$work/journal" "$work/dnsmasq.leases"
    mkdir -p "$work/journal"
    case $1 in
    bootwave-uring | bootwave-portable)
        ip netns exec "$srv" "$bin/bootwave-dataplane" --config "$work/bootwave.toml" \
            --backend "${1#bootwave-}" --control none >"$work/server.log" 2>&1 &
        ;;
    bootwave-uring-http | bootwave-portable-http)
        backend=${1#bootwave-}
        ip netns exec "$srv" "$bin/bootwave-dataplane" --config "$work/bootwave-http.toml" \
            --backend "${backend%-http}" --control none >"$work/server.log" 2>&1 &
        ;;
    dnsmasq)
        ip netns exec "$srv" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
            --user=root --interface="${tag}a" --bind-interfaces --no-ping \
            --dhcp-authoritative --dhcp-lease-max=50000 --dhcp-leasefile="$work/dnsmasq.leases" \
            --dhcp-range=10.201.100.0,10.201.255.250,255.254.0.0,2h \
            --dhcp-option=option:router,10.200.0.2 \
            --dhcp-match=set:ipxe,175 --dhcp-boot=tag:ipxe,refind.pxe --dhcp-boot=tag:!ipxe,ipxe.efi \
            --enable-tftp --tftp-root="$files" --tftp-max=16384 \
            --log-facility="$work/server.log" &
        ;;
    esac
    server_pid=$!
    # Ready when something listens on the TFTP port.
    for _ in $(seq 100); do
        if ip netns exec "$srv" ss -uln | grep -q ':69 '; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
        sleep 0.1
    done
    echo "wave.sh: $1 did not start" >&2
    return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

printf '%-22s %6s %6s %6s %9s %8s %12s %22s %9s %s\n' server nodes done failed "time(s)" resends "cpu/node(ms)" "peak MiB/KiB per node" "vs ceil" ""
declare -A ceiling
results=$work/results
: >"$results"
for n in "${nodes_list[@]}"; do
    for s in $servers; do
        out=$work/$s-$n.out
        cpu="-" rss="-"
        if [[ $s == reflector ]]; then
            ip netns exec "$sim" "$bin/bootwave-wave" --reflector --nodes "$n" \
                --files "$files" --timeout "$timeout_s" --loss "$loss" >"$out" 2>&1 || true
        else
            start_server "$s"
            sleep 0.5
            c0=$(cpu_ticks "$server_pid") r0=$(rss_kib "$server_pid")
            http=()
            [[ $s == *-http ]] && http=(--http)
            [[ -n ${OUT:-} ]] && mkdir -p "$OUT" && http+=(--json "$OUT/$s-$n.jsonl")
            ip netns exec "$sim" "$bin/bootwave-wave" --nodes "$n" --server 10.200.0.1 \
                --relay 10.200.0.2 --files "$files" --timeout "$timeout_s" --loss "$loss" \
                "${http[@]}" >"$out" 2>&1 || true
            c1=$(cpu_ticks "$server_pid") peak=$(hwm_kib "$server_pid")
            kill "$server_pid"
            wait "$server_pid" 2>/dev/null || true
            server_pid=
            cpu=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", d * 1000 / hz / n}')
            rss=$(awk -v p="$peak" -v r="$r0" -v n="$n" 'BEGIN {printf "%.1f/%.1f", p / 1024, (p - r) / n}')
        fi
        last=$(grep '^wave:' "$out" | tail -1)
        if [[ -z $last ]]; then
            echo "wave.sh: $s at $n nodes printed no result:" >&2
            tail -5 "$out" >&2
            continue
        fi
        read -r _ _ _ _ done _ failed _ t _ <<<"$last"
        resends=$(awk '/^retransmits/ {print $2}' "$out")
        ratio=- label=
        if [[ $s == reflector ]]; then
            ceiling[$n]=$t
        elif [[ -n ${ceiling[$n]:-} ]]; then
            ratio=$(awk -v c="${ceiling[$n]}" -v t="$t" 'BEGIN {printf "%.2f", c / t}')
            if awk -v r="$ratio" 'BEGIN {exit !(r >= 0.8)}'; then label=generator-bound; fi
        fi
        printf '%-22s %6s %6s %6s %9s %8s %12s %22s %9s %s\n' "$s" "$n" "$done" "$failed" "$t" "$resends" "$cpu" "$rss" "$ratio" "$label" | tee -a "$results"
        grep '^failed:' "$out" | head -3 || true
        [[ -n ${OUT:-} ]] && cp "$out" "$OUT/"
    done
done
