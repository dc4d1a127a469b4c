#!/usr/bin/env bash
# Generates the OpenAPI (Swagger 2.0) description of the public REST API from proto/ with protoc and
# protoc-gen-openapiv2 (grpc-gateway), as pretty-printed JSON in nginx/html/openapi.json (served at /openapi.json,
# rendered at /docs).
#
#   scripts/openapi.sh            regenerate nginx/html/openapi.json
#   scripts/openapi.sh --check    regenerate into a temp file; exit 1 with a diff if the committed file differs
#
# Tools, installed when missing: protoc from Maven (com.google.protobuf:protoc:$PROTOC_VERSION:exe:linux-x86_64),
# protoc-gen-openapiv2 with `go install` (pinned $OPENAPIV2_VERSION). Imported protos come from the protobuf-java
# (google/protobuf) and proto-google-common-protos (google/api, google/rpc) jars in the local Maven repository.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$ROOT"
say() { echo "[openapi] $*" >&2; }

PROTOC_VERSION="$(sed -n 's:.*<protobuf.version>\(.*\)</protobuf.version>.*:\1:p' pom.xml)"
COMMON_PROTOS_VERSION="$(sed -n 's:.*<common-protos.version>\(.*\)</common-protos.version>.*:\1:p' pom.xml)"
OPENAPIV2_VERSION="${OPENAPIV2_VERSION:-v2.33.0}"
OUT="nginx/html/openapi.json"
M2="${MAVEN_REPO:-$HOME/.m2/repository}"
CHECK=0; [ "${1:-}" = --check ] && CHECK=1

mvn_get() {  # mvn_get GROUP:ARTIFACT:VERSION[:TYPE[:CLASSIFIER]] : into the local repository
  command -v mvn >/dev/null || { say "mvn is needed to fetch $1"; exit 1; }
  say "fetching $1 (mvn dependency:get)"
  mvn -B -q -ntp dependency:get -Dtransitive=false -Dartifact="$1" >&2
}

PROTOC="$M2/com/google/protobuf/protoc/$PROTOC_VERSION/protoc-$PROTOC_VERSION-linux-x86_64.exe"
[ -f "$PROTOC" ] || mvn_get "com.google.protobuf:protoc:$PROTOC_VERSION:exe:linux-x86_64"
chmod +x "$PROTOC"
PB_JAR="$M2/com/google/protobuf/protobuf-java/$PROTOC_VERSION/protobuf-java-$PROTOC_VERSION.jar"
[ -f "$PB_JAR" ] || mvn_get "com.google.protobuf:protobuf-java:$PROTOC_VERSION"
CP_JAR="$M2/com/google/api/grpc/proto-google-common-protos/$COMMON_PROTOS_VERSION/proto-google-common-protos-$COMMON_PROTOS_VERSION.jar"
[ -f "$CP_JAR" ] || mvn_get "com.google.api.grpc:proto-google-common-protos:$COMMON_PROTOS_VERSION"

