#!/usr/bin/env bash
# kvmesh's fault suite: starts the whole stack with ./start.sh (native mode) in a fresh temporary run folder on free
# loopback ports, drives writers and readers through nginx while one fault at a time is injected (kill -9 of each
# process kind, servers stopped and started, Redis back with and without a dump; in full mode network partitions,
# frozen processes and full disks too; a rolling upgrade, a backup restored elsewhere, a slow Watch client, a reused
# request id), drains and verifies after each fault (nothing acknowledged lost, nothing applied twice, versions
# contiguous and in real-time order, Redis = PostgreSQL = the API, no stale reads, recovery with nobody acting),
# prints a table, writes JSON, stops the stack and removes the folder, pass or fail.
#
#   scripts/faults.sh quick     a few faults, short phases (about 4 minutes; the last step of ./test.sh)
#   scripts/faults.sh full      every fault (about 20 minutes; as root, for the disk phases); writes scripts/faults/results/<time>-full.json
#                               and latest-full.json, and docs/reliability.md from it
#   scripts/faults.sh report    docs/reliability.md again from scripts/faults/results/latest-full.json
#   scripts/faults.sh cluster   the stack's broker grown from 1 node with queued writes to 3 (KVMESH_RABBITMQ_NODES=3 on
#                               the same run folder; scripts/faults/grow.py checks them applied once); kill -9 node 1, then,
#                               once it is back, the node leading most partition queues, under load; nothing lost or
#                               applied twice, the longest write pause measured; then a shrink to 1 node refused,
#                               changing nothing; then the broker stopped node by node and started in another order,
#                               writes queued; then every node killed at once (kill -9) with writes queued, nobody acting
#                               (about 9 minutes; ./test.sh --cluster).
#                               Writes scripts/faults/results/latest-cluster.json and its section of docs/reliability.md
#
# Exit status: 0 when every verification held, 1 when any failed, 2 on a usage or set-up error.
# Environment: KVMESH_FAULTS_KEEP=1 keeps the run folder (logs); KVMESH_FAULTS_ONLY=id,id runs only those faults
# (development: results then go to the run folder only). The checker is Python 3 standard library
# (scripts/faults/*.py; its own test, selftest.py, runs first); it also calls psql, ss and the stack's own scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$ROOT"
MODE="${1:-quick}"
case "$MODE" in quick|full|cluster|report) ;; *) echo "usage: scripts/faults.sh quick|full|cluster|report" >&2; exit 2 ;; esac
T0=$(date +%s)
# shellcheck source=lib.sh
. "$ROOT/scripts/lib.sh"   # kill_leftovers
step() { echo "[faults +$(( $(date +%s) - T0 ))s] $*"; }
RESULTS="$ROOT/scripts/faults/results"
DOC="$ROOT/docs/reliability.md"

if [ "$MODE" = report ]; then
  [ -f "$RESULTS/latest-full.json" ] || { echo "no $RESULTS/latest-full.json: run scripts/faults.sh full" >&2; exit 2; }
  python3 -B - "$RESULTS/latest-full.json" "$DOC" <<'EOF'
import json, sys
sys.path.insert(0, "scripts/faults")
from report import write_doc
write_doc(sys.argv[2], json.load(open(sys.argv[1])))
EOF
  step "report: $DOC"
  exit 0
fi

for tool in python3 psql ss curl; do
  command -v "$tool" >/dev/null || { echo "[faults] ERROR: $tool is missing (./test.sh installs what the stack needs)" >&2; exit 2; }
done
# the checker's own test first: it must find each kind of problem in a made-up history
python3 -B scripts/faults/selftest.py >/tmp/kvmesh-faults-selftest.$$ 2>&1 ||
  { cat /tmp/kvmesh-faults-selftest.$$ >&2; rm -f /tmp/kvmesh-faults-selftest.$$; echo "[faults] ERROR: the checker's self-test failed" >&2; exit 2; }
