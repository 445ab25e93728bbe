#!/usr/bin/env bash
# Runs the tests, in two tiers:
#
#   scripts/test.sh           both tiers (what CI runs)
#   scripts/test.sh --fast    the fast tier: the tests that need only redis-server
#
# The full tier is the tests marked `#[ignore = "full tier: …"]`, run with
# `--include-ignored`: the web console in headless Chromium, a real Prometheus
# and promtool, docker-compose, python-glanceclient and Schemathesis from PyPI, the chaos runs,
# the benchmarks and the soak, the check's and the walk's 100,000-job measurements.
# Further arguments go to the test binaries (a name filter, `--nocapture`…).
#
# Both tiers run under `cargo test`, one test binary at a time, so the chaos runs
# and benchmarks never share the machine with another binary's timing. The fast
# tier alone runs under cargo-nextest when it is installed (it is on this
# project's machines): every test binary at once, about a minute of tests
# instead of two; TEST_RUNNER=cargo makes it use `cargo test` too.
# TEST_THREADS sets the parallelism (default: 4 per binary under cargo test, 6
# tests at once under nextest).
# TEST_TIME_LIMIT bounds the full tier's tests (default 50m), a timeout(1) duration.
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
if $full; then
  rm -f target/tmp/chaos-*.txt
  # A hung test fails the run with its name on screen (libtest names a test
  # running over 60 s) instead of running into CI's own limit.
  timeout --kill-after=30s "${TEST_TIME_LIMIT:-50m}" \
    cargo test --workspace --quiet -- --test-threads "${TEST_THREADS:-4}" --include-ignored "$@"
  # The chaos runs' figures (tests/chaos.rs writes one line per run).
  cat target/tmp/chaos-*.txt 2>/dev/null || true
  # Schemathesis's summary (tests/schemathesis.rs).
  cat target/tmp/schemathesis-summary.txt 2>/dev/null || true
elif [ "${TEST_RUNNER:-nextest}" = nextest ] && cargo nextest --version >/dev/null 2>&1; then
  # nextest runs no doc tests.
  cargo test --workspace --doc --quiet
  cargo nextest run --workspace --test-threads "${TEST_THREADS:-6}" --status-level fail -- "$@"
else
  cargo test --workspace --quiet -- --test-threads "${TEST_THREADS:-4}" "$@"
fi
