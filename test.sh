#!/usr/bin/env bash
# kvmesh's one test command: installs what is missing (Debian packages for PostgreSQL,
# Redis, RabbitMQ; Maven if absent), starts throwaway servers on free loopback ports with
# data under a temporary run folder, runs every test (unit and integration against the
# real servers), then stops the servers and removes the folder, pass or fail.
#
#   ./test.sh                 the whole suite
#   ./test.sh -pl kv-it -am   extra arguments go to Maven
set -euo pipefail
cd "$(dirname "$0")"

step() { echo "[test] $*"; }

step "installing what is missing"
scripts/servers.sh install
if ! command -v mvn >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven
fi
JAVA_HOME="$(scripts/find-java.sh)"
export JAVA_HOME
step "JDK: $JAVA_HOME"

RUN_DIR="$(mktemp -d /tmp/kvmesh-test.XXXXXX)"
cleanup() {
  step "stopping throwaway servers"
  scripts/servers.sh stop "$RUN_DIR" || true
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

step "starting throwaway PostgreSQL, Redis and RabbitMQ under $RUN_DIR"
scripts/servers.sh start "$RUN_DIR"
# shellcheck disable=SC1091
source "$RUN_DIR/servers.env"

step "running the suite"
mvn -B -ntp install "$@"
