#!/usr/bin/env bash
# Throwaway PostgreSQL, Redis and RabbitMQ servers for kvmesh (tests and native mode).
#
# Usage:
#   scripts/servers.sh install                     install missing server packages (apt); no-op if present
#   scripts/servers.sh start RUN_DIR               start all three, write RUN_DIR/servers.env
#   scripts/servers.sh prepare RUN_DIR             start nothing: pick ports, create the data folders (initdb with the
#                                                  kvmesh role and database, RabbitMQ folders owned by rabbitmq) and
#                                                  write RUN_DIR/servers.env; then a supervisor runs each with `run`
#   scripts/servers.sh run RUN_DIR PART            PART = postgres|redis|rabbitmq: clear what a crash of it left behind,
#                                                  then become that server in the foreground (./start.sh's supervisord)
#   scripts/servers.sh stop RUN_DIR                stop all three (idempotent, bounded, never fails if stopped)
#   scripts/servers.sh ctl RUN_DIR PART ACTION     PART = redis|postgres|rabbitmq, ACTION = stop|start|status (redis: kill = kill -9)
#                                                  (a RabbitMQ cluster: rabbitmq stops/starts every node, rabbitmq-N one)
#   scripts/servers.sh env RUN_DIR                 print RUN_DIR/servers.env (it holds the application's passwords)
#   scripts/servers.sh cluster-grow RUN_DIR        (RabbitMQ cluster) every quorum queue on every node
#
# KVMESH_RABBITMQ_NODES=3 (start/prepare): a RabbitMQ cluster of that many nodes on loopback instead of one node, each
# with its own AMQP and distribution ports and data folder (rabbitmq/, rabbitmq-2/, ...), one Erlang cookie, joined by
# classic-config peer discovery; PART rabbitmq-1..N names one node (rabbitmq = node 1). servers.env then also has
# KVMESH_AMQP_ADDRESSES (every node) and KVMESH_AMQP_QUORUM_SIZE (min(N, 3)). KVMESH_RABBIT_CLUSTER_PORTS pins the
# other nodes' ports (AMQP,dist for node 2, then node 3, ...); the choice is kept in RUN_DIR/rabbitmq-cluster.state.
#   scripts/servers.sh status RUN_DIR              one line per part; exit 0 only if all three are up
#   scripts/servers.sh rabbitmqctl RUN_DIR ARGS..  run rabbitmqctl against this run's node
#   scripts/servers.sh pg-promote RUN_DIR          (standby) fence the stopped primary, promote postgres-standby
#   scripts/servers.sh pg-sync-state RUN_DIR       (standby) the primary's pg_stat_replication: name, state, sync, lag
#
# With KVMESH_PG_STANDBY=1 (start, prepare) a second PostgreSQL, postgres-standby, streams synchronously from the
# first (pg_basebackup -R) on its own port (KVMESH_PG_STANDBY_PORT or a free one) and folder; KVMESH_PG_URL then names
# both (targetServerType=primary). See the section "postgres standby" below.
#
# Everything lives under RUN_DIR: postgres/ (data, sock), redis/ (dump.rdb, pid), rabbitmq/ (mnesia, config,
# HOME with the Erlang cookie, pid), logs/ (postgres.log, redis.log, rabbitmq/, *-console.log) and
# servers.state (ports, node name).  All servers listen on 127.0.0.1 only.
#
# No server answers without a password. The first start or prepare of a run folder generates them into
# RUN_DIR/secrets/credentials.env (mode 0600; reused by every later start of the same folder): PostgreSQL's superuser
# `postgres` and application role `kvmesh` (scram-sha-256, no trust line in pg_hba.conf), Redis (requirepass) and
# RabbitMQ's only user `kvmesh` (no guest). servers.env (mode 0600) carries the application's share of them; they
# are never printed (logs name the file).
#
# Optional environment: KVMESH_PG_PORT, KVMESH_REDIS_PORT, KVMESH_AMQP_PORT, KVMESH_RABBIT_DIST_PORT
# (fixed ports instead of free ones, for `start`), KVMESH_SERVERS_START_TIMEOUT (seconds, default 60).
#
# Progress and errors go to stderr; stdout is used only by `env` and `rabbitmqctl`.
set -euo pipefail

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
. "$(dirname "$SELF")/lib.sh"
START_TIMEOUT="${KVMESH_SERVERS_START_TIMEOUT:-60}"
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

log()  { echo "[servers] $*" >&2; }
warn() { echo "[servers] WARNING: $*" >&2; }
die()  { echo "[servers] ERROR: $*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}


# ---------------------------------------------------------------- tools

pg_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && best="$d"   # glob is sorted; numeric versions of equal length sort fine
  done
  if [ -z "$best" ]; then
    # fall back to PATH (non-Debian layouts)
    local i
    i="$(command -v initdb 2>/dev/null || true)"
    [ -n "$i" ] && best="$(dirname "$(readlink -f "$i")")"
  fi
  printf '%s' "$best"
}

rabbit_bin() {  # directory with the real rabbitmq-server / rabbitmqctl (bypassing Debian's su wrapper)
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    printf '%s' /usr/lib/rabbitmq/bin
  else
    local s
    s="$(command -v rabbitmq-server 2>/dev/null || true)"
    [ -n "$s" ] && dirname "$s"
  fi
}

have_all() {
  [ -n "$(pg_bindir)" ] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null &&
    [ -n "$(rabbit_bin)" ]
}

