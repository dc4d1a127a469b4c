#!/usr/bin/env bash
# Throwaway PostgreSQL, Redis and RabbitMQ servers for kvmesh (tests and native mode): the commands are in Python,
# scripts/kvstack/servers (`scripts/servers.sh help` prints them), their config files in
# scripts/kvstack/templates/servers.
#
#   scripts/servers.sh install | start RUN_DIR | prepare RUN_DIR | run RUN_DIR PART | stop RUN_DIR
#   scripts/servers.sh ctl RUN_DIR PART ACTION | env RUN_DIR | status RUN_DIR | cluster-grow RUN_DIR
#   scripts/servers.sh rabbitmqctl RUN_DIR ARGS.. | pg-promote RUN_DIR | pg-sync-state RUN_DIR
#
# Progress and errors go to stderr; stdout is used only by env, status, rabbitmqctl and pg-sync-state.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
kvstack_exec kvstack.servers "$@"
