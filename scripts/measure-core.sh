#!/usr/bin/env bash
# Measures the core figures on a private Redis: Redis commands per job (from
# INFO commandstats, which counts the commands inside scripts too) and the
# end-to-end throughput of noop jobs drained by one worker process.
#
#   scripts/measure-core.sh [jobs=10000] [concurrency=64]
#   METRICS=1 scripts/measure-core.sh …   # worker serves /metrics, scraped every second
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-10000}
concurrency=${2:-64}
cargo build --release --quiet -p tether-cli --bin tether
tether=target/release/tether
dir=$(mktemp -d -t tether-measure-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { for pid in ${worker:-} ${scraper:-}; do kill "$pid" 2>/dev/null || true; done; redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no --daemonize yes --logfile "$dir/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
url="redis://127.0.0.1:$port"
calls() { redis-cli -p "$port" info commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_/ {n += $3} END {print n}'; }
breakdown() { redis-cli -p "$port" info commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_/ {printf "%s=%s ", substr($1, 9), $3}'; echo; }

redis-cli -p "$port" config resetstat >/dev/null
$tether enqueue --redis "$url" --type noop --count "$jobs" >/dev/null
enqueue_calls=$(calls)
echo "enqueue (pipelined): $(breakdown)"
redis-cli -p "$port" config resetstat >/dev/null

start=$(date +%s.%N)
metrics_args=()
if [ -n "${METRICS:-}" ]; then
  mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  metrics_args=(--metrics-addr "127.0.0.1:$mport")
  ( while sleep 1; do curl -s "127.0.0.1:$mport/metrics" >/dev/null || true; done ) &
  scraper=$!
fi
$tether worker --redis "$url" --concurrency "$concurrency" --log error "${metrics_args[@]}" &
worker=$!
polls=0
until [ "$(redis-cli -p "$port" hget 'tether:{default}:counts' success)" = "$jobs" ]; do
  polls=$((polls + 1)); sleep 0.01
done
end=$(date +%s.%N)
kill -TERM "$worker"; wait "$worker" 2>/dev/null || true
process_calls=$(( $(calls) - polls - 1 ))
echo "processing: $(breakdown)"
python3 - "$jobs" "$enqueue_calls" "$process_calls" "$start" "$end" "$concurrency" <<'PY'
import sys
jobs, enq, proc, start, end, conc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
print(f"jobs                     {jobs}")
print(f"commands/job enqueue     {enq / jobs:.2f}")
print(f"commands/job processing  {proc / jobs:.2f}  (worker start-up, heartbeats and maintenance included)")
print(f"commands/job total       {(enq + proc) / jobs:.2f}")
print(f"noop jobs/s, 1 worker process, concurrency {conc}: {jobs / (end - start):.0f}  ({end - start:.2f} s, process start included)")
PY
