#!/usr/bin/env python3
"""Checks everything ragspin ships for deployment, without a cluster or Docker.

Run by `make deploy-check` (part of `make test`), which installs the Python
packages it needs into target/deploy-venv. What it checks:

1. k8s/: every overlay is rendered with kustomize (`kubectl kustomize`, or a
   `kustomize` binary; else scripts/kustomize_lite.py, and where both exist
   they must agree), then every document is validated:
   - Kubernetes kinds against the official schemas shipped offline by the
     `kubernetes-validate` package, strict (unknown fields are errors), for
     the oldest and newest Kubernetes versions we support;
   - SpinApp / SpinAppExecutor against the CRD schemas in
     ../shared/schemas/spinkube/ (unknown fields are errors, as with
     `kubectl apply --validate=strict`);
   - KEDA ScaledObject and Prometheus-operator ServiceMonitor against the
     few fields we use (no CRD schema of theirs is available offline);
   - references: executors, ConfigMap/Secret keys, the runtime-config Secret
     and its TOML, Services behind Ingresses, HPA/KEDA targets, selectors of
     PDB/NetworkPolicy/Service/ServiceMonitor against the app's pod labels,
     probes, invocation limits, pinned images, the rolling-update strategy.
2. Spin variables: every variable the SpinApp (or the plain Deployment) sets
   exists in spin.toml, every required one is set, secret ones only come from
   Secrets, and the SpinApp and Deployment set the same ones.
3. Runtime configs (runtime-config.toml, k8s/runtime-config/*): parse, and
   declare every key-value store and SQLite database spin.toml uses, with the
   fields Spin requires for their type; variable providers have Spin's fields.
4. The Dockerfile: stage names, pinned base images (the official Spin image
   `ghcr.io/spinframework/spin:v4.0.2`), the build command equals what
   `make build` runs with Spin installed, the runtime command, non-root user,
   HEALTHCHECK, the copied components match spin.toml; .dockerignore.
5. Observability and CI files parse and say what they must (OTLP in,
   Prometheus out; dashboard metric names are ones that exist; workflows run
   `make test`, `spin registry push` with the commit SHA, kustomize deploy).

`--self-test` also feeds deliberately broken inputs and fails unless each is
caught.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize_lite  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
SPIN_IMAGE = "ghcr.io/spinframework/spin:v4.0.2"
K8S_VERSIONS = ["1.30.0", "1.37.0"]
APP = "ragspin"
APP_POD_LABELS = {"app.kubernetes.io/name": "ragspin", "app.kubernetes.io/component": "api"}
READINESS_PATH = "/readyz"
LIVENESS_PATH = "/.well-known/spin/health"

# overlay -> Secrets created out of band (documented in k8s/README.md).
OVERLAYS = {
    "dev": set(),
    "prod": {"ragspin-secrets", "ragspin-libsql-auth"},
    "prod-keda": {"ragspin-secrets", "ragspin-libsql-auth"},
    "prod-plain": {"ragspin-secrets"},
}
SELF_TESTS = 11
RUNTIME_CONFIG_DIRS = ["dev", "prod", "vault", "azure-key-vault"]


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.checks = 0

    def check(self, ok: bool, message: str) -> bool:
        self.checks += 1
        if not ok:
            self.items.append(message)
        return ok


# ----------------------------------------------------------------- rendering


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True)
        try:
            version = json.loads(out.stdout).get("kustomizeVersion", "")
        except json.JSONDecodeError:
            version = ""
        major = re.match(r"v(\d+)", version)
        if major and int(major.group(1)) >= 4:
            return ["kubectl", "kustomize"]
    return None


def render(directory: str, problems: Problems, renderer: list[str] | None) -> list[dict]:
    lite = kustomize_lite.build(directory)
    if renderer is None:
        return lite
    out = subprocess.run(renderer + [directory], capture_output=True, text=True)
    if not problems.check(out.returncode == 0, f"{directory}: {' '.join(renderer)} failed: {out.stderr.strip()}"):
        return lite
    real = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    problems.check(
        canonical(real) == canonical(lite),
        f"{directory}: scripts/kustomize_lite.py renders differently from {' '.join(renderer)}:\n"
        + diff_summary(canonical(real), canonical(lite)),
    )
    return real


def canonical(docs: list[dict]) -> dict:
    out = {}
    for d in docs:
        d = copy.deepcopy(d)
        if d.get("kind") == "Secret" and d.get("data"):
            d["data"] = {k: base64.b64decode(v or "").decode("utf-8", "replace") for k, v in d["data"].items()}
        meta = d.get("metadata", {})
        out[f"{d.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"] = d
    return out


def diff_summary(a: dict, b: dict) -> str:
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"  {key}: kustomize={json.dumps(a.get(key))[:300]} lite={json.dumps(b.get(key))[:300]}")
    return "\n".join(lines)


# ------------------------------------------------------------------- schemas


def strict_schema(schema: dict) -> dict:
    """A CRD's openAPIV3Schema with unknown fields refused (what the API
    server's strict field validation does for structural schemas)."""
    schema = copy.deepcopy(schema)

    def walk(s: dict) -> None:
        if not isinstance(s, dict):
            return
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s:
            if not s.get("x-kubernetes-preserve-unknown-fields"):
                s["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for sub in (s.get(key) or {}).values():
                walk(sub)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(s.get(key), dict):
                walk(s[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in s.get(key) or []:
                walk(sub)

    walk(schema)
    # metadata is validated by the API server, not the CRD schema.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return schema


def crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    folder = os.path.join(SHARED, "schemas", "spinkube")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            crd = yaml.safe_load(f)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schemas[(f"{group}/{version['name']}", kind)] = strict_schema(version["schema"]["openAPIV3Schema"])
    return schemas


# Hand-written: only the fields ragspin uses, for kinds whose CRDs are not
# available offline. Unknown fields are refused so typos are caught.
_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["prometheus", "cpu", "memory"]},
        "metricType": {"enum": ["Utilization", "AverageValue", "Value"]},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
EXTRA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    },
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer"},
                    "pollingInterval": {"type": "integer"},
                    "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
                },
            }
        },
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                    },
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m)$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m)$"},
                                "scheme": {"enum": ["http", "https"]},
                                "bearerTokenSecret": {"type": "object"},
                            },
                        },
                    },
                },
            }
        },
    },
}


