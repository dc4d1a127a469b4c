#!/usr/bin/env bash
# The PostgreSQL switchover test (issue #13): starts the whole stack with ./start.sh (native mode) and
# KVMESH_PG_STANDBY=1 in a fresh temporary run folder on free loopback ports, runs write load through nginx,
# performs `./start.sh pg-switchover` in the middle of it (primary stopped, standby promoted), then drains and verifies
# against the new primary: every acknowledged write applied exactly once (kv_oplog), nothing stale, the consumers
# resumed by themselves; the pause is measured. Stops the stack and removes the folder, pass or fail.
#
#   scripts/pg-switchover-test.sh           writes scripts/faults/results/latest-pg-switchover.json (gitignored)
#   scripts/pg-switchover-test.sh --doc     writes scripts/faults/results/pg-switchover.json and its section of
#                                           docs/reliability.md (between its markers), to be committed
#
# Exit status: 0 when every check held, 1 when any failed, 2 on a set-up error. About 2-3 minutes, the stack's start
# included. KVMESH_FAULTS_KEEP=1 keeps the run folder (logs).
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$ROOT"
T0=$(date +%s)
# shellcheck source=lib.sh
. "$ROOT/scripts/lib.sh"   # kill_leftovers
step() { echo "[pg-switchover +$(( $(date +%s) - T0 ))s] $*"; }
for tool in python3 psql ss curl; do
  command -v "$tool" >/dev/null || { echo "[pg-switchover] ERROR: $tool is missing" >&2; exit 2; }
done
JAVA_HOME="$(scripts/find-java.sh)"; export JAVA_HOME
RUN_DIR="$(mktemp -d /tmp/kvmesh-pgswitch.XXXXXX)"
chmod 755 "$RUN_DIR"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  step "stopping the stack"
  KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" ./start.sh stop >"$RUN_DIR/stop.log" 2>&1 ||
    echo "[pg-switchover] start.sh stop reported a problem (see $RUN_DIR/stop.log)" >&2
  kill_leftovers "$RUN_DIR" pg-switchover   # processes a fault orphaned (e.g. the workers of a killed nginx master)
  if [ "${KVMESH_FAULTS_KEEP:-0}" = 1 ] || { [ $rc != 0 ] && [ -n "${CI:-}" ]; }; then
    step "run folder kept: $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
  step "done in $(( $(date +%s) - T0 ))s (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r HTTP_PORT ENVOY_PORT ADMIN_PORT R1 R2 PG_PORT PGS_PORT REDIS_PORT AMQP_PORT DIST_PORT C1 C2 < <(scripts/free-ports 12)
export KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_PORT="$ENVOY_PORT" \
  KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" KVMESH_REPLICAS=2 KVMESH_CONSUMERS=2 KVMESH_REPLICA_PORTS="$R1,$R2" \
  KVMESH_CONSUMER_HTTP_PORTS="$C1,$C2" KVMESH_AUTH=off
export KVMESH_PG_PORT="$PG_PORT" KVMESH_PG_STANDBY=1 KVMESH_PG_STANDBY_PORT="$PGS_PORT" KVMESH_REDIS_PORT="$REDIS_PORT" \
  KVMESH_AMQP_PORT="$AMQP_PORT" KVMESH_RABBIT_DIST_PORT="$DIST_PORT"
step "starting the stack with a PostgreSQL standby in $RUN_DIR (nginx :$HTTP_PORT, postgres :$PG_PORT, standby :$PGS_PORT)"
./start.sh >"$RUN_DIR/start.log" 2>&1 || { tail -n 40 "$RUN_DIR/start.log" >&2; echo "[pg-switchover] ERROR: the stack did not start (logs: $RUN_DIR/logs)" >&2; exit 2; }
step "stack up"

ARGS=(--root "$ROOT" --run-dir "$RUN_DIR")
if [ "${1:-}" = --doc ]; then   # the committed figures
  ARGS+=(--json "$ROOT/scripts/faults/results/pg-switchover.json" --doc "$ROOT/docs/reliability.md")
else                            # ./test.sh's run: gitignored
  ARGS+=(--json "$ROOT/scripts/faults/results/latest-pg-switchover.json")
fi
set +e
python3 -B scripts/faults/pgswitch.py "${ARGS[@]}"
rc=$?
set -e
exit $rc