cmd_install() {
  local missing=()
  [ -n "$(pg_bindir)" ] || missing+=(postgresql postgresql-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  [ -n "$(rabbit_bin)" ] || missing+=(rabbitmq-server)
  command -v setpriv >/dev/null || missing+=(util-linux)
  if [ ${#missing[@]} -eq 0 ]; then
    log "install: postgresql ($(pg_bindir)), redis-server, rabbitmq-server already present"
    return 0
  fi
  [ "$IS_ROOT" = 1 ] || die "install: missing ${missing[*]}; installing needs root"
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
  log "install: missing ${missing[*]}; running apt-get update"
  local i
  for i in 1 2 3; do
    if "${apt[@]}" update -q; then break; fi
    [ "$i" = 3 ] && die "install: apt-get update failed"
    warn "apt-get update failed (attempt $i), retrying in 10 s"
    sleep 10
  done
  log "install: apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" ||
    die "install: apt-get install failed"
  have_all || die "install: packages installed but binaries still missing"
  log "install: done"
}

# ---------------------------------------------------------------- helpers

# Run a command as a service user (postgres / rabbitmq) with a clean environment.
# Usage: as_user USER HOME_DIR [VAR=value ...] -- cmd args...
# (as_user_cmd only builds the command line into AS_USER_CMD, e.g. for exec.)
as_user_cmd() {
  local user="$1" home="$2"; shift 2
  local envs=(HOME="$home" PATH="$SYS_PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8)
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  if [ "$IS_ROOT" = 1 ]; then
    AS_USER_CMD=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups -- env -i "${envs[@]}" "$@")
  else
    AS_USER_CMD=(env -i "${envs[@]}" "$@")
  fi
}
as_user() { as_user_cmd "$@"; "${AS_USER_CMD[@]}"; }

own() {  # own USER PATH... (no-op unless root)
  local user="$1"; shift
  [ "$IS_ROOT" = 1 ] && chown "$user:$(id -gn "$user")" "$@"
  return 0
}

# Prints N distinct free TCP ports on 127.0.0.1 (avoids RabbitMQ's CLI distribution range 35672-35682).
free_ports() {
  local n="$1" py
  py="$(command -v python3 2>/dev/null || true)"
  if [ -n "$py" ] && "$py" -c 'import socket' 2>/dev/null; then
    "$py" "$(dirname "$SELF")/free-ports" "$n"
  else
    local out=() p tries=0
    while [ ${#out[@]} -lt "$n" ]; do
      p=$((20000 + RANDOM % 12000)); tries=$((tries + 1))
      [ $tries -gt 1000 ] && return 1
      case " ${out[*]} " in *" $p "*) continue ;; esac
      port_open "$p" && continue
      if command -v ss >/dev/null && [ -n "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then continue; fi
      out+=("$p")
    done
    echo "${out[*]}"
  fi
}

# Lists "pid comm" of server processes whose working directory is inside RUN_DIR
# (postgres keeps cwd = data dir, redis cwd = RUN_DIR/redis, beam cwd = RUN_DIR/rabbitmq). epmd is never listed.
run_procs() {
  local pat link pid comm
  pat="$(printf '%s' "$RUN_DIR" | sed 's/[][*?\\]/\\&/g')"
  find /proc -mindepth 2 -maxdepth 2 -name cwd \( -lname "$pat" -o -lname "$pat/*" \) 2>/dev/null |
    while IFS= read -r link; do
      pid="${link#/proc/}"; pid="${pid%/cwd}"
      [ "$pid" = "$$" ] && continue
      comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || continue
      case "$comm" in
        postgres|postmaster|redis-server|redis-check-rdb|beam.smp|erl_child_setup|inet_gethost|rabbitmq-server|erl|setsid|setpriv)
          pid_alive "$pid" && echo "$pid $comm" ;;
      esac
    done
  return 0
}

kill_hard() {  # kill_hard LABEL PID...  TERM, wait 5 s, KILL
  local label="$1"; shift
  [ $# -gt 0 ] || return 0
  warn "$label: sending SIGTERM to $*"
  kill -TERM "$@" 2>/dev/null || true
  wait_gone 5 "$@" && return 0
  warn "$label: sending SIGKILL to $*"
  kill -KILL "$@" 2>/dev/null || true
  wait_gone 5 "$@"
}

# Runs a daemon-starting command with stdin from /dev/null, output appended to LOG and every inherited fd
# above 2 closed (lock fd, callers' pipes), so no daemon keeps a caller's pipe or our lock open.
# Usage: spawn LOG cmd args...
spawn() {
  local logf="$1"; shift
  ( close_extra_fds; exec "$@" ) </dev/null >>"$logf" 2>&1
}

tail_log() {  # tail_log LABEL FILE...
  local label="$1" f; shift
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "[servers] ---- $label: last lines of $f ----" >&2
    tail -n 25 "$f" >&2 || true
  done
}

# ---------------------------------------------------------------- credentials

new_password() { (set +o pipefail; tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32); }   # URI-safe: no escaping anywhere

# read_credentials: PG_SUPER_PASS, PG_APP_PASS, REDIS_PASS, AMQP_USER, AMQP_PASS from the run folder's file (1 if none)
read_credentials() {
  PG_SUPER_PASS="" PG_APP_PASS="" REDIS_PASS="" AMQP_USER="" AMQP_PASS=""
  [ -s "$CRED_FILE" ] || return 1
  local KVMESH_PG_SUPERUSER_PASSWORD="" KVMESH_PG_PASSWORD="" KVMESH_REDIS_PASSWORD="" KVMESH_AMQP_USER="" KVMESH_AMQP_PASSWORD=""
  # shellcheck disable=SC1090
  . "$CRED_FILE"
  PG_SUPER_PASS="$KVMESH_PG_SUPERUSER_PASSWORD" PG_APP_PASS="$KVMESH_PG_PASSWORD" REDIS_PASS="$KVMESH_REDIS_PASSWORD"
  AMQP_USER="$KVMESH_AMQP_USER" AMQP_PASS="$KVMESH_AMQP_PASSWORD"
  [ -n "$PG_SUPER_PASS" ] && [ -n "$PG_APP_PASS" ] && [ -n "$REDIS_PASS" ] && [ -n "$AMQP_USER" ] && [ -n "$AMQP_PASS" ] ||
    die "$CRED_FILE is incomplete; restore it (the servers' data hold these passwords)"
}

# ensure_credentials: the run folder's credentials, generated once (mode 0600) if it has none. Data made with other
# passwords (or before there were any) cannot be reused with new ones: that is refused with what to do instead.
ensure_credentials() {
  read_credentials && return 0
  if [ -s "$PG_DATA/PG_VERSION" ] || [ -n "$(ls -A "$RMQ_DIR/mnesia" 2>/dev/null)" ]; then
    die "$RUN_DIR holds server data but no $CRED_FILE (data made before generated passwords, or the file was deleted): restore the file, or start on a fresh run folder (or delete $PG_DIR $RMQ_DIR $REDIS_DIR)"
  fi
  ( umask 077
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    {
      echo "# kvmesh: the stores' credentials for $RUN_DIR, generated once by scripts/servers.sh; keep it 0600."
      echo "# To rotate: stop the stack, delete this file and start on a fresh run folder (the data hold these passwords)."
      printf 'KVMESH_PG_SUPERUSER_PASSWORD=%s\nKVMESH_PG_PASSWORD=%s\nKVMESH_REDIS_PASSWORD=%s\n' \
        "$(new_password)" "$(new_password)" "$(new_password)"
      printf 'KVMESH_AMQP_USER=kvmesh\nKVMESH_AMQP_PASSWORD=%s\n' "$(new_password)"
    } >"$CRED_FILE.tmp"
    mv -f "$CRED_FILE.tmp" "$CRED_FILE" )
  log "credentials: generated $CRED_FILE (mode 0600)"
  read_credentials
}

# write_secret_file USER FILE: stdin into FILE, mode 0600, owned by USER (a service user when root)
write_secret_file() {
  local user="$1" f="$2"
  ( umask 077; cat >"$f.tmp" )
  own "$user" "$f.tmp"
  mv -f "$f.tmp" "$f"
}

# ---------------------------------------------------------------- run dir / state

set_run_dir() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1" 2>/dev/null || true
  [ -d "$1" ] || die "RUN_DIR $1 does not exist and cannot be created"
  RUN_DIR="$(cd "$1" && pwd -P)"
  STATE="$RUN_DIR/servers.state"
  ENV_FILE="$RUN_DIR/servers.env"
  LOGS="$RUN_DIR/logs"
  PG_DIR="$RUN_DIR/postgres"; PG_DATA="$PG_DIR/data"
  REDIS_DIR="$RUN_DIR/redis"; REDIS_PIDFILE="$REDIS_DIR/redis.pid"
  RMQ_DIR="$RUN_DIR/rabbitmq"; RMQ_HOME="$RMQ_DIR/home"; RMQ_PIDFILE="$RMQ_DIR/rabbit.pid"
  SECRETS_DIR="$RUN_DIR/secrets"; CRED_FILE="$SECRETS_DIR/credentials.env"
  cd "$RUN_DIR"   # service users must be able to access their cwd
}

lock_run_dir() {  # serialises start/stop/ctl on one RUN_DIR; daemons are started via spawn/close_extra_fds so they never hold it
  exec 9>>"$RUN_DIR/.servers.lock"
  flock -w 300 9 || die "timed out waiting for the lock on $RUN_DIR (another servers.sh still running?)"
}

load_state() {
  PG_PORT="" REDIS_PORT="" AMQP_PORT="" DIST_PORT="" RABBIT_NODE="" PG_SOCK=""
  if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    . "$STATE"
    rmq_cluster_load
    return 0
  fi
  return 1
}

write_state() {
  local tmp="$STATE.tmp"
  {
    printf 'PG_PORT=%q\nREDIS_PORT=%q\nAMQP_PORT=%q\nDIST_PORT=%q\n' "$PG_PORT" "$REDIS_PORT" "$AMQP_PORT" "$DIST_PORT"
    printf 'RABBIT_NODE=%q\nPG_SOCK=%q\n' "$RABBIT_NODE" "$PG_SOCK"
  } >"$tmp"
  mv -f "$tmp" "$STATE"
}

write_env() {  # mode 0600: it holds the application's passwords
  local tmp="$ENV_FILE.tmp"
  ( umask 077; : >"$tmp" )
  {
    echo "# kvmesh throwaway servers - generated by $SELF start $RUN_DIR"
    printf 'export %s=%q\n' \
      KVMESH_PG_URL "$(pg_jdbc_url)" \
      KVMESH_PG_USER kvmesh \
      KVMESH_PG_PASSWORD "$PG_APP_PASS" \
      KVMESH_PG_PORT "$PG_PORT" \
      KVMESH_REDIS_URI "redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT" \
      KVMESH_REDIS_PORT "$REDIS_PORT" \
      KVMESH_AMQP_URI "amqp://$AMQP_USER:$AMQP_PASS@127.0.0.1:$AMQP_PORT/%2F" \
      KVMESH_CREDENTIALS_FILE "$CRED_FILE" \
      KVMESH_AMQP_PORT "$AMQP_PORT" \
      KVMESH_RABBIT_NODE "$RABBIT_NODE" \
      KVMESH_TEST_RUN_DIR "$RUN_DIR" \
      KVMESH_TEST_SERVERS "$SELF"
    rmq_cluster_env
    pg_standby_env
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

prepare_dirs() {
  mkdir -p "$PG_DIR" "$REDIS_DIR" "$RMQ_DIR/mnesia" "$RMQ_HOME" "$LOGS/rabbitmq"
  if [ "$IS_ROOT" = 1 ]; then
    chmod 755 "$RUN_DIR" "$LOGS" "$RMQ_DIR"
    own postgres "$PG_DIR"
    own rabbitmq "$RMQ_DIR" "$RMQ_DIR/mnesia" "$RMQ_HOME" "$LOGS/rabbitmq"
    local u
    for u in postgres rabbitmq; do
      setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --init-groups -- test -x "$RUN_DIR" ||
        die "RUN_DIR $RUN_DIR is not reachable by user $u: every parent directory must be world-executable (use e.g. a dir under /tmp)"
    done
  fi
  chmod 700 "$RMQ_HOME"
  touch "$LOGS/postgres.log"; own postgres "$LOGS/postgres.log"
  # Postgres socket path must fit in sun_path (107 bytes); fall back to a short dir under /tmp.
  if [ -z "${PG_SOCK:-}" ]; then
    PG_SOCK="$PG_DIR/sock"
    if [ $(( ${#PG_SOCK} + 20 )) -gt 100 ]; then
      PG_SOCK="$(mktemp -d /tmp/kvmesh-pgsock.XXXXXX)"
    fi
  fi
  mkdir -p "$PG_SOCK"; own postgres "$PG_SOCK"
  ensure_credentials
  # PostgreSQL: the scripts' own psql calls (as postgres, HOME=$PG_DIR) read the superuser's password from here.
  printf '*:*:*:postgres:%s\n' "$PG_SUPER_PASS" | write_secret_file postgres "$PG_DIR/.pgpass"
  # Redis: the password in a 0600 file, not on a command line that ps shows.
  printf '# generated by kvmesh scripts/servers.sh from %s\nrequirepass %s\n' "$CRED_FILE" "$REDIS_PASS" |
    write_secret_file "$(id -un)" "$REDIS_DIR/auth.conf"
  # RabbitMQ: own config, empty plugin list, own env file (ignores /etc/rabbitmq), own Erlang cookie. Its one user is
  # created at the first boot from default_user/default_pass: no guest user ever exists.
  [ -f "$RMQ_DIR/enabled_plugins" ] || echo '[].' >"$RMQ_DIR/enabled_plugins"
  [ -f "$RMQ_DIR/rabbitmq-env.conf" ] || : >"$RMQ_DIR/rabbitmq-env.conf"
  write_secret_file rabbitmq "$RMQ_DIR/rabbitmq.conf" <<EOF
# generated by kvmesh scripts/servers.sh (listener address/port come from RABBITMQ_NODE_IP_ADDRESS/PORT)
default_vhost = /
default_user = $AMQP_USER
default_pass = $AMQP_PASS
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = info
EOF
  if [ ! -s "$RMQ_HOME/.erlang.cookie" ]; then
    # Reuse the system cookie when readable (so a plain `rabbitmqctl -n NODE` as the rabbitmq user works too).
    if [ -r /var/lib/rabbitmq/.erlang.cookie ] && [ -s /var/lib/rabbitmq/.erlang.cookie ]; then
      cat /var/lib/rabbitmq/.erlang.cookie >"$RMQ_HOME/.erlang.cookie"
    else
      (set +o pipefail; tr -dc 'A-Z' </dev/urandom | head -c 20) >"$RMQ_HOME/.erlang.cookie"
    fi
  fi
  chmod 400 "$RMQ_HOME/.erlang.cookie"
  own rabbitmq "$RMQ_DIR/enabled_plugins" "$RMQ_DIR/rabbitmq-env.conf" "$RMQ_DIR/rabbitmq.conf" "$RMQ_HOME/.erlang.cookie"
}

# ---------------------------------------------------------------- postgres

pg() {  # pg BIN args...   run a PostgreSQL binary as postgres
  local bin="$1"; shift
  as_user postgres "$PG_DIR" -- "$PG_BIN/$bin" "$@"
}

pg_pid() {
  local p
  p="$(read_pid "$PG_DATA/postmaster.pid")"
  pid_alive "$p" && echo "$p"
  return 0
}

pg_ready() { pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -XqAtc 'select 1' </dev/null >/dev/null 2>&1; }

# initdb, then the kvmesh role and database in single-user mode (no server, no port needed), in a scratch folder
# renamed into place at the end: a data folder either exists complete or not at all.
pg_init() {
  [ -s "$PG_DATA/PG_VERSION" ] && return 0
  local scratch="$PG_DIR/data.init"
  log "postgres: initdb $PG_DATA"
  rm -rf "$scratch"
  # scram-sha-256 for every connection, the local socket too (no trust line); the superuser's password from a file
  # that exists only while initdb runs
  printf '%s\n' "$PG_SUPER_PASS" | write_secret_file postgres "$PG_DIR/initdb.pw"
  pg initdb -D "$scratch" -U postgres --auth=scram-sha-256 --pwfile="$PG_DIR/initdb.pw" --encoding=UTF8 --locale=C --no-sync \
    </dev/null >>"$LOGS/postgres-initdb.log" 2>&1 || { rm -f "$PG_DIR/initdb.pw"; tail_log postgres "$LOGS/postgres-initdb.log"; return 1; }
  rm -f "$PG_DIR/initdb.pw"
  if grep -Eq '^[[:space:]]*[^#[:space:]].*[[:space:]]trust[[:space:]]*$' "$scratch/pg_hba.conf"; then
    die "postgres: initdb wrote a trust line into pg_hba.conf"
  fi
  printf '%s\n' "CREATE ROLE kvmesh LOGIN CREATEDB PASSWORD '$PG_APP_PASS'" \
    "CREATE DATABASE kvmesh OWNER kvmesh ENCODING 'UTF8'" |
    pg postgres --single -D "$scratch" -c listen_addresses= -c exit_on_error=on -c password_encryption=scram-sha-256 postgres \
      >>"$LOGS/postgres-initdb.log" 2>&1 || { tail_log postgres "$LOGS/postgres-initdb.log"; return 1; }
  cat >>"$scratch/postgresql.conf" <<'EOF'

# ---- kvmesh throwaway server (scripts/servers.sh); port and socket dir are passed on the command line ----
listen_addresses = '127.0.0.1'
max_connections = 200
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 128MB
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = -1
password_encryption = scram-sha-256
EOF
  mv "$scratch" "$PG_DATA"
}

pg_server_args() {  # PG_ARGS: what the server is started with, by pg_ctl (start) and in the foreground (run)
  PG_ARGS=(-p "$PG_PORT" -k "$PG_SOCK" -c listen_addresses=127.0.0.1)
}

pg_orphans() {  # pg_orphans DATA: postgres processes of this run working in DATA (not the other server's)
  local p
  for p in $(run_procs | awk '$2=="postgres" {print $1}'); do
    [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$1" ] && printf '%s ' "$p"
  done
  return 0
}

# After a crash (postmaster killed), postgres refuses to start while postmaster.pid names a pid that still
# exists (even as an unreaped zombie) or old backends are alive: wait for / kill orphans, drop the stale file.
pg_clear_stale() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 0
  [ -n "$(pg_pid)" ] && return 0
  local orphans
  orphans="$(pg_orphans "$PG_DATA")"
  # shellcheck disable=SC2086
  if [ -n "${orphans// /}" ]; then wait_gone 5 $orphans || kill_hard postgres $orphans || true; fi
  warn "postgres: removing stale postmaster.pid and socket lock"
  rm -f "$PG_DATA/postmaster.pid" "$PG_SOCK/.s.PGSQL.$PG_PORT" "$PG_SOCK/.s.PGSQL.$PG_PORT.lock"
}

pg_start() {
  local i
  pg_refuse_if_fenced
  if [ -n "$(pg_pid)" ]; then
    for i in $(seq 1 $((START_TIMEOUT * 10))); do
      pg_ready && { log "postgres: already running on 127.0.0.1:$PG_PORT"; return 0; }
      [ -n "$(pg_pid)" ] || break
      sleep 0.1
    done
  fi
  pg_clear_stale
  log "starting postgres on 127.0.0.1:$PG_PORT"
  pg_server_args
  as_user_cmd postgres "$PG_DIR" -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -w -t "$START_TIMEOUT" \
    -o "${PG_ARGS[*]}" start
  spawn "$LOGS/postgres-ctl.log" "${AS_USER_CMD[@]}" || { tail_log postgres "$LOGS/postgres-ctl.log" "$LOGS/postgres.log"; return 1; }
  for i in $(seq 1 50); do pg_ready && return 0; sleep 0.1; done
  tail_log postgres "$LOGS/postgres.log"; return 1
}

pg_stop() {
  local p
  p="$(pg_pid)"
  if [ -z "$p" ]; then log "postgres: not running"; return 0; fi
  log "stopping postgres (pid $p)"
  if ! pg pg_ctl -D "$PG_DATA" -m fast -w -t 30 stop </dev/null >>"$LOGS/postgres-ctl.log" 2>&1 9>&-; then
    warn "postgres: pg_ctl stop failed; immediate shutdown"
    kill -QUIT "$p" 2>/dev/null || true
    wait_gone 10 "$p" || kill_hard postgres "$p"
  fi
  wait_gone 10 "$p" || true
}

# ---------------------------------------------------------------- postgres standby (KVMESH_PG_STANDBY=1)
#
# A second PostgreSQL, a hot standby streaming from the primary (pg_basebackup -R, a replication slot), on its own
# port and data folder (RUN_DIR/postgres-standby). Replication is synchronous (synchronous_standby_names on the
# primary, synchronous_commit = on): a commit returns only once the standby has flushed it, so a promotion loses
# nothing that was committed, hence nothing a consumer acknowledged to the broker. The cost: each commit waits for
# the standby's flush too, and while the standby is down commits on the primary wait for it (the consumers stall and
# retry; writes keep queueing in RabbitMQ). The standby itself runs with synchronous_standby_names = '' so that, once
# promoted and alone, it does not wait for a standby it does not have.
# The replication role `replicator` has its own generated password (KVMESH_PG_REPLICATION_PASSWORD in
# RUN_DIR/secrets/credentials.env); initdb's pg_hba.conf already has scram-sha-256 replication lines for 127.0.0.1.
# After a switchover (pg-promote) the old primary is fenced (RUN_DIR/postgres/FENCED): it refuses to start, so two
# primaries can never run; making it a standby again is manual (docs/operations: pg_rewind or a new pg_basebackup).

pg_standby_on() { [ "${KVMESH_PG_STANDBY:-0}" = 1 ] || [ -s "$RUN_DIR/pg-standby.state" ]; }

pg_standby_vars() {  # folders, state (the port) and the replication password
  PGS_DIR="$RUN_DIR/postgres-standby"; PGS_DATA="$PGS_DIR/data"; PGS_STATE="$RUN_DIR/pg-standby.state"
  PG_FENCE="$PG_DIR/FENCED"
  PG_STANDBY_PORT=""
  # shellcheck disable=SC1090
  [ ! -s "$PGS_STATE" ] || . "$PGS_STATE"
  PG_REPL_PASS="$(sed -n 's/^KVMESH_PG_REPLICATION_PASSWORD=//p' "$CRED_FILE" 2>/dev/null | tail -n1)"
}

# pg_standby_prepare: port, folders, credentials and .pgpass of the standby (before write_state/write_env)
pg_standby_prepare() {
  pg_standby_on || return 0
  pg_standby_vars
  if [ -n "${KVMESH_PG_STANDBY_PORT:-}" ]; then PG_STANDBY_PORT="$KVMESH_PG_STANDBY_PORT"
  elif [ -z "$PG_STANDBY_PORT" ] || port_open "$PG_STANDBY_PORT" || [ "$PG_STANDBY_PORT" = "$PG_PORT" ]; then
    PG_STANDBY_PORT="$(free_ports 1)" || die "could not find a free port for the standby"
  fi
  [[ "$PG_STANDBY_PORT" =~ ^[0-9]+$ ]] || die "invalid port '$PG_STANDBY_PORT'"
  [ "$PG_STANDBY_PORT" != "$PG_PORT" ] || die "the standby's port $PG_STANDBY_PORT is the primary's"
  port_open "$PG_STANDBY_PORT" && die "port $PG_STANDBY_PORT on 127.0.0.1 is already in use"
  printf 'PG_STANDBY_PORT=%q\n' "$PG_STANDBY_PORT" >"$PGS_STATE"
  mkdir -p "$PGS_DIR"; own postgres "$PGS_DIR"
  touch "$LOGS/postgres-standby.log"; own postgres "$LOGS/postgres-standby.log"
  if [ -z "$PG_REPL_PASS" ]; then
    ( umask 077; printf 'KVMESH_PG_REPLICATION_PASSWORD=%s\n' "$(new_password)" >>"$CRED_FILE" )
    log "credentials: added the replication role's password to $CRED_FILE"
    pg_standby_vars
  fi
  # the standby's walreceiver (as postgres, HOME=$PGS_DIR) and pg_basebackup read the replication password here;
  # the superuser's line serves the scripts' psql calls against the standby
  printf '*:*:*:replicator:%s\n*:*:*:postgres:%s\n' "$PG_REPL_PASS" "$PG_SUPER_PASS" | write_secret_file postgres "$PGS_DIR/.pgpass"
}

# pg_standby_configure_primary: synchronous replication settings in the primary's postgresql.conf (once)
pg_standby_configure_primary() {
  grep -q '^# ---- kvmesh standby' "$PG_DATA/postgresql.conf" && return 0
  cat >>"$PG_DATA/postgresql.conf" <<'CONF'

# ---- kvmesh standby (scripts/servers.sh, KVMESH_PG_STANDBY=1): synchronous streaming replication ----
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
synchronous_standby_names = 'kvmesh_standby'
synchronous_commit = on
# lets pg_rewind make a former primary a standby again after a failover (more WAL: hint-bit changes are logged)
wal_log_hints = on
CONF
  grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+scram-sha-256' "$PG_DATA/pg_hba.conf" ||
    echo 'host    replication     replicator      127.0.0.1/32            scram-sha-256' >>"$PG_DATA/pg_hba.conf"
  PGS_PRIMARY_CHANGED=1
}

# pg_standby_init: the replication role on the running primary, then the standby's data by pg_basebackup -R
pg_standby_init() {
  [ -s "$PGS_DATA/PG_VERSION" ] && return 0
  log "postgres-standby: replication role and pg_basebackup from 127.0.0.1:$PG_PORT"
  # synchronous_commit = local: no standby exists yet to wait for
  printf '%s\n' "SET synchronous_commit = local;" "SELECT 'CREATE ROLE replicator REPLICATION LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \\gexec" \
    "ALTER ROLE replicator PASSWORD '$PG_REPL_PASS';" \
    "SELECT pg_create_physical_replication_slot('kvmesh_standby') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'kvmesh_standby');" |
    pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -XqAt -v ON_ERROR_STOP=1 >>"$LOGS/postgres-initdb.log" 2>&1 ||
    { tail_log postgres "$LOGS/postgres-initdb.log"; return 1; }
  local scratch="$PGS_DIR/data.init"
  rm -rf "$scratch"
  as_user postgres "$PGS_DIR" PGPASSFILE="$PGS_DIR/.pgpass" -- "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" \
    -U replicator -D "$scratch" -R -X stream -S kvmesh_standby -c fast --no-sync \
    </dev/null >>"$LOGS/postgres-standby-basebackup.log" 2>&1 ||
    { tail_log postgres-standby "$LOGS/postgres-standby-basebackup.log"; return 1; }
  rm -f "$scratch/FENCED"
  sed -i '/^primary_conninfo/d' "$scratch/postgresql.auto.conf"
  cat >>"$scratch/postgresql.auto.conf" <<'CONF'
# kvmesh standby: alone once promoted, so it waits for no standby; primary_conninfo comes on the command line
synchronous_standby_names = ''
hot_standby = on
wal_retrieve_retry_interval = '1s'
CONF
  chmod 700 "$scratch"
  mv "$scratch" "$PGS_DATA"
}

pg_standby_server_args() {  # PGS_ARGS: the standby's options (the primary's current port in primary_conninfo)
  PGS_ARGS=(-p "$PG_STANDBY_PORT" -k "$PG_SOCK" -c listen_addresses=127.0.0.1 -c cluster_name=kvmesh_standby
    -c "primary_conninfo=host=127.0.0.1 port=$PG_PORT user=replicator passfile=$PGS_DIR/.pgpass application_name=kvmesh_standby")
}

pg_standby_pid() {
  local p
  p="$(read_pid "$PGS_DATA/postmaster.pid")"
  pid_alive "$p" && echo "$p"
  return 0
}

pg_standby_ready() { pg psql -h "$PG_SOCK" -p "$PG_STANDBY_PORT" -U postgres -d postgres -XqAtc 'select 1' </dev/null >/dev/null 2>&1; }

pg_standby_clear_stale() {
  [ -f "$PGS_DATA/postmaster.pid" ] || return 0
  [ -n "$(pg_standby_pid)" ] && return 0
  local orphans
  orphans="$(pg_orphans "$PGS_DATA")"
  # shellcheck disable=SC2086
  if [ -n "${orphans// /}" ]; then wait_gone 5 $orphans || kill_hard postgres-standby $orphans || true; fi
  warn "postgres-standby: removing stale postmaster.pid and socket lock"
  rm -f "$PGS_DATA/postmaster.pid" "$PG_SOCK/.s.PGSQL.$PG_STANDBY_PORT" "$PG_SOCK/.s.PGSQL.$PG_STANDBY_PORT.lock"
}

# pg_standby_setup start|prepare: everything the standby needs. `start` (throwaway servers) leaves primary and standby
# running; `prepare` (start.sh) starts the primary only for the base backup and stops it again.
pg_standby_setup() {
  pg_standby_on || return 0
  pg_standby_prepare
  PGS_PRIMARY_CHANGED=0
  pg_standby_configure_primary
  if [ -n "$(pg_pid)" ] && [ "$PGS_PRIMARY_CHANGED" = 1 ]; then pg_stop; fi
  if [ ! -s "$PGS_DATA/PG_VERSION" ]; then
    [ -f "$PG_FENCE" ] && die "postgres-standby: no standby data and the primary is fenced ($PG_FENCE): rebuild by hand (docs)"
    pg_start || return 1
    pg_standby_init || return 1
    [ "$1" = start ] || pg_stop
  fi
  if [ "$1" = start ]; then
    [ -n "$(pg_pid)" ] || [ -f "$PG_FENCE" ] || pg_start || return 1
    pg_standby_start || return 1
  fi
}

pg_standby_start() {
  if [ -n "$(pg_standby_pid)" ] && pg_standby_ready; then log "postgres-standby: already running"; return 0; fi
  pg_standby_clear_stale
  log "starting postgres-standby on 127.0.0.1:$PG_STANDBY_PORT"
  pg_standby_server_args
  local opts="" a
  for a in "${PGS_ARGS[@]}"; do opts+="${opts:+ }'${a//\'/}'"; done
  as_user_cmd postgres "$PGS_DIR" -- "$PG_BIN/pg_ctl" -D "$PGS_DATA" -l "$LOGS/postgres-standby.log" -w -t "$START_TIMEOUT" -o "$opts" start
  spawn "$LOGS/postgres-standby-ctl.log" "${AS_USER_CMD[@]}" ||
    { tail_log postgres-standby "$LOGS/postgres-standby-ctl.log" "$LOGS/postgres-standby.log"; return 1; }
  local i
  for i in $(seq 1 50); do pg_standby_ready && return 0; sleep 0.1; done
  tail_log postgres-standby "$LOGS/postgres-standby.log"; return 1
}

pg_standby_stop() {
  pg_standby_on || return 0
  pg_standby_vars
  local p
  p="$(pg_standby_pid)"
  [ -n "$p" ] || return 0
  log "stopping postgres-standby (pid $p)"
  as_user postgres "$PGS_DIR" -- "$PG_BIN/pg_ctl" -D "$PGS_DATA" -m fast -w -t 30 stop </dev/null >>"$LOGS/postgres-standby-ctl.log" 2>&1 9>&- ||
    { kill -QUIT "$p" 2>/dev/null || true; wait_gone 10 "$p" || kill_hard postgres-standby "$p"; }
}

pg_standby_exec() {  # `run RUN_DIR postgres-standby`: the standby (or, once promoted, the primary) in the foreground
  pg_standby_on || die "no standby in $RUN_DIR (start it with KVMESH_PG_STANDBY=1)"
  pg_standby_vars
  pg_standby_clear_stale
  pg_standby_server_args
  as_user_cmd postgres "$PGS_DIR" -- "$PG_BIN/postgres" -D "$PGS_DATA" "${PGS_ARGS[@]}"
  exec "${AS_USER_CMD[@]}"
}

pg_refuse_if_fenced() {  # the old primary after a switchover never starts again by itself: no two primaries
  [ -f "$PG_DIR/FENCED" ] || return 0
  die "postgres: fenced after a switchover ($(head -n1 "$PG_DIR/FENCED")); the primary is now postgres-standby. Make this one a standby again by hand (docs/reliability.md), then delete $PG_DIR/FENCED"
}

pg_standby_env() {  # extra servers.env lines: the standby's port and the multi-host JDBC URL
  pg_standby_on || return 0
  printf 'export %s=%q\n' KVMESH_PG_STANDBY_PORT "$PG_STANDBY_PORT" KVMESH_PG_STANDBY 1
}

pg_jdbc_url() {  # both servers when there is a standby: the driver connects to whichever is the primary
  if pg_standby_on && [ -n "${PG_STANDBY_PORT:-}" ]; then
    printf 'jdbc:postgresql://127.0.0.1:%s,127.0.0.1:%s/kvmesh?targetServerType=primary&hostRecheckSeconds=2' "$PG_PORT" "$PG_STANDBY_PORT"
  else
    printf 'jdbc:postgresql://127.0.0.1:%s/kvmesh' "$PG_PORT"
  fi
}

# pg-standby-status RUN_DIR: the standby's role and replication state (one line, key=value)
pg_standby_status_line() {
  pg_standby_on || return 0
  pg_standby_vars
  local s=down role=""
  if [ -n "$(pg_standby_pid)" ] && pg_standby_ready; then
    s=up
    role="$(pg psql -h "$PG_SOCK" -p "$PG_STANDBY_PORT" -U postgres -d postgres -XqAtc \
      "select case when pg_is_in_recovery() then 'standby' else 'primary' end" </dev/null 2>/dev/null || true)"
  fi
  echo "postgres-standby 127.0.0.1:$PG_STANDBY_PORT ${role:+$role }$s"
  [ $s = up ]
}

# pg-sync-state RUN_DIR: how the primary sees its standby (streaming sync, or nothing), from pg_stat_replication
cmd_pg_sync_state() {
  set_run_dir "${1:-}"
  require_state
  pg_standby_vars
  pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -XqAtc \
    "select application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) from pg_stat_replication" </dev/null
}

# pg-promote RUN_DIR: the second half of a switchover, once the primary is stopped (./start.sh pg-switchover stops it
# through supervisord first): fence the old primary, promote the standby, wait until it takes writes.
cmd_pg_promote() {
  set_run_dir "${1:-}"
  lock_run_dir
  require_state
  pg_standby_on || die "no standby in $RUN_DIR"
  pg_standby_vars
  [ -n "$(pg_pid)" ] && die "the primary (pid $(pg_pid)) still runs: stop it first (./start.sh pg-switchover does)"
  [ -n "$(pg_standby_pid)" ] && pg_standby_ready || die "postgres-standby is not running"
  printf 'fenced by pg-promote at %s UTC: postgres-standby (port %s) was promoted\n' "$(date -u '+%F %T')" "$PG_STANDBY_PORT" >"$PG_FENCE"
  local t0
  t0=$(now_ms)
  as_user postgres "$PGS_DIR" -- "$PG_BIN/pg_ctl" -D "$PGS_DATA" -w -t 60 promote </dev/null >>"$LOGS/postgres-standby-ctl.log" 2>&1 ||
    die "pg_ctl promote failed (log: $LOGS/postgres-standby-ctl.log)"
  local i
  for i in $(seq 1 300); do
    [ "$(pg psql -h "$PG_SOCK" -p "$PG_STANDBY_PORT" -U postgres -d postgres -XqAtc 'select pg_is_in_recovery()' </dev/null 2>/dev/null)" = f ] &&
      { log "postgres-standby promoted: primary on 127.0.0.1:$PG_STANDBY_PORT ($(elapsed "$t0")); old primary fenced ($PG_FENCE)"; return 0; }
    sleep 0.1
  done
  die "postgres-standby did not leave recovery"
}

# ---------------------------------------------------------------- redis

redis_pid() {
  local p
  p="$(read_pid "$REDIS_PIDFILE")"
  if pid_alive "$p" && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = redis-server ]; then echo "$p"; fi
  return 0
}

redis_cli() { REDISCLI_AUTH="$REDIS_PASS" timeout "$1" redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" "${@:2}"; }   # redis_cli SECS ARGS
redis_ping() { [ "$(redis_cli 3 ping 2>/dev/null)" = PONG ]; }

redis_server_args() {  # REDIS_ARGS: the server's options, daemonized (start) or in the foreground (run)
  REDIS_ARGS=("$REDIS_DIR/auth.conf" --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --dir "$REDIS_DIR" --dbfilename dump.rdb
    --save "" --appendonly no --pidfile "$REDIS_PIDFILE" --logfile "$LOGS/redis.log")
}

redis_start() {
  if [ -n "$(redis_pid)" ] && redis_ping; then log "redis: already running on 127.0.0.1:$REDIS_PORT"; return 0; fi
  log "starting redis on 127.0.0.1:$REDIS_PORT$([ -s "$REDIS_DIR/dump.rdb" ] && echo " (loading dump.rdb)")"
  rm -f "$REDIS_PIDFILE"
  redis_server_args
  spawn "$LOGS/redis-console.log" redis-server "${REDIS_ARGS[@]}" --daemonize yes ||
    { tail_log redis "$LOGS/redis-console.log" "$LOGS/redis.log"; return 1; }
  local end=$(( $(now_ms) + START_TIMEOUT * 1000 )) p
  while [ "$(now_ms)" -lt "$end" ]; do
    redis_ping && return 0
    p="$(read_pid "$REDIS_PIDFILE")"
    if [ -n "$p" ] && ! pid_alive "$p"; then break; fi
    sleep 0.05
  done
  tail_log redis "$LOGS/redis-console.log" "$LOGS/redis.log"; return 1
}

redis_stop() {  # redis_stop save|nosave
  local mode="$1" p
  p="$(redis_pid)"
  if [ -z "$p" ]; then log "redis: not running"; return 0; fi
  log "stopping redis (pid $p, SHUTDOWN ${mode^^})"
  redis_cli 30 shutdown "$mode" </dev/null >/dev/null 2>&1 || true
  wait_gone 30 "$p" && return 0
  if [ "$mode" = save ]; then
    kill_hard redis "$p"
    warn "redis: SHUTDOWN SAVE did not complete; process killed, data may not have been saved"
    return 1
  fi
  kill_hard redis "$p"
}

# ---------------------------------------------------------------- rabbitmq

rmq_env() {
  RMQ_ENV=(
    RABBITMQ_NODENAME="$RABBIT_NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$AMQP_PORT"
    RABBITMQ_DIST_PORT="$DIST_PORT"
    RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
    RABBITMQ_LOG_BASE="$LOGS/rabbitmq"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
    RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
    RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
    RABBITMQ_PID_FILE="$RMQ_PIDFILE"
    # KVMESH_RABBITMQ_ERL_ARGS: extra emulator flags (e.g. "+S 1:1"), for the benchmark's levers
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}${KVMESH_RABBITMQ_ERL_ARGS:+ $KVMESH_RABBITMQ_ERL_ARGS}"
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    ERL_CRASH_DUMP="$LOGS/rabbitmq/erl_crash.dump"
    ERL_EPMD_ADDRESS=127.0.0.1
  )
}

rmqctl() {  # rmqctl args...  (rabbitmqctl -n NODE as the rabbitmq user)
  rmq_env
  as_user rabbitmq "$RMQ_HOME" "${RMQ_ENV[@]}" -- "$RMQ_BIN/rabbitmqctl" -n "$RABBIT_NODE" "$@"
}

rmq_pids() {  # beam.smp + wrapper processes of this node
  if [ "${RMQ_NODES:-1}" -gt 1 ]; then rmq_node_pids; return 0; fi
  run_procs | awk '$2=="beam.smp" || $2=="rabbitmq-server" || $2=="erl_child_setup" || $2=="inet_gethost" {print $1}'
}

rmq_server_cmd() {  # AS_USER_CMD: the broker in the foreground as the rabbitmq user (run it from $RMQ_DIR)
  rmq_env
  as_user_cmd rabbitmq "$RMQ_HOME" "${RMQ_ENV[@]}" -- "$RMQ_BIN/rabbitmq-server"
}

rmq_launch() {
  if [ -n "$(rmq_pids)" ]; then
    if port_open "$AMQP_PORT"; then log "rabbitmq: already running ($RABBIT_NODE)"; RMQ_ALREADY=1; return 0; fi
    warn "rabbitmq: processes of $RABBIT_NODE present but port $AMQP_PORT closed; killing them"
    # shellcheck disable=SC2046
    kill_hard rabbitmq $(rmq_pids) || true
  fi
  RMQ_ALREADY=0
  log "starting rabbitmq on 127.0.0.1:$AMQP_PORT (node $RABBIT_NODE, dist port $DIST_PORT)"
  rm -f "$RMQ_PIDFILE"
  RMQ_LOG_OFFSET=$(stat -c %s "$LOGS/rabbitmq/$RABBIT_NODE.log" 2>/dev/null || echo 0)
  rmq_server_cmd
  # Foreground mode in a background session (instead of -detached) so early boot errors land in the console log.
  (cd "$RMQ_DIR" && close_extra_fds && exec setsid "${AS_USER_CMD[@]}") \
    </dev/null >>"$LOGS/rabbitmq-console.log" 2>&1 &
  RMQ_LAUNCHER=$!
  echo "$RMQ_LAUNCHER" >"$RMQ_DIR/launcher.pid"
}

rmq_wait() {
  [ "${RMQ_ALREADY:-0}" = 1 ] && return 0
  local end=$(( $(now_ms) + START_TIMEOUT * 1000 )) logf="$LOGS/rabbitmq/$RABBIT_NODE.log"
  while :; do
    if port_open "$AMQP_PORT" && grep -q 'Server startup complete' < <(tail -c +$((RMQ_LOG_OFFSET + 1)) "$logf" 2>/dev/null); then
      break
    fi
    if ! pid_alive "$RMQ_LAUNCHER"; then
      log "rabbitmq: server process exited during startup"
      tail_log rabbitmq "$LOGS/rabbitmq-console.log" "$logf"; return 1
    fi
    if [ "$(now_ms)" -ge "$end" ]; then
      log "rabbitmq: not ready after ${START_TIMEOUT}s"
      tail_log rabbitmq "$LOGS/rabbitmq-console.log" "$logf"; return 1
    fi
    sleep 0.2
  done
  # Confirms the node is reachable by the CLI (cookie, dist port) - stop/ctl rely on it.
  if ! timeout $((START_TIMEOUT + 10)) "$SELF" __rmqctl "$RUN_DIR" await_startup --timeout "$START_TIMEOUT" \
      </dev/null >>"$LOGS/rabbitmq-ctl.log" 2>&1 9>&-; then
    log "rabbitmq: rabbitmqctl await_startup failed"
    tail_log rabbitmq "$LOGS/rabbitmq-ctl.log" "$logf"; return 1
  fi
}

rmq_stop() {
  local pids beam
  pids="$(rmq_pids | tr '\n' ' ')"
  if [ -z "${pids// /}" ]; then log "rabbitmq: not running"; return 0; fi
  beam="$(read_pid "$RMQ_PIDFILE")"
  log "stopping rabbitmq (node $RABBIT_NODE, pids ${pids% })"
  if pid_alive "$beam" && port_open "$AMQP_PORT"; then
    timeout 45 "$SELF" __rmqctl "$RUN_DIR" stop --idempotent "$RMQ_PIDFILE" </dev/null >>"$LOGS/rabbitmq-ctl.log" 2>&1 9>&- ||
      warn "rabbitmq: rabbitmqctl stop failed (see $LOGS/rabbitmq-ctl.log)"
    # shellcheck disable=SC2086
    wait_gone 15 $pids && return 0
  fi
  # not (fully) booted or not stopping: kill
  # shellcheck disable=SC2046
  kill_hard rabbitmq $(rmq_pids) || true
}


# ---------------------------------------------------------------- rabbitmq cluster (KVMESH_RABBITMQ_NODES > 1)
#
# Node 1 is the single node above (RABBIT_NODE, AMQP_PORT, DIST_PORT, $RUN_DIR/rabbitmq); nodes 2..N are named after
# it (kvmesh-…-r2@localhost), live in $RUN_DIR/rabbitmq-N and run from that folder, which is how their processes are
# told apart. rmq_select N points the rabbitmq functions above (rmq_env, rmq_launch, rmq_wait, rmq_stop, rmqctl) at
# node N. Every node lists all of them for classic-config peer discovery: a blank node joins the first one that
# answers; a node with data rejoins its cluster by itself. A blank node 2..N waits for node 1 first, so the first
# start forms one cluster, never several.

RMQ_NODES=1
RMQ_CLUSTER_STATE_NAME=rabbitmq-cluster.state

rmq_cluster_load() {  # after load_state: the cluster's shape, and node 1's settings kept for rmq_select
  RMQ_NODES=1; RMQ_CLUSTER_PORTS=""
  RMQ_BASE_NODE="$RABBIT_NODE"; RMQ_BASE_AMQP="$AMQP_PORT"; RMQ_BASE_DIST="$DIST_PORT"
  # shellcheck disable=SC1090
  [ ! -f "$RUN_DIR/$RMQ_CLUSTER_STATE_NAME" ] || . "$RUN_DIR/$RMQ_CLUSTER_STATE_NAME"
  if [ -n "${KVMESH_RMQ_INDEX:-}" ] && [ "$RMQ_NODES" -gt 1 ]; then rmq_select "$KVMESH_RMQ_INDEX"; fi
  return 0
}

rmq_node_name() {  # rmq_node_name N
  if [ "$1" = 1 ]; then echo "$RMQ_BASE_NODE"; else echo "${RMQ_BASE_NODE%@*}-r$1@${RMQ_BASE_NODE#*@}"; fi
}

rmq_select() {  # rmq_select N: the rabbitmq functions act on node N from here on (also in child servers.sh calls)
  local n="$1" ports=()
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$RMQ_NODES" ] || die "no rabbitmq node $n (nodes: 1..$RMQ_NODES)"
  export KVMESH_RMQ_INDEX="$n"
  RABBIT_NODE="$(rmq_node_name "$n")"
  if [ "$n" = 1 ]; then
    AMQP_PORT="$RMQ_BASE_AMQP"; DIST_PORT="$RMQ_BASE_DIST"; RMQ_DIR="$RUN_DIR/rabbitmq"
  else
    read -r -a ports <<<"${RMQ_CLUSTER_PORTS//,/ }"
    AMQP_PORT="${ports[$(( (n - 2) * 2 ))]}"; DIST_PORT="${ports[$(( (n - 2) * 2 + 1 ))]}"; RMQ_DIR="$RUN_DIR/rabbitmq-$n"
  fi
  RMQ_HOME="$RMQ_DIR/home"; RMQ_PIDFILE="$RMQ_DIR/rabbit.pid"
}

rmq_node_pids() {  # the processes of the selected node: those working in its folder
  local pid comm
  while read -r pid comm; do
    case "$comm" in beam.smp|rabbitmq-server|erl_child_setup|inet_gethost) ;; *) continue ;; esac
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$RMQ_DIR" ] && echo "$pid"
  done < <(run_procs)
  return 0
}

rmq_cluster_address() {  # host:port of every node
  local n out="" save="${KVMESH_RMQ_INDEX:-1}"
  for ((n = 1; n <= RMQ_NODES; n++)); do rmq_select "$n"; out+="${out:+,}127.0.0.1:$AMQP_PORT"; done
  rmq_select "$save"
  echo "$out"
}

rmq_cluster_env() {  # extra lines of servers.env (inside write_env's block)
  [ "$RMQ_NODES" -gt 1 ] || return 0
  printf 'export %s=%q\n' KVMESH_RABBITMQ_NODES "$RMQ_NODES" KVMESH_AMQP_ADDRESSES "$(rmq_cluster_address)" \
    KVMESH_AMQP_QUORUM_SIZE "$(( RMQ_NODES < 3 ? RMQ_NODES : 3 ))"
}

# After prepare_dirs and write_state: the other nodes' ports (kept across starts), folders, cookie and configs.
rmq_cluster_prepare() {
  local f="$RUN_DIR/$RMQ_CLUSTER_STATE_NAME" want="${KVMESH_RABBITMQ_NODES:-1}" n ports=() need i conf
  rmq_cluster_load
  if [ -f "$f" ]; then
    [ "$want" = 1 ] || [ "$want" = "$RMQ_NODES" ] ||
      warn "rabbitmq: $RUN_DIR keeps its cluster of $RMQ_NODES nodes (KVMESH_RABBITMQ_NODES=$want ignored)"
  else
    [[ "$want" =~ ^[1-7]$ ]] || die "KVMESH_RABBITMQ_NODES must be 1..7 (got '$want')"
    [ "$want" -gt 1 ] || return 0
    need=$(( (want - 1) * 2 ))
    if [ -n "${KVMESH_RABBIT_CLUSTER_PORTS:-}" ]; then
      read -r -a ports <<<"${KVMESH_RABBIT_CLUSTER_PORTS//,/ }"
    else
      for i in $(free_ports $(( need + 5 ))); do   # none of the ports the other servers have
        case " $PG_PORT ${PG_STANDBY_PORT:-} $REDIS_PORT $RMQ_BASE_AMQP $RMQ_BASE_DIST " in *" $i "*) ;; *) ports+=("$i") ;; esac
      done
    fi
    [ ${#ports[@]} -ge "$need" ] || die "rabbitmq cluster: need $need ports for nodes 2..$want, have ${#ports[@]}"
    for i in "${ports[@]:0:$need}"; do
      [[ "$i" =~ ^[0-9]+$ ]] || die "invalid port '$i'"
      port_open "$i" && die "port $i on 127.0.0.1 is already in use"
    done
    printf 'RMQ_NODES=%q\nRMQ_CLUSTER_PORTS=%q\n' "$want" "$(IFS=,; echo "${ports[*]:0:$need}")" >"$f.tmp"
    mv -f "$f.tmp" "$f"
    rmq_cluster_load
  fi
  [ "$RMQ_NODES" -gt 1 ] || return 0
  local nodes="" base_conf="$RUN_DIR/rabbitmq/rabbitmq.conf" cookie="$RUN_DIR/rabbitmq/home/.erlang.cookie"
  for ((n = 1; n <= RMQ_NODES; n++)); do
    nodes+="cluster_formation.classic_config.nodes.$n = $(rmq_node_name "$n")"$'\n'
  done
  for ((n = RMQ_NODES; n >= 1; n--)); do
    rmq_select "$n"
    mkdir -p "$RMQ_DIR/mnesia" "$RMQ_HOME"
    if [ "$IS_ROOT" = 1 ]; then chmod 755 "$RMQ_DIR"; own rabbitmq "$RMQ_DIR" "$RMQ_DIR/mnesia" "$RMQ_HOME"; fi
    chmod 700 "$RMQ_HOME"
    if [ "$n" != 1 ]; then
      [ -f "$RMQ_DIR/enabled_plugins" ] || echo '[].' >"$RMQ_DIR/enabled_plugins"
      [ -f "$RMQ_DIR/rabbitmq-env.conf" ] || : >"$RMQ_DIR/rabbitmq-env.conf"
      # one Erlang cookie for the whole cluster: node 1's (0400, owned by rabbitmq)
      rm -f "$RMQ_HOME/.erlang.cookie"; cat "$cookie" >"$RMQ_HOME/.erlang.cookie"; chmod 400 "$RMQ_HOME/.erlang.cookie"
      own rabbitmq "$RMQ_DIR/enabled_plugins" "$RMQ_DIR/rabbitmq-env.conf" "$RMQ_HOME/.erlang.cookie"
    fi
    conf="$(sed '/^# ---- cluster/,$d' "$base_conf")"
    printf '%s\n# ---- cluster (scripts/servers.sh, KVMESH_RABBITMQ_NODES=%s)\ncluster_formation.peer_discovery_backend = classic_config\n%s' \
      "$conf" "$RMQ_NODES" "$nodes" | write_secret_file rabbitmq "$RMQ_DIR/rabbitmq.conf.new"
    mv -f "$RMQ_DIR/rabbitmq.conf.new" "$RMQ_DIR/rabbitmq.conf"
  done
  log "rabbitmq: a cluster of $RMQ_NODES nodes: $(rmq_cluster_address)"
}

# `start` (throwaway servers): node 1 is up; the others boot together and join it.
rmq_cluster_start() {
  [ "$RMQ_NODES" -gt 1 ] || return 0
  local n launchers=() offsets=() already=() t
  t=$(now_ms)
  for ((n = 2; n <= RMQ_NODES; n++)); do
    rmq_select "$n"; RMQ_LAUNCHER=""; RMQ_LOG_OFFSET=0; RMQ_ALREADY=0
    rmq_launch || return 1
    launchers[$n]="$RMQ_LAUNCHER"; offsets[$n]="$RMQ_LOG_OFFSET"; already[$n]="$RMQ_ALREADY"
  done
  for ((n = 2; n <= RMQ_NODES; n++)); do
    rmq_select "$n"; RMQ_LAUNCHER="${launchers[$n]}"; RMQ_LOG_OFFSET="${offsets[$n]}"; RMQ_ALREADY="${already[$n]}"
    rmq_wait || { rmq_select 1; return 1; }
  done
  rmq_select 1
  log "rabbitmq cluster of $RMQ_NODES nodes ready ($(elapsed "$t") after node 1): $(rmq_cluster_address)"
}

# `run RUN_DIR rabbitmq-N` (supervisord): node N in the foreground. A blank node 2..N first waits (bounded) for node 1
# to answer, so that its first boot joins node 1's cluster.
rmq_cluster_run() {
  local n="$1" left i
  rmq_select "$n"
  if [ "$n" != 1 ] && [ -z "$(ls -A "$RMQ_DIR/mnesia" 2>/dev/null)" ]; then
    for i in $(seq 1 1200); do port_open "$RMQ_BASE_AMQP" && break; sleep 0.1; done
  fi
  left="$(rmq_pids | tr '\n' ' ')"
  # shellcheck disable=SC2086
  if [ -n "${left// /}" ]; then kill_hard "rabbitmq node $n (left from a crash)" $left || true; fi
  rm -f "$RMQ_PIDFILE"
  rmq_server_cmd
  cd "$RMQ_DIR"
  exec "${AS_USER_CMD[@]}"
}

rmq_cluster_stop() {  # nodes N..2 (node 1 is stopped by the caller)
  [ "$RMQ_NODES" -gt 1 ] || return 0
  local n
  for ((n = RMQ_NODES; n >= 2; n--)); do rmq_select "$n"; rmq_stop || true; done
  rmq_select 1
}

rmq_node_up() { port_open "$AMQP_PORT" && [ -n "$(rmq_pids)" ]; }

# `cluster-grow RUN_DIR`: every quorum queue gets a member on every node (rabbitmq-queues grow NODE all, idempotent),
# then their leaders are spread over the nodes (rabbitmq-queues rebalance quorum).
# x-quorum-initial-group-size only counts the nodes in the cluster when a queue is declared: queues declared while
# nodes were still joining (the applications start with the first node) are completed here.
rmq_cluster_grow() {
  [ "$RMQ_NODES" -gt 1 ] || { log "cluster-grow: one rabbitmq node, nothing to do"; return 0; }
  local n rc=0 out
  for ((n = 1; n <= RMQ_NODES; n++)); do
    rmq_select "$n"
    rmq_node_up || { warn "cluster-grow: rabbitmq node $n is down; skipped"; rc=1; continue; }
    rmq_env
    if out="$(as_user rabbitmq "$RMQ_HOME" "${RMQ_ENV[@]}" -- "$RMQ_BIN/rabbitmq-queues" -n "$RABBIT_NODE" -q \
        grow "$RABBIT_NODE" all 2>&1 </dev/null)"; then
      log "cluster-grow: node $n member of every quorum queue ($(grep -c 'ok' <<<"$out" || true) added)"
    else
      warn "cluster-grow: node $n: ${out:0:300}"; rc=1
    fi
  done
  rmq_select 1
  # leaders of queues declared on one node all sit there: spread them, so a node's loss stops only its share
  if [ $rc = 0 ]; then
    rmq_env
    as_user rabbitmq "$RMQ_HOME" "${RMQ_ENV[@]}" -- "$RMQ_BIN/rabbitmq-queues" -n "$RABBIT_NODE" -q rebalance quorum \
      </dev/null >/dev/null 2>&1 && log "cluster-grow: quorum queue leaders spread over the nodes" ||
      warn "cluster-grow: rabbitmq-queues rebalance quorum failed"
  fi
  return $rc
}

rmq_cluster_status() {  # one line per node (rabbitmq-N ADDRESS NODE up|down)
  [ "$RMQ_NODES" -gt 1 ] || return 0
  local n rc=0 s
  for ((n = 1; n <= RMQ_NODES; n++)); do
    rmq_select "$n"; s=down; rmq_node_up && s=up
    echo "rabbitmq-$n 127.0.0.1:$AMQP_PORT $RABBIT_NODE $s"; [ $s = up ] || rc=3
  done
  rmq_select 1
  return $rc
}

rmq_cluster_ctl() {  # rmq_cluster_ctl N stop|start|status|kill
  rmq_select "$1"
  case "$2" in
    stop)   rmq_stop ;;
    start)  { rmq_launch && rmq_wait; } || die "rabbitmq node $1 did not start" ;;
    kill)   local p; p="$(read_pid "$RMQ_PIDFILE")"; pid_alive "$p" && { kill -KILL "$p"; wait_gone 10 "$p"; } ;;
    status) rmq_node_up && echo up || { echo down; return 3; } ;;
    *) die "usage: $(basename "$SELF") ctl RUN_DIR rabbitmq-N stop|start|status|kill" ;;
  esac
}

# ---------------------------------------------------------------- commands

require_state() {
  load_state || die "no servers.state in $RUN_DIR (was '$(basename "$SELF") start $RUN_DIR' run?)"
  PG_BIN="$(pg_bindir)"; RMQ_BIN="$(rabbit_bin)"
  read_credentials || die "no $CRED_FILE (was '$(basename "$SELF") start $RUN_DIR' run?)"
}

# Ports (free ones unless pinned by KVMESH_*_PORT), the RabbitMQ node name (kept across starts) and the folders;
# writes servers.state, from which `stop` can clean up, even after a failed start.
choose_ports_and_folders() {
  local ports=() portline
  portline="$(free_ports 4)" || die "could not find free ports"
  read -r -a ports <<<"$portline"
  [ ${#ports[@]} -eq 4 ] || die "could not find free ports"
  PG_PORT="${KVMESH_PG_PORT:-${ports[0]}}"
  REDIS_PORT="${KVMESH_REDIS_PORT:-${ports[1]}}"
  AMQP_PORT="${KVMESH_AMQP_PORT:-${ports[2]}}"
  DIST_PORT="${KVMESH_RABBIT_DIST_PORT:-${ports[3]}}"
  local p
  for p in "$PG_PORT" "$REDIS_PORT" "$AMQP_PORT" "$DIST_PORT"; do
    [[ "$p" =~ ^[0-9]+$ ]] || die "invalid port '$p'"
    port_open "$p" && die "port $p on 127.0.0.1 is already in use"
  done
  if [ -z "${RABBIT_NODE:-}" ]; then
    local tag
    tag="$(basename "$RUN_DIR" | tr -c 'A-Za-z0-9_\n-' '-' | cut -c1-24)"
    RABBIT_NODE="kvmesh-${tag}-$(printf '%04x%04x' $RANDOM $RANDOM)@localhost"
  fi
  prepare_dirs
  write_state
  rmq_cluster_prepare
}

claim_run_dir() {  # the start of `start` and `prepare`: the lock, the tools, no servers of this run folder running
  set_run_dir "${1:-}"
  have_all || die "server binaries missing; run: $SELF install"
  lock_run_dir
  PG_BIN="$(pg_bindir)"; RMQ_BIN="$(rabbit_bin)"
  if load_state; then
    if [ -n "$(run_procs)" ]; then die "servers of $RUN_DIR are already running; stop them first ($SELF stop $RUN_DIR)"; fi
    log "reusing data in $RUN_DIR (node $RABBIT_NODE)"
  fi
}

cmd_start() {
  local t0 t
  t0=$(now_ms)
  claim_run_dir "${1:-}"
  rm -f "$ENV_FILE"
  choose_ports_and_folders

  fail() {
    log "FAILED to start $1; stopping what was started"
    do_stop || true
    exit 1
  }
  interrupted() { log "interrupted; stopping what was started"; trap - INT TERM; do_stop || true; exit "$1"; }
  trap 'interrupted 130' INT
  trap 'interrupted 143' TERM
  # RabbitMQ boots slowest: launch it first, prepare postgres and redis meanwhile.
  rmq_launch || fail rabbitmq
  t=$(now_ms); pg_init || fail postgres; pg_start || fail postgres
  pg_standby_setup start || fail postgres-standby
  log "postgres ready on 127.0.0.1:$PG_PORT ($(elapsed "$t"))"
  t=$(now_ms); redis_start || fail redis
  log "redis ready on 127.0.0.1:$REDIS_PORT ($(elapsed "$t"))"
  t=$(now_ms); rmq_wait || fail rabbitmq
  log "rabbitmq ready on 127.0.0.1:$AMQP_PORT ($(elapsed "$t") after postgres+redis)"
  rmq_cluster_start || fail "the rabbitmq cluster"
  write_env
  trap - INT TERM
  log "all servers up in $(elapsed "$t0"); env: $ENV_FILE"
}

cmd_prepare() {
  claim_run_dir "${1:-}"
  choose_ports_and_folders
  pg_init || die "postgres: initdb failed"
  pg_standby_setup prepare || die "postgres-standby: set-up failed"
  write_env
}

# Becomes the server PART in the foreground (exec), for a supervisor that restarts it whenever it exits. First clears
# what a crash of the previous instance left: a stale postmaster.pid and orphaned backends, broker processes of this
# node. Takes no lock (a supervisor may call it at any time) and keeps the supervisor's process group.
cmd_run() {
  [ $# -eq 2 ] || usage
  set_run_dir "$1"
  require_state
  case "$2" in
    postgres)
      pg_refuse_if_fenced
      pg_clear_stale
      pg_server_args
      as_user_cmd postgres "$PG_DIR" -- "$PG_BIN/postgres" -D "$PG_DATA" "${PG_ARGS[@]}"
      exec "${AS_USER_CMD[@]}" ;;
    postgres-standby) pg_standby_exec ;;
    redis)
      redis_server_args
      exec redis-server "${REDIS_ARGS[@]}" --daemonize no ;;
    rabbitmq-[0-9]*) rmq_cluster_run "${2#rabbitmq-}" ;;
    rabbitmq)
      local left
      left="$(rmq_pids | tr '\n' ' ')"
      # shellcheck disable=SC2086
      if [ -n "${left// /}" ]; then kill_hard "rabbitmq (left from a crash)" $left || true; fi
      rm -f "$RMQ_PIDFILE"
      rmq_server_cmd
      cd "$RMQ_DIR"
      exec "${AS_USER_CMD[@]}" ;;
    *) die "usage: $(basename "$SELF") run RUN_DIR postgres|redis|rabbitmq" ;;
  esac
}

