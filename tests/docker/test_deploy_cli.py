"""``conveyor deploy / history / rollback`` as a user runs them (the real CLI, the real engine)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from conveyor.docker.deploy.docker import remove_deploy
from tests.docker.deploy_support import build_app, get
from tests.docker.fixtures import free_port, git_commit, run_env

pytestmark = pytest.mark.docker

SPEC = """\
apiVersion: conveyor/v1
project: demo/cli-web
jenkins:
  job: demo/cli-web
stages:
  - name: image
    build:
      tags: ["{image}:{{short_sha}}"]
  - name: deploy
    deploy:
      name: {name}
      ports: ["{port}:8080"]
      health:
        http: /healthz
        timeout: 3s
        interval: 200ms
"""


def _conveyor(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=run_env(env),
        timeout=300,
        check=False,
    )


def test_cli_deploy_history_rollback(
    docker_client: docker.DockerClient, unique: Callable[[str], str], tmp_path: Path
) -> None:
    name, repo, port = unique("cli"), unique("app"), free_port()
    v1, v2, bad = f"{repo}:v1", f"{repo}:v2", f"{repo}:bad"
    build_app(docker_client, v1, "v1")
    build_app(docker_client, v2, "v2")
    build_app(docker_client, bad, "bad", healthy=False)
    spec = tmp_path / "conveyor.yml"
    spec.write_text(SPEC.format(image=repo, name=name, port=port))
    env = {"CONVEYOR_STATE": str(tmp_path / "state")}
    url = f"http://127.0.0.1:{port}/version"
    try:
        done = _conveyor("deploy", str(spec), "--image", v1, "--json", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["image"], result["target"], result["action"]) == (v1, "docker", "deploy")
        assert result["endpoints"] == [f"127.0.0.1:{port}"]
        assert get(url) == (200, "v1")

        done = _conveyor(
            "deploy", str(spec), "--stage", "deploy", "--image", v2, cwd=tmp_path, env=env
        )
        assert done.returncode == 0, done.stderr
        assert f"deployed {v2}" in done.stdout
        assert f"previous: {v1}" in done.stdout
        assert get(url) == (200, "v2")

        done = _conveyor("deploy", str(spec), "--image", bad, cwd=tmp_path, env=env)
        assert done.returncode == 1
        assert "never became healthy" in done.stderr
        assert "health log:" in done.stderr and "/healthz" in done.stderr
        assert get(url) == (200, "v2")

        done = _conveyor("rollback", str(spec), "--json", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["image"] == v1
        assert get(url) == (200, "v1")

        done = _conveyor("history", str(spec), "--json", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert [(r["action"], r["image"], r["result"]) for r in rows] == [
            ("rollback", v1, "success"),
            ("deploy", bad, "failure"),
            ("deploy", v2, "success"),
            ("deploy", v1, "success"),
        ]
        assert all(r["digest"].startswith("sha256:") for r in rows)

        done = _conveyor("history", str(spec), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "rollback" in done.stdout and "failure" in done.stdout
    finally:
        remove_deploy(docker_client, name, volumes=True)


def test_cli_deploy_without_image_or_build_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "conveyor.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: demo/x\njenkins:\n  job: x\nstages:\n"
        "  - name: ship\n    deploy:\n      name: x\n      ports: ['8080']\n"
    )
    done = _conveyor("deploy", str(spec), cwd=tmp_path, env={"CONVEYOR_STATE": str(tmp_path)})
    assert done.returncode != 0
    assert "names no image" in done.stderr


def test_cli_deploys_the_built_tag_expanded_from_git_by_default(
    docker_client: docker.DockerClient, unique: Callable[[str], str], tmp_path: Path
) -> None:
    name, repo, port = unique("tagged"), unique("app"), free_port()
    checkout = tmp_path / "checkout"
    sha = git_commit(checkout, {"README": "x\n"})
    image = f"{repo}:{sha[:8]}"
    build_app(docker_client, image, "from-git")
    spec = checkout / "conveyor.yml"
    spec.write_text(SPEC.format(image=repo, name=name, port=port))
    env = {"CONVEYOR_STATE": str(tmp_path / "state")}
    try:
        done = _conveyor(
            "deploy", str(spec), "--workdir", str(checkout), "--json", cwd=tmp_path, env=env
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["image"] == image
        assert get(f"http://127.0.0.1:{port}/version") == (200, "from-git")
    finally:
        remove_deploy(docker_client, name, volumes=True)


DEPLOY_ONLY = """\
apiVersion: conveyor/v1
project: demo/deploy-only
stages:
  - name: ship
    deploy:
      name: {name}
      image: {image}
      ports: ["{port}:8080"]
      health:
        http: /healthz
        timeout: 5s
        interval: 200ms
"""


def test_a_deploy_only_spec_needs_no_jenkins_section(
    docker_client: docker.DockerClient, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """No ``jenkins:`` at all: validate accepts it, ``conveyor run`` deploys it, ``conveyor deploy``
    deploys the next version over it, and the history on the engine has both."""
    name, repo, port = unique("nojenkins"), unique("app"), free_port()
    v1, v2 = f"{repo}:v1", f"{repo}:v2"
    build_app(docker_client, v1, "v1")
    build_app(docker_client, v2, "v2")
    checkout = tmp_path / "checkout"
    spec = checkout / "conveyor.yml"
    checkout.mkdir()
    spec.write_text(DEPLOY_ONLY.format(name=name, image=v1, port=port))
    git_commit(checkout, {"README": "x\n"})
    env = {"CONVEYOR_STATE": str(tmp_path / "state")}
    url = f"http://127.0.0.1:{port}/version"
    try:
        done = _conveyor("validate", str(spec), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr

        done = _conveyor("run", str(spec), "--workdir", str(checkout), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert get(url) == (200, "v1")

        done = _conveyor("deploy", str(spec), "--image", v2, "--json", cwd=checkout, env=env)
        assert done.returncode == 0, done.stderr
        assert (json.loads(done.stdout)["image"], get(url)) == (v2, (200, "v2"))

        done = _conveyor("history", str(spec), "--json", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert [(r["image"], r["result"]) for r in json.loads(done.stdout)] == [
            (v2, "success"),
            (v1, "success"),
        ]
    finally:
        remove_deploy(docker_client, name, volumes=True)
