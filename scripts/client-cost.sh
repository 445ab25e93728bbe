#!/usr/bin/env bash
# Client-side instructions per job (valgrind's callgrind, which counts instructions and
# so does not depend on the machine's load) of two `tether` binaries, e.g. one built
# with the `otel` feature and one without, both run with no OTEL_* variable set:
#
#   cargo build --release -p tether-cli && cp target/release/tether /tmp/tether-otel
#   cargo build --release -p tether-cli --no-default-features && cp target/release/tether /tmp/tether-nootel
#   scripts/client-cost.sh /tmp/tether-otel /tmp/tether-nootel
#
# Enqueue: (instructions of `enqueue --count 21000` - of `--count 1000`) / 20,000.
# Worker: the same difference for a worker draining that many noop jobs, then SIGTERM.
# Needs valgrind and redis-server; uses a private Redis on a loopback port.
set -u
[ $# -ge 1 ] || { echo "usage: $0 TETHER_BINARY..." >&2; exit 2; }
PORT=${PORT:-27931}
TMP=$(mktemp -d)
redis-server --bind 127.0.0.1 --port $PORT --save '' --appendonly no --daemonize yes --logfile $TMP/redis.log >/dev/null
sleep 0.5
R="redis://127.0.0.1:$PORT"
trap 'redis-cli -p $PORT shutdown nosave >/dev/null 2>&1; rm -rf "$TMP"' EXIT
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
ir() { grep -m1 "^summary:" "$1" | awk '{print $2}'; }
for B in "$@"; do
  bin=$(basename "$B")
  for n in 1000 21000; do
    redis-cli -p $PORT flushall >/dev/null
    valgrind --tool=callgrind --callgrind-out-file=$TMP/cg-enq-$bin-$n $B --redis $R enqueue --queue q --type noop --count $n >/dev/null 2>$TMP/cg-enq-$bin-$n.log
    # drain with a worker under callgrind
    valgrind --tool=callgrind --callgrind-out-file=$TMP/cg-wrk-$bin-$n $B --redis $R worker --queue q --concurrency 64 --metrics-addr 127.0.0.1:0 >/dev/null 2>$TMP/cg-wrk-$bin-$n.log &
    vpid=$!
    for i in $(seq 1 600); do
      left=$(redis-cli -p $PORT hget 'tether:{q}:counts' success)
      [ "${left:-0}" -ge $n ] && break
      sleep 1
    done
    kill -TERM $vpid; wait $vpid
    eval "enq_$n=$(ir $TMP/cg-enq-$bin-$n) wrk_$n=$(ir $TMP/cg-wrk-$bin-$n)"
  done
  echo "$bin: enqueue $(( (enq_21000 - enq_1000) / 20000 )) instructions/job, worker $(( (wrk_21000 - wrk_1000) / 20000 )) instructions/job"
done
