#!/usr/bin/env bash
# Runs every test: installs redis-server when missing, builds the binaries the
# process tests spawn, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (Debian package redis-server)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# The package starts a service on 6379; the tests never use it (they start their own servers).

cargo build --workspace --bins --quiet
cargo test --workspace --quiet -- --test-threads "${TEST_THREADS:-4}" "$@"
