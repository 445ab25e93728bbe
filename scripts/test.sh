#!/usr/bin/env bash
# Runs the tests, in two tiers:
#
#   scripts/test.sh           both tiers (what CI runs)
#   scripts/test.sh --fast    the fast tier: plain `cargo test`, needing only redis-server
#
# The full tier is the tests marked `#[ignore = "full tier: …"]`, run with
# `--include-ignored`: the web console in headless Chromium, a real Prometheus
# and promtool, docker-compose, python-glanceclient from PyPI, the chaos runs,
# the benchmarks and the soak, and the check's 100,000-job measurement.
# Further arguments go to the test binaries (a name filter, `--nocapture`…).
#
# Installs what the chosen tier needs when missing (Debian packages), builds
# the binaries the process tests spawn, then runs the workspace's tests. Every
# test starts its own servers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

full=true
if [ "${1:-}" = "--fast" ]; then
  full=false
  shift
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if $full; then
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Packages may start their own services on default ports; the tests never use
# them (every test starts its own servers on free loopback ports).

cargo build --workspace --bins --quiet
threads=(--test-threads "${TEST_THREADS:-4}")
if $full; then
  rm -f target/tmp/chaos-*.txt
  cargo test --workspace --quiet -- "${threads[@]}" --include-ignored "$@"
  # The chaos runs' figures (tests/chaos.rs writes one line per run).
  cat target/tmp/chaos-*.txt 2>/dev/null || true
else
  cargo test --workspace --quiet -- "${threads[@]}" "$@"
fi