def validate_document(doc: dict, where: str, problems: Problems, crds: dict) -> None:
    key = (doc.get("apiVersion"), doc.get("kind"))
    meta = doc.get("metadata") or {}
    problems.check(bool(meta.get("name")), f"{where}: {key} has no metadata.name")
    if key in crds or key in EXTRA_SCHEMAS:
        schema = crds.get(key) or EXTRA_SCHEMAS[key]
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            problems.check(False, f"{where}: {key[1]}/{meta.get('name')}: {'/'.join(map(str, e.path))}: {e.message}")
        if not errors:
            problems.check(True, "")
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            problems.check(True, "")
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.path))
            problems.check(False, f"{where}: {key[1]}/{meta.get('name')} (k8s {version}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.check(False, f"{where}: no schema for {key} (k8s {version}): {e.message}")


# ------------------------------------------------------------ spin manifest


def load_spin_manifest() -> dict:
    with open(os.path.join(ROOT, "spin.toml"), "rb") as f:
        return tomllib.load(f)


def used_stores(manifest: dict) -> tuple[set[str], set[str]]:
    kv, sql = set(), set()
    for component in manifest.get("component", {}).values():
        kv.update(component.get("key_value_stores", []))
        sql.update(component.get("sqlite_databases", []))
    return kv, sql


VAULT_FIELDS = {"type", "url", "token", "mount", "prefix"}
AKV_FIELDS = {"type", "vault_url", "client_id", "client_secret", "tenant_id", "authority_host"}


def check_runtime_config(text: str, where: str, manifest: dict, problems: Problems, cluster: bool) -> None:
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.check(False, f"{where}: not TOML: {e}")
        return
    kv_used, sql_used = used_stores(manifest)
    stores = config.get("key_value_store", {})
    dbs = config.get("sqlite_database", {})
    for label in sorted(kv_used):
        if problems.check(label in stores, f"{where}: key-value store {label!r} used by spin.toml is not declared"):
            store = stores[label]
            kind = store.get("type")
            if kind == "redis":
                problems.check(
                    str(store.get("url", "")).startswith(("redis://", "rediss://")),
                    f"{where}: redis store {label!r} needs a redis:// url",
                )
            elif kind == "spin":
                problems.check(not cluster, f"{where}: store {label!r} is file-backed; replicas would not share it")
            else:
                problems.check(kind in ("azure_cosmos", "aws_dynamo"), f"{where}: store {label!r}: unknown type {kind!r}")
    for label in sorted(sql_used):
        if problems.check(label in dbs, f"{where}: SQLite database {label!r} used by spin.toml is not declared"):
            db = dbs[label]
            kind = db.get("type")
            if kind == "libsql":
                problems.check(
                    str(db.get("url", "")).startswith(("http://", "https://", "libsql://")),
                    f"{where}: libsql database {label!r} needs an http(s) url",
                )
                problems.check(isinstance(db.get("token"), str), f"{where}: libsql database {label!r} needs a token")
            elif kind == "spin":
                problems.check(not cluster, f"{where}: database {label!r} is file-backed; replicas would not share it")
            else:
                problems.check(False, f"{where}: database {label!r}: unknown type {kind!r}")
    for provider in config.get("config_provider", []):
        kind = provider.get("type")
        if kind == "vault":
            problems.check(set(provider) <= VAULT_FIELDS, f"{where}: vault provider: unknown fields {set(provider) - VAULT_FIELDS}")
            for field in ("url", "token", "mount"):
                problems.check(isinstance(provider.get(field), str), f"{where}: vault provider needs {field}")
        elif kind == "azure_key_vault":
            problems.check(set(provider) <= AKV_FIELDS, f"{where}: azure_key_vault provider: unknown fields {set(provider) - AKV_FIELDS}")
            problems.check(
                str(provider.get("vault_url", "")).startswith("https://"),
                f"{where}: azure_key_vault provider needs an https vault_url",
            )
            creds = [provider.get(f) is not None for f in ("client_id", "client_secret", "tenant_id")]
            problems.check(all(creds) or not any(creds), f"{where}: azure_key_vault needs all or none of client_id/client_secret/tenant_id")
        else:
            problems.check(False, f"{where}: unknown config_provider type {kind!r}")
    known = {"key_value_store", "sqlite_database", "config_provider", "llm_compute", "variables_provider"}
    problems.check(set(config) <= known, f"{where}: unknown runtime-config sections {set(config) - known}")


# ---------------------------------------------------------------- k8s checks


def index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def secret_keys(doc: dict) -> set[str]:
    return set(doc.get("data") or {}) | set(doc.get("stringData") or {})


def check_ref(kind: str, ref: dict, docs: dict, external: set[str], where: str, problems: Problems) -> None:
    name, key = ref.get("name"), ref.get("key")
    target = docs.get((kind, name))
    if target is None:
        problems.check(kind == "Secret" and name in external, f"{where}: {kind} {name!r} is neither rendered nor documented as created out of band")
        return
    keys = secret_keys(target) if kind == "Secret" else set(target.get("data") or {})
    problems.check(key in keys, f"{where}: {kind} {name!r} has no key {key!r}")


def selector_matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+)([KMG]i?)?", str(q))
    if not m:
        raise ValueError(q)
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


