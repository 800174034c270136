#!/usr/bin/env bash
# Prints how long `codesync run` takes, on an empty data directory, to answer
# /healthz and /readyz. Usage: scripts/measure-startup.sh [path/to/codesync] [runs]
set -euo pipefail
binary=$(realpath "${1:-target/release/codesync}")
runs=${2:-5}
http_port=18080
grpc_port=15051

for run in $(seq 1 "$runs"); do
  directory=$(mktemp -d)
  started=$(date +%s%N)
  (cd "$directory" && CODESYNC_HTTP_ADDR=127.0.0.1:$http_port CODESYNC_GRPC_ADDR=127.0.0.1:$grpc_port \
    exec "$binary" run >"$directory/log" 2>&1) &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$http_port/healthz"; do sleep 0.005; done
  healthy=$(date +%s%N)
  until curl -sf -o /dev/null "http://127.0.0.1:$http_port/readyz"; do sleep 0.005; done
  ready=$(date +%s%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$directory"
  echo "run $run: healthy after $(( (healthy - started) / 1000000 )) ms, ready after $(( (ready - started) / 1000000 )) ms"
done
