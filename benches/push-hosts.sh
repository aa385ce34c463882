#!/usr/bin/env bash
# Reservation push benchmark (bootwave agent push vs dnsmasq SIGHUP, under perfdhcp load). See benches/README.md.
# Usage: sudo benches/push-hosts.sh [--count 100000] [--rate 1000] [--seconds 12] [--json out.json]
set -euo pipefail
exec python3 "$(dirname "$0")/push_hosts.py" "$@"
