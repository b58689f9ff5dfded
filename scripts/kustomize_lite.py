"""A small, faithful renderer for the subset of kustomize that k8s/ uses.

Used by scripts/validate_deploy.py when no kustomize (kubectl >= 1.21's
`kubectl kustomize`, or a `kustomize` binary) is on the machine; when one is,
the validator renders with both and requires the same documents, so this
file is checked against the real thing wherever that exists.

Supported (anything else is refused, never ignored):
  resources        files (one or more YAML documents) and directories holding
                   a kustomization.yaml, relative to the kustomization
  namespace        set on every namespaced resource (not on cluster-scoped
                   kinds such as Namespace)
  labels           `pairs` only, on metadata.labels (no includeSelectors /
                   includeTemplates)
  images           name -> newName / newTag, on containers and initContainers
  patches          JSON 6902 (`patch:` text or `path:`) with a `target`
                   (kind / name / group / version / namespace), ops add,
                   replace, remove; and the strategic-merge `$patch: delete`
                   of a whole resource
  secretGenerator / configMapGenerator
                   `files` and `literals`, with generatorOptions
                   `disableNameSuffixHash: true` (required) and `labels`
"""

from __future__ import annotations

import base64
import copy
import os
from typing import Any

import yaml

CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
}

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "patches",
    "secretGenerator",
    "configMapGenerator",
    "generatorOptions",
}


class KustomizeError(Exception):
    pass


def _load_yaml_docs(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def build(directory: str) -> list[dict]:
    """Renders the kustomization in `directory` into a list of resources."""
    kfile = os.path.join(directory, "kustomization.yaml")
    if not os.path.exists(kfile):
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    with open(kfile, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")

    resources: list[dict] = []
    for entry in k.get("resources", []):
        path = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(path):
            resources.extend(build(path))
        else:
            resources.extend(_load_yaml_docs(path))

    options = k.get("generatorOptions", {}) or {}
    for field, kind in (("secretGenerator", "Secret"), ("configMapGenerator", "ConfigMap")):
        for gen in k.get(field, []) or []:
            resources.append(_generate(directory, kind, gen, options))

    for patch in k.get("patches", []) or []:
        resources = _apply_patch(directory, resources, patch)

    for label_set in k.get("labels", []) or []:
        extra = set(label_set) - {"pairs"}
        if extra:
            raise KustomizeError(f"{kfile}: labels options {sorted(extra)} not supported")
        for r in resources:
            r.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])

    for image in k.get("images", []) or []:
        for r in resources:
            _set_image(r, image)

    namespace = k.get("namespace")
    if namespace:
        for r in resources:
            if r.get("kind") not in CLUSTER_SCOPED:
                r.setdefault("metadata", {})["namespace"] = namespace

    seen = set()
    for r in resources:
        key = _key(r)
        if key in seen:
            raise KustomizeError(f"{directory}: duplicate resource {key}")
        seen.add(key)
    return resources


def _key(r: dict) -> tuple:
    meta = r.get("metadata", {})
    return (r.get("apiVersion"), r.get("kind"), meta.get("namespace"), meta.get("name"))


def _generate(directory: str, kind: str, gen: dict, options: dict) -> dict:
    if not options.get("disableNameSuffixHash"):
        raise KustomizeError(f"{directory}: generators need generatorOptions.disableNameSuffixHash")
    extra = set(gen) - {"name", "files", "literals", "behavior"}
    if extra or gen.get("behavior", "create") != "create":
        raise KustomizeError(f"{directory}: generator options {sorted(extra)} not supported")
    data: dict[str, bytes] = {}
    for item in gen.get("files", []) or []:
        key, _, rel = item.partition("=") if "=" in item else (os.path.basename(item), "", item)
        with open(os.path.join(directory, rel), "rb") as f:
            data[key] = f.read()
    for item in gen.get("literals", []) or []:
        key, _, value = item.partition("=")
        data[key] = value.encode()
    resource: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
    if options.get("labels"):
        resource["metadata"]["labels"] = dict(options["labels"])
    if kind == "Secret":
        resource["type"] = "Opaque"
        resource["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    else:
        resource["data"] = {k: v.decode() for k, v in data.items()}
    return resource


def _matches(r: dict, target: dict) -> bool:
    group, _, version = r.get("apiVersion", "").rpartition("/")
    meta = r.get("metadata", {})
    checks = {
        "kind": r.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "group": group,
        "version": version,
    }
    for field, want in target.items():
        if field not in checks:
            raise KustomizeError(f"patch target field {field!r} not supported")
        if checks[field] != want:
            return False
    return True


def _apply_patch(directory: str, resources: list[dict], patch: dict) -> list[dict]:
    text = patch.get("patch")
    if text is None:
        with open(os.path.join(directory, patch["path"]), encoding="utf-8") as f:
            text = f.read()
    body = yaml.safe_load(text)
    if isinstance(body, dict):
        # Strategic merge: only whole-resource deletion is supported.
        if body.get("$patch") != "delete":
            raise KustomizeError(f"{directory}: only `$patch: delete` strategic-merge patches are supported")
        target = {"kind": body["kind"], "name": body["metadata"]["name"]}
        kept = [r for r in resources if not _matches(r, target)]
        if len(kept) == len(resources):
            raise KustomizeError(f"{directory}: `$patch: delete` matched nothing: {target}")
        return kept
    target = patch.get("target")
    if not target:
        raise KustomizeError(f"{directory}: a JSON 6902 patch needs a target")
    hits = 0
    out = []
    for r in resources:
        if _matches(r, target):
            hits += 1
            r = copy.deepcopy(r)
            for op in body:
                _json_patch_op(r, op)
        out.append(r)
    if hits == 0:
        raise KustomizeError(f"{directory}: patch target matched nothing: {target}")
    return out


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_patch_op(doc: Any, op: dict) -> None:
    parts = _pointer(op["path"])
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    kind = op["op"]
    if kind in ("add", "replace"):
        value = copy.deepcopy(op["value"])
        if isinstance(parent, list):
            if last == "-":
                parent.append(value)
            elif kind == "add":
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            if kind == "replace" and last not in parent:
                raise KustomizeError(f"replace of missing {op['path']}")
            parent[last] = value
    elif kind == "remove":
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    else:
        raise KustomizeError(f"JSON patch op {kind!r} not supported")


def _set_image(resource: dict, image: dict) -> None:
    spec = resource.get("spec", {})
    pod = spec.get("template", {}).get("spec") if "template" in spec else None
    if not pod:
        return
    for field in ("containers", "initContainers"):
        for c in pod.get(field, []) or []:
            name, tag = _split_image(c.get("image", ""))
            if name != image["name"]:
                continue
            new_name = image.get("newName", name)
            new_tag = image.get("newTag", tag)
            c["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        return image.split("@", 1)[0], ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, ""