do_stop() {  # stops everything in RUN_DIR (state may be partial)
  load_state || true
  read_credentials || true   # none: Redis is killed instead of shut down
  PG_BIN="$(pg_bindir)"; RMQ_BIN="$(rabbit_bin)"
  if [ -n "$RABBIT_NODE" ] && [ -n "$RMQ_BIN" ]; then rmq_cluster_stop || true; rmq_stop || true; fi
  if [ -n "$PG_BIN" ] && [ -f "$PG_DATA/postmaster.pid" ]; then pg_stop || true; fi
  if [ -n "$PG_BIN" ]; then pg_standby_stop || true; fi
  if [ -n "$REDIS_PORT" ]; then redis_stop nosave || true; fi
  # Sweep: anything of this run still alive (crashed start, stuck process) is killed.
  local left
  left="$(run_procs)"
  if [ -n "$left" ]; then
    warn "leftover processes: $(echo "$left" | tr '\n' ' ')"
    # shellcheck disable=SC2046
    kill_hard leftover $(echo "$left" | awk '{print $1}') || true
    left="$(run_procs)"
  fi
  if [ -n "${PG_SOCK:-}" ] && [[ "$PG_SOCK" == /tmp/kvmesh-pgsock.* ]]; then rm -rf "$PG_SOCK"; fi
  rm -f "$ENV_FILE"
  if [ -n "$left" ]; then warn "could not stop: $left"; return 1; fi
  return 0
}

