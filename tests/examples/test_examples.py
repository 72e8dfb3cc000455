"""The example apps: their pipelines' test stages pass in Docker, their images build with the
docker plugin, and the built service answers on /healthz and reports its version."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from conveyor.pipeline.context import Trigger
from conveyor.runner.execute import run_pipeline
from conveyor.spec.load import load_spec

pytestmark = pytest.mark.docker
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(params=["hello-web", "java-service"])
def example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    copy = tmp_path / request.param
    shutil.copytree(EXAMPLES / request.param, copy)
    yield request.param, copy


def test_example_pipeline_tests_build_and_serve(
    example: tuple[str, Path], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    name, workdir = example
    loaded = load_spec(workdir / "conveyor.yml")
    sha = secrets.token_hex(20)
    trigger = Trigger(kind="push", project=loaded.spec.project, sha=sha, branch="main")
    result = run_pipeline(
        loaded, trigger, workdir=workdir, state_dir=tmp_path / "state", only=["test"]
    )
    assert result.succeeded, result.log_tail
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "build",
            str(workdir / "conveyor.yml"),
            "--stage",
            "image",
            "--workdir",
            str(workdir),
            "--sha",
            sha,
            "--branch",
            "main",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tags = json.loads(built.stdout)["tags"]
    assert tags[0] == f"localhost:5555/{loaded.spec.project}:{sha}"
    container = None
    try:
        image = docker_client.images.get(tags[0])
        assert image.labels["org.opencontainers.image.revision"] == sha
        port = 8000 if name == "hello-web" else 8080
        container = docker_client.containers.run(
            tags[0], detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)}
        )
        container.reload()
        host_port = container.ports[f"{port}/tcp"][0]["HostPort"]
        base = f"http://127.0.0.1:{host_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, container.logs().decode()[-2000:]
            time.sleep(0.2)
        assert httpx.get(f"{base}/version", timeout=2).text.strip() == sha[:8]
    finally:
        if container is not None:
            container.remove(force=True)
        for tag in tags:
            docker_client.images.remove(tag, force=True)
