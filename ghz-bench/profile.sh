#!/usr/bin/env bash
# ghz-bench/profile.sh: CPU flame graphs of a kv-service replica and of the active kv-consumer under REST PUT load.
#
#   ghz-bench/profile.sh [SECONDS]    (default 30) writes docs/flame/kv-service-rest-put.html and
#                                     docs/flame/kv-consumer-rest-put.html (async-profiler's interactive flame graphs)
#
# Starts its own stack (./start.sh, native, free loopback ports, a temporary run folder, 2 replicas, 2 consumers,
# the defaults), warms it with the benchmark's REST PUT (wrk -t2 -c64, ghz-bench/wrk/kv_put.lua, new keys with
# 256-byte values, through nginx and Envoy) until the JIT compilers are quiet, then profiles SECONDS more of the same
# load in both JVMs at once, and stops everything it started. The profiler is async-profiler from Maven Central
# (tools.profiler:async-profiler, its linux-x64 library), loaded into the running JVMs with
# `jcmd PID JVMTI.agent_load` (no restart, no JVM option); it samples CPU time with itimer, which needs no
# perf_events permission. Environment: KVMESH_PROFILE_EXTRA="NAME=VALUE ..." starts the stack with those settings
# (to profile a lever); KVMESH_PROFILE_OUT=DIR writes elsewhere; GHZ_BENCH_KEEP=1 keeps the run folder.
set -euo pipefail
BENCH="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)"
ROOT="$(cd "$BENCH/.." && pwd -P)"
SECONDS_PROFILED="${1:-30}"
[[ "$SECONDS_PROFILED" =~ ^[0-9]+$ ]] && [ "$SECONDS_PROFILED" -ge 5 ] && [ "$SECONDS_PROFILED" -le 300 ] ||
  { echo "usage: ghz-bench/profile.sh [SECONDS: 5-300]" >&2; exit 2; }
OUT_DIR="${KVMESH_PROFILE_OUT:-$ROOT/docs/flame}"
AP_VERSION=4.2
T0=$(date +%s)
step() { echo "[profile +$(( $(date +%s) - T0 ))s] $*"; }
die() { echo "[profile] ERROR: $*" >&2; exit 1; }

command -v wrk >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
JAVA_HOME="$("$ROOT/scripts/find-java.sh")" || die "no JDK >= 21"
export JAVA_HOME
JCMD="$JAVA_HOME/bin/jcmd"

# async-profiler's library, from its jar on Maven Central
JAR="$HOME/.m2/repository/tools/profiler/async-profiler/$AP_VERSION/async-profiler-$AP_VERSION.jar"
if [ ! -f "$JAR" ]; then
  step "fetching tools.profiler:async-profiler:$AP_VERSION (Maven Central)"
  mvn -B -q -ntp dependency:get -Dtransitive=false -Dartifact="tools.profiler:async-profiler:$AP_VERSION" >/dev/null ||
    die "mvn dependency:get tools.profiler:async-profiler:$AP_VERSION failed"
fi
LIB_DIR="$ROOT/.run/async-profiler-$AP_VERSION"
LIB="$LIB_DIR/linux-x64/libasyncProfiler.so"
if [ ! -f "$LIB" ]; then
  mkdir -p "$LIB_DIR"
  (cd "$LIB_DIR" && "$JAVA_HOME/bin/jar" xf "$JAR" linux-x64/libasyncProfiler.so)
fi
[ -f "$LIB" ] || die "no linux-x64/libasyncProfiler.so in $JAR"

RUN_DIR="$(mktemp -d /tmp/kvprofile.XXXXXX)"
chmod 755 "$RUN_DIR"
WRK_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$WRK_PID" ] || kill "$WRK_PID" 2>/dev/null || true
  step "stopping the stack"
  KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" "$ROOT/start.sh" stop >/dev/null 2>&1 || true
  if [ "${GHZ_BENCH_KEEP:-0}" = 1 ]; then step "run folder kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r HTTP_PORT ENVOY_PORT ADMIN_PORT R1 R2 C1 C2 PG_PORT REDIS_PORT AMQP_PORT DIST_PORT < <("$ROOT/scripts/free-ports" 11)
step "starting the stack in $RUN_DIR (nginx :$HTTP_PORT)${KVMESH_PROFILE_EXTRA:+ with $KVMESH_PROFILE_EXTRA}"
# shellcheck disable=SC2086
env ${KVMESH_PROFILE_EXTRA:-} KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" KVMESH_HTTP_PORT="$HTTP_PORT" \
  KVMESH_ENVOY_PORT="$ENVOY_PORT" KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" KVMESH_REPLICAS=2 KVMESH_CONSUMERS=2 \
  KVMESH_REPLICA_PORTS="$R1,$R2" KVMESH_CONSUMER_HTTP_PORTS="$C1,$C2" KVMESH_PG_PORT="$PG_PORT" \
  KVMESH_REDIS_PORT="$REDIS_PORT" KVMESH_AMQP_PORT="$AMQP_PORT" KVMESH_RABBIT_DIST_PORT="$DIST_PORT" \
  KVMESH_AUTH=off "$ROOT/start.sh" >"$RUN_DIR/start.log" 2>&1 || { tail -20 "$RUN_DIR/start.log" >&2; die "the stack did not start"; }

