#!/usr/bin/env bash
# Prints the home directory of a JDK whose feature version is >= MIN (default 21; first argument or
# KVMESH_MIN_JAVA overrides). Checks $JAVA_HOME first, then /usr/lib/jvm/* (highest version wins), then the
# javac on PATH. Exits 1 with a message on stderr if none qualifies.
#   JAVA_HOME="$(scripts/find-java.sh)" || exit 1
set -euo pipefail

MIN="${1:-${KVMESH_MIN_JAVA:-21}}"
[[ "$MIN" =~ ^[0-9]+$ ]] || { echo "find-java: invalid minimum version '$MIN'" >&2; exit 2; }

# Feature version of the JDK in $1 (empty if it is not a JDK with java + javac).
jdk_version() {
  local home="$1" v=""
  [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || return 0
  if [ -f "$home/release" ]; then
    v="$(sed -n 's/^JAVA_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$home/release" | head -n1)"
  fi
  if [ -z "$v" ]; then
    v="$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  fi
  v="${v#1.}"          # 1.8.0_392 -> 8.0_392
  v="${v%%[^0-9]*}"    # 21.0.2 -> 21, 25-ea -> 25
  printf '%s' "$v"
}

best="" best_v=0
consider() {
  local home v
  home="$(readlink -f "$1" 2>/dev/null)" || return 0
  [ -d "$home" ] || return 0
  v="$(jdk_version "$home")"
  [ -n "$v" ] && [ "$v" -ge "$MIN" ] && [ "$v" -gt "$best_v" ] && { best="$home"; best_v="$v"; }
  return 0
}

if [ -n "${JAVA_HOME:-}" ]; then
  consider "$JAVA_HOME"
  if [ -n "$best" ]; then echo "$best"; exit 0; fi
  echo "find-java: JAVA_HOME=$JAVA_HOME is not a JDK >= $MIN; looking elsewhere" >&2
fi

for d in /usr/lib/jvm/*/; do
  [ -d "$d" ] && consider "${d%/}"
done
if [ -z "$best" ] && command -v javac >/dev/null 2>&1; then
  consider "$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
fi

if [ -z "$best" ]; then
  echo "find-java: no JDK >= $MIN found (checked \$JAVA_HOME, /usr/lib/jvm/*, javac on PATH)." >&2
  echo "find-java: install one, e.g. 'apt-get install openjdk-21-jdk-headless' or a Temurin JDK, or set JAVA_HOME." >&2
  exit 1
fi
echo "$best"