GOBIN_DIR="$(go env GOBIN 2>/dev/null || true)"; [ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
PLUGIN="$GOBIN_DIR/protoc-gen-openapiv2"
if [ ! -x "$PLUGIN" ] || ! go version -m "$PLUGIN" 2>/dev/null | grep -q "grpc-gateway/v2[[:space:]]*$OPENAPIV2_VERSION"; then
  command -v go >/dev/null || { say "go is needed to install protoc-gen-openapiv2"; exit 1; }
  say "installing protoc-gen-openapiv2@$OPENAPIV2_VERSION (go install)"
  (cd /tmp && go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$OPENAPIV2_VERSION") >&2
fi

WORK="$(mktemp -d /tmp/kvmesh-openapi.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
python3 - "$WORK/include" "$PB_JAR" "$CP_JAR" <<'PY'
import sys, zipfile
dest = sys.argv[1]
for jar in sys.argv[2:]:
    with zipfile.ZipFile(jar) as z:
        z.extractall(dest, [n for n in z.namelist() if n.endswith(".proto")])
PY
# protoc refuses plugins that do not declare proto3 `optional` support, and protoc-gen-openapiv2 does not. In JSON an
# optional scalar looks exactly like a plain one, so the spec is generated from a copy of the protos without the
# keyword. The Go import path it asks for is only a name here (M option).
mkdir -p "$WORK/out" "$WORK/src"
cp -r proto/src/main/proto/. "$WORK/src/"
find "$WORK/src" -name '*.proto' -exec sed -i 's/^\([[:space:]]*\)optional[[:space:]]\+/\1/' {} +
"$PROTOC" -I "$WORK/src" -I "$WORK/include" --plugin=protoc-gen-openapiv2="$PLUGIN" \
  --openapiv2_out="$WORK/out" \
  --openapiv2_opt=output_format=json,json_names_for_fields=true,openapi_naming_strategy=simple \
  --openapiv2_opt=Mkvmesh/v1/kv.proto=kvmesh.io/api/kvmesh/v1 \
  kvmesh/v1/kv.proto 2> >(grep -v 'error_details.proto is unused' >&2)

# Title, version and description for the page; pretty-printed with sorted keys so diffs stay readable and stable.
python3 - "$WORK/out/kvmesh/v1/kv.swagger.json" "$WORK/openapi.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["info"] = {
    "title": "kvmesh KeyValue API",
    "version": "v1",
    "description": (
        "The public JSON REST API of kvmesh, generated from proto/kvmesh/v1/kv.proto (Envoy's grpc-json transcoder "
        "serves it behind nginx). Writes are queued through RabbitMQ and applied to PostgreSQL in order per key; "
        "mode=SYNC answers once applied. int64 fields (versions) are JSON strings. Errors are "
        "{\"code\": <gRPC code>, \"message\": ..., \"details\": [...]} with an HTTP 4xx/5xx status. "
        "Watch streams newline-delimited JSON, one event a line."),
}
# grpc-gateway wraps each streamed message as {"result": ...}; Envoy's transcoder (stream_newline_delimited) sends
# the bare message, one a line. Describe what the edge really sends.
for path in spec["paths"].values():
    for op in path.values():
        ok = op.get("responses", {}).get("200", {})
        title = ok.get("schema", {}).get("title", "")
        if title.startswith("Stream result of "):
            name = title[len("Stream result of "):]
            ok["schema"] = {"$ref": "#/definitions/" + name}
            ok["description"] = ("A stream of " + name + " objects, one JSON object a line (newline-delimited JSON, "
                                 "application/x-ndjson), sent as each change applies; the response (headers too) "
                                 "starts with the first event.")
            op["produces"] = ["application/x-ndjson"]
# The rules the edge and the service enforce, written into the spec so that clients and fuzzers (schemathesis in
# scripts/e2e.sh) know the valid inputs: keys and prefixes are text without control characters or Unicode
# noncharacters, at most 1024 bytes (1024 characters; the byte limit is the service's, a non-ASCII key reaches it
# sooner), not empty where required; values at most 1 MiB without NUL; page sizes not negative; int64 fields as
# decimal strings (proto3 JSON also takes JSON numbers); TTLs as proto3 JSON durations of up to 8 digits of seconds
# and 3 of fraction; operation ids printable, at most 200 characters. Fields proto3 JSON takes as null (= unset) are
# x-nullable. Bodies list their fields only (the transcoder ignores unknown ones). (The noncharacters of the planes
# above the first, also refused, are left out of the patterns: generators of query strings cannot take them.)
TEXT = "\\u0000-\\u001f\\u007f-\\u009f\\ufdd0-\\ufdef\\ufffe\\uffff"
KEY = {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^" + TEXT + "]+$"}
PREFIX = {"type": "string", "maxLength": 1024, "pattern": "^[^" + TEXT + "]*$"}
VALUE = {"type": "string", "maxLength": 1048576, "pattern": "^[^\\u0000]*$", "x-nullable": True}
INT64 = {"type": "string", "format": "int64", "pattern": "^(0|[1-9][0-9]{0,17})$", "x-nullable": True}
TTL = {"type": "string", "pattern": "^[0-9]{1,8}(\\.[0-9]{1,3})?s$", "x-nullable": True}
OPID = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^" + TEXT + "]+$"}
def constrain(target, rule, required=None):
    for k, v in rule.items():
        target[k] = v
    if required is not None:
        target["required"] = required
