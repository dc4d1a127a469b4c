# Shell helpers (sourced, never run): kvstack_exec, the hand-over of start.sh and scripts/servers.sh to the stack
# manager (scripts/kvstack), and kill_leftovers for the test scripts.
# shellcheck shell=bash

# kill_leftovers DIR TAG: ends (SIGKILL) every process still working in, or naming, the private folder DIR after its
# stack was stopped (a fault can orphan processes, e.g. the workers of a killed nginx master); says so on stderr.
kill_leftovers() {
  local dir="$1" tag="$2" p left=()
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [ "$p" = $$ ] && continue
    if [[ "$(readlink "/proc/$p/cwd" 2>/dev/null)" == "$dir"* ]] ||
       grep -qF -- "$dir" <<<"$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"; then
      left+=("$p")
    fi
  done
  if [ ${#left[@]} -gt 0 ]; then
    echo "[$tag] processes of $dir still running after stop: ${left[*]}; killing them" >&2
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
}

# kvstack_exec MODULE ARGS...: becomes `python3 -m MODULE ARGS` (the stack manager, scripts/kvstack) with a Python that
# has Jinja2: python3 itself if it has it, else a virtualenv made once from PyPI (KVMESH_STACK_VENV, ./.run/stack-venv).
kvstack_exec() {
  local scripts venv py=python3
  scripts="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
  venv="${KVMESH_STACK_VENV:-$(dirname "$scripts")/.run/stack-venv}"
  if ! command -v python3 >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "[kvmesh] ERROR: python3 is missing; installing it needs root" >&2; exit 1; }
    apt-get -qq update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv >/dev/null || { echo "[kvmesh] ERROR: apt-get install python3 failed" >&2; exit 1; }
  fi
  if ! python3 -c 'import jinja2' 2>/dev/null; then
    py="$venv/bin/python"
    if ! "$py" -c 'import jinja2' 2>/dev/null; then
      echo "[kvmesh] installing Jinja2 for the stack manager into $venv (PyPI)" >&2
      python3 -m venv "$venv" 2>/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null &&
        python3 -m venv "$venv"; } || { echo "[kvmesh] ERROR: could not make $venv" >&2; exit 1; }
      "$venv/bin/pip" install -q --disable-pip-version-check jinja2 >&2 || { echo "[kvmesh] ERROR: pip install jinja2 failed" >&2; exit 1; }
    fi
  fi
  PYTHONPATH="$scripts${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m "$@"
}
