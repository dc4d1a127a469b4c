#!/usr/bin/env bash
# Fuzzes the public REST API with schemathesis (PyPI), from the OpenAPI description the stack serves: every route
# except the streamed Watch, positive and negative (schema-violating) data, schemathesis's default checks (server
# errors, status codes, content types, headers and bodies against the spec, negative data rejected, valid data
# accepted, ...). Installs schemathesis (pinned) into a venv on first use. scripts/e2e.sh runs it on its stack.
#
#   scripts/schemathesis.sh [BASE_URL]          default $KVMESH_E2E_HTTP, else http://127.0.0.1:8088
#   KVMESH_SCHEMATHESIS_EXAMPLES=N              examples per operation and phase (default 20)
#   KVMESH_SCHEMATHESIS_SEED=N                  seed (default: a fixed one, so a run can be repeated; "random" for a new one)
#   KVMESH_SCHEMATHESIS_VENV=DIR                the venv (default ./.run/schemathesis-venv)
#   KVMESH_E2E_TOKEN=TOKEN                      sent as a bearer token (a stack with auth on)
# Generated values that only the server's state can judge (request ids, page tokens) and bodies that proto3's JSON
# rules accept although the schema cannot say so are handled in scripts/schemathesis/kvmesh_hooks.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
BASE="${1:-${KVMESH_E2E_HTTP:-http://127.0.0.1:8088}}"; BASE="${BASE%/}"
VERSION=4.32.5
VENV="${KVMESH_SCHEMATHESIS_VENV:-$ROOT/.run/schemathesis-venv}"
EXAMPLES="${KVMESH_SCHEMATHESIS_EXAMPLES:-20}"
SEED="${KVMESH_SCHEMATHESIS_SEED:-11}"
say() { echo "[schemathesis] $*"; }

if [ "$("$VENV/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$VERSION" ]; then
  say "installing schemathesis $VERSION into $VENV (pip, PyPI)"
  command -v python3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv; }
  python3 -m venv "$VENV" 2>/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION"
fi
seed=(--seed "$SEED"); [ "$SEED" = random ] && seed=()
# a stack with auth on (scripts/e2e.sh's): every request carries its admin token
auth=(); [ -z "${KVMESH_E2E_TOKEN:-}" ] || auth=(--header "Authorization: Bearer $KVMESH_E2E_TOKEN")
say "st run $BASE/openapi.json: every route but /kv/watch, positive and negative data, $EXAMPLES examples per operation"
export KVMESH_OPENAPI_URL="$BASE/openapi.json" SCHEMATHESIS_HOOKS=kvmesh_hooks
export PYTHONPATH="$ROOT/scripts/schemathesis${PYTHONPATH:+:$PYTHONPATH}"
cd "$VENV"   # schemathesis keeps a cache (.schemathesis/) in its working folder: not in the clone
exec "$VENV/bin/st" run "$BASE/openapi.json" --url "$BASE" --exclude-path /kv/watch --mode all \
  --max-examples "$EXAMPLES" "${seed[@]}" "${auth[@]}" --generation-database :memory: --wait-for-schema 30 --no-color