cmd_stop() {
  [ -n "${1:-}" ] || usage
  if [ ! -d "$1" ]; then log "stop: $1 does not exist; nothing to stop"; return 0; fi
  set_run_dir "$1"
  lock_run_dir
  local t0
  t0=$(now_ms)
  do_stop
  log "stopped all servers of $RUN_DIR in $(elapsed "$t0")"
}

cmd_ctl() {
  [ $# -ge 3 ] || usage
  set_run_dir "$1"
  local part="$2" action="$3" t0 p
  lock_run_dir
  require_state
  t0=$(now_ms)
  case "$part:$action" in
    redis:stop)       redis_stop save ;;
    redis:kill)       p="$(redis_pid)"; [ -z "$p" ] || { kill -KILL "$p"; wait_gone 10 "$p"; } ;;
    redis:start)      redis_start || die "redis did not start" ;;
    postgres:stop)    pg_stop ;;
    postgres:start)   pg_start || die "postgres did not start" ;;
    rabbitmq:stop)    rmq_cluster_stop; rmq_stop ;;   # a cluster: every node (rabbitmq-N stops one)
    rabbitmq:start)   { rmq_launch && rmq_wait && rmq_cluster_start; } || die "rabbitmq did not start" ;;
    redis:status)     redis_ping && echo up || { echo down; return 3; } ;;
    postgres:status)  [ -n "$(pg_pid)" ] && pg_ready && echo up || { echo down; return 3; } ;;
    rabbitmq:status)  port_open "$AMQP_PORT" && [ -n "$(rmq_pids)" ] && echo up || { echo down; return 3; } ;;
    rabbitmq-[0-9]*:*) rmq_cluster_ctl "${part#rabbitmq-}" "$action" ;;
    *) die "usage: $(basename "$SELF") ctl RUN_DIR redis|postgres|rabbitmq stop|start|status (redis also kill: kill -9, the dump stays)" ;;
  esac
  [ "$action" = status ] || log "ctl $part $action done in $(elapsed "$t0")"
}