step "checker self-test: $(tail -n 3 /tmp/kvmesh-faults-selftest.$$ | head -n 1 | tr -d '\n') (every kind of problem found in a made-up history)"
rm -f /tmp/kvmesh-faults-selftest.$$
JAVA_HOME="$(scripts/find-java.sh)"; export JAVA_HOME
RUN_DIR="$(mktemp -d /tmp/kvmesh-faults.XXXXXX)"
chmod 755 "$RUN_DIR"
# Full mode: PostgreSQL and RabbitMQ keep their data on filesystems of their own (tmpfs, 4 GiB at most: a limit, not
# memory taken), which the disk-full phases shrink to what they hold and then give back (scripts/faults/faults.py).
# Needs root and mount; without them those phases report that they could not run.
MOUNTS=()
if [ "$MODE" = full ] && [ "$(id -u)" = 0 ]; then
  for d in postgres rabbitmq; do
    mkdir -p "$RUN_DIR/$d"
    if mount -t tmpfs -o size=4g,mode=0755 "kvmesh-faults-$d" "$RUN_DIR/$d" 2>/dev/null; then MOUNTS+=("$RUN_DIR/$d"); fi
  done
fi

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  step "stopping the stack"
  KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" ./start.sh stop >"$RUN_DIR/stop.log" 2>&1 ||
    echo "[faults] start.sh stop reported a problem (see $RUN_DIR/stop.log)" >&2
  kill_leftovers "$RUN_DIR" faults   # processes a fault orphaned (e.g. the workers of a killed nginx master)
  if [ -n "${NETPROXY_PID:-}" ]; then kill "$NETPROXY_PID" 2>/dev/null || true; fi
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  if [ "${KVMESH_FAULTS_KEEP:-0}" = 1 ] || [ -n "${KVMESH_FAULTS_ONLY:-}" ] || { [ $rc != 0 ] && [ -n "${CI:-}" ]; }; then
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

# every port of the stack in one pick, so no part can take a port meant for another
read -r HTTP_PORT ENVOY_PORT ADMIN_PORT R1 R2 PG_PORT REDIS_PORT AMQP_PORT DIST_PORT C1 C2 < <(scripts/free-ports 11)
more_ports() {   # N more free ports, one a line, none of the eleven above
  scripts/free-ports $(( $1 + 11 )) | tr ' ' '\n' | grep -vxF -e "$HTTP_PORT" -e "$ENVOY_PORT" -e "$ADMIN_PORT" -e "$R1" \
    -e "$R2" -e "$PG_PORT" -e "$REDIS_PORT" -e "$AMQP_PORT" -e "$DIST_PORT" -e "$C1" -e "$C2" | head -n "$1"
}
export KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_PORT="$ENVOY_PORT" \
  KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" KVMESH_REPLICAS=2 KVMESH_CONSUMERS=2 KVMESH_REPLICA_PORTS="$R1,$R2" \
  KVMESH_CONSUMER_HTTP_PORTS="$C1,$C2"
export KVMESH_PG_PORT="$PG_PORT" KVMESH_REDIS_PORT="$REDIS_PORT" KVMESH_AMQP_PORT="$AMQP_PORT" \
  KVMESH_RABBIT_DIST_PORT="$DIST_PORT"
if [ "$MODE" = cluster ]; then
  # three RabbitMQ nodes, grown from one (below): nodes 2 and 3 get their AMQP and distribution ports from the same
  # kind of pick
  KVMESH_RABBIT_CLUSTER_PORTS="$(more_ports 4 | paste -sd,)"
  export KVMESH_RABBIT_CLUSTER_PORTS
