#!/bin/sh
# Renders a kvmesh config template (envoy/envoy.yaml, nginx/nginx.conf) for native mode and containers alike.
#
#   scripts/render-config.sh TEMPLATE OUT
#
# - every ${KVMESH_NAME} in TEMPLATE is replaced by the value of the environment variable KVMESH_NAME
#   (nginx's own $variables have no braces and are left alone); a placeholder whose variable is unset is an error;
# - a line holding only #@ENDPOINTS@ (after spaces) is replaced by one Envoy lb_endpoint per host:port in KVMESH_ENVOY_UPSTREAMS
#   (comma-separated, e.g. "127.0.0.1:9091,127.0.0.1:9092" or "kv-service:9090"), indented like the marker.
# POSIX sh + sed only, so the same script runs in the envoy and nginx images.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 TEMPLATE OUT" >&2; exit 2; }
tmpl="$1"; out="$2"; tmp="$out.tmp.$$"
[ -r "$tmpl" ] || { echo "render-config: cannot read $tmpl" >&2; exit 1; }

: >"$tmp"
while IFS= read -r line || [ -n "$line" ]; do
  trimmed="${line#"${line%%[! ]*}"}"
  case "$trimmed" in
    '#@ENDPOINTS@')
      indent="${line%%#*}"
      [ -n "${KVMESH_ENVOY_UPSTREAMS:-}" ] || { echo "render-config: KVMESH_ENVOY_UPSTREAMS is empty" >&2; rm -f "$tmp"; exit 1; }
      old_ifs="$IFS"; IFS=','
      for hp in $KVMESH_ENVOY_UPSTREAMS; do
        host="${hp%:*}"; port="${hp##*:}"
        printf '%s- endpoint:\n%s    address:\n%s      socket_address: { address: "%s", port_value: %s }\n' \
          "$indent" "$indent" "$indent" "$host" "$port" >>"$tmp"
      done
      IFS="$old_ifs" ;;
    *) printf '%s\n' "$line" >>"$tmp" ;;
  esac
done <"$tmpl"

# Substitute ${KVMESH_*} placeholders with values from the environment.
for name in $(grep -o '\${KVMESH_[A-Z0-9_]*}' "$tmp" | sort -u | sed 's/^\${\(.*\)}$/\1/'); do
  set_=""; eval "set_=\${$name+x}"
  [ "$set_" = x ] || { echo "render-config: $tmpl needs \$$name, which is not set" >&2; rm -f "$tmp"; exit 1; }
  val=""; eval "val=\$$name"
  esc=$(printf '%s' "$val" | sed 's/[\\&|]/\\&/g')
  sed -i "s|\${$name}|$esc|g" "$tmp"
done
mv -f "$tmp" "$out"
