#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/kvmesh offline (./test.sh runs it):
#   1. helm lint --strict (values against values.schema.json, templates render);
#   2. helm template with the default values and with each deploy/helm/kvmesh/ci/*-values.yaml;
#   3. every rendered document validated: built-in kinds against the Kubernetes JSON schemas that the
#      kubernetes-validate wheel ships (strict: unknown fields are errors), the operators' kinds (RabbitmqCluster,
#      CloudNativePG Cluster, redis-operator Redis) against their published CRD schemas committed under
#      deploy/helm/kvmesh/crd-schemas; a kind with no schema fails the check;
#   4. the nginx and Envoy config templates rendered by scripts/render-config.sh with the environment the chart gives
#      those containers (plus the envoy image's own ENV from docker/Dockerfile): every ${KVMESH_*} must be set.
# Installs what is missing: helm with `go install` into $(go env GOPATH)/bin, kubernetes-validate into a venv under
# .run/helm-venv. Every step is bounded in time; exits non-zero on any failure.
#
#   scripts/helm-check.sh            KUBE_VERSION=1.31.0 (default) picks the schema set
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KV_VERSION=1.37.0
KUBE_VERSION="${KUBE_VERSION:-1.31.0}"
CHART=deploy/helm/kvmesh
VENV=.run/helm-venv
OUT=.run/helm-check

step() { echo "[helm-check] $*"; }
fail() { echo "[helm-check] FAILED: $*" >&2; exit 1; }

GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
HELM="$(command -v helm 2>/dev/null || echo "$GOBIN_DIR/helm")"
if [ ! -x "$HELM" ]; then
  step "installing helm $HELM_VERSION (go install, about 2 minutes)"
  timeout 900 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || fail "go install helm"
  HELM="$GOBIN_DIR/helm"
fi
step "helm: $("$HELM" version --short 2>/dev/null || echo "$HELM")"

if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  step "installing kubernetes-validate $KV_VERSION into $VENV"
  mkdir -p .run
  timeout 300 python3 -m venv "$VENV" || fail "python3 -m venv"
  timeout 600 "$VENV/bin/pip" install -q "kubernetes-validate==$KV_VERSION" || fail "pip install kubernetes-validate"
fi
PY="$VENV/bin/python"

rm -rf "$OUT"; mkdir -p "$OUT"
# helm says on stderr that it follows the chart's files/ links to nginx/ and scripts/ (one copy of each template):
# expected, so those lines are filtered out; anything else on stderr is shown.
quiet_links() { grep -v 'found symbolic link in path' || true; }

