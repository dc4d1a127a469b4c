#!/usr/bin/env bash
# ghz-bench: measures kvmesh side by side with its ceilings (nginx, Envoy, Redis, RabbitMQ, PostgreSQL alone)
# and with a single-node etcd, all on this machine, in one run.
#
#   ghz-bench/run.sh quick     smoke test, at most 5 minutes: 1 short run per point; exits non-zero if any
#                              scenario produced no number (it never judges speed)
#   ghz-bench/run.sh full      per point: 5 s warm-up runs until three in a row agree within 10% (at most 60 s),
#                              then 3 measured runs of 10 s; about 22-30 minutes
#   ghz-bench/run.sh levers    the levers table: for each configuration in bench.py LEVERS (group commit off, gRPC
#                              handlers on transport threads, SerialGC, ParallelGC, Envoy access log on every
#                              request, each alone against the defaults, and the defaults first and last) a fresh
#                              stack, REST GET/PUT and gRPC Get/Put direct as in full mode, the stack stopped;
#                              about 40-50 minutes. GHZ_BENCH_LEVERS="baseline,SerialGC" runs only those.
#                              GHZ_BENCH_LEVERS="baseline,2 partitions" GHZ_BENCH_LEVERS_AS=writes (with
#                              GHZ_BENCH_ONLY="REST PUT,gRPC Put direct") saves a named selection as
#                              results/latest-levers-writes.json, a section of its own in the report.
#   ghz-bench/run.sh levers-quick   its smoke test (1 short run per point; the result is not written as latest)
#   ghz-bench/run.sh scale     a large store (issue 18; not in ./test.sh): REST GET, PUT and List page 50 on 1,000 keys,
#                              `kvctl load` of GHZ_SCALE_KEYS (1,000,000) keys of 256 bytes, the same scenarios on them
#                              (GETs of the first 1,000 and GETs uniform over all), then REST PUT at its maximum for
#                              GHZ_SCALE_OPLOG_S (600) seconds with kv_oplog's rows sampled, the stack running with an
#                              operation-log retention of GHZ_SCALE_RETENTION_S (120) seconds; table, index and Redis
#                              sizes and the cache hit rate after each phase; about 35 minutes
#   ghz-bench/run.sh scale-quick   its smoke test: 20,000 keys, 30 s of sustained PUT, retention 10 s
#   ghz-bench/run.sh report    regenerate docs/benchmarks.md and docs/img/*.png from results/latest-*.json
#
# It installs missing tools by package name (ghz and vegeta with `go install`, wrk / etcd / pgbench /
# redis-benchmark from Debian, RabbitMQ PerfTest from Maven Central), starts the kvmesh stack natively in its own
# temporary run folder on free loopback ports (never the defaults), plus a ceiling nginx, a ceiling Envoy and etcd,
# runs every scenario bounded in time, writes results/<timestamp>-<mode>.json and results/latest-<mode>.json,
# regenerates the report, and stops everything it started (trap), pass or fail.
#
# Environment: GHZ_BENCH_KEEP=1 keeps the run folder (logs); GHZ_BENCH_ONLY=name,name runs only those scenarios
# (for development: the result is then not written as latest-*.json); KVMESH_BENCH_AUTH=on runs the stack with API
# tokens on, every kvmesh request carrying its admin token (./test.sh's quick run does; the "auth on" lever measures it).
set -euo pipefail
BENCH="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)"
ROOT="$(cd "$BENCH/.." && pwd -P)"
export PATH="$HOME/go/bin:/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MODE="${1:-quick}"
case "$MODE" in quick|full|levers|levers-quick|scale|scale-quick|report) ;;
  *) echo "usage: ghz-bench/run.sh quick|full|levers|levers-quick|scale|scale-quick|report" >&2; exit 2 ;; esac
LEVERS=0
case "$MODE" in levers*) LEVERS=1 ;; esac
SCALE=0
case "$MODE" in scale*) SCALE=1 ;; esac
if [ "$MODE" = scale-quick ]; then
  export GHZ_SCALE_KEYS="${GHZ_SCALE_KEYS:-20000}" GHZ_SCALE_OPLOG_S="${GHZ_SCALE_OPLOG_S:-30}" GHZ_SCALE_RETENTION_S="${GHZ_SCALE_RETENTION_S:-10}"
fi

