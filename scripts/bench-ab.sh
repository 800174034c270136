#!/usr/bin/env bash
# Two or more builds of codesync side by side under the fan-out load, alternating (each on a fresh
# data directory), so that what one change bought is measured in one run on one machine.
# Usage: scripts/bench-ab.sh NAME=path/to/codesync NAME=path/to/codesync ...
# Environment: BENCH (the codesync-bench binary; by default the one beside the first build), CLIENTS (default "100 500": 500 and 2,500 edits/s), STEP_SECONDS (10), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 NAME=path/to/codesync ..." >&2; exit 2; }
bench_dir=$(dirname "$(realpath "${1#*=}")")
bench="${BENCH:-$bench_dir/codesync-bench}"
[ -x "$bench" ] || { echo "no $bench: cargo build --release -p codesync-bench" >&2; exit 1; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
echo "build clients edits/s p50_ms p99_ms p999_ms server_cpu_% server_cpu_s_per_1k_edits lost"
for round in $(seq "${ROUNDS:-2}"); do
  for spec in "$@"; do
    name=${spec%%=*}
    binary=$(realpath "${spec#*=}")
    work=$(mktemp -d)
    http_port=$(free_port)
    grpc_port=$(free_port)
    (cd "$work" && CODESYNC_HTTP_ADDR=127.0.0.1:$http_port CODESYNC_GRPC_ADDR=127.0.0.1:$grpc_port \
      CODESYNC_RATE_LIMIT_PER_MINUTE=1000000 CODESYNC_MAX_CONNECTIONS_PER_ADDRESS=100000 \
      CODESYNC_MAX_STREAMS_PER_USER=100000 CODESYNC_LOG=warn exec "$binary" run >server.log 2>&1) &
    pid=$!
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break; sleep 0.05; done
    for clients in ${CLIENTS:-100 500}; do
      "$bench" collab --server "codesync=http://127.0.0.1:$http_port" --pid "codesync=$pid" --only fanout \
        --fanout-clients "$clients" --fanout-documents $((clients / 5)) --fanout-seconds "${STEP_SECONDS:-10}" \
        | sed -n 's/^fanout: //p' | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sys.argv[1], d["clients"], d["edits_per_second"], d["latency_p50_ms"], d["latency_p99_ms"], d["latency_p999_ms"],
      d["server_cpu_percent"], d["server_cpu_seconds_per_1000_edits"], d["deliveries_expected"] - d["deliveries_measured"])' "$name"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$work"
  done
done