fi
step "starting the stack in $RUN_DIR (nginx :$HTTP_PORT, envoy :$ENVOY_PORT${KVMESH_RABBITMQ_NODES:+, $KVMESH_RABBITMQ_NODES RabbitMQ nodes}$([ "$MODE" != cluster ] || echo ", 1 RabbitMQ node, grown to 3 below"))"
# Full mode: network partitions (scripts/faults/netproxy.py): kv-service-1's broker connections and each consumer's
# PostgreSQL, broker and Redis connections go through proxies on loopback (KVMESH_VIA_PROXY), which the partition
# phases cut (nothing forwarded, nothing closed) and heal.
if [ "$MODE" = full ]; then
  read -r NP_CTL NP_R1 NP_C1PG NP_C2PG NP_C1MQ NP_C2MQ NP_C1RD NP_C2RD < <(more_ports 8 | paste -sd' ')
  python3 -B scripts/faults/netproxy.py --control "$NP_CTL" "kv-service-1:rabbitmq=$NP_R1:$AMQP_PORT" \
    "kv-consumer-1:postgres=$NP_C1PG:$PG_PORT" "kv-consumer-2:postgres=$NP_C2PG:$PG_PORT" \
    "kv-consumer-1:rabbitmq=$NP_C1MQ:$AMQP_PORT" "kv-consumer-2:rabbitmq=$NP_C2MQ:$AMQP_PORT" \
    "kv-consumer-1:redis=$NP_C1RD:$REDIS_PORT" "kv-consumer-2:redis=$NP_C2RD:$REDIS_PORT" >"$RUN_DIR/netproxy.log" 2>&1 &
  NETPROXY_PID=$!
  export KVMESH_NETPROXY_CONTROL="$NP_CTL" KVMESH_VIA_PROXY="kv-service-1:rabbitmq=$NP_R1,kv-consumer-1:postgres=$NP_C1PG,\
kv-consumer-2:postgres=$NP_C2PG,kv-consumer-1:rabbitmq=$NP_C1MQ,kv-consumer-2:rabbitmq=$NP_C2MQ,\
kv-consumer-1:redis=$NP_C1RD,kv-consumer-2:redis=$NP_C2RD"
fi
# Two partition queues (unless KVMESH_PARTITIONS says otherwise), not start.sh's single one for a new run folder: the
# phases then also cover what only several queues can do (one replica's writes split over two queues and two consumer
# transactions, the request-id probe's keys in different queues, a takeover while the other queue goes on).
export KVMESH_PARTITIONS="${KVMESH_PARTITIONS:-2}"
./start.sh || { echo "[faults] ERROR: the stack did not start (logs: $RUN_DIR/logs)" >&2; exit 2; }
grow() { python3 -B scripts/faults/grow.py "$1" --root "$ROOT" --run-dir "$RUN_DIR" --state "$RUN_DIR/$2" "${@:3}"; }
sv() { supervisorctl -c "$RUN_DIR/conf/supervisord.conf" "$@"; }
healthy_again() {   # waits (180 s at most) for ./start.sh status to pass; $1 says since what
  local t; t=$(date +%s)
  until ./start.sh status >"$RUN_DIR/status-again.log" 2>&1; do
    if [ $(( $(date +%s) - t )) -gt 180 ]; then
      echo "[faults] FAIL: not healthy 180 s after $1:" >&2; cat "$RUN_DIR/status-again.log" >&2
      return 1
    fi
    sleep 2
  done
  step "healthy again $(( $(date +%s) - t )) s after $1"
}
if [ "$MODE" = cluster ]; then
  # Growing the broker of a stack with data (issue 19): writes acknowledged and still queued (consumers stopped),
  # the stack stopped and started again with KVMESH_RABBITMQ_NODES=3 on the same run folder: node 1 keeps its queues,
  # nodes 2 and 3 join it, every queue gets a member on each, every queued write is applied exactly once.
  step "growing the broker under data: 1 node with queued writes -> KVMESH_RABBITMQ_NODES=3 on the same run folder"
  grow queue grow-1.json || exit 1
  ./start.sh stop >"$RUN_DIR/stop-grow.log" 2>&1 || { echo "[faults] ERROR: start.sh stop failed" >&2; exit 1; }
  KVMESH_RABBITMQ_NODES=3 ./start.sh || { echo "[faults] ERROR: the grown stack did not start (logs: $RUN_DIR/logs)" >&2; exit 1; }
  grow verify grow-1.json --nodes 3 || exit 1
fi

ARGS=(--mode "$MODE" --root "$ROOT" --run-dir "$RUN_DIR" --command "scripts/faults.sh $MODE")
if [ -n "${KVMESH_FAULTS_ONLY:-}" ]; then
  ARGS+=(--only "$KVMESH_FAULTS_ONLY" --json "$RUN_DIR/faults.json")
