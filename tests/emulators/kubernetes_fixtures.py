"""pytest fixtures for the Kubernetes emulator (registered from tests/conftest.py).

``make_kube_emulator(readiness=None, namespaces=("default",))`` -> a started
:class:`~tests.emulators.kubernetes.KubernetesEmulator` (stopped at teardown); ``kube_emulator``
one without a readiness oracle (pods never become Ready: for API-only tests); ``kube_client(emu)``
-> the official client's ``ApiClient`` for it (bearer token); ``web_images`` (Docker) -> busybox
httpd images ``good1``, ``good2`` (``/healthz`` answers 200 with the version) and ``broken``
(``/healthz`` 404: its readiness probe never passes), tagged with the test's unique prefix and
removed afterwards; ``docker_readiness`` -> a :class:`DockerReadiness` on the real engine.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import docker
import kubernetes.client
import pytest

from tests.docker.fixtures import PREFIX, remove_prefixed
from tests.emulators.kubernetes import TOKEN, DockerReadiness, KubernetesEmulator


@pytest.fixture
def make_kube_emulator() -> Iterator[Callable[..., KubernetesEmulator]]:
    started: list[KubernetesEmulator] = []

    def make(**kwargs: Any) -> KubernetesEmulator:
        emulator = KubernetesEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def kube_emulator(make_kube_emulator: Callable[..., KubernetesEmulator]) -> KubernetesEmulator:
    return make_kube_emulator(namespaces=("default", "shop"))


def client_for(emulator: KubernetesEmulator, token: str = TOKEN) -> kubernetes.client.ApiClient:
    config = kubernetes.client.Configuration()
    config.host = emulator.url
    config.api_key = {"authorization": token}
    config.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(config)


@pytest.fixture
def kube_client(kube_emulator: KubernetesEmulator) -> Iterator[kubernetes.client.ApiClient]:
    client = client_for(kube_emulator)
    yield client
    client.close()


def _dockerfile(version: str, healthy: bool) -> str:
    health = "&& echo ok-" + version + " > /www/healthz " if healthy else ""
    return (
        "FROM busybox\n"
        f"RUN mkdir -p /www && echo {version} > /www/index.html {health}\n"
        'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
    )


@pytest.fixture(scope="session")
def web_images(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """Built once per session (a unique prefix), removed at its end."""
    prefix = f"{PREFIX}-{secrets.token_hex(4)}"
    images = {}
    try:
        for name, healthy in (("good1", True), ("good2", True), ("broken", False)):
            tag = f"{prefix}-web:{name}"
            docker_client.images.build(
                fileobj=io.BytesIO(_dockerfile(name, healthy).encode()),
                tag=tag,
                rm=True,
                forcerm=True,
            )
            images[name] = tag
        yield images
    finally:
        remove_prefixed(docker_client, prefix)


@pytest.fixture
def docker_readiness(
    docker_client: docker.DockerClient, unique: Callable[[str], str]
) -> Iterator[DockerReadiness]:
    readiness = DockerReadiness(docker_client, unique("kube"), window=6.0)
    yield readiness
    readiness.close()  # before ``unique`` removes what is left
