#!/usr/bin/env bash
# Puts Swagger UI (the npm package swagger-ui-dist, pinned below) into nginx/html/swagger-ui/, from which the API
# reference page /docs (nginx/html/docs.html) renders /openapi.json. Nothing is fetched from a CDN at run time: the
# files are served by nginx like the rest of the page. start.sh runs this before it starts nginx (both modes); it does
# nothing when the pinned version is already in place. The folder is not in git (.gitignore).
#
#   scripts/docs-ui.sh          install or update nginx/html/swagger-ui/
#   SWAGGER_UI_VERSION=x.y.z    another version
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
VERSION="${SWAGGER_UI_VERSION:-5.35.0}"
DEST="$ROOT/nginx/html/swagger-ui"
FILES=(swagger-ui-bundle.js swagger-ui.css swagger-ui-bundle.js.LICENSE.txt LICENSE NOTICE)
say() { echo "[docs-ui] $*"; }

if [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ] && [ -s "$DEST/swagger-ui-bundle.js" ] && [ -s "$DEST/swagger-ui.css" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "[docs-ui] npm is needed (apt-get install npm) to fetch swagger-ui-dist" >&2; exit 1; }
  say "installing npm (apt)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
say "fetching swagger-ui-dist@$VERSION from the npm registry (npm pack: the package's files, no scripts run)"
WORK="$(mktemp -d /tmp/kvmesh-docs-ui.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent --no-fund --no-audit "swagger-ui-dist@$VERSION" >/dev/null)
tar -xzf "$WORK"/swagger-ui-dist-*.tgz -C "$WORK" "${FILES[@]/#/package/}"
rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
for f in "${FILES[@]}"; do cp "$WORK/package/$f" "$DEST.tmp/"; done
echo "$VERSION" >"$DEST.tmp/VERSION"
chmod -R a+rX "$DEST.tmp"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
say "nginx/html/swagger-ui/: swagger-ui-dist $VERSION ($(du -sh "$DEST" | cut -f1))"
