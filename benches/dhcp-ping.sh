#!/usr/bin/env bash
# DHCPv4 with ping check on, new and returning clients (perfdhcp broadcast mode). See benches/README.md.
# Usage: sudo benches/dhcp-ping.sh [--server NAME]... [--rates 500,1000,2000] [--seconds 4] [--kind new|returning|both] [--json out.json]
set -euo pipefail
exec python3 "$(dirname "$0")/dhcp_ping.py" "$@"
