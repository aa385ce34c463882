#!/usr/bin/env bash
# HTTP boot-file benchmark: bootwave's HTTP server against nginx, side by
# side in one run, on the same files. See benches/README.md.
#
# Usage: sudo benches/http-peers.sh
#        DURATION=5 SERVERS="bootwave nginx" sudo benches/http-peers.sh
#        WORKLOADS="4k-10k" sudo benches/http-peers.sh --json /tmp/http.json
#
# Environment: DURATION (seconds per 1 MiB and 4 KiB run, default 10),
# DURATION_LARGE (seconds per 50 MiB run, default 6 × DURATION, at most 120:
# 1,000 concurrent 50 MiB downloads take ~40 s each on 2 cores, so a shorter
# run completes few of them), SERVERS (default "bootwave nginx"),
# WORKLOADS (default "1m 50m 4k-10k"), QUIET_WAIT (seconds to wait first,
# at most 600, for a quiet machine: 1-minute load below 0.5 and no rustc or
# qemu-system process; default 0). SERVERS may add nginx-copy (nginx with
# sendfile off). Further arguments go to benches/http_peers.py.
#
# wrk comes from Debian (apt-get install wrk: no daemon). nginx is NOT
# installed: its package would start a daemon on the host; Debian's nginx
# package is fetched with apt-get download and unpacked (dpkg -x) into the
# bench's work directory, and run from there with a generated config inside
# the server namespace only. bootwave is the release build of this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "http-peers.sh: run as root (network namespaces)" >&2; exit 2; }

duration=${DURATION:-10}
duration_large=${DURATION_LARGE:-$((6 * duration))}
(( duration_large > 120 )) && duration_large=120
servers=${SERVERS:-"bootwave nginx"}
workloads=${WORKLOADS:-"1m 50m 4k-10k"}

updated=
apt_update_once() { [[ -n $updated ]] || { apt-get update -qq; updated=1; }; }
if ! command -v wrk >/dev/null; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

work=$(mktemp -d /tmp/bwhttp-$$.XXXXXX)
chmod 0755 "$work"
helper=
cleanup() {
    if [[ -n $helper ]] && kill -0 "$helper" 2>/dev/null; then
        kill -TERM "$helper" 2>/dev/null || true
        wait "$helper" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

args=()
for s in $servers; do args+=(--server "$s"); done
for w in $workloads; do args+=(--workload "$w"); done

if [[ " $servers " == *" nginx"* ]]; then
    # Debian's nginx (the binary package; nginx-light is a transitional
    # package that depends on it), unpacked, never installed.
    mkdir -p "$work/deb"
    chown _apt "$work/deb" 2>/dev/null || true
    if ! (cd "$work/deb" && apt-get download -qq nginx >/dev/null 2>&1); then
        apt_update_once
        (cd "$work/deb" && apt-get download -qq nginx >/dev/null)
    fi
    dpkg -x "$work"/deb/nginx_*.deb "$work/nginx"
    args+=(--nginx "$work/nginx/usr/sbin/nginx")
fi

if [[ " $servers " == *" bootwave "* ]]; then
    cargo build -q --release --locked -p bootwave-dataplane
fi

quiet_wait=${QUIET_WAIT:-0}
(( quiet_wait > 600 )) && quiet_wait=600
if (( quiet_wait > 0 )); then
    end=$((SECONDS + quiet_wait)) quiet=
    while (( SECONDS < end )); do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" 'BEGIN {exit !(l < 0.5)}' && ! pgrep -x rustc >/dev/null \
            && ! pgrep qemu-system >/dev/null; then
            quiet=1
            break
        fi
        sleep 10
    done
    if [[ -n $quiet ]]; then
        echo "machine quiet after $((SECONDS + quiet_wait - end)) s: load $(cut -d' ' -f1-3 /proc/loadavg)"
    else
        echo "machine NOT quiet after ${quiet_wait} s: load $(cut -d' ' -f1-3 /proc/loadavg);" \
            "rustc: $(pgrep -xc rustc || true), qemu-system: $(pgrep -c qemu-system || true)"
    fi
fi

python3 benches/http_peers.py --duration "$duration" --duration-large "$duration_large" \
    --workdir "$work" "${args[@]}" "$@" &
helper=$!
wait "$helper"
