#!/usr/bin/env bash
# TFTP peer benchmark (concurrent downloads vs tftpd-hpa, dnsmasq, bootwave). See benches/README.md.
# Usage: sudo benches/tftp-peers.sh [--server NAME]... [--scenario NAME]... [--json out.json]
set -euo pipefail
exec python3 "$(dirname "$0")/tftp_peers.py" "$@"
