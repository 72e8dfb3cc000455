"""Real-engine fixtures for Docker tests: an engine client, unique names, and a real registry.

Reuse them from any test package with a conftest that imports them by name::

    from tests.docker.fixtures import docker_client, registry, unique  # noqa: F401

``registry`` (session scope) runs Debian's ``docker-registry serve`` (distribution 2.8) on a free
127.0.0.1 port with htpasswd (bcrypt, ``htpasswd -B``) auth and storage in a temp dir; it yields a
:class:`Registry` with ``host`` (``127.0.0.1:PORT``, which the engine treats as insecure, so no TLS),
``username``/``password``, ``env()`` (the CONVEYOR_REGISTRY_* variables) and ``manifest_digest()``
reading the registry API directly. The process and its storage are removed at session end.

``docker_client`` (session) is a connected :class:`docker.DockerClient` (skips when no engine
answers). ``unique`` (function) makes names with a per-test prefix; every image, container, volume and
network whose name starts with it is removed after the test, even on failure. ``agent_image``
(session) builds the agent image from this checkout once and yields its tag.

Helpers: ``git_commit(dir, files)`` (a checkout with an origin remote, returns the sha),
``run_output(client, image, cmd)`` (run to completion, remove the container and its anonymous
volumes), ``privileged_refused(client)``, ``free_port()``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
import pytest
from docker.models.containers import Container

from conveyor.demo.services import RegistryCredentials, start_registry, stop_process
from conveyor.docker.engine import connect
from conveyor.errors import DockerError

PREFIX = "conveyor-test"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    """A running registry with htpasswd auth."""

    host: str
    username: str
    password: str = field(repr=False)
    root: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def env(self) -> dict[str, str]:
        return {
            "CONVEYOR_REGISTRY_USER": self.username,
            "CONVEYOR_REGISTRY_PASSWORD": self.password,
        }

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest the registry serves for ``repository:tag`` (None when absent)."""
        response = httpx.head(
            f"{self.url}/v2/{repository}/manifests/{tag}",
            auth=(self.username, self.password),
            headers={"Accept": MANIFEST_TYPES},
            timeout=10,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"]


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A real registry (distribution 2.8) with htpasswd auth on a free 127.0.0.1 port, started the
    way ``conveyor demo`` starts its own (:func:`conveyor.demo.services.start_registry`)."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry / htpasswd not installed (scripts/system-deps.sh)")
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-registry-"))
    creds = RegistryCredentials("conveyor", "pw-" + secrets.token_hex(12))
    process = start_registry(root, free_port(), creds)
    try:
        yield Registry(f"127.0.0.1:{process.port}", creds.username, creds.password, root)
    finally:
        stop_process(process.pid, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the local engine; the Docker tests skip when none answers."""
    try:
        client = connect()
    except DockerError as exc:
        pytest.skip(f"no Docker engine: {exc.message}")
    try:
        yield client
    finally:
        client.close()


def _remove_container(client: docker.DockerClient, container: Container) -> None:
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        # the daemon's "removal of container ... is already in progress" (a swarm's own removal)
        if exc.status_code != 409 or "already in progress" not in str(exc.explanation):
            raise
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                client.containers.get(container.id)
            except docker.errors.NotFound:
                return
            time.sleep(0.1)
        raise


def remove_prefixed(client: docker.DockerClient, prefix: str) -> None:
    """Remove every container, image tag, volume and network whose name starts with ``prefix``.

    What is gone by the time it is removed is fine: a swarm removes its task containers itself, so
    one listed here may vanish before ``remove`` reaches it (a 404), or be in the middle of its
    removal (a 409, waited for: its image and volumes are removed next)."""
    for container in client.containers.list(all=True, ignore_removed=True):
        if container.name.startswith(prefix):
            _remove_container(client, container)
    for image in client.images.list():
        names = list(image.tags) + list(image.attrs.get("RepoDigests") or [])
        ours = [n for n in names if n.startswith(prefix) or f"/{prefix}" in n]
        if not ours:
            continue
        # an image also known by other names (busybox tagged as ours) only loses our names
        targets = ours if len(ours) < len(names) else [image.id]
        for target in targets:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(target, force=len(ours) == len(names))
    for volume in client.volumes.list():
        if volume.name.startswith(prefix):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
    for network in client.networks.list():
        if network.name.startswith(prefix):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()


@pytest.fixture
def unique(docker_client: docker.DockerClient) -> Iterator[Callable[[str], str]]:
    """``unique("app")`` -> ``conveyor-test-<hex>-app``; all such Docker objects removed afterwards."""
    prefix = f"{PREFIX}-{secrets.token_hex(4)}"

    def make(name: str) -> str:
        return f"{prefix}-{name}"

    try:
        yield make
    finally:
        remove_prefixed(docker_client, prefix)


def run_env(extra: dict[str, str]) -> dict[str, str]:
    """``os.environ`` plus ``extra`` (for subprocesses of the CLI)."""
    env = dict(os.environ)
    env.update(extra)
    return env


def git_commit(
    workdir: Path, files: dict[str, str], *, branch: str = "main", message: str = "c"
) -> str:
    """Write ``files`` under ``workdir`` (a git repo, created on first use) and commit; the new sha."""

    def git(*args: str) -> str:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(workdir),
                "-c",
                "user.name=conveyor-test",
                "-c",
                "user.email=test@conveyor.invalid",
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    if not (workdir / ".git").exists():
        workdir.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", branch)
        git(
            "remote",
            "add",
            "origin",
            "https://ci:glpat-secret-token@gitlab.example.com/demo/app.git",
        )
    for name, text in files.items():
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A")
    git("commit", "-q", "-m", message)
    return git("rev-parse", "HEAD")


@pytest.fixture(scope="session")
def agent_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """The agent image built once per session from this checkout (``docker-in-docker/agent``), tagged
    ``conveyor-test-agent:<hex>``; the tag is removed at session end (layers stay cached)."""
    from scripts.agent_image import build_agent_image

    tag = f"{PREFIX}-agent:{secrets.token_hex(4)}"
    build_agent_image(docker_client, tag=tag)
    try:
        yield tag
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(tag)


def run_output(
    client: docker.DockerClient, image: str, command: list[str] | None = None, **kwargs: object
) -> str:
    """Run a container to completion and return its output; it and its anonymous volumes are removed
    afterwards (``containers.run(remove=True)`` keeps anonymous volumes and failed-start containers).
    A non-zero exit raises AssertionError with the output."""
    container = client.containers.create(image, command, **kwargs)
    try:
        container.start()
        status = container.wait(timeout=300)["StatusCode"]
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    finally:
        container.remove(force=True, v=True)
    assert status == 0, f"{image} {command} exited {status}:\n{output}"
    return output


def privileged_refused(client: docker.DockerClient) -> bool:
    """Whether this host's runtime refuses --privileged ("unable to apply caps", as on our VMs)."""
    container = client.containers.create("busybox:latest", ["true"], privileged=True)
    try:
        container.start()
        container.wait(timeout=60)
    except docker.errors.APIError as exc:
        return "unable to apply caps" in str(exc)
    finally:
        container.remove(force=True, v=True)
    return False