step "helm lint --strict (default values, then each ci/ values set)"
sets=(default)
for f in "$CHART"/ci/*-values.yaml; do sets+=("$(basename "$f" -values.yaml)"); done
for s in "${sets[@]}"; do
  args=(); [ "$s" = default ] || args=(-f "$CHART/ci/$s-values.yaml")
  if ! timeout 120 "$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" "${args[@]}" >"$OUT/lint-$s.log" 2>&1; then
    quiet_links <"$OUT/lint-$s.log"; fail "helm lint --strict ($s values)"
  fi
  grep -E '^[0-9]+ chart\(s\) linted' "$OUT/lint-$s.log" | sed "s/^/  $s: /"
done

step "helm template (Kubernetes $KUBE_VERSION)"
for s in "${sets[@]}"; do
  args=(); [ "$s" = default ] || args=(-f "$CHART/ci/$s-values.yaml")
  if ! timeout 120 "$HELM" template kvmesh "$CHART" --namespace kvmesh --kube-version "$KUBE_VERSION" "${args[@]}" \
      >"$OUT/$s.yaml" 2>"$OUT/$s.err"; then
    quiet_links <"$OUT/$s.err"; fail "helm template ($s values)"
  fi
  quiet_links <"$OUT/$s.err"
  echo "  $s: $(grep -c '^kind:' "$OUT/$s.yaml") documents -> $OUT/$s.yaml"
done

# NOTES.txt is rendered only by install/upgrade (which need a cluster): render it here from a copy of the chart in
# which it is a named template, so a broken NOTES.txt fails this check too.
notes_chart="$OUT/notes-chart"
cp -rL "$CHART" "$notes_chart"
{ echo '{{- define "kvmesh.notesText" -}}'; cat "$CHART/templates/NOTES.txt"; echo '{{- end -}}'; } >"$notes_chart/templates/_notes.tpl"
rm "$notes_chart/templates/NOTES.txt"
echo 'notes: {{ include "kvmesh.notesText" . | toJson }}' >"$notes_chart/templates/notes.yaml"
for s in "${sets[@]}"; do
  args=(); [ "$s" = default ] || args=(-f "$CHART/ci/$s-values.yaml")
  timeout 120 "$HELM" template kvmesh "$notes_chart" --namespace kvmesh --kube-version "$KUBE_VERSION" "${args[@]}" \
    --show-only templates/notes.yaml >"$OUT/notes-$s.yaml" 2>"$OUT/notes-$s.err" \
    || { cat "$OUT/notes-$s.err"; fail "NOTES.txt does not render ($s values)"; }
done
echo "  NOTES.txt renders with each values set"

step "validating every rendered document (built-in kinds: Kubernetes $KUBE_VERSION strict schemas; custom resources: the operators' CRD schemas in $CHART/crd-schemas)"
files=(); for s in "${sets[@]}"; do files+=("$OUT/$s.yaml"); done
timeout 300 "$PY" scripts/helm-validate.py --kube-version "$KUBE_VERSION" --crd-schemas "$CHART/crd-schemas" "${files[@]}" \
  >"$OUT/validate.log" 2>&1 || { cat "$OUT/validate.log"; fail "schema validation"; }
grep -v '^  ok ' "$OUT/validate.log" || true

step "rendering the nginx and Envoy templates with the chart's environment (scripts/render-config.sh)"
# the envoy image's own ENV (docker/Dockerfile, stage envoy): the defaults the chart does not repeat
envoy_image_env="$("$PY" - <<'EOF'
import re, shlex
text = open("docker/Dockerfile").read().replace("\\\n", " ")
stage = re.split(r"(?m)^FROM ", text)
envoy = next(s for s in stage if re.match(r"\S+ AS envoy\b", s))
for line in envoy.splitlines():
    if line.startswith("ENV "):
        for kv in shlex.split(line[4:]):
            print(kv)
EOF
)"
for s in "${sets[@]}"; do
  for c in nginx envoy; do
    dep="$(grep -A3 '^kind: Deployment' "$OUT/$s.yaml" | grep -o "name: .*-$c\$" | head -1 | sed "s/^name: //" || true)"
    [ -n "$dep" ] || { [ "$c" = nginx ] && continue; fail "no envoy Deployment in $s"; }
    tmpl=nginx/nginx.conf; [ "$c" = envoy ] && tmpl=envoy/envoy.yaml
    envs="$("$PY" scripts/helm-validate.py --env-of "$dep" "$OUT/$s.yaml")"
    [ "$c" = envoy ] && envs="$envoy_image_env"$'\n'"$envs"
    mapfile -t env_args <<<"$envs"
    env -i PATH="$PATH" "${env_args[@]}" sh scripts/render-config.sh "$tmpl" "$OUT/$s-$c.conf" \
      || fail "$tmpl does not render with the environment of Deployment $dep ($s values)"
    if grep -q '\${KVMESH_[A-Z0-9_]*}' "$OUT/$s-$c.conf"; then fail "placeholders left in $OUT/$s-$c.conf"; fi
    echo "  $s: $tmpl renders with $dep's environment"
  done
done
grep -q 'address: "kvmesh-kv-service.kvmesh.svc.cluster.local", port_value: 9090' "$OUT/default-envoy.conf" \
  || fail "Envoy's upstream is not the kv-service headless Service"

summary="$(tail -n1 "$OUT/validate.log")"
step "passed: helm lint --strict and helm template for ${#sets[@]} values sets (${sets[*]}); $summary"
