"""``target: compose`` against the real engine: the app plus a database-like service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml

from conveyor.docker.deploy import deploy
from conveyor.docker.deploy.compose import (
    COMPOSE_FILE,
    compose_command,
    project_containers,
    remove_project,
)
from conveyor.docker.history import DeployHistory
from conveyor.errors import DeployError, HealthCheckError
from conveyor.spec.model import Deploy
from tests.docker.deploy_support import build_app, get, request
from tests.docker.fixtures import free_port

pytestmark = pytest.mark.docker


def _compose_available() -> bool:
    try:
        compose_command()
    except DeployError:
        return False
    return True


@pytest.mark.skipif(not _compose_available(), reason="no docker compose / docker-compose")
def test_compose_app_with_database_service(
    docker_client: docker.DockerClient,
    unique: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique("shop")
    port = free_port()
    tag = unique("app")
    v1, v2, bad = f"{tag}:v1", f"{tag}:v2", f"{tag}:bad"
    build_app(docker_client, v1, "v1")
    build_app(docker_client, v2, "v2")
    build_app(docker_client, bad, "bad", healthy=False)
    monkeypatch.setenv("DB_PASSWORD", "pw-not-in-files")
    spec = Deploy.model_validate(
        {
            "target": "compose",
            "name": name,
            "ports": [f"{port}:8080"],
            "env": {"DB_HOST": "db", "GREETING": "cost is $5"},
            "secrets": {"DB_PASSWORD": "db-password"},
            "volumes": ["data:/data"],
            "health": {"http": "/healthz", "timeout": "4s", "interval": "500ms"},
            "services": [
                {
                    "name": "db",
                    "image": v1,  # a busybox httpd standing in for a database
                    "env": {"ROLE": "db"},
                    "volumes": ["dbdata:/var/lib/db"],
                    "health": {"cmd": ["test", "-f", "/www/healthz"], "interval": "500ms"},
                }
            ],
        }
    )
    workdir = tmp_path / "checkout"
    workdir.mkdir()

    first = request(spec, v1, workdir=workdir, state=tmp_path / "state")
    try:
        result = deploy(first)
        assert get(f"http://127.0.0.1:{port}/version") == (200, "v1")
        assert get(f"http://127.0.0.1:{port}/greeting") == (200, "cost is $5")
        stored = DeployHistory(docker_client, name).read_file(COMPOSE_FILE)
        assert stored is not None
        text = stored.decode()
        assert "pw-not-in-files" not in text
        doc = yaml.safe_load(text)
        assert doc["services"]["app"]["environment"]["DB_PASSWORD"] == "${DB_PASSWORD}"
        assert doc["services"]["app"]["depends_on"] == {"db": {"condition": "service_healthy"}}
        assert result.details["compose_file"] == f"compose.yml in volume {name}-history"

        db = project_containers(docker_client, name, "db")
        assert len(db) == 1
        assert db[0].attrs["State"]["Health"]["Status"] == "healthy"
        app = project_containers(docker_client, name, "app")[0]
        assert "DB_PASSWORD=pw-not-in-files" in app.attrs["Config"]["Env"]
        assert set(app.attrs["NetworkSettings"]["Networks"]) == set(
            db[0].attrs["NetworkSettings"]["Networks"]
        )
        assert {v.name for v in docker_client.volumes.list(filters={"name": name})} >= {
            f"{name}_data",
            f"{name}_dbdata",
        }

        deploy(request(spec, v2, workdir=workdir, state=tmp_path / "state"))
        assert get(f"http://127.0.0.1:{port}/version") == (200, "v2")
        assert get(f"http://127.0.0.1:{port}/data/note") == (200, "written-by-v1")
        assert project_containers(docker_client, name, "db")[0].id == db[0].id  # db untouched

        with pytest.raises(HealthCheckError) as failed:
            deploy(request(spec, bad, workdir=workdir, state=tmp_path / "state"))
        assert failed.value.health_log
        assert get(f"http://127.0.0.1:{port}/version") == (200, "v2")  # previous file restored
    finally:
        remove_project(docker_client, first, volumes=True)
