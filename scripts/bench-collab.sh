#!/usr/bin/env bash
# Runs `codesync-bench collab` against CodeSync, the reference y-websocket server
# (@y/websocket-server) and Hocuspocus (@hocuspocus/server), one after the other on
# this machine, and prints their figures side by side. Extra arguments go to
# `codesync-bench collab` (e.g. --only replay --fanout-seconds 10).
# Usage: scripts/bench-collab.sh [path/to/codesync] [bench arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/release/codesync}")
shift || true
# The benchmark binary beside the server's (cargo build --release -p codesync -p codesync-bench).
bench="$(dirname "$binary")/codesync-bench"
[ -x "$bench" ] || { echo "no $bench: cargo build --release -p codesync-bench" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

npm ci --prefix bench/yjs-servers --no-audit --no-fund --loglevel=error >/dev/null

# Ports nothing listens on now (the kernel's pick), so that a run never meets another's server.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
grpc_port=$(free_port)
y_websocket_port=$(free_port)
hocuspocus_port=$(free_port)

wait_for_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

# CodeSync on embedded defaults, with the REST rate limit out of the benchmark's way.
(cd "$work" && CODESYNC_HTTP_ADDR=127.0.0.1:$http_port CODESYNC_GRPC_ADDR=127.0.0.1:$grpc_port \
  CODESYNC_RATE_LIMIT_PER_MINUTE=1000000 CODESYNC_MAX_CONNECTIONS_PER_ADDRESS=100000 CODESYNC_MAX_STREAMS_PER_USER=100000 CODESYNC_LOG=warn \
  exec "$binary" run >codesync.log 2>&1) &
pids+=($!)
codesync_pid=$!
(HOST=127.0.0.1 PORT=$y_websocket_port exec node bench/yjs-servers/node_modules/@y/websocket-server/src/server.js >"$work/y-websocket.log" 2>&1) &
pids+=($!)
y_websocket_pid=$!
(HOST=127.0.0.1 PORT=$hocuspocus_port exec node bench/yjs-servers/hocuspocus.mjs >"$work/hocuspocus.log" 2>&1) &
pids+=($!)
hocuspocus_pid=$!
wait_for_port "$http_port"
wait_for_port "$y_websocket_port"
wait_for_port "$hocuspocus_port"

"$bench" collab \
  --server codesync=http://127.0.0.1:$http_port --pid "codesync=$codesync_pid" \
  --server y-websocket=ws://127.0.0.1:$y_websocket_port --pid "y-websocket=$y_websocket_pid" \
  --server hocuspocus=ws://127.0.0.1:$hocuspocus_port --pid "hocuspocus=$hocuspocus_pid" \
  "$@"
