#!/usr/bin/env bash
# The demo in one command on a fresh Debian machine: installs redis-server when
# missing, builds tether, and runs `tether demo` (a private Redis, the API, two
# workers and a steady mix of sample jobs, live). Arguments go to `tether demo`,
# e.g. `scripts/demo.sh --duration 30s`. Ctrl-C stops it and removes the Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (Debian package redis-server)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust 1.85 or newer (https://rustup.rs)"; exit 1; }
echo "building tether (release)…"
cargo build --release --quiet -p tether-cli --bin tether
exec target/release/tether demo "$@"
