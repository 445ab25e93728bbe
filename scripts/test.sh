#!/usr/bin/env bash
# Runs every test: installs what the suites need when missing (redis-server,
# prometheus/promtool, docker-compose for validating the compose file, python3
# venv support for the Glance client test, chromium and its WebDriver for the
# web console's browser test), builds the binaries the process
# tests spawn, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Packages may start their own services on default ports; the tests never use
# them (every test starts its own servers on free loopback ports).

cargo build --workspace --bins --quiet
rm -f target/tmp/chaos-*.txt
cargo test --workspace --quiet -- --test-threads "${TEST_THREADS:-4}" "$@"
# The chaos runs' figures (tests/chaos.rs writes one line per run).
cat target/tmp/chaos-*.txt 2>/dev/null || true
