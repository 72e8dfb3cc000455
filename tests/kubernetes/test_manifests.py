"""Rendered manifests: golden files beside their specs, offline validation against the official
OpenAPI schemas of several Kubernetes minor versions (``kubernetes-validate``, strict: unknown fields
are errors), byte stability, and the spec rules of ``target: kubernetes``.

Regenerate the golden files after an intended change and review the diff::

    CONVEYOR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/kubernetes/test_manifests.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conveyor.errors import SpecError
from conveyor.kubernetes.manifests import MANAGED, version_label
from conveyor.kubernetes.render import render_spec
from conveyor.spec.load import load_spec

GOLDEN = Path(__file__).parent / "golden"
SPECS = sorted(GOLDEN.glob("*/spec.yml"))
UPDATE = os.environ.get("CONVEYOR_UPDATE_GOLDEN") == "1"
# three supported minor versions, oldest to newest that kubernetes-validate ships
VERSIONS = ("1.29", "1.32", "1.35")
VALUES = {"sha": "0123456789abcdef0123456789abcdef01234567", "registry": "registry.example.com"}


def rendered(spec_path: Path) -> dict[str, str]:
    spec = load_spec(spec_path).spec
    return {m.filename: m.yaml() for s in render_spec(spec, VALUES) for m in s.manifests}


def validate(body: Any, version: str) -> None:
    kubernetes_validate.validate(body, version, strict=True)


def test_there_are_golden_specs() -> None:
    assert len(SPECS) >= 3


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.parent.name for p in SPECS])
def test_golden(spec_path: Path) -> None:
    files = rendered(spec_path)
    expected_dir = spec_path.parent / "k8s"
    if UPDATE:
        expected_dir.mkdir(exist_ok=True)
        for old in expected_dir.glob("*.yaml"):
            old.unlink()
        for name, text in files.items():
            (expected_dir / name).write_text(text, encoding="utf-8", newline="\n")
    assert sorted(files) == sorted(p.name for p in expected_dir.glob("*.yaml"))
    for name, text in files.items():
        assert text == (expected_dir / name).read_text(encoding="utf-8"), f"{name} differs"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("spec_path", SPECS, ids=[p.parent.name for p in SPECS])
def test_every_manifest_validates_against_the_openapi_schema(spec_path: Path, version: str) -> None:
    for name, text in rendered(spec_path).items():
        body = yaml.safe_load(text)
        validate(body, version)
        assert body["metadata"]["labels"][MANAGED] == "conveyor", name


def test_the_validator_would_catch_a_bad_manifest() -> None:
    spec = load_spec(SPECS[0]).spec
    body = next(m.body for m in render_spec(spec, VALUES)[0].manifests if m.kind == "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(dict(body)))
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad, VERSIONS[0])
    bad = yaml.safe_load(yaml.safe_dump(dict(body)))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad, VERSIONS[-1])


def test_rendering_is_byte_stable() -> None:
    for spec_path in SPECS:
        assert rendered(spec_path) == rendered(spec_path)


def test_zero_downtime_defaults_and_secret_references() -> None:
    files = rendered(GOLDEN / "full" / "spec.yml")
    deployment = yaml.safe_load(files["deployment-payments.yaml"])
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "payments-db", "key": "password"}},
    } in env
    assert yaml.safe_load(files["service-payments.yaml"])["spec"]["ports"][0]["nodePort"] == 30443


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("registry.example.com/a/b:1.2.3", "1.2.3"),
        ("localhost:5000/a/b", "latest"),
        ("r/a@sha256:4f8d1c2a9b3e7f60", "4f8d1c2a9b3e"),
        ("r/a:" + "x" * 100, "x" * 63),
        ("r/a:_v1_", "v1"),
    ],
)
def test_version_label_is_a_legal_label_value(image: str, label: str) -> None:
    assert version_label(image) == label


def write_spec(tmp_path: Path, deploy: str) -> Path:
    path = tmp_path / "spec.yml"
    path.write_text(
        "apiVersion: conveyor/v1\nproject: demo/web\njenkins: {job: demo/web}\nstages:\n"
        "  - name: deploy\n    deploy:\n" + deploy
    )
    return path


@pytest.mark.parametrize(
    ("deploy", "message"),
    [
        (
            "      target: kubernetes\n      image: a:1\n      volumes: ['./conf:/etc/app:ro']\n",
            "volumes[0] './conf:/etc/app:ro' is a bind mount: a host path does not travel",
        ),
        (
            "      target: kubernetes\n      image: a:1\n      volumes: ['/srv/data:/data']\n",
            "is a bind mount",
        ),
        ("      target: kubernetes\n      name: 9web\n      image: a:1\n", "RFC 1035"),
        (
            "      target: kubernetes\n      image: a:1\n      secrets: {A: creds}\n",
            "kubernetes.secrets",
        ),
        (
            "      target: docker\n      image: a:1\n      ports: ['80']\n      kubernetes: {}\n",
            "needs target: kubernetes",
        ),
        ("      target: kubernetes\n      image: a:1\n      health: {http: /h}\n", "needs `ports`"),
        (
            "      target: kubernetes\n      image: a:1\n      ports: ['80']\n"
            "      kubernetes: {service_type: NodePort, node_ports: {80: 8080}}\n",
            "not in the valid range 30000-32767",
        ),
        (
            "      target: kubernetes\n      image: a:1\n      kubernetes: {namespace: Prod}\n",
            "kubernetes.namespace",
        ),
        (
            "      target: kubernetes\n      image: a:1\n"
            "      kubernetes: {secrets: {A: {secret: Bad_Name, key: k}}}\n",
            "kubernetes.secrets.A.secret",
        ),
    ],
)
def test_spec_rules_of_the_kubernetes_target(tmp_path: Path, deploy: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, deploy))
    assert message in str(caught.value)
    assert f"{tmp_path / 'spec.yml'}:" in str(caught.value) or "spec.yml:" in str(caught.value)
