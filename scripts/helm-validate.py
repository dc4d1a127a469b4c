#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline (scripts/helm-check.sh runs it in its venv).

  helm-validate.py --kube-version 1.31.0 --crd-schemas DIR FILE...
  helm-validate.py --extract-crd CRD.yaml --source TEXT OUT.json    (makes a file for DIR from a published CRD)
  helm-validate.py --env-of DEPLOYMENT FILE        (prints NAME=VALUE lines of its container's literal env values)

- Built-in kinds (Deployment, Service, HPA, PDB, ConfigMap, Secret, Ingress, ...) against the Kubernetes JSON schemas
  that the kubernetes-validate wheel ships, in their strict form (an unknown field is an error).
- Custom resources against the openAPIV3Schema of the operator's published CRD, kept in DIR as one JSON file per
  group/version/kind (descriptions stripped); made strict the same way: an object schema that lists its properties
  rejects any other field, unless the CRD says x-kubernetes-preserve-unknown-fields.
- A kind with neither is listed as skipped, and is an error unless named with --allow-skip KIND.
Prints one line per document and a summary; exits 1 on any failure.
"""
import argparse
import copy
import json
import os
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv


def strip_descriptions(node):
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def extract_crd(crd_file, source, out):
    with open(crd_file) as f:
        crd = yaml.safe_load(f)
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    doc = {
        "source": source,
        "apiVersion": "%s/%s" % (spec["group"], version["name"]),
        "kind": spec["names"]["kind"],
        "openAPIV3Schema": strip_descriptions(version["schema"]["openAPIV3Schema"]),
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print("wrote %s (%s %s, %d bytes)" % (out, doc["apiVersion"], doc["kind"], os.path.getsize(out)))


def strict(node):
    """OpenAPI v3 (structural CRD schema) -> JSON Schema that refuses fields the CRD does not declare."""
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crd_schemas(folder):
    schemas = {}
    for name in sorted(os.listdir(folder)) if folder and os.path.isdir(folder) else []:
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                doc = json.load(f)
            schema = strict(copy.deepcopy(doc["openAPIV3Schema"]))
            # the API server owns metadata's shape (ObjectMeta); the CRD schema only says "object"
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(doc["apiVersion"], doc["kind"])] = (name, schema)
    return schemas


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kube-version", default="1.31.0")
    p.add_argument("--crd-schemas")
    p.add_argument("--allow-skip", action="append", default=[])
    p.add_argument("--extract-crd")
    p.add_argument("--source")
    p.add_argument("--env-of")
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    if a.extract_crd:
        extract_crd(a.extract_crd, a.source or a.extract_crd, a.files[0])
        return 0

    if a.env_of:
        with open(a.files[0]) as f:
            for d in yaml.safe_load_all(f):
                if d and d.get("kind") == "Deployment" and d["metadata"]["name"] == a.env_of:
                    for e in d["spec"]["template"]["spec"]["containers"][0].get("env", []):
                        if "value" in e:
                            print("%s=%s" % (e["name"], e["value"]))
                    return 0
        print("no Deployment %s in %s" % (a.env_of, a.files[0]), file=sys.stderr)
        return 1

    crds = load_crd_schemas(a.crd_schemas)
    ok = failed = 0
    skipped = []
    kinds = {}
    for path in a.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for d in docs:
            what = "%s %s/%s" % (os.path.basename(path), d.get("kind"), (d.get("metadata") or {}).get("name"))
            key = (d.get("apiVersion"), d.get("kind"))
            try:
                if key in crds:
                    name, schema = crds[key]
                    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(d), key=lambda e: list(e.absolute_path))
                    if errors:
                        for e in errors[1:]:
                            loc = "/".join(str(x) for x in e.absolute_path) or "(document)"
                            print("  FAIL  %s at %s: %s" % (what, loc, e.message[:300]))
                        raise errors[0]
                    print("  ok    %s (CRD schema %s)" % (what, name))
                    kinds[d["kind"] + " (CRD schema)"] = kinds.get(d["kind"] + " (CRD schema)", 0) + 1
                else:
                    version = kv.validate(d, a.kube_version, strict=True)
                    print("  ok    %s (Kubernetes %s, strict)" % (what, version))
                    kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
                ok += 1
            except kv.SchemaNotFoundError:
                skipped.append((what, "%s %s" % key))
                if d.get("kind") in a.allow_skip:
                    print("  skip  %s: no schema for %s %s here" % (what, key[0], key[1]))
                else:
                    print("  FAIL  %s: no schema for %s %s (and not allowed to skip)" % (what, key[0], key[1]))
                    failed += 1
            except jsonschema.ValidationError as e:
                loc = "/".join(str(x) for x in e.absolute_path) or "(document)"
                print("  FAIL  %s at %s: %s" % (what, loc, e.message[:300]))
                failed += 1
    print("by kind: " + ", ".join("%s %d" % kv_ for kv_ in sorted(kinds.items())))
    print("validated %d, failed %d, skipped %d%s" % (
        ok, failed, len(skipped),
        (" (" + ", ".join(sorted({k for _, k in skipped})) + ")") if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
