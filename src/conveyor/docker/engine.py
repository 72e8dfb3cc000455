"""The Docker engine boundary: connect once, map the SDK's errors to conveyor's.

Everything in :mod:`conveyor.docker` talks to the engine through a client from :func:`connect` and
wraps SDK calls in :func:`docker_errors`, so callers only ever see :class:`conveyor.errors.DockerError`
(or a subclass) with a message naming what failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests.exceptions

from conveyor.errors import DockerError


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
        where = base_url or "DOCKER_HOST / /var/run/docker.sock"
        raise DockerError(
            f"cannot reach the Docker engine at {where}: {exc}",
            hint="start it (e.g. `scripts/start-docker.sh`) or set DOCKER_HOST",
        ) from None
    return client


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
