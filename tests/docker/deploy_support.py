"""Helpers for the deploy tests: tiny busybox web apps built in the test, HTTP from the host.

An app image serves ``/version`` (its version string), ``/healthz`` (unless built unhealthy),
``/greeting`` (``$GREETING`` at start) and ``/data/note`` (a file it writes once into ``/data``, if
mounted). It stops promptly on SIGTERM, like a well-behaved service.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker

from conveyor.docker.deploy import DeployRequest
from conveyor.spec.model import Deploy

START = (
    'trap "exit 0" TERM; '
    "[ -d /data ] && [ ! -f /data/note ] && echo written-by-$VERSION > /data/note; "
    "echo $GREETING > /www/greeting; "
    "httpd -f -p 8080 -h /www & wait"
)


def build_app(client: docker.DockerClient, tag: str, version: str, *, healthy: bool = True) -> str:
    """Build ``tag`` from busybox in memory; returns the image ID."""
    health = "echo ok > /www/healthz && " if healthy else ""
    dockerfile = (
        "FROM busybox:latest\n"
        f"ENV VERSION={version}\n"
        f"RUN mkdir -p /www && {health}echo {version} > /www/version && ln -s /data /www/data\n"
        f"CMD {json.dumps(['sh', '-c', START])}\n"
    )
    data = dockerfile.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True)
    return str(image.id)


def get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """(status, body) of a GET from the host; status 0 when the connection fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace").strip()
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_body(url: str, expected: str, timeout: float = 30.0) -> str:
    """Poll ``url`` until its body is ``expected`` (for eventually-consistent targets); last body."""
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        status, body = get(url)
        if status == 200 and body == expected:
            return body
        time.sleep(0.3)
    return body


def request(deploy: Deploy, image: str, *, workdir: Path, state: Path) -> DeployRequest:
    return DeployRequest(
        deploy=deploy,
        image=image,
        project="group/app",
        spec_file=str(workdir / "conveyor.yml"),
        workdir=workdir,
        state_dir=state,
        stage="deploy",
    )
