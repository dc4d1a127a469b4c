"""schemathesis hooks for kvmesh (scripts/schemathesis.sh): generated values that only the server's state can make
valid or invalid, which a schema cannot say.

- requestId (PUT bodies, DELETE's query): a request id names one write; the same id sent again with a different
  write is refused (400, REQUEST_ID_REUSED). Generated ids repeat ("0", "a", ...), so every non-empty string id is
  replaced by a fresh UUID. Any string is a valid id, so a case stays positive or negative as generated.
  Each put of a POST /kv/batch body likewise (two puts of one call under one id are refused).
- pageToken: only a token the service issued is valid (400 otherwise). A generated non-empty token is dropped
  (the parameter is optional; an empty one is the first page).
"""
import uuid

import schemathesis


def _fresh_ids(container):
    if isinstance(container, dict) and isinstance(container.get("puts"), list):   # POST /kv/batch: each put's id
        for put in container["puts"]:
            _fresh_ids(put)
    if isinstance(container, dict):
        rid = container.get("requestId")
        if isinstance(rid, str) and rid:
            container["requestId"] = "st-" + str(uuid.uuid4())
        token = container.get("pageToken")
        if isinstance(token, str) and token:
            del container["pageToken"]
    return container


@schemathesis.hook
def map_body(context, body):
    return _fresh_ids(body)


@schemathesis.hook
def map_query(context, query):
    return _fresh_ids(query)


@schemathesis.hook
def before_call(context, case, **kwargs):
    """The same just before every call, whatever the phase: the coverage phase's cases (e.g. requestId "admin" on
    PUT /api, then on a put of POST /kv/batch) do not all pass through map_body."""
    for part in (case.body, case.query):
        if isinstance(part, dict):
            _fresh_ids(part)


# ---------------------------------------------------------------- negative bodies that proto3 JSON accepts
#
# Envoy's transcoder reads bodies by proto3's JSON rules, which take more than a Swagger 2.0 schema can say: null for
# any field (= unset), {} for a message field (a Duration or {"key","value"} left empty), a JSON number for an int64
# field, an enum value by its number, and unknown field names (ignored). A "negative" body that is valid once read by those rules is not a
# schema violation the API can refuse; such cases are skipped. Every other negative body is sent and must be refused.

import json
import os
import urllib.request

import jsonschema_rs   # comes with schemathesis

_SPEC = None


def _spec():
    global _SPEC
    if _SPEC is None:
        with urllib.request.urlopen(os.environ["KVMESH_OPENAPI_URL"], timeout=30) as r:
            _SPEC = json.load(r)
    return _SPEC


def _inline(schema, spec):
    """The schema with its $refs replaced by their definitions (the body schemas have no cycles)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(spec["definitions"][schema["$ref"].rsplit("/", 1)[1]], spec)
        return {k: _inline(v, spec) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, spec) for v in schema]
    return schema


def _as_proto3_reads(value, schema):
    """value as the transcoder reads it against schema: nulls dropped, {} for a Duration dropped, int64 numbers as
    strings, enum numbers as names, unknown non-empty names dropped (the empty name is refused)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        out = {}
        for k, v in value.items():
            if v is None or (k not in props and k != ""):
                continue
            if k in props:
                sub = props[k]
                if isinstance(v, dict) and not v and sub.get("type") != "object":
                    continue   # {} for a Duration: unset
                out[k] = _as_proto3_reads(v, sub)
            else:
                out[k] = v
        return out
    if isinstance(value, list) and schema.get("type") == "array":
        return [_as_proto3_reads(v, schema.get("items", {})) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and schema.get("format") == "int64":
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and "enum" in schema and 0 <= value < len(schema["enum"]):
        return schema["enum"][value]   # an enum by its number (the names are listed in number order)
    return value


@schemathesis.hook
def filter_case(context, case):
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_negative or not isinstance(case.body, dict):
        return True
    op = _spec()["paths"].get(case.operation.path, {}).get(case.method.lower(), {})
    body = next((p["schema"] for p in op.get("parameters", []) if p.get("in") == "body"), None)
    if body is None:
        return True
    schema = _inline(body, _spec())
    read = _as_proto3_reads(case.body, schema)
    # the other parts of the request must be valid too for the case to be skipped
    others_negative = any(meta.is_negative_at(loc) for loc in meta.components if loc.name.lower() != "body")
    return others_negative or not jsonschema_rs.Draft4Validator(schema).is_valid(read)