def check_image(image: str, where: str, problems: Problems) -> None:
    tag = image.rsplit("/", 1)[-1]
    problems.check(
        "@sha256:" in image or (":" in tag and not tag.endswith(":latest")),
        f"{where}: image {image!r} must be pinned (a tag other than latest, or a digest)",
    )


def check_variables(names_sources: list[tuple[str, str]], manifest: dict, where: str, problems: Problems) -> None:
    declared = manifest.get("variables", {})
    names = [n for n, _ in names_sources]
    problems.check(len(names) == len(set(names)), f"{where}: a variable is set twice")
    for name, source in names_sources:
        if problems.check(name in declared, f"{where}: variable {name!r} is not in spin.toml [variables]"):
            if declared[name].get("secret"):
                problems.check(source == "secret", f"{where}: secret variable {name!r} must come from a Secret, not {source}")
    for name, spec in declared.items():
        if spec.get("required"):
            problems.check(name in names, f"{where}: required variable {name!r} is not set")
        if spec.get("secret"):
            problems.check(name in names, f"{where}: secret variable {name!r} is not wired to a Secret")


def env_source(value_from: dict | None, value: str | None) -> str:
    if value_from and "secretKeyRef" in value_from:
        return "secret"
    if value_from and "configMapKeyRef" in value_from:
        return "configmap"
    return "literal"


