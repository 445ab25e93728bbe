#!/usr/bin/env bash
# A local Tether cluster in one command: a private Redis (AOF on), two workers,
# and a mix of sample jobs, shown live. Ctrl-C (or --duration) stops it all and
# removes the temporary Redis.
#
#   scripts/demo.sh               # run until Ctrl-C
#   scripts/demo.sh --duration 20 # run 20 seconds (non-interactive friendly)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=0
if [ "${1:-}" = "--duration" ]; then duration="${2:?seconds}"; fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (Debian package redis-server)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust 1.85 or newer (https://rustup.rs)"; exit 1; }

echo "building tether (release)…"
cargo build --release --quiet -p tether-cli --bin tether
tether=target/release/tether

dir=$(mktemp -d -t tether-demo-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
  echo "demo stopped; temporary Redis removed"
}
trap cleanup EXIT INT TERM

redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes \
  --appendfsync everysec --maxmemory-policy noeviction --daemonize yes --logfile "$dir/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export TETHER_REDIS_URL="redis://127.0.0.1:$port"

for i in 1 2; do
  $tether worker --queue default --queue images --concurrency 8 --lease-ttl 5s \
    --metrics-addr "127.0.0.1:$((port + i))" >"$dir/worker$i.log" 2>&1 &
  pids+=($!)
done

echo "Redis: $TETHER_REDIS_URL   metrics: http://127.0.0.1:$((port + 1))/metrics http://127.0.0.1:$((port + 2))/metrics"
$tether enqueue --queue images --type import --input '{"size_mb": 40, "chunk_ms": 150}' --count 3 >/dev/null
$tether enqueue --type flaky --input '{"fail_times": 2}' --backoff 500ms --count 5 >/dev/null
$tether enqueue --type fail --input '{"message": "corrupt image", "code": "CorruptImage", "fatal": true}' >/dev/null
$tether enqueue --type noop --count 2000 >/dev/null
$tether enqueue --type sleep --input '{"ms": 200}' --delay 5s --count 10 >/dev/null
victim=$($tether enqueue --type progress --input '{"steps": 100, "step_ms": 200}')
watched=$($tether enqueue --queue images --type import --input '{"size_mb": 30, "chunk_ms": 200}')
( sleep 3; $tether cancel "$victim" >/dev/null ) &

echo "following import $watched (tether watch):"
$tether watch "$watched" || true
start=$(date +%s)
while :; do
  $tether stats
  echo
  now=$(date +%s)
  if [ "$duration" -gt 0 ] && [ $((now - start)) -ge "$duration" ]; then break; fi
  sleep 2
done
$tether list --limit 10
