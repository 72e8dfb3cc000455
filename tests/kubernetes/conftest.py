"""Fixtures of the Kubernetes target's tests: an emulator whose pods' readiness the real Docker
engine decides, a kubeconfig pointing at it (``KUBECONFIG``), and deploy requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.docker.deploy.model import DeployRequest
from conveyor.kubernetes.client import KubeClient
from conveyor.kubernetes.config import connect
from conveyor.spec.model import Deploy
from tests.emulators.kubernetes import TOKEN, DockerReadiness, KubernetesEmulator


def write_kubeconfig(path: Path, url: str, token: str = TOKEN) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": url}}],
                "users": [
                    {"name": "deployer", "user": {"token": token}},
                    {"name": "stranger", "user": {"token": "wrong-token"}},
                ],
                "contexts": [
                    {"name": "emu", "context": {"cluster": "emu", "user": "deployer"}},
                    {"name": "emu-stranger", "context": {"cluster": "emu", "user": "stranger"}},
                ],
                "current-context": "emu",
            }
        )
    )
    return path


@pytest.fixture
def kubeconfig(
    kube_emulator: KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    path = write_kubeconfig(tmp_path / "kubeconfig", kube_emulator.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("CONVEYOR_KUBE_CONTEXT", raising=False)
    return path


@pytest.fixture
def live_cluster(
    make_kube_emulator: Callable[..., KubernetesEmulator],
    docker_readiness: DockerReadiness,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> KubernetesEmulator:
    """An emulator with namespace ``shop`` whose pods get Ready by the Docker engine's answer."""
    emulator = make_kube_emulator(readiness=docker_readiness, namespaces=("default", "shop"))
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", emulator.url)))
    monkeypatch.delenv("CONVEYOR_KUBE_CONTEXT", raising=False)
    return emulator


@pytest.fixture
def kube() -> Iterator[Callable[[], KubeClient]]:
    made: list[KubeClient] = []

    def make() -> KubeClient:
        client = KubeClient(connect())
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def request_for(image: str, tmp_path: Path, **deploy: Any) -> DeployRequest:
    block: dict[str, Any] = {
        "target": "kubernetes",
        "name": "web",
        "replicas": 2,
        "ports": ["80:8000"],
        "health": {"http": "/healthz", "interval": "1s", "timeout": "20s"},
        "kubernetes": {"namespace": "shop", "progress_deadline": 8},
    }
    block.update(deploy)
    return DeployRequest(
        deploy=Deploy.model_validate(block),
        image=image,
        project="demo/web",
        spec_file="pipelines/web.yml",
        workdir=tmp_path,
        state_dir=tmp_path,
        stage="deploy",
    )