T0=$(date +%s)
step() { echo "[ghz-bench +$(( $(date +%s) - T0 ))s] $*"; }
die() { echo "[ghz-bench] ERROR: $*" >&2; exit 1; }

VENV="${KVMESH_ENVOY_VENV:-$ROOT/.run/venv}"   # holds envoy (start.sh) and matplotlib (report)
export KVMESH_ENVOY_VENV="$VENV"

report() {
  local py=python3
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    step "installing matplotlib (for the plots) into $VENV"
    "$VENV/bin/pip" install -q matplotlib >/dev/null 2>&1 || echo "[ghz-bench] matplotlib did not install; the report has no plots" >&2
  fi
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null && py="$VENV/bin/python"
  "$py" "$BENCH/report.py" --results "$BENCH/results" --out "$ROOT/docs/benchmarks.md" --img "$ROOT/docs/img"
}
if [ "$MODE" = report ]; then report; exit 0; fi

# ---------------------------------------------------------------- tools

apt_install() {
  step "installing $* (apt)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

ensure_tools() {
  local pkgs=()
  command -v wrk >/dev/null || pkgs+=(wrk)
  command -v etcd >/dev/null || pkgs+=(etcd-server)
  command -v etcdctl >/dev/null || pkgs+=(etcd-client)
  command -v redis-benchmark >/dev/null || pkgs+=(redis-tools)
  command -v pgbench >/dev/null || pkgs+=(postgresql-contrib)
  command -v nginx >/dev/null || pkgs+=(nginx)
  command -v go >/dev/null || pkgs+=(golang-go)
  [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
  if ! command -v ghz >/dev/null; then
    step "installing ghz (go install github.com/bojand/ghz/cmd/ghz@latest)"
    go install github.com/bojand/ghz/cmd/ghz@latest || die "go install ghz failed"
  fi
  if ! command -v vegeta >/dev/null; then
    # the module path without /v12 is refused by the Go proxy here; the /v12 path is served
    step "installing vegeta (go install github.com/tsenart/vegeta/v12@latest)"
    go install github.com/tsenart/vegeta/v12@latest || die "go install vegeta failed"
  fi
  if ! ls "$BENCH/perftest/target/lib/perf-test-"*.jar >/dev/null 2>&1; then
    step "fetching RabbitMQ PerfTest from Maven Central (mvn dependency:copy-dependencies)"
    (cd "$BENCH/perftest" && mvn -B -q -ntp dependency:copy-dependencies -DoutputDirectory=target/lib) ||
      die "could not fetch com.rabbitmq:perf-test"
  fi
  LAGPROBE="$BENCH/.bin/lagprobe"
  if [ ! -x "$LAGPROBE" ] || [ "$BENCH/lagprobe/main.go" -nt "$LAGPROBE" ]; then
    step "building lagprobe (Go, standard library only)"
    mkdir -p "$BENCH/.bin"
    (cd "$BENCH/lagprobe" && GOFLAGS=-mod=mod go build -o "$LAGPROBE" .) || die "go build lagprobe failed"
  fi
}

# ---------------------------------------------------------------- ports, run folder, cleanup

free_ports() {  # below the ephemeral range, checked free (scripts/free-ports)
  "$ROOT/scripts/free-ports" "$1"
}

RUN_DIR=""
STACK_DIR=""   # the running stack's run folder: RUN_DIR, or RUN_DIR/<n> per lever configuration
STARTED_STACK=0
CEIL_NGINX_PID="" CEIL_ENVOY_PID="" ETCD_PID="" EC_NGINX_PID="" EC_ENVOY_PID="" EC_BACKEND_PID=""
stop_pid() {  # stop_pid PID SIGNAL: a process this script started, by its id
  local p="$1" sig="${2:-TERM}" i
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill "-$sig" "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
stop_stack() {
  if [ "$STARTED_STACK" = 1 ]; then
    KVMESH_MODE=native KVMESH_RUN_DIR="$STACK_DIR" "$ROOT/start.sh" stop >"$STACK_DIR/stop.log" 2>&1 ||
      echo "[ghz-bench] start.sh stop reported a problem (see $STACK_DIR/stop.log)" >&2
    STARTED_STACK=0
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  step "stopping everything this run started"
  stop_pid "$ETCD_PID" TERM
  stop_pid "$CEIL_NGINX_PID" QUIT
  stop_pid "$CEIL_ENVOY_PID" TERM
  stop_pid "$EC_NGINX_PID" QUIT
  stop_pid "$EC_ENVOY_PID" TERM
  stop_pid "$EC_BACKEND_PID" TERM
  stop_stack
  if [ -n "$RUN_DIR" ]; then
    if [ "${GHZ_BENCH_KEEP:-0}" = 1 ] || [ $rc != 0 ]; then step "run folder kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
  fi
  step "done in $(( $(date +%s) - T0 ))s (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_tools
RUN_DIR="$(mktemp -d /tmp/kvbench.XXXXXX)"
chmod 755 "$RUN_DIR"
# every port of the run in one pick, so no part can take a port meant for another
pick_ports() {
  read -r HTTP_PORT ENVOY_PORT ADMIN_PORT R1 R2 CN_PORT CE_PORT CE_ADMIN ETCD_PORT ETCD_PEER \
    PG_PORT REDIS_PORT AMQP_PORT DIST_PORT C1 C2 EC_HTTP EC_ENVOY EC_ADMIN EC_BACKEND < <(free_ports 20)
}
pick_ports

# ---------------------------------------------------------------- etcd (own data dir, own ports)

start_etcd() {
  mkdir -p "$RUN_DIR/etcd"
  etcd --name bench --data-dir "$RUN_DIR/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER" --log-level warn \
    >"$RUN_DIR/etcd/etcd.log" 2>&1 </dev/null &
  ETCD_PID=$!
  local i
  for i in $(seq 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q true && return 0
    sleep 0.2
  done
  tail -20 "$RUN_DIR/etcd/etcd.log" >&2; die "etcd did not start"
}

# ---------------------------------------------------------------- ceilings: nginx `return 200`, Envoy direct_response

start_ceiling_nginx() {
  local d="$RUN_DIR/ceil-nginx"
  mkdir -p "$d/logs" "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
# ceiling: nginx alone, same worker settings as kvmesh's edge nginx
worker_processes auto;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp/cb; proxy_temp_path $d/tmp/p; fastcgi_temp_path $d/tmp/f;
  uwsgi_temp_path $d/tmp/u; scgi_temp_path $d/tmp/s;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$CN_PORT reuseport backlog=4096;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
EOF
  nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' </dev/null >"$d/logs/stdout.log" 2>&1 &
  CEIL_NGINX_PID=$!
}

start_ceiling_envoy() {
  local d="$RUN_DIR/ceil-envoy"
  mkdir -p "$d"
  cat >"$d/envoy.yaml" <<EOF
# ceiling: Envoy alone answering every request itself (direct_response), same concurrency as kvmesh's edge
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $CE_ADMIN } }
static_resources:
  listeners:
  - name: ceiling
    address: { socket_address: { address: 127.0.0.1, port_value: $CE_PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ceiling
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: '{"status":"ok"}' } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
EOF
  "$VENV/bin/envoy" -c "$d/envoy.yaml" --concurrency 2 --base-id-path "$d/base-id" --use-dynamic-base-id \
    --log-level warn </dev/null >"$d/envoy.log" 2>&1 &
  CEIL_ENVOY_PID=$!
}

# ---------------------------------------------------------------- the edge's ceiling: kvmesh's own nginx and Envoy in
# front of a KeyValue server that does no work (kv-service's ConstantKeyValueMain: Get answers a constant entry)

start_edge_ceiling() {
  local d="$RUN_DIR/edge-ceiling" jar descriptor java_opts
  mkdir -p "$d/nginx/logs" "$d/nginx/tmp" "$d/logs"
  # the very release the stack runs: its jar, its API descriptor, its JVM options
  local line
  line=$(grep -m1 'kv-service\.jar' "$STACK_DIR/conf/supervisord.conf")
  jar=$(grep -o '[^ "]*/kv-service\.jar' <<<"$line" | head -1)
  # (not the AOT wrapper's options, which name kv-service's cache and class path, nor the wrapper script's own words)
  java_opts=$(grep -o '"-X[^"]*"' <<<"$line" | grep -v -e 'AOT' -e '\$' | tr -d '"' | paste -sd' ')
  descriptor=$(sed -n 's/.*proto_descriptor: "\([^"]*\)".*/\1/p' "$STACK_DIR/conf/envoy.yaml" | head -1)
  [ -f "$jar" ] && [ -f "$descriptor" ] || die "edge ceiling: no kv-service.jar or API descriptor in the stack's configuration"
  # shellcheck disable=SC2086
  "$("$ROOT/scripts/find-java.sh")/bin/java" $java_opts -cp "$jar:$(dirname "$jar")/lib/*" \
    io.kvmesh.service.ConstantKeyValueMain "$EC_BACKEND" </dev/null >"$d/logs/backend.log" 2>&1 &
  EC_BACKEND_PID=$!
  KVMESH_ENVOY_BIND=127.0.0.1 KVMESH_ENVOY_PORT="$EC_ENVOY" KVMESH_ENVOY_ADMIN_PORT="$EC_ADMIN" \
    KVMESH_DESCRIPTOR="$descriptor" KVMESH_ENVOY_DNS=STATIC KVMESH_ENVOY_UPSTREAMS="127.0.0.1:$EC_BACKEND" \
    KVMESH_ENVOY_ACCESS_LOG="$d/logs/envoy-access.log" KVMESH_ENVOY_HC_LOG="$d/logs/envoy-health.log" \
    "$ROOT/scripts/render-config.sh" "$ROOT/envoy/envoy.yaml" "$d/envoy.yaml"
  KVMESH_HTTP_BIND=127.0.0.1 KVMESH_HTTP_PORT="$EC_HTTP" KVMESH_ENVOY_UPSTREAM="127.0.0.1:$EC_ENVOY" \
    KVMESH_NGINX_DIR="$d/nginx" KVMESH_HTML_DIR="$ROOT/nginx/html" KVMESH_NGINX_WORKERS=auto \
    KVMESH_PROMETHEUS_UPSTREAM=127.0.0.1:9 "$ROOT/scripts/render-config.sh" "$ROOT/nginx/nginx.conf" "$d/nginx.conf"
  "$VENV/bin/envoy" -c "$d/envoy.yaml" --concurrency 2 --disable-hot-restart --log-level warn \
    </dev/null >"$d/logs/envoy.log" 2>&1 &
  EC_ENVOY_PID=$!
  nginx -p "$d/nginx" -c "$d/nginx.conf" -g 'daemon off;' </dev/null >"$d/logs/nginx.log" 2>&1 &
  EC_NGINX_PID=$!
}

wait_http() {  # wait_http NAME URL
  local i
  for i in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$2")" = 200 ] && return 0
    sleep 0.2
  done
  die "$1 did not answer on $2"
}

# ---------------------------------------------------------------- stack

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/$STAMP-$MODE.json"

# start_stack [NAME=VALUE...]: the kvmesh stack in STACK_DIR on the ports picked, with these extra environment variables
start_stack() {
  step "starting the kvmesh stack (nginx :$HTTP_PORT, envoy :$ENVOY_PORT, replicas :$R1 :$R2)${*:+ with $*}"
  mkdir -p "$STACK_DIR"
  chmod 755 "$STACK_DIR"
  STARTED_STACK=1
  env KVMESH_AUTH="${KVMESH_BENCH_AUTH:-off}" "$@" KVMESH_MODE=native KVMESH_RUN_DIR="$STACK_DIR" KVMESH_HTTP_PORT="$HTTP_PORT" KVMESH_ENVOY_PORT="$ENVOY_PORT" \
    KVMESH_ENVOY_ADMIN_PORT="$ADMIN_PORT" KVMESH_REPLICAS=2 KVMESH_CONSUMERS=2 KVMESH_REPLICA_PORTS="$R1,$R2" \
    KVMESH_CONSUMER_HTTP_PORTS="$C1,$C2" KVMESH_PG_PORT="$PG_PORT" KVMESH_REDIS_PORT="$REDIS_PORT" \
    KVMESH_AMQP_PORT="$AMQP_PORT" KVMESH_RABBIT_DIST_PORT="$DIST_PORT" KVMESH_REPLICA_BASE_PORT= \
    "$ROOT/start.sh" 2>&1 | sed -u 's/^/  /'
  [ "${PIPESTATUS[0]}" = 0 ] || die "the kvmesh stack did not start"
  if grep -qx 'KVMESH_AUTH=on' "$STACK_DIR/stack.env"; then
    # every kvmesh request of the scenarios carries the stack's admin token (bench.py, wrk, ghz, vegeta, lagprobe)
    KVMESH_BENCH_TOKEN="$(cat "$STACK_DIR/secrets/admin.token")"
    export KVMESH_BENCH_TOKEN
  else
    unset KVMESH_BENCH_TOKEN
  fi
}

write_bench_env() {  # write_bench_env FILE
  local PG_SOCK=""
  # shellcheck disable=SC1091
  . "$STACK_DIR/servers.state"
  cat >"$1" <<EOF
MODE=$MODE
ROOT=$ROOT
RUN_DIR=$STACK_DIR
HTTP_PORT=$HTTP_PORT
ENVOY_PORT=$ENVOY_PORT
ENVOY_ADMIN_PORT=$ADMIN_PORT
REPLICA1_PORT=$R1
REPLICA2_PORT=$R2
PG_PORT=$PG_PORT
PG_SOCK=$PG_SOCK
REDIS_PORT=$REDIS_PORT
AMQP_PORT=$AMQP_PORT
CREDENTIALS_FILE=$STACK_DIR/secrets/credentials.env
LAGPROBE=$LAGPROBE
PERFTEST_LIB=$BENCH/perftest/target/lib
JAVA_HOME=$("$ROOT/scripts/find-java.sh")
OPLOG_RETENTION_S=${GHZ_SCALE_RETENTION_S:-}
EOF
  if [ "$LEVERS" = 0 ] && [ "$SCALE" = 0 ]; then
    cat >>"$1" <<EOF
CEIL_NGINX_PORT=$CN_PORT
CEIL_NGINX_PID=$CEIL_NGINX_PID
CEIL_ENVOY_PORT=$CE_PORT
CEIL_ENVOY_PID=$CEIL_ENVOY_PID
EDGE_CEIL_PORT=$EC_HTTP
EDGE_CEIL_NGINX_PID=$EC_NGINX_PID
EDGE_CEIL_ENVOY_PID=$EC_ENVOY_PID
EDGE_CEIL_BACKEND_PID=$EC_BACKEND_PID
ETCD_PORT=$ETCD_PORT
ETCD_PID=$ETCD_PID
EOF
  fi
}

BUDGET=$(case "$MODE" in quick) echo 300 ;; full) echo 2100 ;; scale) echo 2700 ;; scale-quick) echo 600 ;; *) echo 0 ;; esac)   # levers: per configuration, below
budget_check() {
  local spent=$(( $(date +%s) - T0 ))
  [ "$spent" -le "$BUDGET" ] || echo "[ghz-bench] WARNING: $MODE mode took ${spent}s, over its ${BUDGET}s budget (first-time installs and jar builds count too)" >&2
}

