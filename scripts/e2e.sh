#!/usr/bin/env bash
# End-to-end tests through the real edge: starts the whole stack with ./start.sh (native mode) in a fresh
# temporary run folder on free loopback ports, runs the kv-e2e module against it, stops the stack and removes
# the folder, pass or fail.
#
#   scripts/e2e.sh                 start, test, stop
#   scripts/e2e.sh -Dtest=GrpcE2ETest   extra arguments go to Maven
#   KVMESH_E2E_KEEP=1 scripts/e2e.sh    leave the run folder (logs) in place
#   KVMESH_E2E_MODULES=kv-e2e,kv-cli    Maven modules whose e2e tests run (default kv-e2e)
#   KVMESH_E2E_UI=1 scripts/e2e.sh      then also the browser tests (scripts/ui-tests.sh) on the same stack
#   KVMESH_E2E_SCHEMATHESIS=1 scripts/e2e.sh   then also fuzz the REST API from its /openapi.json (scripts/schemathesis.sh)
#   KVMESH_E2E_AUTH=off scripts/e2e.sh  run the stack with auth off (default on: every suite sends the stack's admin
#                                       token, AuthE2ETest mints scoped ones from the run folder's signing key)
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$ROOT"
step() { echo "[e2e] $*"; }
now_ms() { date +%s%3N; }
T0=$(now_ms)

JAVA_HOME="$(scripts/find-java.sh)"; export JAVA_HOME
RUN_DIR="$(mktemp -d /tmp/kvmesh-e2e.XXXXXX)"
chmod 755 "$RUN_DIR"
cleanup() {
  local rc=$?
  step "stopping the stack"
  KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" ./start.sh stop || true
  if [ "${KVMESH_E2E_KEEP:-0}" = 1 ] || { [ $rc != 0 ] && [ -n "${CI:-}" ]; }; then
    step "run folder kept: $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
  step "done in $(( ($(now_ms) - T0) / 1000 ))s (exit $rc)"
}
trap cleanup EXIT

# every port of the stack in one pick, so no part can take a port meant for another
CONSUMERS="${KVMESH_CONSUMERS:-2}"
read -r HTTP_PORT ENVOY_PORT ADMIN_PORT R1 R2 PG_PORT REDIS_PORT AMQP_PORT DIST_PORT RA1 RA2 CONSUMER_PORTS \
  < <(scripts/free-ports $((11 + CONSUMERS)))
export KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_PORT="$ENVOY_PORT" \
  KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" KVMESH_REPLICAS=2 KVMESH_CONSUMERS="$CONSUMERS" \
  KVMESH_REPLICA_PORTS="$R1,$R2" KVMESH_CONSUMER_HTTP_PORTS="${CONSUMER_PORTS// /,}"
export KVMESH_PG_PORT="$PG_PORT" KVMESH_REDIS_PORT="$REDIS_PORT" KVMESH_AMQP_PORT="$AMQP_PORT" \
  KVMESH_RABBIT_DIST_PORT="$DIST_PORT" KVMESH_AUTH="${KVMESH_E2E_AUTH:-on}"
export KVMESH_REPLICA_ADMIN_PORTS="$RA1,$RA2"   # the replicas' /healthz and /metrics
step "starting the stack in $RUN_DIR (nginx :$HTTP_PORT, envoy :$ENVOY_PORT)"
./start.sh

export KVMESH_E2E_HTTP="http://127.0.0.1:$HTTP_PORT" KVMESH_E2E_GRPC="127.0.0.1:$ENVOY_PORT" \
  KVMESH_E2E_RUN_DIR="$RUN_DIR" KVMESH_E2E_START_SH="$ROOT/start.sh"
if [ "$KVMESH_AUTH" = on ]; then
  # the suites (kv-e2e, kvctl's, the browser tests, schemathesis) all send the stack's admin token
  KVMESH_E2E_TOKEN="$(cat "$RUN_DIR/secrets/admin.token")"
  export KVMESH_E2E_TOKEN KVMESH_TOKEN="$KVMESH_E2E_TOKEN"
  step "auth on: the suites send the admin token from $RUN_DIR/secrets/admin.token"
fi
export KVMESH_E2E_REPLICA_ADMIN_PORTS="$RA1,$RA2"
if [ -z "${KVMESH_E2E_GRPCURL:-}" ]; then
  for g in "$(command -v grpcurl 2>/dev/null || true)" "$HOME/go/bin/grpcurl" "$ROOT/.run/bin/grpcurl"; do
    [ -n "$g" ] && [ -x "$g" ] && { export KVMESH_E2E_GRPCURL="$g"; break; }
  done
fi
step "running ${KVMESH_E2E_MODULES:-kv-e2e} (grpcurl: ${KVMESH_E2E_GRPCURL:-not installed, its test is skipped})"
# KVMESH_E2E_MODULES=kv-cli runs the kvctl end-to-end tests instead (or kv-e2e,kv-cli for both).
mvn -B -ntp -pl "${KVMESH_E2E_MODULES:-kv-e2e}" -Pe2e test "$@"
if [ "${KVMESH_E2E_UI:-0}" = 1 ]; then
  step "running the browser tests of the web UI against the same stack"
  scripts/ui-tests.sh
fi
if [ "${KVMESH_E2E_SCHEMATHESIS:-0}" = 1 ]; then
  step "fuzzing the REST API through nginx with schemathesis (from the served /openapi.json)"
  scripts/schemathesis.sh "$KVMESH_E2E_HTTP"
fi