for path, item in spec["paths"].items():
    for method, op in item.items():
        for prm in op.get("parameters", []):
            name = prm["name"]
            if name == "key":
                constrain(prm, KEY, required=True)
            elif name == "prefix":
                constrain(prm, PREFIX)
            elif name == "pageSize":
                prm["minimum"] = 0
            elif name == "expectedVersion":
                constrain(prm, {k: v for k, v in INT64.items() if k != "x-nullable"})
            elif name == "operationId":
                constrain(prm, OPID)
            elif name == "startVersion":
                constrain(prm, {k: v for k, v in INT64.items() if k != "x-nullable"})
defs = spec["definitions"]
put = defs["PutRequest"]["properties"]
put["expectedVersion"].update(INT64)
put["ttl"].update(TTL)
put["value"].update(VALUE)
for f in ("requestId",):
    put[f]["x-nullable"] = True
kvi = defs["KeyValueInput"]["properties"]
kvi["value"].update(VALUE)
# The two route families take different PUT bodies: /api the flat {"key","value",...}, /kv {"data":{"key","value"},...}
# (either body works on either route, but key and data must agree when both are given).
options = {k: v for k, v in put.items() if k not in ("key", "value", "data")}
defs["KeyValueInput"]["required"] = ["key"]
defs["KeyValueInput"]["additionalProperties"] = False
kvi["key"].update(KEY)
defs["PutApiBody"] = {"type": "object", "description": "The body of PUT /api: the flat {\"key\",\"value\"} of the /api family, with the write's options.",
                      "properties": dict(key=dict(put["key"], **KEY), value=put["value"], **options), "required": ["key"], "additionalProperties": False}
defs["PutKvBody"] = {"type": "object", "description": "The body of PUT /kv: {\"data\":{\"key\",\"value\"}} as the /kv family sends it, with the write's options.",
                     "properties": dict(data=put["data"], **options), "required": ["data"], "additionalProperties": False}
for path, body in (("/api", "PutApiBody"), ("/kv", "PutKvBody")):
    for prm in spec["paths"][path]["put"]["parameters"]:
        if prm["in"] == "body":
            prm["schema"] = {"$ref": "#/definitions/" + body}
# POST /kv/batch: 1 to 1,000 puts, each documented in the flat form (the {"data":{...}} form is taken too)
defs["PutManyBody"] = {"type": "object", "description": "The body of POST /kv/batch: 1 to 1,000 puts, each a PUT /api body.",
                       "properties": {"puts": {"type": "array", "minItems": 1, "maxItems": 1000,
                                               "items": {"$ref": "#/definitions/PutApiBody"}}},
                       "required": ["puts"], "additionalProperties": False}
for prm in spec["paths"]["/kv/batch"]["post"]["parameters"]:
    if prm["in"] == "body":
        prm["schema"] = {"$ref": "#/definitions/PutManyBody"}
# Auth (when the stack has it on: KVMESH_AUTH): a bearer token in Authorization. Swagger 2.0 has no bearer scheme,
# so it is the usual apiKey-in-header; Swagger UI's Authorize takes "Bearer <token>".
spec["securityDefinitions"] = {"bearer": {
    "type": "apiKey", "in": "header", "name": "Authorization",
    "description": ("'Bearer <token>' when the stack has auth on (KVMESH_AUTH; on once nginx listens beyond loopback): "
                    "an ES256 JWT granting read / write / watch on key prefixes (./start.sh token mints one). "
                    "No token: 401 UNAUTHENTICATED; a key or prefix the token does not grant: 403 PERMISSION_DENIED.")}}
spec["security"] = [{"bearer": []}]
spec["schemes"] = ["http"]
spec["consumes"] = ["application/json"]
spec["produces"] = ["application/json"]
json.dump(spec, open(sys.argv[2], "w"), indent=2, sort_keys=True, ensure_ascii=False)
open(sys.argv[2], "a").write("\n")
PY

if [ "$CHECK" = 1 ]; then
  if ! diff -u "$OUT" "$WORK/openapi.json" >"$WORK/diff"; then
    head -n 60 "$WORK/diff" >&2
    say "$OUT is out of step with proto/: run scripts/openapi.sh and commit the result"
    exit 1
  fi
  say "$OUT matches proto/ (protoc $PROTOC_VERSION, protoc-gen-openapiv2 $OPENAPIV2_VERSION)"
else
  cp "$WORK/openapi.json" "$OUT"
  say "wrote $OUT ($(wc -c <"$OUT") bytes; $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["paths"]))' "$OUT") paths)"
fi
