"""Docker-in-Docker: the socket mode and a nested daemon conveyor starts, uses and removes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from conveyor.docker.build import BuildRequest, build_image
from conveyor.docker.dind import docker_engine, nested_daemon, run_kwargs
from conveyor.errors import ConfigError, DockerError
from conveyor.spec.model import Agent, DindOptions
from tests.docker.fixtures import privileged_refused


def test_run_kwargs_from_fallback_args() -> None:
    kwargs = run_kwargs(
        [
            *DindOptions().fallback_args,
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs /var/lib/docker:exec",
            "-e=A=1",
        ]
    )
    assert kwargs == {
        "cap_add": ["ALL"],
        "cap_drop": ["SYS_RESOURCE"],
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "systempaths_unconfined": True,
        "binds": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
        "tmpfs": {"/var/lib/docker": "exec"},
        "environment": {"A": "1"},
    }
    assert run_kwargs(["--privileged"]) == {"privileged": True}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pid=host"], "unsupported dind argument --pid"),
        (["--cap-add"], "needs a value"),
        (["ALL"], "not an option"),
    ],
)
def test_run_kwargs_rejects(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_kwargs(args)


@pytest.mark.docker
def test_nested_daemon_builds_and_runs_an_image(
    tmp_path: Path, unique: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        'FROM busybox:latest\nRUN echo "built inside" > /msg\nCMD ["cat", "/msg"]\n'
    )
    name = unique("dind")
    agent = Agent(docker="dind")  # privileged first, as real users run it
    with docker_engine(agent, host=docker_client, images=["busybox:latest"], name=name) as engine:
        assert engine.nested is not None
        daemon = engine.nested
        assert daemon.mode == ("fallback" if privileged_refused(docker_client) else "privileged")
        nested_info = engine.client.info()
        assert nested_info["ID"] != docker_client.info()["ID"]
        assert nested_info["Driver"] == "vfs"
        result = build_image(engine.client, BuildRequest(context=context, tags=("nested/app:1",)))
        out = engine.client.containers.run("nested/app:1", remove=True)
        assert out.decode().strip() == "built inside"
        assert result.image_id in {i.id for i in engine.client.images.list()}
        # the image exists only in the nested daemon
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get("nested/app:1")
        socket_path = Path(daemon.docker_host.removeprefix("unix://"))
        assert socket_path.is_socket()
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(daemon.container_id)
    assert not socket_path.parent.exists()


@pytest.mark.docker
def test_nested_daemon_that_dies_fails_fast_with_its_log(
    tmp_path: Path, unique: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    name = unique("baddind")
    options = DindOptions(privileged=False, storage_driver="no-such-driver")
    with pytest.raises(DockerError, match="stopped before it answered") as info:  # noqa: SIM117
        with nested_daemon(options, host=docker_client, name=name, timeout=60):
            pass
    assert "no-such-driver" in str(info.value)
    assert not [c for c in docker_client.containers.list(all=True) if c.name == name]


@pytest.mark.docker
def test_socket_mode_uses_the_host_engine(docker_client: docker.DockerClient) -> None:
    with docker_engine(Agent(docker="socket"), host=docker_client) as engine:
        assert engine.nested is None
        assert engine.docker_host.startswith(("unix://", "tcp://"))
        if not os.environ.get("DOCKER_HOST"):
            assert engine.docker_host == "unix:///var/run/docker.sock"
        assert engine.client.info()["ID"] == docker_client.info()["ID"]
    with (
        pytest.raises(DockerError, match=r"agent\.docker: none"),
        docker_engine(Agent(docker="none"), host=docker_client),
    ):
        pass
