# shellcheck shell=bash
# Sourced by the benchmark scripts: a private redis-server on a free 127.0.0.1 port
# (never 6379), with the options of Tether's own bench (no persistence, noeviction).
#
#   redis_start DIR [EXTRA redis-server ARGS...]   sets REDIS_PORT and REDIS_PID
#   redis_stop                                     stops the one started last
#   rcli ARGS...                                   redis-cli against it
#   stop_child PID                                 SIGTERM, bounded, then SIGKILL
#
# The caller's EXIT trap should call redis_stop.

REDIS_PORT=
REDIS_PID=

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

redis_start() {
  local dir=$1
  shift
  command -v redis-server >/dev/null || {
    echo "redis-server not found (apt-get install -y redis-server)" >&2
    return 1
  }
  mkdir -p "$dir"
  local port
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    # Taken when something answers a connection on it.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
      --daemonize no --protected-mode yes --maxmemory-policy noeviction \
      --logfile redis.log "$@" </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    REDIS_PORT=$port
    for _ in $(seq 1 50); do
      if [ "$(rcli ping 2>/dev/null)" = PONG ]; then return 0; fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.1
    done
    redis_stop
  done
  echo "could not start a private redis-server" >&2
  return 1
}

redis_stop() {
  [ -n "$REDIS_PID" ] || return 0
  stop_child "$REDIS_PID"
  REDIS_PID=
}

# Stops a child of this shell: SIGTERM, then SIGKILL when it has not exited
# after 10 s.
stop_child() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
