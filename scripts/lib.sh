# Shell helpers shared by start.sh and scripts/servers.sh (sourced, never run): one copy of each.
# shellcheck shell=bash

SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
case ":$PATH:" in *":$SYS_PATH:"*) ;; *) export PATH="${PATH:+$PATH:}$SYS_PATH" ;; esac

now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }

pid_alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

read_pid() { [ -s "$1" ] && head -n1 "$1" | tr -dc '0-9' || true; }   # read_pid FILE: the pid in its first line

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_gone() {  # wait_gone SECONDS PID... -> 0 when none is alive
  local secs="$1"; shift
  local end=$(( $(now_ms) + secs * 1000 )) p any
  while :; do
    any=0
    for p in "$@"; do pid_alive "$p" && any=1; done
    [ $any = 0 ] && return 0
    [ "$(now_ms)" -ge "$end" ] && return 1
    sleep 0.1
  done
}

# Closes every inherited fd above 2 in the current (sub)shell, so a daemon started from it keeps no caller's pipe
# or lock open.
close_extra_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd="${fd##*/}"
    [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}

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