elif [ "$MODE" = cluster ]; then
  ARGS+=(--json "$RESULTS/latest-cluster.json" --doc "$DOC")
elif [ "$MODE" = full ]; then
  ARGS+=(--json "$RESULTS/$(date -u +%Y%m%dT%H%M%SZ)-full.json" --doc "$DOC")
else
  ARGS+=(--json "$RESULTS/latest-quick.json")
fi
set +e
python3 -B scripts/faults/checker.py "${ARGS[@]}"
rc=$?
set -e
if [ "$MODE" = cluster ] && [ $rc = 0 ]; then
  # Shrinking is refused up front, changing nothing: writes queued again, the stack stopped, KVMESH_RABBITMQ_NODES=1
  # refused (exit 1, a message saying what to do), then started as it was: every queued write applied exactly once.
  step "shrinking the broker is refused: 3 nodes with queued writes, KVMESH_RABBITMQ_NODES=1 ./start.sh"
  grow queue grow-2.json || rc=1
  ./start.sh stop >"$RUN_DIR/stop-shrink.log" 2>&1 || rc=1
  if KVMESH_RABBITMQ_NODES=1 ./start.sh >"$RUN_DIR/shrink.log" 2>&1; then
    echo "[faults] FAIL: KVMESH_RABBITMQ_NODES=1 started a 3-node run folder" >&2; rc=1
  elif ! grep -q "would shrink it" "$RUN_DIR/shrink.log"; then
    echo "[faults] FAIL: the shrink was not refused with its message:" >&2; tail -n 5 "$RUN_DIR/shrink.log" >&2; rc=1
  else
    step "refused: $(grep -o 'runs a cluster of [0-9] nodes and KVMESH_RABBITMQ_NODES=1 would shrink it' "$RUN_DIR/shrink.log")"
  fi
  ./start.sh >"$RUN_DIR/start-again.log" 2>&1 || { echo "[faults] FAIL: the stack did not start again" >&2; rc=1; }
  grow verify grow-2.json --nodes 3 || rc=1
fi
if [ "$MODE" = cluster ] && [ $rc = 0 ]; then
  # The whole broker stopped node by node (1, 2, then 3: node 3 is the last one down) and started again in another
  # order (1 first, which was not the last one down: it waits for its peers, as RabbitMQ does), with writes queued:
  # the cluster forms again by itself and every queued write is applied exactly once.
  step "the broker stopped node by node (1, 2, 3) and started again in another order (1, 2, 3), writes queued"
  grow queue grow-3.json || rc=1
  for n in 1 2 3; do sv stop "rabbitmq-$n" >>"$RUN_DIR/restart-order.log" 2>&1 || rc=1; done
  for n in 1 2 3; do sv start "rabbitmq-$n" >>"$RUN_DIR/restart-order.log" 2>&1 || rc=1; done
  sv start kv-consumer-1 kv-consumer-2 >>"$RUN_DIR/restart-order.log" 2>&1 || rc=1
  healthy_again "the last node was started" || rc=1
  grow verify grow-3.json --nodes 3 || rc=1
fi
if [ "$MODE" = cluster ] && [ $rc = 0 ]; then
  # Every node killed at once (kill -9 of the three beam.smp), writes queued: nobody acts, supervisord starts the
  # three again in whatever order; the cluster forms again by itself and every queued write is applied exactly once.
  step "every RabbitMQ node killed at once (kill -9), writes queued; supervisord starts them again by itself"
  grow queue grow-4.json || rc=1
  grow kill-broker grow-4.json || rc=1
  sleep 5
  sv start kv-consumer-1 kv-consumer-2 >>"$RUN_DIR/kill-broker.log" 2>&1 || rc=1
  healthy_again "the kill" || rc=1
  grow verify grow-4.json --nodes 3 || rc=1
fi
if [ "$MODE" = full ] && [ -z "${KVMESH_FAULTS_ONLY:-}" ]; then
  cp -f "$(ls -1t "$RESULTS"/*-full.json | head -n1)" "$RESULTS/latest-full.json"
fi
exit $rc
