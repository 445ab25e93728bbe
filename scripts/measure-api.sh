#!/usr/bin/env bash
# Measures API request throughput with wrk against a local API and a private Redis:
# POST /v2/tasks (create) and GET /v2/tasks/{id} (show), 2 threads, 64 connections, 10 s each.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; $SUDO apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet -p tether-cli --bin tether
tether=target/release/tether
dir=$(mktemp -d -t tether-api-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); api_port=$(free_port)
cleanup() { [ -z "${api:-}" ] || kill "$api" 2>/dev/null || true; redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no --daemonize yes --logfile "$dir/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
token=measure-token-0123456789
printf '[[tokens]]\ntoken = "%s"\nowner = "bench"\n' "$token" > "$dir/tokens.toml"
$tether api --redis "redis://127.0.0.1:$port" --listen "127.0.0.1:$api_port" --tokens "$dir/tokens.toml" --log warn &
api=$!
for _ in $(seq 50); do curl -s "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done
cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"type": "noop", "input": {"n": 1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Auth-Token"] = "$token"
LUA
echo "== POST /v2/tasks"
wrk -t2 -c64 -d10s -s "$dir/post.lua" "http://127.0.0.1:$api_port/v2/tasks" | grep -E "Requests/sec|Latency|Non-2xx"
id=$(curl -s -XPOST "127.0.0.1:$api_port/v2/tasks" -H "X-Auth-Token: $token" -H 'content-type: application/json' -d '{"type":"noop"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "== GET /v2/tasks/{id}"
wrk -t2 -c64 -d10s -H "X-Auth-Token: $token" "http://127.0.0.1:$api_port/v2/tasks/$id" | grep -E "Requests/sec|Latency|Non-2xx"
