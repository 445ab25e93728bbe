#!/usr/bin/env bash
# Redis's own instructions per job (valgrind's callgrind on redis-server, which counts
# instructions and so does not depend on the machine's load) for each `tether` binary
# given, e.g. the release build of two versions:
#
#   scripts/redis-cost.sh /tmp/tether-old target/release/tether [JOBS=3000]
#
# Per binary, on a private Redis under callgrind (loopback, a free port): a warm-up
# (the function library loaded, the queue made, 10 jobs run), then the counters are
# zeroed, JOBS noop jobs enqueued with `tether enqueue --count` (the bulk path) and
# counted; zeroed again, one `tether worker --concurrency 64` drains them (claims,
# finishes, its heartbeats and maintenance) and is counted. Prints instructions per
# job of each phase. Needs valgrind and redis-server.
set -euo pipefail
jobs=3000
bins=()
for a in "$@"; do
  if [[ $a =~ ^[0-9]+$ ]]; then jobs=$a; else bins+=("$a"); fi
done
[ ${#bins[@]} -ge 1 ] || { echo "usage: $0 TETHER_BINARY... [JOBS]" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits (bounded) until the queue has recorded `n` successes.
await_success() {
  for _ in $(seq 3000); do
    done=$(redis-cli -p "$port" hget 'tether:{default}:counts' success)
    [ "${done:-0}" -ge "$1" ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1 successes (have ${done:-0})" >&2
  return 1
}
# Dumps the counters and prints the total instructions since the last zeroing.
total() {
  callgrind_control -d "$vpid" >/dev/null
  grep -m1 -E '^(summary|totals):' "$(ls -t "$dir"/cg.*.out* | head -1)" | awk '{print $2}'
}
run() {
  local bin=$1
  dir=$(mktemp -d -t tether-redis-cost-XXXXXX)
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p.out" redis-server --port "$port" \
    --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null 2>"$dir/valgrind.log" &
  vpid=$!
  trap 'kill $vpid 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
  local url="redis://127.0.0.1:$port" worker
  "$bin" enqueue --redis "$url" --type noop --count 10 >/dev/null
  "$bin" worker --redis "$url" --concurrency 64 >/dev/null 2>&1 &
  worker=$!
  await_success 10
  kill -TERM "$worker"; wait "$worker" 2>/dev/null || true
  callgrind_control -z "$vpid" >/dev/null
  "$bin" enqueue --redis "$url" --type noop --count "$jobs" >/dev/null
  local enqueue; enqueue=$(total)
  callgrind_control -z "$vpid" >/dev/null
  "$bin" worker --redis "$url" --concurrency 64 >/dev/null 2>&1 &
  worker=$!
  await_success $((jobs + 10))
  kill -TERM "$worker"; wait "$worker" 2>/dev/null || true
  local process; process=$(total)
  printf '%-40s enqueue %8d   process (claim, finish, the rest) %8d   instructions per job\n' \
    "$bin" $((enqueue / jobs)) $((process / jobs))
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$vpid" 2>/dev/null || true
  rm -rf "$dir"
  trap - EXIT
}
for b in "${bins[@]}"; do run "$b"; done