step "mode $MODE; run folder $RUN_DIR"

# ---------------------------------------------------------------- levers: one fresh stack per configuration

if [ "$LEVERS" = 1 ]; then
  mapfile -t LEVER_NAMES < <(python3 "$BENCH/bench.py" --list-levers)
  [ ${#LEVER_NAMES[@]} -gt 0 ] || die "no lever configuration selected"
  BUDGET=$(( ${#LEVER_NAMES[@]} * $([ "$MODE" = levers ] && echo 480 || echo 150) ))
  PARTS=()
  FAILED=0
  for i in "${!LEVER_NAMES[@]}"; do
    name="${LEVER_NAMES[$i]}"
    step "lever $((i + 1))/${#LEVER_NAMES[@]}: $name"
    STACK_DIR="$RUN_DIR/$i"
    [ "$i" = 0 ] || pick_ports
    mapfile -d '' -t LEVER_ENV < <(python3 "$BENCH/bench.py" --lever-env "$name")
    start_stack "${LEVER_ENV[@]}"
    write_bench_env "$STACK_DIR/bench.env"
    part="$RUN_DIR/part-$i.json"
    python3 "$BENCH/bench.py" --env "$STACK_DIR/bench.env" --out "$part" --lever "$name" || FAILED=1
    [ -f "$part" ] && PARTS+=("$part")
    step "stopping the stack of lever '$name'"
    stop_stack
    [ "${GHZ_BENCH_KEEP:-0}" = 1 ] || rm -rf "$STACK_DIR"
  done
  [ ${#PARTS[@]} -gt 0 ] || die "no lever configuration produced a result"
  python3 "$BENCH/bench.py" --merge-levers "${PARTS[@]}" --out "$OUT" || FAILED=1
  if [ "$MODE" = levers ] && [ -z "${GHZ_BENCH_LEVERS:-}" ]; then
    cp -f "$OUT" "$BENCH/results/latest-levers.json"
    step "results: $OUT (and results/latest-levers.json)"
    report || echo "[ghz-bench] the report generator failed" >&2
  elif [ "$MODE" = levers ] && [ -n "${GHZ_BENCH_LEVERS_AS:-}" ]; then
    # a named selection of levers gets a section of its own in docs/benchmarks.md
    cp -f "$OUT" "$BENCH/results/latest-levers-$GHZ_BENCH_LEVERS_AS.json"
    step "results: $OUT (and results/latest-levers-$GHZ_BENCH_LEVERS_AS.json)"
    report || echo "[ghz-bench] the report generator failed" >&2
  else
    step "results (smoke test or a selection of levers, not latest): $OUT"
  fi
  budget_check
  exit "$FAILED"
fi

# ---------------------------------------------------------------- scale: one stack, a large store

if [ "$SCALE" = 1 ]; then
  export GHZ_SCALE_RETENTION_S="${GHZ_SCALE_RETENTION_S:-120}"
  STACK_DIR="$RUN_DIR"
  start_stack KVMESH_OPLOG_RETENTION_SECONDS="$GHZ_SCALE_RETENTION_S"
  write_bench_env "$RUN_DIR/bench.env"
  step "running the scale scenarios"
  FAILED=0
  python3 "$BENCH/bench.py" --env "$RUN_DIR/bench.env" --out "$OUT" --scale || FAILED=1
  if [ "$MODE" = scale ] && [ -f "$OUT" ]; then
    cp -f "$OUT" "$BENCH/results/latest-scale.json"
    step "results: $OUT (and results/latest-scale.json)"
    report || echo "[ghz-bench] the report generator failed" >&2
  else
    step "results (smoke test, not latest): $OUT"
  fi
  budget_check
  exit "$FAILED"
fi

# ---------------------------------------------------------------- quick / full

step "starting etcd (127.0.0.1:$ETCD_PORT)"
start_etcd
PERF_BG_PID=""
if [ "$MODE" = quick ]; then
  # `etcdctl check perf` always runs 60 s. In quick mode it runs while the kvmesh stack starts, so its figure
  # is not comparable (quick mode only checks that every scenario produces numbers); full mode runs it alone.
  step "quick mode: etcdctl check perf in the background while the stack starts"
  (ETCDCTL_API=3 timeout 120 etcdctl --endpoints "127.0.0.1:$ETCD_PORT" check perf --load s \
     >"$RUN_DIR/etcd-check-perf.txt" 2>&1 || true) &
  PERF_BG_PID=$!
fi

STACK_DIR="$RUN_DIR"
start_stack

step "starting the ceiling nginx (:$CN_PORT) and ceiling Envoy (:$CE_PORT)"
start_ceiling_nginx
start_ceiling_envoy
wait_http "ceiling nginx" "http://127.0.0.1:$CN_PORT/"
wait_http "ceiling envoy" "http://127.0.0.1:$CE_PORT/"
step "starting the edge ceiling: kvmesh's nginx (:$EC_HTTP) and Envoy (:$EC_ENVOY) in front of a do-nothing KeyValue (:$EC_BACKEND)"
start_edge_ceiling
wait_http "edge ceiling" "http://127.0.0.1:$EC_HTTP/kv?key=probe"
[ -z "$PERF_BG_PID" ] || { step "waiting for etcdctl check perf"; wait "$PERF_BG_PID" || true; }

write_bench_env "$RUN_DIR/bench.env"

step "running the scenarios"
python3 "$BENCH/bench.py" --env "$RUN_DIR/bench.env" --out "$OUT" ${GHZ_BENCH_ONLY:+--only "$GHZ_BENCH_ONLY"}
if [ -z "${GHZ_BENCH_ONLY:-}" ]; then
  cp -f "$OUT" "$BENCH/results/latest-$MODE.json"
  step "results: $OUT (and results/latest-$MODE.json)"
  report || echo "[ghz-bench] the report generator failed" >&2
else
  step "results (partial run, not latest): $OUT"
fi
budget_check
