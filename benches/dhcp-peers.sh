#!/usr/bin/env bash
# DHCPv4 peer benchmark (perfdhcp vs dnsmasq, Kea, bootwave). See benches/README.md.
# Usage: sudo benches/dhcp-peers.sh [--server NAME]... [--rates 1000,2000] [--seconds 5] [--json out.json]
set -euo pipefail
exec python3 "$(dirname "$0")/dhcp_peers.py" "$@"