cmd_status() {
  set_run_dir "${1:-}"
  require_state
  local rc=0 s
  s=down; [ -n "$(pg_pid)" ] && pg_ready && s=up;              echo "postgres 127.0.0.1:$PG_PORT $s"; [ $s = up ] || rc=3
  s=down; redis_ping && s=up;                                  echo "redis 127.0.0.1:$REDIS_PORT $s"; [ $s = up ] || rc=3
  s=down; port_open "$AMQP_PORT" && [ -n "$(rmq_pids)" ] && s=up; echo "rabbitmq 127.0.0.1:$AMQP_PORT $RABBIT_NODE $s"; [ $s = up ] || rc=3
  rmq_cluster_status || rc=3
  pg_standby_status_line || rc=3
  return $rc
}

cmd_env() {
  set_run_dir "${1:-}"
  [ -f "$ENV_FILE" ] || die "no $ENV_FILE (servers not started or already stopped)"
  cat "$ENV_FILE"
}

main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case "$cmd" in rabbitmqctl|__rmqctl) ;; *) unset KVMESH_RMQ_INDEX ;; esac   # a cluster node, for these two only
  case "$cmd" in
    install)     cmd_install ;;
    start)       cmd_start "$@" ;;
    prepare)     cmd_prepare "$@" ;;
    run)         cmd_run "$@" ;;
    stop)        cmd_stop "$@" ;;
    ctl)         cmd_ctl "$@" ;;
    env)         cmd_env "$@" ;;
    status)      cmd_status "$@" ;;
    cluster-grow) [ $# -ge 1 ] || usage; set_run_dir "$1"; require_state; rmq_cluster_grow ;;
    rabbitmqctl) [ $# -ge 1 ] || usage; set_run_dir "$1"; shift; require_state; rmqctl "$@" ;;
    __rmqctl)    set_run_dir "$1"; shift; require_state; rmqctl "$@" ;;            # internal (no lock)
    pg-promote)  cmd_pg_promote "$@" ;;
    pg-sync-state) cmd_pg_sync_state "$@" ;;
    -h|--help|help|"") usage ;;
    *) echo "[servers] unknown command: $cmd" >&2; usage ;;
  esac
}

main "$@"; exit $?   # single line: bash never reads past it, so replacing this file is safe for running copies
