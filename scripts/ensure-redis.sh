#!/usr/bin/env bash
# Makes sure a Redis server answers on 127.0.0.1:6379 for the tests that share limits and
# presence through Redis (each test under a key prefix of its own): starts one if none answers,
# keeping nothing on disk. Tests that stop or freeze Redis start their own on a free port.
set -euo pipefail

ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ready && exit 0
echo "ensure-redis: starting Redis on 127.0.0.1:6379"
mkdir -p /var/lib/redis /var/log/redis
redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log
for _ in $(seq 1 50); do
  ready && exit 0
  sleep 0.1
done
echo "ensure-redis: Redis does not answer on 127.0.0.1:6379" >&2
exit 1
