#!/usr/bin/env python3
"""Builds the JSON schemas kubeconform validates plantwatch's manifests against.

Two inputs, both obtained through package registries by scripts/stack/k8s.sh:

  core SRC OUT      Kubernetes schemas shipped by the PyPI package kubernetes-validate
                    (directory vX.Y.Z-local-strict). Their $refs point at a shared
                    /api/_definitions.json; kubeconform needs self-contained files, so
                    each kind is written to OUT with the definitions it reaches embedded.
  crd OUT FILE...   CustomResourceDefinitions (JSON, or YAML when PyYAML is present).
                    Every served version becomes OUT/<group>/<kind>_<version>.json in the
                    layout kubeconform's -schema-location template expects, with
                    additionalProperties: false on every object that does not declare
                    its own, so unknown fields are rejected (openapi2jsonschema -strict).
"""
import copy
import json
import os
import re
import sys

REF_PREFIX = "/api/_definitions.json#/$defs/"
LOCAL_PREFIX = "#/$defs/"


def _refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            for prefix in (REF_PREFIX, LOCAL_PREFIX):
                if ref.startswith(prefix):
                    found.add(ref[len(prefix):])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _rewrite(node):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                out[key] = "#/$defs/" + value[len(REF_PREFIX):]
            else:
                out[key] = _rewrite(value)
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def build_core(src, out):
    with open(os.path.join(src, "_definitions.json")) as f:
        defs = json.load(f)
    schema_uri = defs.get("$schema", "https://json-schema.org/draft/2020-12/schema")
    defs = defs["$defs"]
    os.makedirs(out, exist_ok=True)
    count = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".json") or name in ("_definitions.json", "all.json"):
            continue
        with open(os.path.join(src, name)) as f:
            schema = json.load(f)
        needed, todo = set(), set()
        _refs(schema, todo)
        while todo:
            ref = todo.pop()
            if ref in needed or ref not in defs:
                continue
            needed.add(ref)
            _refs(defs[ref], todo)
        schema = _rewrite(schema)
        schema["$schema"] = schema_uri
        schema.pop("$id", None)
        if needed:
            schema["$defs"] = {k: _rewrite(defs[k]) for k in sorted(needed)}
        with open(os.path.join(out, name), "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        count += 1
    print(f"core: {count} standalone schemas in {out}")


def _strict(node):
    """openapi2jsonschema-style: close every object schema that has properties."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        preserve = node.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in node and "additionalProperties" not in node and not preserve:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def _load_documents(path):
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        return [json.loads(text)]
    import yaml  # PyYAML, only needed for YAML CRDs

    return [d for d in yaml.safe_load_all(text) if d]


def build_crds(out, files):
    count = 0
    for path in files:
        for crd in _load_documents(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            group, kind = spec["group"], spec["names"]["kind"].lower()
            for version in spec["versions"]:
                schema = copy.deepcopy(version.get("schema", {}).get("openAPIV3Schema", {}))
                schema = _strict(schema)
                props = schema.setdefault("properties", {})
                props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
                props["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
                props.setdefault("metadata", {"type": "object"})
                schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                schema["additionalProperties"] = False
                target = os.path.join(out, group)
                os.makedirs(target, exist_ok=True)
                name = f"{kind}_{version['name']}.json"
                with open(os.path.join(target, name), "w") as f:
                    json.dump(schema, f, separators=(",", ":"))
                count += 1
    print(f"crd: {count} strict schemas in {out}")


def main(argv):
    if len(argv) >= 3 and argv[0] == "core":
        build_core(argv[1], argv[2])
    elif len(argv) >= 3 and argv[0] == "crd":
        build_crds(argv[1], argv[2:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
