"""The Docker engine boundary: connect once, map the SDK's errors to conveyor's.

Everything in :mod:`conveyor.docker` talks to the engine through a client from :func:`connect` and
wraps SDK calls in :func:`docker_errors`, so callers only ever see :class:`conveyor.errors.DockerError`
(or a subclass) with a message naming what failed. :class:`EngineAddress` names an engine the way
Docker's own variables do (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``), for clients
and for CLI subprocesses (compose) alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.utils import kwargs_from_env

from conveyor.errors import DockerError


@dataclass(frozen=True)
class EngineAddress:
    """A Docker engine: ``url`` (``unix://``, ``tcp://``, ``ssh://``) and its TLS material.

    ``url=None`` is Docker's own default (``DOCKER_HOST`` of this process, else the local socket).
    TLS is on when ``tls_verify`` or ``cert_path`` is set; ``cert_path`` holds ``ca.pem``, ``cert.pem``
    and ``key.pem`` (what the official ``docker:dind`` writes to ``/certs/client``). ``origin`` says
    which setting chose it, for messages.
    """

    url: str | None = None
    tls_verify: bool = False
    cert_path: str | None = None
    origin: str = "DOCKER_HOST / /var/run/docker.sock"

    def describe(self) -> str:
        where = self.url or "the default engine"
        tls = " (TLS)" if self.tls_verify or self.cert_path else ""
        return f"{where}{tls} [{self.origin}]"

    def environment(self) -> dict[str, str | None]:
        """``DOCKER_*`` variables selecting this engine for a docker/compose subprocess (None: unset
        the variable). Empty for ``url=None``: the subprocess inherits this process's own."""
        if self.url is None:
            return {}
        tls = self.tls_verify or bool(self.cert_path)
        return {
            "DOCKER_HOST": self.url,
            "DOCKER_TLS_VERIFY": "1" if self.tls_verify else None,
            "DOCKER_CERT_PATH": self.cert_path if tls else None,
            "DOCKER_CONTEXT": None,
        }

    def connect(self, *, timeout: int = 120) -> docker.DockerClient:
        """A client for this engine, checked with a ping (DockerError naming it otherwise)."""
        if self.url is None:
            return connect(timeout=timeout)
        env = {k: v for k, v in self.environment().items() if v is not None}
        if (self.tls_verify or self.cert_path) and not self.cert_path:
            raise DockerError(
                f"TLS to the Docker engine {self.describe()} needs a certificate directory",
                hint="set the *_CERT_PATH variable to the directory with ca.pem, cert.pem, key.pem",
            )
        try:
            client = _EngineClient(timeout=timeout, **kwargs_from_env(environment=env))
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(
                f"cannot reach the Docker engine {self.describe()}: {exc}",
                hint="check the address, that the engine runs, and its TLS certificates",
            ) from None
        return client


class _EngineAPI(docker.APIClient):  # type: ignore[misc]
    """The SDK's API client, but the engine's own CA always verifies its certificate.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` replace a session's ``verify`` when a
    request passes none (psf/requests#3829, docker/docker-py#2433), and the SDK never passes one: on
    a machine with those set (many CI images), every TLS engine with a private CA (a docker:dind's)
    fails with "unable to get local issuer certificate".
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if verify is None and isinstance(self.verify, str):
            verify = self.verify
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        return settings


class _EngineClient(docker.DockerClient):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:  # the SDK's own __init__ only sets .api
        self.api = _EngineAPI(**kwargs)


def connect(base_url: str | None = None, *, timeout: int = 120) -> docker.DockerClient:
    """A client for ``base_url`` (default: ``DOCKER_HOST`` or the local socket), checked with a ping."""
    try:
        client = (
            docker.DockerClient(base_url=base_url, timeout=timeout)
            if base_url
            else docker.from_env(timeout=timeout)
        )
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        where = base_url or (
            f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
            if os.environ.get("DOCKER_HOST")
            else "/var/run/docker.sock"
        )
        raise DockerError(
            f"cannot reach the Docker engine at {where}: {exc}",
            hint="start it (e.g. `scripts/start-docker.sh`) or set DOCKER_HOST",
        ) from None
    return client


@contextmanager
def local_client(*, timeout: int = 120) -> Iterator[docker.DockerClient]:
    """:func:`connect` to the local engine (``DOCKER_HOST`` or the socket), closed on leaving."""
    client = connect(timeout=timeout)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Map docker SDK / transport exceptions raised inside to DockerError("<action>: <reason>")."""
    try:
        yield
    except DockerError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise DockerError(f"{action}: image not found: {exc.explanation or exc}") from None
    except docker.errors.NotFound as exc:
        raise DockerError(f"{action}: not found: {exc.explanation or exc}") from None
    except docker.errors.APIError as exc:
        raise DockerError(f"{action}: engine refused: {exc.explanation or exc}") from None
    except docker.errors.DockerException as exc:
        raise DockerError(f"{action}: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise DockerError(f"{action}: lost the Docker engine: {exc}") from None
