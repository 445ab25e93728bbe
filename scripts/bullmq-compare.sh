#!/usr/bin/env bash
# Tether vs BullMQ 6.7.0, side by side in one sitting:
#
#   scripts/bullmq-compare.sh [--quick] [TETHER_BINARY] [RUNS]
#
# TETHER_BINARY defaults to $TETHER_BINARY, else target/release/tether; RUNS to 3.
# Installs bullmq@6.7.0 (and its Redis client, ioredis@5.11.1) into target/bullmq-bench
# (npm, only when missing). Each run,
# BullMQ first, then Tether:
#   1. BullMQ on a fresh private Redis: addBulk of 100,000 no-op jobs in chunks of
#      1,000 (jobs/s; used_memory growth / jobs = bytes per pending job), then one
#      Worker at concurrency 100 drains them (jobs/s from the first to the last
#      completion). Redis CPU (used_cpu_user + used_cpu_sys) and commands
#      (INFO commandstats calls, script-inner commands included) per job, for the
#      enqueue, the drain and both. BullMQ's default job options: completed jobs are
#      kept (no removeOnComplete), as Tether keeps finished records for a retention
#      period.
#   2. `TETHER_BINARY bench --json` (its own private Redis).
# Then per-run tables and medians with the same-run ratios (Tether / BullMQ).
# --quick: 10,000 BullMQ jobs and `tether bench --quick`, for checking the script.
# Needs redis-server, redis-cli, node and npm. Everything stays on 127.0.0.1.
set -euo pipefail

QUICK=
ARGS=()
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    -h | --help)
      sed -n '2,20p' "$0"
      exit 0
      ;;
    *) ARGS+=("$a") ;;
  esac
done
TETHER=${ARGS[0]:-${TETHER_BINARY:-target/release/tether}}
RUNS=${ARGS[1]:-3}
JOBS=100000
TETHER_ARGS=(bench --json)
if [ -n "$QUICK" ]; then
  JOBS=10000
  TETHER_ARGS=(bench --json --quick)
fi
[ -x "$TETHER" ] || {
  echo "tether binary not found: $TETHER (build it: cargo build --release -p tether-cli)" >&2
  exit 2
}
case $RUNS in '' | *[!0-9]* | 0)
  echo "RUNS must be a positive number" >&2
  exit 2
  ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=scripts/private-redis.sh
. "$HERE/private-redis.sh"

NPM_DIR=$ROOT/target/bullmq-bench
# BullMQ 6.7 takes its Redis client as an optional peer dependency: ioredis, at the
# version of BullMQ's own test suite.
version_of() { node -p "try { require('$NPM_DIR/node_modules/$1/package.json').version } catch { '' }"; }
if [ "$(version_of bullmq)" != 6.7.0 ] || [ "$(version_of ioredis)" != 5.11.1 ]; then
  echo "installing bullmq 6.7.0 and ioredis 5.11.1 into $NPM_DIR" >&2
  mkdir -p "$NPM_DIR"
  timeout 600 npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact \
    bullmq@6.7.0 ioredis@5.11.1 >&2
fi

OUT=$(mktemp -d)
cleanup() {
  redis_stop
  rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FILES=()
for run in $(seq 1 "$RUNS"); do
  echo "run $run of $RUNS: BullMQ, $JOBS jobs" >&2
  redis_start "$OUT/redis-$run"
  NODE_PATH=$NPM_DIR/node_modules timeout 900 node "$HERE/bullmq-compare.js" bullmq "$REDIS_PORT" "$JOBS" >"$OUT/bullmq-$run.json"
  redis_stop
  echo "run $run of $RUNS: $TETHER ${TETHER_ARGS[*]}" >&2
  timeout 1800 "$TETHER" "${TETHER_ARGS[@]}" >"$OUT/tether-$run.json" 2>"$OUT/tether-$run.log" || {
    cat "$OUT/tether-$run.log" >&2
    exit 1
  }
  node -e 'const fs = require("fs"); const [b, t, out] = process.argv.slice(1);
    fs.writeFileSync(out, JSON.stringify({ bullmq: JSON.parse(fs.readFileSync(b)), tether: JSON.parse(fs.readFileSync(t)) }));' \
    "$OUT/bullmq-$run.json" "$OUT/tether-$run.json" "$OUT/run-$run.json"
  FILES+=("$OUT/run-$run.json")
done

# Kept for the record: every run's raw figures, one JSON object per line.
for f in "${FILES[@]}"; do cat "$f" && echo; done >"$NPM_DIR/last-runs.jsonl"
echo "raw figures: $NPM_DIR/last-runs.jsonl" >&2
node "$HERE/bullmq-compare.js" report "${FILES[@]}"
