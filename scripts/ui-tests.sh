#!/usr/bin/env bash
# Browser tests of the web UI (nginx/html): headless Chromium from Debian driven by playwright-core, run by node's
# built-in test runner (ui-tests/tests/*.test.mjs). Installs what is missing (chromium via apt, node modules via
# npm ci; never downloads a browser), starts the stack with ./start.sh (native mode) on free loopback ports in a
# temporary run folder unless KVMESH_E2E_HTTP names a running one, runs the tests, stops what it started.
#
#   scripts/ui-tests.sh                                   start a stack, test, stop it
#   KVMESH_E2E_HTTP=http://127.0.0.1:8088 scripts/ui-tests.sh   test a running stack
#   UPDATE_DOCS_SCREENSHOT=1 scripts/ui-tests.sh          also refresh docs/img/ui.png
#   KVMESH_E2E_KEEP=1 scripts/ui-tests.sh                 keep the run folder (logs)
# Screenshots of every test (pass or fail): ui-tests/artifacts/*.png
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$ROOT"
step() { echo "[ui-tests] $*"; }
now_ms() { date +%s%3N; }
T0=$(now_ms)
CHROMIUM="${KVMESH_CHROMIUM:-/usr/bin/chromium}"

apt_install() {
  [ "$(id -u)" = 0 ] || { echo "[ui-tests] missing $*; install it: sudo apt-get install -y $*" >&2; exit 1; }
  step "installing $* (apt)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}
[ -x "$CHROMIUM" ] || apt_install chromium
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
  { echo "[ui-tests] node >= 20 is needed (node --test); found $(node --version)" >&2; exit 1; }
if [ ! -d ui-tests/node_modules/playwright-core ] || [ ui-tests/package-lock.json -nt ui-tests/node_modules/.package-lock.json ]; then
  step "npm ci (playwright-core; no browser download)"
  (cd ui-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
rm -rf ui-tests/artifacts && mkdir -p ui-tests/artifacts

RUN_DIR=""
cleanup() {
  local rc=$?
  if [ -n "$RUN_DIR" ]; then
    step "stopping the stack"
    if KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" "$ROOT/start.sh" stop >"$RUN_DIR.stop.log" 2>&1; then
      rm -f "$RUN_DIR.stop.log"
      if [ "${KVMESH_E2E_KEEP:-0}" = 1 ]; then step "run folder kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
    else
      # Keep the folder: its supervisord and server state are what a second `start.sh stop` needs.
      cat "$RUN_DIR.stop.log" >&2
      step "stopping failed; run folder kept: KVMESH_MODE=native KVMESH_RUN_DIR=$RUN_DIR ./start.sh stop"
    fi
  fi
  step "screenshots: $ROOT/ui-tests/artifacts/"
  step "done in $(( ($(now_ms) - T0) / 1000 ))s (exit $rc)"
}
trap cleanup EXIT

if [ -z "${KVMESH_E2E_HTTP:-}" ]; then
  RUN_DIR="$(mktemp -d /tmp/kvmesh-ui.XXXXXX)"
  chmod 755 "$RUN_DIR"
  read -r HTTP_PORT ENVOY_PORT ADMIN_PORT R1 C1 PG_PORT REDIS_PORT AMQP_PORT DIST_PORT < <("$ROOT/scripts/free-ports" 9)
  step "starting the stack in $RUN_DIR (nginx :$HTTP_PORT, envoy :$ENVOY_PORT)"
  KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_PORT="$ENVOY_PORT" \
    KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" KVMESH_REPLICAS=1 KVMESH_CONSUMERS=1 KVMESH_REPLICA_PORTS="$R1" KVMESH_CONSUMER_HTTP_PORTS="$C1" \
    KVMESH_PG_PORT="$PG_PORT" KVMESH_REDIS_PORT="$REDIS_PORT" KVMESH_AMQP_PORT="$AMQP_PORT" \
    KVMESH_RABBIT_DIST_PORT="$DIST_PORT" ./start.sh
  export KVMESH_E2E_HTTP="http://127.0.0.1:$HTTP_PORT"
fi

step "running the browser tests against $KVMESH_E2E_HTTP ($("$CHROMIUM" --version 2>/dev/null | head -n1))"
(cd "$ROOT/ui-tests" && KVMESH_CHROMIUM="$CHROMIUM" node --test --test-concurrency=1 tests/)
