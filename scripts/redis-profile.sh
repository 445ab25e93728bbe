#!/usr/bin/env bash
# Where Redis spends its time per job, split into enqueue, claim, finish, other
# scripts, other commands and time outside any command:
#
#   scripts/redis-profile.sh [TETHER_BINARY] [JOBS] [RUNS]
#
# TETHER_BINARY defaults to $TETHER_BINARY, else target/release/tether; JOBS to
# 20,000; RUNS to $RUNS, else 1 (more runs print medians too).
# Each run, on a fresh private Redis with `slowlog-log-slower-than 0` (every command
# logged with its duration in µs):
#   1. `tether enqueue --type noop --count JOBS` (the bulk path);
#   2. one `tether worker --concurrency 64` until every job has succeeded (polled
#      with `tether stats` every 0.5 s; those polls count as other commands).
# Per job: the durations of the enqueue, claim and finish FCALLs, of the other
# FCALLs (renewals, maintenance, ...), of the other top-level commands, and the
# rest of Redis' used_cpu_user + used_cpu_sys (parsing, replies, the event loop):
# outside. Commands run inside a script are in their FCALL's duration.
# The slowlog's own cost is part of what it measures; each run repeats the same
# workload with the slowlog off and prints that total for comparison.
# Needs redis-server, redis-cli (7+) and node. Everything stays on 127.0.0.1.
set -euo pipefail

case ${1:-} in -h | --help)
  sed -n '2,21p' "$0"
  exit 0
  ;;
esac
TETHER=${1:-${TETHER_BINARY:-target/release/tether}}
JOBS=${2:-20000}
RUNS=${3:-${RUNS:-1}}
CONCURRENCY=64
# Room for every top-level command and every command inside a script (about 8
# entries per job); the run fails rather than report from an overflowed log.
MAX_LEN=$((JOBS * 40 + 100000))
[ -x "$TETHER" ] || {
  echo "tether binary not found: $TETHER (build it: cargo build --release -p tether-cli)" >&2
  exit 2
}
for n in "$JOBS" "$RUNS"; do
  case $n in '' | *[!0-9]* | 0)
    echo "JOBS and RUNS must be positive numbers" >&2
    exit 2
    ;;
  esac
done
[ "$JOBS" -le 200000 ] || {
  echo "JOBS at most 200,000 (the slowlog keeps every command in memory)" >&2
  exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/private-redis.sh
. "$HERE/private-redis.sh"

OUT=$(mktemp -d)
WORKER_PID=
stop_worker() {
  [ -n "$WORKER_PID" ] || return 0
  stop_child "$WORKER_PID"
  WORKER_PID=
}
cleanup() {
  stop_worker
  redis_stop
  rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_us() { rcli info cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.0f", s * 1e6 }'; }
succeeded() {
  "$TETHER" --redis "$URL" stats 2>/dev/null | awk '$1 == "default" { print $6 }'
}
read_slowlog() { # FILE: the whole log, then empties it
  local len
  len=$(rcli slowlog len)
  [ "$len" -lt "$MAX_LEN" ] || {
    echo "the slowlog overflowed ($len entries): lower JOBS" >&2
    exit 1
  }
  rcli --json slowlog get -1 >"$1"
  rcli slowlog reset >/dev/null
}

# One pass: enqueue, then drain. With `on`, the slowlog of each phase is written to
# $OUT/<tag>-enqueue.json / -drain.json. Sets ENQUEUE_CPU_US and DRAIN_CPU_US.
pass() {
  local tag=$1 slowlog=$2 t0 t1 t2 t3 done_
  redis_start "$OUT/redis-$tag"
  URL=redis://127.0.0.1:$REDIS_PORT
  if [ "$slowlog" = on ]; then
    rcli config set slowlog-max-len "$MAX_LEN" >/dev/null
    rcli config set slowlog-log-slower-than 0 >/dev/null
  else
    rcli config set slowlog-log-slower-than -1 >/dev/null
  fi
  rcli config resetstat >/dev/null
  rcli slowlog reset >/dev/null

  t0=$(cpu_us)
  timeout 600 "$TETHER" --redis "$URL" enqueue --type noop --count "$JOBS" >/dev/null
  t1=$(cpu_us)
  if [ "$slowlog" = on ]; then read_slowlog "$OUT/$tag-enqueue.json"; fi

  t2=$(cpu_us)
  "$TETHER" --redis "$URL" worker --concurrency "$CONCURRENCY" --queue default \
    >"$OUT/$tag-worker.log" 2>&1 &
  WORKER_PID=$!
  done_=0
  for _ in $(seq 1 1200); do # at most 10 minutes
    done_=$(succeeded)
    [ "${done_:-0}" -ge "$JOBS" ] && break
    kill -0 "$WORKER_PID" 2>/dev/null || {
      cat "$OUT/$tag-worker.log" >&2
      exit 1
    }
    sleep 0.5
  done
  t3=$(cpu_us)
  stop_worker
  [ "${done_:-0}" -ge "$JOBS" ] || {
    echo "the worker finished ${done_:-0} of $JOBS jobs in 10 minutes" >&2
    exit 1
  }
  if [ "$slowlog" = on ]; then read_slowlog "$OUT/$tag-drain.json"; fi
  redis_stop
  ENQUEUE_CPU_US=$((t1 - t0))
  DRAIN_CPU_US=$((t3 - t2))
}

FILES=()
for run in $(seq 1 "$RUNS"); do
  echo "run $run of $RUNS: $JOBS jobs, slowlog on" >&2
  pass "run$run" on
  enq=$ENQUEUE_CPU_US drain=$DRAIN_CPU_US
  echo "run $run of $RUNS: the same, slowlog off" >&2
  pass "run$run-off" off
  enq_off=$ENQUEUE_CPU_US drain_off=$DRAIN_CPU_US
  node "$HERE/redis-profile.js" phase "$OUT/run$run-enqueue.json" "$enq" "$JOBS" >"$OUT/enqueue.json"
  node "$HERE/redis-profile.js" phase "$OUT/run$run-drain.json" "$drain" "$JOBS" >"$OUT/drain.json"
  node -e 'const fs = require("fs");
    const [e, d, binary, jobs, c, maxLen, off, out] = process.argv.slice(1);
    fs.writeFileSync(out, JSON.stringify({
      binary, jobs: Number(jobs), concurrency: Number(c), slowlog_max_len: Number(maxLen),
      off_total_us_per_job: Number(off) / Number(jobs),
      enqueue: JSON.parse(fs.readFileSync(e)), drain: JSON.parse(fs.readFileSync(d)) }));' \
    "$OUT/enqueue.json" "$OUT/drain.json" "$TETHER" "$JOBS" "$CONCURRENCY" "$MAX_LEN" \
    "$((enq_off + drain_off))" "$OUT/run-$run.json"
  rm -f "$OUT/run$run-enqueue.json" "$OUT/run$run-drain.json"
  FILES+=("$OUT/run-$run.json")
done
node "$HERE/redis-profile.js" report "${FILES[@]}"
