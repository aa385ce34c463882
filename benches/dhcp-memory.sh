#!/usr/bin/env bash
# Data-plane RSS and journal size through 1,000,000 DHCP cycles of fresh MACs, and the time each journal compaction blocks its shard. See benches/README.md.
# Usage: sudo benches/dhcp-memory.sh [--cycles 1000000] [--every 100000] [--backend uring|portable] [--fsync batch|never] [--json out.json]
set -euo pipefail
exec python3 "$(dirname "$0")/dhcp_memory.py" "$@"
