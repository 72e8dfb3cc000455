"""``target: docker`` against the real engine: blue-green through caddy, recreate, volumes, rollback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from conveyor.docker.deploy import DeployRequest, deploy, rollback
from conveyor.docker.deploy.docker import app_containers, remove_deploy
from conveyor.docker.deploy.mounts import HostPaths
from conveyor.docker.deploy.placement import host_paths
from conveyor.docker.deploy.proxy import find_proxy
from conveyor.docker.history import DeployHistory
from conveyor.errors import DeployError, HealthCheckError
from conveyor.spec.model import Deploy
from tests.docker.deploy_support import build_app, get, request
from tests.docker.fixtures import free_port

pytestmark = pytest.mark.docker


class App:
    """One deploy name with its images, proxy port, state dir and workdir; removed afterwards."""

    def __init__(
        self, client: docker.DockerClient, unique: Callable[[str], str], tmp: Path
    ) -> None:
        self.client = client
        self.name = unique("web")
        self.port = free_port()
        self.workdir = tmp / "checkout"
        self.workdir.mkdir()
        self.state = tmp / "state"
        self.images: dict[str, str] = {}
        self._unique = unique

    def image(self, version: str, *, healthy: bool = True) -> str:
        tag = f"{self._unique('app')}:{version}"
        build_app(self.client, tag, version, healthy=healthy)
        self.images[version] = tag
        return tag

    def spec(self, **extra: object) -> Deploy:
        body: dict[str, object] = {
            "name": self.name,
            "ports": [f"{self.port}:8080"],
            "health": {"http": "/healthz", "timeout": "10s", "interval": "200ms"},
        }
        body.update(extra)
        return Deploy.model_validate(body)

    def request(self, deploy: Deploy, image: str) -> DeployRequest:
        return request(deploy, image, workdir=self.workdir, state=self.state)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def apps(self) -> list[str]:
        return sorted(str(c.name) for c in app_containers(self.client, self.name))


@pytest.fixture
def app(
    docker_client: docker.DockerClient, unique: Callable[[str], str], tmp_path: Path
) -> Iterator[App]:
    made = App(docker_client, unique, tmp_path)
    try:
        yield made
    finally:
        remove_deploy(docker_client, made.name, volumes=True)


def test_deploy_redeploy_and_rollback_through_the_proxy(app: App) -> None:
    spec = app.spec()
    v1, v2 = app.image("v1"), app.image("v2")

    first = deploy(app.request(spec, v1))
    assert get(app.url("/version")) == (200, "v1")
    assert first.endpoints == (f"127.0.0.1:{app.port}",)
    assert first.previous_image is None
    assert app.apps() == [f"{app.name}-blue"]
    blue = app.client.containers.get(f"{app.name}-blue")
    assert blue.labels["conveyor.deploy"] == app.name
    assert blue.labels["conveyor.version"] == v1
    assert blue.labels["conveyor.color"] == "blue"
    assert blue.labels["conveyor.project"] == "group/app"
    assert blue.attrs["HostConfig"]["PortBindings"] in (None, {})  # the proxy owns the port

    second = deploy(app.request(spec, v2))
    assert get(app.url("/version")) == (200, "v2")
    assert second.previous_image == v1
    assert app.apps() == [f"{app.name}-green"]  # old colour drained and removed

    back = rollback(app.request(spec, "ignored"))
    assert back.action == "rollback"
    assert back.image == v1
    assert get(app.url("/version")) == (200, "v1")
    assert app.apps() == [f"{app.name}-blue"]

    records = DeployHistory(app.client, app.name).records()
    assert [(r.action, r.image, r.result) for r in records] == [
        ("rollback", v1, "success"),
        ("deploy", v2, "success"),
        ("deploy", v1, "success"),
    ]
    assert records[0].previous_image == v2
    assert records[0].image_id == app.client.images.get(v1).id
    assert all(r.digest.startswith("sha256:") and r.finished for r in records)


def test_unhealthy_new_version_leaves_the_old_one_serving(app: App) -> None:
    spec = app.spec(health={"http": "/healthz", "timeout": "2s", "interval": "200ms"})
    v1, bad = app.image("v1"), app.image("bad", healthy=False)
    deploy(app.request(spec, v1))

    with pytest.raises(HealthCheckError) as failed:
        deploy(app.request(spec, bad))
    assert "never became healthy" in failed.value.message
    assert "/healthz" in failed.value.health_log
    assert "attempt 1" in failed.value.health_log

    assert get(app.url("/version")) == (200, "v1")
    assert app.apps() == [f"{app.name}-blue"]  # the unhealthy green one is gone
    history = DeployHistory(app.client, app.name)
    latest = history.records()[0]
    assert (latest.image, latest.result) == (bad, "failure")
    assert "never became healthy" in latest.message
    current = history.current()
    assert current is not None and current.image == v1


def test_first_deploy_that_never_gets_healthy_leaves_nothing(app: App) -> None:
    spec = app.spec(health={"http": "/healthz", "timeout": "1s", "interval": "200ms"})
    with pytest.raises(HealthCheckError):
        deploy(app.request(spec, app.image("bad", healthy=False)))
    assert app.apps() == []
    assert find_proxy(app.client, app.name) is None
    assert get(app.url("/version"))[0] == 0


def test_named_volume_data_survives_recreate_deploys_and_rollback(app: App) -> None:
    spec = app.spec(strategy="recreate", volumes=["data:/data"])
    v1, v2 = app.image("v1"), app.image("v2")
    deploy(app.request(spec, v1))
    assert get(app.url("/data/note")) == (200, "written-by-v1")

    deploy(app.request(spec, v2))
    assert get(app.url("/version")) == (200, "v2")
    assert get(app.url("/data/note")) == (200, "written-by-v1")  # v2 reads what v1 wrote

    rollback(app.request(spec, "ignored"))
    assert get(app.url("/version")) == (200, "v1")
    assert get(app.url("/data/note")) == (200, "written-by-v1")
    volume = app.client.volumes.get(f"{app.name}_data")
    assert volume.attrs["Labels"]["conveyor.deploy"] == app.name


def test_recreate_with_unhealthy_version_restores_the_old_container(app: App) -> None:
    spec = app.spec(
        strategy="recreate",
        health={"http": "/healthz", "timeout": "2s", "interval": "200ms"},
    )
    deploy(app.request(spec, app.image("v1")))
    with pytest.raises(HealthCheckError):
        deploy(app.request(spec, app.image("bad", healthy=False)))
    assert get(app.url("/version")) == (200, "v1")
    assert app.apps() == [f"{app.name}-blue"]


def test_env_secret_and_read_only_bind_mount(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = app.workdir / "conf"
    conf.mkdir()
    (conf / "settings.txt").write_text("from-the-checkout\n")
    monkeypatch.setenv("APP_TOKEN", "s3cr3t-value")
    spec = app.spec(
        env={"GREETING": "hello"},
        secrets={"APP_TOKEN": "app-token-credentials"},
        volumes=["./conf:/conf:ro"],
        restart="always",
    )
    result = deploy(app.request(spec, app.image("v1")))
    assert get(app.url("/greeting")) == (200, "hello")

    container = app.client.containers.get(result.details["container"])
    assert "APP_TOKEN=s3cr3t-value" in container.attrs["Config"]["Env"]
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert "s3cr3t-value" not in str(container.labels)
    read = container.exec_run(["cat", "/conf/settings.txt"])
    assert (read.exit_code, read.output.decode().strip()) == (0, "from-the-checkout")
    write = container.exec_run(["sh", "-c", "echo x > /conf/new.txt"])
    assert write.exit_code != 0
    assert "Read-only file system" in write.output.decode()
    assert not (conf / "new.txt").exists()
    mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == "/conf")
    assert (mount["Type"], mount["RW"], mount["Source"]) == ("bind", False, str(conf))
    history = DeployHistory(app.client, app.name).read_file("deploys.jsonl")
    assert history is not None and b"s3cr3t-value" not in history
    assert not app.state.exists()  # nothing is written to the local state directory


def test_missing_secret_and_missing_bind_source_fail_before_touching_anything(app: App) -> None:
    image = app.image("v1")
    with pytest.raises(DeployError, match="NOT_EXPORTED_ANYWHERE"):
        deploy(app.request(app.spec(secrets={"NOT_EXPORTED_ANYWHERE": "cred-id"}), image))
    with pytest.raises(DeployError, match="bind mount source"):
        deploy(app.request(app.spec(volumes=["./nope:/nope"]), image))
    assert app.apps() == []
    assert [r.result for r in DeployHistory(app.client, app.name).records()] == [
        "failure",
        "failure",
    ]


def _mountinfo(tmp: Path, container_id: str) -> Path:
    """A mount table like the one the engine gives each container (its ``hostname`` bind)."""
    line = (
        f"612 590 8:1 /var/lib/docker/containers/{container_id}/hostname /etc/hostname rw,relatime"
        " - ext4 /dev/sda1 rw\n"
    )
    path = tmp / "mountinfo"
    path.write_text("590 1 0:52 / / rw - overlay overlay rw\n" + line)
    return path


def test_host_paths_of_a_container_of_the_deploy_engine_and_of_another(
    docker_client: docker.DockerClient, unique: Callable[[str], str], tmp_path: Path
) -> None:
    volume = docker_client.volumes.create(unique("home"))
    agent = docker_client.containers.create(
        "python:3.11-slim",
        ["true"],
        name=unique("agent"),
        volumes={volume.name: {"bind": "/var/jenkins_home", "mode": "rw"}},
    )
    try:
        work = Path("/var/jenkins_home/workspace/job")
        found = host_paths(docker_client, work, mountinfo_path=_mountinfo(tmp_path, str(agent.id)))
        assert found is not None
        assert found.roots == (("/var/jenkins_home", volume.attrs["Mountpoint"]),)
        # a container this engine does not run: the checkout is invisible to it
        other = host_paths(docker_client, work, mountinfo_path=_mountinfo(tmp_path, "f" * 64))
        assert other == HostPaths(foreign=(str(work),))
        # not in a container at all: nothing to translate
        (tmp_path / "host").write_text("590 1 0:52 / / rw - ext4 /dev/sda1 rw\n")
        assert host_paths(docker_client, work, mountinfo_path=tmp_path / "host") is None
    finally:
        agent.remove(force=True)
        volume.remove(force=True)


def test_workspace_bind_to_another_engine_fails_before_deploying(app: App) -> None:
    (app.workdir / "conf").mkdir()
    spec = app.spec(volumes=["./conf:/conf:ro"])
    other = HostPaths(foreign=(str(app.workdir),), engine="tcp://apps.example.com:2376")
    with pytest.raises(DeployError, match="copy the files into the image") as failed:
        deploy(replace(app.request(spec, app.image("v1")), host_paths=other))
    assert "./conf:/conf:ro" in failed.value.message
    assert app.apps() == []


def test_rollback_without_an_earlier_version_is_an_error(app: App) -> None:
    spec = app.spec()
    with pytest.raises(DeployError, match="no successful deploy"):
        rollback(app.request(spec, "ignored"))
    deploy(app.request(spec, app.image("v1")))
    with pytest.raises(DeployError, match="no earlier good version"):
        rollback(app.request(spec, "ignored"))
    assert get(app.url("/version")) == (200, "v1")


def test_no_ports_command_health_and_probe_container(app: App) -> None:
    """Without ports there is no proxy: `cmd` health runs in the container, `http` from a probe."""
    by_cmd = app.spec(
        ports=[],
        strategy="recreate",
        health={"cmd": ["test", "-f", "/www/healthz"], "timeout": "2s", "interval": "200ms"},
    )
    first = deploy(app.request(by_cmd, app.image("v1")))
    assert first.endpoints == ()
    assert find_proxy(app.client, app.name) is None
    assert "exec test -f /www/healthz: healthy" in first.details["health_log"]

    with pytest.raises(HealthCheckError) as failed:
        deploy(app.request(by_cmd, app.image("bad", healthy=False)))
    assert "exec test -f /www/healthz" in failed.value.health_log
    (survivor,) = app_containers(app.client, app.name)
    assert survivor.name == f"{app.name}-blue"
    assert survivor.status == "running"  # recreate restored the old container

    by_http = app.spec(
        ports=[],
        strategy="recreate",
        health={"http": "/healthz", "port": 8080, "timeout": "5s", "interval": "200ms"},
    )
    second = deploy(app.request(by_http, app.images["v1"]))
    assert "GET http://" in second.details["health_log"]
    assert app.apps() == [f"{app.name}-green"]
    probes = app.client.containers.list(all=True, filters={"name": f"{app.name}-probe"})
    assert probes == []  # the probe container is gone after the gate
