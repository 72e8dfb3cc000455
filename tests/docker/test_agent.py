"""The agent image: conveyor inside it builds an image through the mounted Docker socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.docker.fixtures import git_commit, run_output

pytestmark = pytest.mark.docker


def test_agent_has_its_tools(docker_client: docker.DockerClient, agent_image: str) -> None:
    out = run_output(
        docker_client,
        agent_image,
        ["sh", "-c", "conveyor --version && docker --version && git --version && python --version"],
    )
    assert "conveyor" in out and "Docker version" in out and "git version" in out
    assert "Python 3.11" in out


def test_agent_builds_through_the_mounted_socket(
    tmp_path: Path,
    unique: Callable[[str], str],
    docker_client: docker.DockerClient,
    agent_image: str,
) -> None:
    repo = unique("from-agent")
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / "conveyor.yml").write_text(
        f"""\
apiVersion: conveyor/v1
project: demo/app
jenkins: {{job: demo/app}}
stages:
  - name: image
    build:
      tags: ["{repo}:{{short_sha}}"]
"""
    )
    sha = git_commit(
        workdir,
        {"Dockerfile": 'FROM busybox:latest\nCOPY msg /msg\nCMD ["cat", "/msg"]\n', "msg": "hi\n"},
    )
    logs = docker_client.containers.run(
        agent_image,
        ["conveyor", "build", "/workspace/conveyor.yml", "--workdir", "/workspace", "--json"],
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(workdir): {"bind": "/workspace", "mode": "rw"},
        },
        name=unique("agent-run"),
        stdout=True,
        stderr=False,
    )
    data = json.loads(logs.decode())
    assert data["tags"] == [f"{repo}:{sha[:8]}"]
    image = docker_client.images.get(f"{repo}:{sha[:8]}")  # built by the host engine
    assert image.labels["org.opencontainers.image.revision"] == sha
    assert run_output(docker_client, image.id) == "hi\n"