pid_of() {  # pid_of PART: the JVM's pid, from the stack's supervisord
  KVMESH_MODE=native KVMESH_RUN_DIR="$RUN_DIR" "$ROOT/start.sh" status 2>/dev/null |
    awk -v p="$1" '$1 == p && $2 ~ /^[0-9]+$/ { print $2; exit }' || true
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# the benchmark's own REST PUT script, with the prelude bench.py puts before every wrk script
cat "$BENCH/wrk/common.lua" "$BENCH/wrk/kv_put.lua" >"$RUN_DIR/kv_put.lua"
export WRK_RUN="prof$$"
put_load() { wrk -t2 -c64 -d"$1s" --timeout 10s -s "$RUN_DIR/kv_put.lua" "http://127.0.0.1:$HTTP_PORT"; }

SVC="$(pid_of kv-service-1)"; SVC2="$(pid_of kv-service-2)"; CON1="$(pid_of kv-consumer-1)"; CON2="$(pid_of kv-consumer-2)"
[ -n "$SVC" ] && [ -n "$SVC2" ] && [ -n "$CON1" ] && [ -n "$CON2" ] || die "could not find the JVMs' pids (start.sh status)"
jit_ticks() {  # CPU ticks of the JIT compiler threads of these JVMs so far
  local p t n=0
  for p in "$@"; do
    for t in /proc/"$p"/task/*; do
      grep -q 'CompilerThre' "$t/comm" 2>/dev/null && n=$(( n + $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0) ))
    done
  done
  echo "$n"
}
# Warm-up: 10 s rounds of the load until the four JVMs' JIT threads used under 5 % of a core in a round (C2 kept
# compiling for about two minutes of this load on a slow 2-core host), at most 300 s: a profile of a JVM that is
# still compiling shows the compiler, not kvmesh.
HZ=$(getconf CLK_TCK)
for round in $(seq 30); do
  j0=$(jit_ticks "$SVC" "$SVC2" "$CON1" "$CON2")
  put_load 10 >/dev/null
  j1=$(jit_ticks "$SVC" "$SVC2" "$CON1" "$CON2")
  pct=$(( (j1 - j0) * 100 / HZ / 10 ))
  step "warm-up round $round: JIT threads ${pct}% of a core"
  [ "$pct" -ge 5 ] || break
done
# the active consumer is the one that takes the partitions' deliveries: the busier of the two under load
a1=$(cpu_ticks "$CON1"); a2=$(cpu_ticks "$CON2")
put_load 5 >/dev/null
b1=$(cpu_ticks "$CON1"); b2=$(cpu_ticks "$CON2")
if [ $(( b2 - a2 )) -gt $(( b1 - a1 )) ]; then CON="$CON2"; CON_NAME=kv-consumer-2; else CON="$CON1"; CON_NAME=kv-consumer-1; fi
step "profiling kv-service-1 (pid $SVC) and $CON_NAME (pid $CON, the busier consumer) for ${SECONDS_PROFILED} s of REST PUT"
mkdir -p "$OUT_DIR"
for p in "$SVC" "$CON"; do
  "$JCMD" "$p" JVMTI.agent_load "$LIB" '"start,event=itimer,interval=5ms"' >/dev/null || die "could not load async-profiler into pid $p"
done
put_load "$SECONDS_PROFILED" >"$RUN_DIR/wrk.txt"
# jcmd reads NAME=VALUE arguments itself: the agent's options go in literal double quotes. The same samples also as
# collapsed stacks (one line per stack, for grep and scripts) in the run folder, kept with GHZ_BENCH_KEEP=1.
"$JCMD" "$SVC" JVMTI.agent_load "$LIB" "\"dump,collapsed,file=$RUN_DIR/kv-service.collapsed\"" >/dev/null
"$JCMD" "$CON" JVMTI.agent_load "$LIB" "\"dump,collapsed,file=$RUN_DIR/kv-consumer.collapsed\"" >/dev/null
"$JCMD" "$SVC" JVMTI.agent_load "$LIB" "\"stop,file=$OUT_DIR/kv-service-rest-put.html\"" >/dev/null
"$JCMD" "$CON" JVMTI.agent_load "$LIB" "\"stop,file=$OUT_DIR/kv-consumer-rest-put.html\"" >/dev/null
[ -s "$OUT_DIR/kv-service-rest-put.html" ] && [ -s "$OUT_DIR/kv-consumer-rest-put.html" ] || die "the profiler wrote no flame graph"
step "load while profiled: $(grep -E 'Requests/sec' "$RUN_DIR/wrk.txt" | tr -s ' ')"
step "flame graphs: $OUT_DIR/kv-service-rest-put.html, $OUT_DIR/kv-consumer-rest-put.html"