def check_overlay(name: str, docs: list[dict], manifest: dict, problems: Problems, crds: dict) -> None:
    where = f"k8s/overlays/{name}"
    external = OVERLAYS[name]
    for d in docs:
        validate_document(d, where, problems, crds)
    by = index(docs)
    problems.check(len(by) == len(docs), f"{where}: duplicate kind/name")
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    problems.check(len(namespaces) == 1 and None not in namespaces, f"{where}: resources span namespaces {namespaces}")
    ns_docs = [d for d in docs if d["kind"] == "Namespace"]
    problems.check(
        len(ns_docs) == 1 and ns_docs[0]["metadata"]["name"] in namespaces,
        f"{where}: the overlay must create its namespace",
    )

    spinapp = by.get(("SpinApp", APP))
    deployment = by.get(("Deployment", APP))
    problems.check(
        (spinapp is None) != (deployment is None),
        f"{where}: exactly one of SpinApp/{APP} and Deployment/{APP} (spin-operator names its Deployment after the app)",
    )
    pod_labels: dict = {}
    variable_sets = []

    if spinapp:
        spec = spinapp["spec"]
        executor = by.get(("SpinAppExecutor", spec["executor"]))
        if problems.check(executor is not None, f"{where}: executor {spec['executor']!r} is not rendered"):
            problems.check(executor["spec"]["createDeployment"] is True, f"{where}: executor must create the Deployment")
        executors = {n: d for (k, n), d in by.items() if k == "SpinAppExecutor"}
        problems.check(
            executors.get("containerd-shim-spin", {}).get("spec", {}).get("deploymentConfig", {}).get("runtimeClassName")
            is not None,
            f"{where}: the containerd-shim-spin executor (runtimeClassName) is missing",
        )
        problems.check(
            executors.get("spintainer", {}).get("spec", {}).get("deploymentConfig", {}).get("spinImage") == SPIN_IMAGE,
            f"{where}: the spintainer executor must run {SPIN_IMAGE}",
        )
        check_image(spec["image"], where + " SpinApp", problems)
        pod_labels = spec.get("podLabels", {})
        checks = spec.get("checks", {})
        problems.check(checks.get("readiness", {}).get("httpGet", {}).get("path") == READINESS_PATH, f"{where}: readiness probe must be {READINESS_PATH}")
        problems.check(checks.get("liveness", {}).get("httpGet", {}).get("path") == LIVENESS_PATH, f"{where}: liveness probe must be {LIVENESS_PATH}")
        limits = spec.get("resources", {}).get("limits", {})
        inv = spec.get("invocationLimits", {})
        if problems.check("memory" in inv and "memory" in limits, f"{where}: invocationLimits.memory and resources.limits.memory are required"):
            problems.check(
                quantity_bytes(inv["memory"]) <= quantity_bytes(limits["memory"]),
                f"{where}: invocationLimits.memory exceeds resources.limits.memory",
            )
        problems.check(spec.get("enableAutoscaling") is True and "replicas" not in spec, f"{where}: the HPA/KEDA owns replicas: enableAutoscaling: true, no replicas")
        rc_name = spec.get("runtimeConfig", {}).get("loadFromSecret")
        rc_secret = by.get(("Secret", rc_name))
        if problems.check(rc_secret is not None, f"{where}: runtimeConfig.loadFromSecret {rc_name!r} is not rendered"):
            data = rc_secret.get("data", {})
            if problems.check(set(data) == {"runtime-config.toml"}, f"{where}: {rc_name} must hold exactly runtime-config.toml"):
                text = base64.b64decode(data["runtime-config.toml"]).decode()
                check_runtime_config(text, f"{where} Secret/{rc_name}", manifest, problems, cluster=True)
                ns = spinapp["metadata"]["namespace"]
                for url in re.findall(r'url = "([^"]+)"', text):
                    if ".svc.cluster.local" in url:
                        problems.check(f".{ns}.svc.cluster.local" in url, f"{where}: runtime config points at another namespace: {url}")
        pairs = []
        for v in spec.get("variables", []):
            vf = v.get("valueFrom")
            if vf and "secretKeyRef" in vf:
                check_ref("Secret", vf["secretKeyRef"], by, external, where + f" variable {v['name']}", problems)
            if vf and "configMapKeyRef" in vf:
                check_ref("ConfigMap", vf["configMapKeyRef"], by, external, where + f" variable {v['name']}", problems)
            pairs.append((v["name"], env_source(vf, v.get("value"))))
        check_variables(pairs, manifest, where + " SpinApp", problems)
        variable_sets.append(set(pairs))

    if deployment:
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        pod_labels = spec["template"]["metadata"].get("labels", {})
        strategy = spec.get("strategy", {})
        problems.check(
            strategy.get("type") == "RollingUpdate" and strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0,
            f"{where}: the plain Deployment must roll with maxUnavailable: 0",
        )
        container = pod["containers"][0]
        check_image(container["image"], where + " Deployment", problems)
        args = container.get("args", [])
        problems.check(
            args[:1] == ["up"] and "--runtime-config-file" in args and "0.0.0.0:80" in args,
            f"{where}: the Deployment must run `spin up --listen 0.0.0.0:80 --runtime-config-file ...`",
        )
        problems.check(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == READINESS_PATH, f"{where}: readiness probe must be {READINESS_PATH}")
        problems.check(container.get("livenessProbe", {}).get("httpGet", {}).get("path") == LIVENESS_PATH, f"{where}: liveness probe must be {LIVENESS_PATH}")
        problems.check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: the Deployment must run as non-root")
        if "--runtime-config-file" in args:
            path = args[args.index("--runtime-config-file") + 1]
            mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            found = False
            for vname, mpath in mounts.items():
                secret = volumes.get(vname, {}).get("secret", {}).get("secretName")
                if secret and path == f"{mpath}/runtime-config.toml":
                    found = True
                    rc = by.get(("Secret", secret))
                    if problems.check(rc is not None, f"{where}: runtime-config Secret {secret!r} is not rendered"):
                        text = base64.b64decode(rc["data"]["runtime-config.toml"]).decode()
                        check_runtime_config(text, f"{where} Secret/{secret}", manifest, problems, cluster=True)
            problems.check(found, f"{where}: {path} is not a mounted runtime-config Secret")
        pairs = []
        for e in container.get("env", []):
            m = re.fullmatch(r"SPIN_VARIABLE_([A-Z0-9_]+)", e["name"])
            if not problems.check(m is not None, f"{where}: unexpected env {e['name']}"):
                continue
            vf = e.get("valueFrom")
            if vf and "secretKeyRef" in vf:
                check_ref("Secret", vf["secretKeyRef"], by, external, where + f" env {e['name']}", problems)
            if vf and "configMapKeyRef" in vf:
                check_ref("ConfigMap", vf["configMapKeyRef"], by, external, where + f" env {e['name']}", problems)
            pairs.append((m.group(1).lower(), env_source(vf, e.get("value"))))
        check_variables(pairs, manifest, where + " Deployment", problems)
        variable_sets.append(set(pairs))

    problems.check(selector_matches(APP_POD_LABELS, pod_labels), f"{where}: app pods must carry {APP_POD_LABELS}")
    config = by.get(("ConfigMap", "ragspin-config"))
    if config:
        declared = manifest.get("variables", {})
        for key in config.get("data", {}):
            problems.check(key in declared and not declared[key].get("secret"), f"{where}: ConfigMap key {key!r} is not a non-secret spin.toml variable")

    services = {n: d for (k, n), d in by.items() if k == "Service"}
    if spinapp:
        problems.check(APP not in services, f"{where}: Service {APP!r} would clash with the one spin-operator creates")
        service_names = set(services) | {APP}
    else:
        service_names = set(services)
        svc = services.get(APP)
        if problems.check(svc is not None, f"{where}: the plain variant needs Service {APP!r}"):
            problems.check(selector_matches(svc["spec"]["selector"], pod_labels), f"{where}: Service {APP} does not select the app pods")
    for d in docs:
        kind, dname = d["kind"], d["metadata"]["name"]
        if kind == "Ingress":
            for rule in d["spec"].get("rules", []):
                for p in rule.get("http", {}).get("paths", []):
                    backend = p["backend"]["service"]["name"]
                    problems.check(backend in service_names, f"{where}: Ingress {dname} -> unknown Service {backend!r}")
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = d["spec"]["scaleTargetRef"]
            problems.check(ref.get("kind", "Deployment") == "Deployment" and ref["name"] == APP, f"{where}: {kind} must scale Deployment/{APP}")
        if kind == "PodDisruptionBudget":
            problems.check(selector_matches(d["spec"]["selector"]["matchLabels"], pod_labels), f"{where}: PDB {dname} does not select the app pods")
        if kind == "NetworkPolicy":
            sel = d["spec"]["podSelector"].get("matchLabels", {})
            targets = [pod_labels] + [
                x["spec"]["template"]["metadata"]["labels"] for x in docs if x["kind"] == "Deployment"
            ]
            problems.check(any(selector_matches(sel, t) for t in targets), f"{where}: NetworkPolicy {dname} selects no pods")
        if kind == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                check_image(c["image"], f"{where} Deployment/{dname}", problems)
    autoscalers = [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    problems.check(len(autoscalers) == 1, f"{where}: exactly one autoscaler (HPA or KEDA), found {len(autoscalers)}")


# ------------------------------------------------------------- Dockerfile


def makefile_build_with_spin() -> list[str]:
    """The commands `make build` runs when Spin is installed."""
    out = subprocess.run(
        ["make", "-n", "build", "HAVE_SPIN=/usr/local/bin/spin", "-C", ROOT, "--no-print-directory"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return [line.strip() for line in out.stdout.splitlines() if line.strip() and not line.startswith("make")]


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def check_dockerfile(manifest: dict, problems: Problems) -> None:
    where = "Dockerfile"
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        instructions = parse_dockerfile(f.read())
    stages: list[tuple[str, str]] = []
    runs: dict[str, list[str]] = {}
    current = None
    for word, rest in instructions:
        if word == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            image, stage = m.group(1), m.group(2)
            stages.append((image, stage))
            current = stage
            runs[current] = []
        elif current is not None:
            runs[current].append(f"{word} {rest}")
    names = [s for _, s in stages]
    problems.check(
        all(names) and names[:1] == ["build"] and names[-1:] == ["runtime"],
        f"{where}: stages must be named, `build` first and `runtime` last, found {names}",
    )
    for image, _ in stages:
        problems.check(bool(re.search(r":[^/]+$", image)) and not image.endswith(":latest"), f"{where}: base image {image!r} is not pinned by tag")
    if stages:
        problems.check(stages[-1][0] == SPIN_IMAGE, f"{where}: the runtime stage must be {SPIN_IMAGE}")
    build = runs.get("build", [])
    runtime = runs.get("runtime", [])
    problems.check(any(line.startswith(f"COPY --from={SPIN_IMAGE} ") for line in build), f"{where}: the build stage must copy the Spin CLI from {SPIN_IMAGE}")
    problems.check(any("rustup target add wasm32-wasip2" in line for line in build), f"{where}: the build stage must add wasm32-wasip2")
    build_runs = [line[4:].strip() for line in build if line.startswith("RUN ")]
    try:
        make_cmds = makefile_build_with_spin()
    except RuntimeError as e:
        problems.check(False, f"{where}: make -n build failed: {e}")
        make_cmds = []
    spin_cmds = [c for c in make_cmds if c.startswith("spin ")]
    problems.check(spin_cmds == ["spin build"], f"{where}: `make build` with Spin should run `spin build`, runs {make_cmds}")
    problems.check(any(r == c for r in build_runs for c in spin_cmds), f"{where}: the build stage must run what `make build` runs ({spin_cmds}), runs {build_runs}")
    user = [line[5:].strip() for line in runtime if line.startswith("USER ")]
    problems.check(bool(user) and user[-1].split(":")[0] not in ("0", "root"), f"{where}: the runtime stage must run as a non-root USER")
    problems.check(any(line.startswith("HEALTHCHECK ") and LIVENESS_PATH in line for line in runtime), f"{where}: the runtime stage needs a HEALTHCHECK on {LIVENESS_PATH}")
    cmds = [json.loads(line[4:]) for line in runtime if line.startswith("CMD ")]
    cmd = " ".join(cmds[-1]) if cmds else ""
    problems.check(
        cmd.startswith("up ") and "--listen 0.0.0.0:80" in cmd and "--runtime-config-file " in cmd,
        f"{where}: CMD must be `up ... --listen 0.0.0.0:80 --runtime-config-file ...`, is {cmd!r}",
    )
    sources = {c["source"] for c in manifest["component"].values()}
    copied = " ".join(line for line in runtime if line.startswith("COPY --from=build"))
    for source in sorted(sources):
        problems.check(os.path.basename(source) in copied or os.path.dirname(source) in copied, f"{where}: component {source} is not copied into the runtime stage")
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        ignored = {line.strip().rstrip("/") for line in f if line.strip() and not line.startswith("#")}
    for entry in ("target", ".git", ".spin"):
        problems.check(entry in ignored, f".dockerignore must exclude {entry}")


# ------------------------------------------------------ observability + CI


def app_metric_names() -> set[str]:
    names = set()
    for rel in ("crates/core/src/metrics.rs",):
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            names.update(re.findall(r'"(ragspin_[a-z0-9_]+)"', f.read()))
    return names


# Metrics from Spin's OTLP export through the collector (dots become
# underscores, counters get `_total`) and from the collector's spanmetrics
# connector (histograms of span durations in seconds).
OTEL_METRICS = {
    "spin_request_count_total",
    "traces_span_metrics_calls_total",
    "traces_span_metrics_duration_seconds_bucket",
    "traces_span_metrics_duration_seconds_count",
    "traces_span_metrics_duration_seconds_sum",
}


def check_observability(problems: Problems) -> None:
    folder = os.path.join(ROOT, "k8s", "observability")
    with open(os.path.join(folder, "otel-collector.yaml"), encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    cm = next((d for d in docs if d["kind"] == "ConfigMap"), None)
    if problems.check(cm is not None, "otel-collector.yaml: no ConfigMap"):
        config = yaml.safe_load(cm["data"]["config.yaml"])
        problems.check("otlp" in config.get("receivers", {}), "collector: no otlp receiver")
        protocols = config["receivers"]["otlp"].get("protocols", {})
        problems.check({"grpc", "http"} <= set(protocols), "collector: otlp needs grpc and http")
        problems.check("prometheus" in config.get("exporters", {}), "collector: no prometheus exporter")
        pipelines = config.get("service", {}).get("pipelines", {})
        problems.check("traces" in pipelines and "metrics" in pipelines, "collector: needs traces and metrics pipelines")
        problems.check(
            "prometheus" in pipelines.get("metrics", {}).get("exporters", []),
            "collector: the metrics pipeline must export to prometheus",
        )
        for pname, p in pipelines.items():
            for part in ("receivers", "processors", "exporters"):
                for item in p.get(part, []):
                    declared = set(config.get(part[:-1] + "s" if part != "processors" else "processors", {}))
                    declared |= set(config.get("connectors", {}))
                    problems.check(item in declared, f"collector: pipeline {pname} uses undeclared {part[:-1]} {item}")
    known = app_metric_names() | OTEL_METRICS
    with open(os.path.join(folder, "grafana-dashboard.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    titles = []
    for panel in dashboard.get("panels", []):
        titles.append(panel.get("title", ""))
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            ds = json.dumps(target.get("datasource", panel.get("datasource", "")))
            if "loki" in ds.lower():
                problems.check("| json" in expr or "| regexp" in expr, f"dashboard {panel.get('title')}: Loki query must parse the JSON log line")
                continue
            for name in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", expr):
                if name in ("by", "without", "on", "ignoring", "sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg", "count", "clamp_min", "topk", "le"):
                    continue
                problems.check(name in known, f"dashboard {panel.get('title')}: metric {name!r} is not exported by ragspin, Spin or the collector")
    wanted = ["request rate", "latency", "llm latency", "cache hit", "ingest", "429", "error"]
    lowered = " | ".join(titles).lower()
    for w in wanted:
        problems.check(w in lowered, f"dashboard: no panel about {w!r}")


def check_workflows(problems: Problems) -> None:
    folder = os.path.join(ROOT, ".github", "workflows")
    texts = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        texts[name] = text
        doc = yaml.safe_load(text)
        # PyYAML reads the key `on` as True (YAML 1.1).
        problems.check(isinstance(doc, dict) and "jobs" in doc and (True in doc or "on" in doc), f"{name}: not a workflow")
    pr = texts.get("pr.yml", "")
    main = texts.get("main.yml", "")
    problems.check("pull_request" in pr and "make test" in pr, "pr.yml must run `make test` on pull requests")
    problems.check("branches: [main]" in main, "main.yml must run on main")
    problems.check("make test" in main, "main.yml must test before shipping")
    problems.check(re.search(r"spin registry push .*\$\{\{ github\.sha \}\}", main) is not None or "IMAGE_TAG: ${{ github.sha }}" in main, "main.yml must `spin registry push` tagged with the commit SHA")
    problems.check("spin registry push" in main, "main.yml must push with `spin registry push`")
    problems.check(any(k in main for k in ("kubectl apply -k", "kustomize build", "kubectl kustomize")), "main.yml must deploy with kustomize")
    problems.check(SPIN_IMAGE.split(":")[-1] in main, f"main.yml must install the pinned Spin ({SPIN_IMAGE})")


# -------------------------------------------------------------------- main


def run_all(problems: Problems, renderer: list[str] | None, only_overlays: bool = False) -> dict[str, list[dict]]:
    manifest = load_spin_manifest()
    crds = crd_schemas()
    rendered = {}
    for name in OVERLAYS:
        docs = render(os.path.join(ROOT, "k8s", "overlays", name), problems, renderer)
        rendered[name] = docs
        check_overlay(name, docs, manifest, problems, crds)
    if only_overlays:
        return rendered
    for name in RUNTIME_CONFIG_DIRS:
        docs = render(os.path.join(ROOT, "k8s", "runtime-config", name), problems, renderer)
        for d in docs:
            validate_document(d, f"k8s/runtime-config/{name}", problems, crds)
            text = base64.b64decode(d["data"]["runtime-config.toml"]).decode()
            check_runtime_config(text, f"k8s/runtime-config/{name}", manifest, problems, cluster=True)
    with open(os.path.join(ROOT, "runtime-config.toml"), encoding="utf-8") as f:
        check_runtime_config(f.read(), "runtime-config.toml", manifest, problems, cluster=False)
    observability = render(os.path.join(ROOT, "k8s", "observability"), problems, renderer)
    rendered["observability"] = observability
    for d in observability:
        validate_document(d, "k8s/observability", problems, crds)
        problems.check(d["metadata"].get("namespace") == "monitoring", f"k8s/observability: {d['kind']}/{d['metadata']['name']} not in monitoring")
    check_dockerfile(manifest, problems)
    check_observability(problems)
    check_workflows(problems)
    return rendered


def self_test(renderer: list[str] | None) -> list[str]:
    """Each broken input must produce a problem; returns the ones missed."""
    manifest = load_spin_manifest()
    crds = crd_schemas()
    base = {name: kustomize_lite.build(os.path.join(ROOT, "k8s", "overlays", name)) for name in ("dev", "prod-plain")}

    def spinapp(docs):
        return next(d for d in docs if d["kind"] == "SpinApp")

    def plain(docs):
        return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == APP)

    # label -> (overlay, mutation, a words the problem report must contain)
    cases = {
        "unknown SpinApp field": ("dev", lambda d: spinapp(d)["spec"].update(replicaz=2), "replicaz"),
        "undefined variable": (
            "dev",
            lambda d: spinapp(d)["spec"]["variables"].append({"name": "no_such_variable", "value": "x"}),
            "not in spin.toml",
        ),
        "secret variable from a ConfigMap": (
            "dev",
            lambda d: spinapp(d)["spec"]["variables"].__setitem__(
                1, {"name": "jwt_secret", "valueFrom": {"configMapKeyRef": {"name": "ragspin-config", "key": "admin_username"}}}
            ),
            "must come from a Secret",
        ),
        "missing executor": ("dev", lambda d: spinapp(d)["spec"].update(executor="nope"), "executor 'nope'"),
        "runtime config without KV": (
            "dev",
            lambda d: next(x for x in d if x["kind"] == "Secret" and x["metadata"]["name"] == "ragspin-runtime-config")["data"].update(
                {"runtime-config.toml": base64.b64encode(b'[sqlite_database.default]\ntype = "libsql"\nurl = "http://x"\ntoken = ""\n').decode()}
            ),
            "key-value store 'default'",
        ),
        "bad k8s field": ("prod-plain", lambda d: plain(d)["spec"]["template"]["spec"].update(containerz=[]), "containerz"),
        "maxUnavailable 1": (
            "prod-plain",
            lambda d: plain(d)["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
            "maxUnavailable: 0",
        ),
        "unpinned image": (
            "prod-plain",
            lambda d: plain(d)["spec"]["template"]["spec"]["containers"][0].update(image="x/y:latest"),
            "must be pinned",
        ),
        "wrong readiness path": (
            "dev",
            lambda d: spinapp(d)["spec"]["checks"]["readiness"]["httpGet"].update(path="/healthz"),
            "readiness probe",
        ),
        "invocation memory above limit": (
            "dev",
            lambda d: spinapp(d)["spec"]["invocationLimits"].update(memory="4Gi"),
            "exceeds resources.limits.memory",
        ),
    }
    missed = []
    for label, (overlay, mutate, expected) in cases.items():
        docs = copy.deepcopy(base[overlay])
        mutate(docs)
        problems = Problems()
        check_overlay(overlay, docs, manifest, problems, crds)
        if not any(expected in p for p in problems.items):
            missed.append(f"{label} (reported: {problems.items})")
    # Runtime config: a store spin.toml uses but the file lacks.
    problems = Problems()
    check_runtime_config('[key_value_store.default]\ntype = "redis"\nurl = "redis://x:6379"\n', "self-test", manifest, problems, cluster=True)
    if not any("SQLite database 'default'" in p for p in problems.items):
        missed.append("runtime config without SQLite")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--self-test", action="store_true", help="also check that broken inputs are caught")
    parser.add_argument("--render", metavar="OVERLAY", help="print one overlay as rendered, and exit")
    args = parser.parse_args()
    renderer = kustomize_command()
    if args.render:
        problems = Problems()
        docs = render(os.path.join(ROOT, "k8s", "overlays", args.render), problems, renderer)
        print(yaml.safe_dump_all(docs, sort_keys=False))
        return 0
    if not os.path.isdir(os.path.join(SHARED, "schemas", "spinkube")):
        print(f"deploy-check: {SHARED}/schemas/spinkube not found (../shared beside the repository)", file=sys.stderr)
        return 1
    print(f"deploy-check: rendering with {' '.join(renderer) if renderer else 'scripts/kustomize_lite.py only (no kustomize found)'}")
    problems = Problems()
    rendered = run_all(problems, renderer)
    for name, docs in rendered.items():
        kinds = sorted({d["kind"] for d in docs})
        print(f"  overlay {name}: {len(docs)} resources ({', '.join(kinds)})")
    failed = 0
    if args.self_test:
        missed = self_test(renderer)
        for label in missed:
            print(f"  self-test: a broken input was not caught: {label}")
        failed += len(missed)
        print(f"  self-test: {SELF_TESTS - len(missed)} of {SELF_TESTS} broken inputs caught")
    for p in problems.items:
        print(f"  FAIL {p}")
    failed += len(problems.items)
    passed = problems.checks - len(problems.items)
    print(f"deploy-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
