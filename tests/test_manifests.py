"""The Kubernetes manifests, checked offline against the schemas they claim (infra/schemas/):
KubeRay's RayCluster/RayJob CRD schemas (v1.7.0) and the Kubernetes v1.33 core types, both
strict (an unknown field is an error, as `kubectl apply --validate=strict` makes it), plus the
security settings the project promises: token auth on every Ray cluster, the dashboard on all
interfaces only with it, and the flows' Jobs address pointing at the cluster's head service.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "infra" / "schemas"
CRDS = {("ray.io/v1", "RayCluster"): "kuberay-v1.7.0-rayclusters.json",
        ("ray.io/v1", "RayJob"): "kuberay-v1.7.0-rayjobs.json"}
CORE = {("networking.k8s.io/v1", "NetworkPolicy"): "io.k8s.api.networking.v1.NetworkPolicy"}


def _strict(schema):
    """OpenAPI v3 object schemas reject fields they do not declare (structural CRDs prune them
    silently; strict field validation refuses them). Free-form objects stay free."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _crd_validator(name: str) -> jsonschema.Draft7Validator:
    doc = json.loads((SCHEMAS / name).read_text())
    assert doc["source"]["tag"] == "v1.7.0" and doc["version"] == "v1"
    return jsonschema.Draft7Validator(_strict(doc["openAPIV3Schema"]))


def _core_validator(definition: str) -> jsonschema.Draft202012Validator:
    doc = json.loads((SCHEMAS / "kubernetes-v1.33.0-strict-defs.json").read_text())
    return jsonschema.Draft202012Validator({"$defs": doc["$defs"], "$ref": f"#/$defs/{definition}"})


def _manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((ROOT / "infra" / "k8s").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _pod_templates(kind: str, doc: dict) -> list[dict]:
    spec = doc["spec"]["rayClusterSpec"] if kind == "RayJob" else doc["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec.get("workerGroupSpecs", [])]


def test_every_manifest_is_valid_against_its_schema():
    docs = _manifests()
    assert {d["kind"] for _, d in docs} >= {"RayCluster", "RayJob", "NetworkPolicy"}
    pod_template = _core_validator("io.k8s.api.core.v1.PodTemplateSpec")
    for name, doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in CRDS:
            errors = _errors(_crd_validator(CRDS[key]), doc)
            # the pod templates inside are core PodTemplateSpecs: checked against the core types too
            for tpl in _pod_templates(doc["kind"], doc):
                errors += _errors(pod_template, tpl)
        elif key in CORE:
            errors = _errors(_core_validator(CORE[key]), doc)
        else:
            pytest.fail(f"{name}: no schema vendored for {key}")
        assert not errors, f"{name} ({doc['kind']}): " + "; ".join(errors[:10])


def test_the_validators_refuse_what_kubernetes_would_refuse():
    """Not vacuous: an unknown field, a wrong type and a bad enum each fail."""
    (name, cluster), = [(n, d) for n, d in _manifests() if d["kind"] == "RayCluster"]
    crd = _crd_validator(CRDS[("ray.io/v1", "RayCluster")])
    bad = copy.deepcopy(cluster)
    bad["spec"]["headGroupSpec"]["rayStartParam"] = {"num-cpus": "0"}  # a typo
    assert _errors(crd, bad)
    bad = copy.deepcopy(cluster)
    bad["spec"]["workerGroupSpecs"][0]["replicas"] = "four"
    assert _errors(crd, bad)
    bad = copy.deepcopy(cluster)
    bad["spec"]["authOptions"]["mode"] = "password"
    assert _errors(crd, bad)
    tpl = copy.deepcopy(cluster["spec"]["headGroupSpec"]["template"])
    tpl["spec"]["containers"][0]["imagePullPolice"] = "Always"
    assert _errors(_core_validator("io.k8s.api.core.v1.PodTemplateSpec"), tpl)


def test_every_ray_cluster_has_token_auth_and_the_flows_reach_it_through_its_jobs_api():
    clusters = {}
    for name, doc in _manifests():
        if doc["kind"] not in ("RayCluster", "RayJob"):
            continue
        spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
        auth = spec.get("authOptions") or {}
        assert auth.get("mode") == "token" and auth.get("secretName"), f"{name}: token auth must be on"
        host = spec["headGroupSpec"]["rayStartParams"].get("dashboard-host", "127.0.0.1")
        assert host in ("127.0.0.1", "localhost") or auth.get("mode") == "token", name
        assert spec["rayVersion"] == "2.60.0", name
        if doc["kind"] == "RayCluster":
            clusters[doc["metadata"]["name"]] = spec
    pool = yaml.safe_load((ROOT / "infra" / "prefect.yaml").read_text())["definitions"]["work_pool"]
    env = pool["job_variables"]["env"]
    assert env["RAY_ADDRESS"] in {f"http://{n}-head-svc:8265" for n in clusters}, env["RAY_ADDRESS"]
    assert env["RAY_AUTH_MODE"] == "token"
    (policy,) = [d for _, d in _manifests() if d["kind"] == "NetworkPolicy"]
    admitted = [rule for rule in policy["spec"]["ingress"] if rule.get("ports")]
    labels = pool["job_variables"]["labels"]
    assert any(p["podSelector"]["matchLabels"].items() <= labels.items() for rule in admitted for p in rule["from"])


def test_the_image_holds_every_package_the_distribution_installs():
    """infra/Dockerfile copies each package `pip install .` needs (compute/ was once missing)."""
    import re
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "infra" / "Dockerfile").read_text(), flags=re.M))
    assert packages <= copied, f"not in the image: {sorted(packages - copied)}"
