# Sourced by the benchmark scripts: a private redis-server on a free 127.0.0.1 port
# (never 6379), with the options of Tether's own bench (no persistence, noeviction).
#
#   redis_start DIR [EXTRA redis-server ARGS...]   sets REDIS_PORT and REDIS_PID
#   redis_stop                                     stops the one started last
#   rcli ARGS...                                   redis-cli against it
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
  local try port i
  for try in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    # Taken when something answers a connection on it.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
      --daemonize no --protected-mode yes --maxmemory-policy noeviction \
      --logfile redis.log "$@" </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    REDIS_PORT=$port
    for i in $(seq 1 50); do
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
  kill "$REDIS_PID" 2>/dev/null || true
  # Bounded: SIGKILL when it has not exited after 5 s.
  local i
  for i in $(seq 1 50); do
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
}
