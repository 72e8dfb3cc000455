"""``target: swarm`` against a real single-node Swarm: roll forward, automatic rollback, rollback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from conveyor.docker.deploy import deploy, rollback
from conveyor.docker.deploy.swarm import find_service, remove_service
from conveyor.docker.history import DeployHistory
from conveyor.errors import HealthCheckError
from conveyor.spec.model import Deploy
from tests.docker.deploy_support import build_app, request, wait_body

pytestmark = pytest.mark.docker


@pytest.fixture
def swarm(docker_client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    """An active swarm; left as found (a swarm this fixture initialised is left again)."""
    state = docker_client.info().get("Swarm", {}).get("LocalNodeState")
    had_gwbridge = bool(docker_client.networks.list(names=["docker_gwbridge"]))
    initialised = False
    if state == "inactive":
        docker_client.swarm.init(advertise_addr="127.0.0.1")
        initialised = True
    elif state != "active":
        pytest.skip(f"swarm is {state}")
    try:
        yield docker_client
    finally:
        if initialised:
            docker_client.swarm.leave(force=True)
            if not had_gwbridge:  # swarm init creates it and leaving keeps it
                for network in docker_client.networks.list(names=["docker_gwbridge"]):
                    network.remove()


def _image_of(client: docker.DockerClient, name: str) -> str:
    service = find_service(client, name)
    assert service is not None
    return str(service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])


def test_swarm_service_rolls_forward_and_back(
    swarm: docker.DockerClient, unique: Callable[[str], str], tmp_path: Path
) -> None:
    name = unique("svc")
    tag = unique("app")
    v1, v2, bad = f"{tag}:v1", f"{tag}:v2", f"{tag}:bad"
    for image, version in ((v1, "v1"), (v2, "v2")):
        build_app(swarm, image, version)
    build_app(swarm, bad, "bad", healthy=False)
    spec = Deploy.model_validate(
        {
            "target": "swarm",
            "strategy": "rolling",
            "name": name,
            "ports": ["8080"],  # host mode, a port per task
            "replicas": 1,
            "placement": ["node.role==manager"],
            "resources": {"cpus": 0.5, "memory": "64m"},
            "env": {"GREETING": "swarm"},
            "health": {"http": "/healthz", "timeout": "3s", "interval": "500ms"},
        }
    )
    state = tmp_path / "state"
    workdir = tmp_path
    try:
        first = deploy(request(spec, v1, workdir=workdir, state=state))
        assert len(first.endpoints) == 1
        assert wait_body(f"http://{first.endpoints[0]}/version", "v1") == "v1"
        service = find_service(swarm, name)
        assert service is not None
        task_template = service.attrs["Spec"]["TaskTemplate"]
        assert task_template["Placement"]["Constraints"] == ["node.role==manager"]
        assert task_template["Resources"]["Limits"]["MemoryBytes"] == 64 * 1024 * 1024
        update = service.attrs["Spec"]["UpdateConfig"]
        assert (update["Order"], update["FailureAction"]) == ("start-first", "rollback")

        second = deploy(request(spec, v2, workdir=workdir, state=state))
        assert _image_of(swarm, name) == v2
        assert wait_body(f"http://{second.endpoints[0]}/version", "v2") == "v2"

        with pytest.raises(HealthCheckError) as failed:
            deploy(request(spec, bad, workdir=workdir, state=state))
        assert "rolled back" in failed.value.message
        assert bad in failed.value.health_log
        assert _image_of(swarm, name) == v2  # swarm restored the previous spec by itself
        svc = find_service(swarm, name)
        assert svc is not None
        assert svc.attrs["UpdateStatus"]["State"] == "rollback_completed"

        back = rollback(request(spec, "ignored", workdir=workdir, state=state))
        assert back.image == v1
        assert _image_of(swarm, name) == v1
        assert wait_body(f"http://{back.endpoints[0]}/version", "v1") == "v1"
        results = [(r.action, r.image, r.result) for r in DeployHistory(swarm, name).records()]
        assert results == [
            ("rollback", v1, "success"),
            ("deploy", bad, "failure"),
            ("deploy", v2, "success"),
            ("deploy", v1, "success"),
        ]
    finally:
        remove_service(swarm, name)
