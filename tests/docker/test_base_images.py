"""scripts/base-images.sh: the local stand-ins for Docker Hub base images, built without pulls."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest

from tests.docker.fixtures import run_output

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
IMAGES = (
    "busybox:latest",
    "debian:bookworm-slim",
    "python:3.11-slim",
    "eclipse-temurin:17-jre",
    "eclipse-temurin:17-jdk",
    "docker:cli",
    "docker:dind",
)


@pytest.fixture(scope="module")
def script_output(docker_client: docker.DockerClient) -> str:
    """Runs the script (builds what is missing); a second run must find everything and build nothing."""
    subprocess.run([str(ROOT / "scripts" / "base-images.sh")], check=True, capture_output=True)
    again = subprocess.run(
        [str(ROOT / "scripts" / "base-images.sh")], check=True, capture_output=True, text=True
    )
    return again.stdout


def test_second_run_skips_every_image(script_output: str) -> None:
    for tag in IMAGES:
        assert f"base-images: {tag} exists, skipped" in script_output
    assert "building" not in script_output


def test_unknown_image_is_refused() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "base-images.sh"), "alpine:3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown image alpine:3" in done.stderr


@pytest.mark.parametrize(
    ("image", "command", "expected"),
    [
        ("busybox:latest", "wget --help 2>&1 | head -1; httpd --help 2>&1 | head -1", "BusyBox"),
        ("debian:bookworm-slim", "cat /etc/debian_version", "12."),
        (
            "python:3.11-slim",
            "python --version && pip --version && python -m venv /tmp/v && echo venv-ok",
            "venv-ok",
        ),
        ("eclipse-temurin:17-jre", "java -version 2>&1", 'version "17'),
        ("eclipse-temurin:17-jdk", "javac -version && jar --version && echo jdk-ok", "jdk-ok"),
        ("docker:cli", "docker --version", "Docker version"),
        ("docker:dind", "command -v dockerd && command -v dockerd-entrypoint.sh", "dockerd"),
    ],
)
def test_image_has_its_tools(
    docker_client: docker.DockerClient, script_output: str, image: str, command: str, expected: str
) -> None:
    shell = "/bin/sh"
    out = run_output(docker_client, image, [shell, "-c", command])
    assert expected in out
    if image == "python:3.11-slim":
        assert "Python 3.11" in out
