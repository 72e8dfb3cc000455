"""Deploys: run an image as a service on one host (``docker``), as a compose project (``compose``) or
as a Swarm service (``swarm``), record every deploy, and roll back to the last good version.

A deployer (one per target, registered through the ``conveyor_deploy_targets`` plugin hook, see
:func:`builtin_targets`) has ``target`` and ``deploy(client, request, image, previous_image) ->
DeployResult`` and raises DeployError / HealthCheckError when the new version does not converge.
:func:`deploy` and :func:`rollback` wrap any deployer the same way: one deploy per name at a time (a lock
file in the state dir), a ``running`` history record first (:mod:`conveyor.docker.history`), then
``success`` or ``failure`` with the message. A rollback *is* a deploy of the recorded previous good image,
so it passes the same health gate and traffic switch, and is recorded with ``action = rollback``.

Rollbacks run exactly the recorded image on the ``docker`` target (containers are created from the image
ID). ``compose`` and ``swarm`` run the recorded reference; deploy immutable tags (``{sha}``, the default
build tag) so a reference always names the same image.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors

from conveyor.docker.deploy.model import DeployRequest, DeployResult, ImageRef
from conveyor.docker.engine import connect, docker_errors
from conveyor.docker.history import DeployHistory, DeployRecord
from conveyor.errors import ConveyorError, DeployError

__all__ = [
    "DeployRequest",
    "DeployResult",
    "Deployer",
    "ImageRef",
    "builtin_targets",
    "deploy",
    "resolve_image",
    "rollback",
]


class Deployer(Protocol):
    target: str

    def deploy(
        self,
        client: docker.DockerClient,
        request: DeployRequest,
        image: ImageRef,
        previous_image: str | None,
    ) -> DeployResult: ...


def builtin_targets() -> Mapping[str, Any]:
    """``docker``, ``compose`` and ``swarm`` deployers (the docker plugin's hook answer)."""
    from conveyor.docker.deploy.compose import ComposeDeployer
    from conveyor.docker.deploy.docker import DockerDeployer
    from conveyor.docker.deploy.swarm import SwarmDeployer

    return {"docker": DockerDeployer(), "compose": ComposeDeployer(), "swarm": SwarmDeployer()}


def _deployer(target: str) -> Deployer:
    targets: dict[str, Any] = {}
    try:
        from conveyor.plugins import get_plugin_manager

        for answer in get_plugin_manager().hook.conveyor_deploy_targets():
            targets.update(answer)
    except ImportError:  # pragma: no cover - the plugin manager is part of conveyor
        pass
    if not targets:
        targets = dict(builtin_targets())
    if target not in targets:
        raise DeployError(f"no deployer for target {target!r}; known: {', '.join(sorted(targets))}")
    deployer: Deployer = targets[target]
    return deployer


def resolve_image(client: docker.DockerClient, ref: str) -> ImageRef:
    """The local image for ``ref`` (pulled when absent): its ID and registry digest."""
    with docker_errors(f"find image {ref}"):
        try:
            image = client.images.get(ref)
        except docker.errors.ImageNotFound:
            image = None
    if image is None:
        with docker_errors(f"pull image {ref}"):
            image = client.images.pull(ref)
    repo_digests = image.attrs.get("RepoDigests") or []
    digest = str(repo_digests[0]).split("@", 1)[1] if repo_digests else str(image.id)
    return ImageRef(ref=ref, image_id=str(image.id), digest=digest)


def _run(
    request: DeployRequest,
    image_ref: str,
    *,
    client: docker.DockerClient | None,
    history: DeployHistory | None,
    image_id: str = "",
) -> DeployResult:
    deployer = _deployer(request.deploy.target)
    history = history or DeployHistory(request.state_dir)
    with deploy_lock(request.state_dir, request.name):
        return _run_locked(deployer, request, image_ref, client, history, image_id)


@contextmanager
def deploy_lock(state_dir: Path, name: str) -> Iterator[None]:
    """One deploy or rollback of ``name`` at a time (an exclusive lock file in the state dir)."""
    path = state_dir / "locks" / f"{name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as exc:
        raise DeployError(f"cannot create the deploy lock {path}: {exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(
                f"another deploy of {name!r} is running (lock {path})",
                hint="wait for it to finish; the lock is released when that process exits",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_locked(
    deployer: Deployer,
    request: DeployRequest,
    image_ref: str,
    client: docker.DockerClient | None,
    history: DeployHistory,
    image_id: str,
) -> DeployResult:
    previous = history.current(request.name)
    record = history.start(
        name=request.name,
        target=request.deploy.target,
        action=request.action,
        spec=request.spec_file,
        project=request.project,
        image=image_ref,
        previous_image=previous.image if previous else None,
    )
    resolved: ImageRef | None = None
    try:
        client = client or connect()
        resolved = resolve_image(client, image_id or image_ref)
        resolved = replace(resolved, ref=image_ref)
        result = deployer.deploy(client, request, resolved, previous.image if previous else None)
    except ConveyorError as exc:
        history.finish(
            record,
            "failure",
            exc.message,
            image_id=resolved.image_id if resolved else "",
            digest=resolved.digest if resolved else "",
        )
        raise
    except BaseException as exc:
        history.finish(record, "failure", f"interrupted: {type(exc).__name__}: {exc}")
        raise
    history.finish(
        record, "success", result.message, image_id=result.image_id, digest=result.digest
    )
    return result


def deploy(
    request: DeployRequest,
    *,
    client: docker.DockerClient | None = None,
    history: DeployHistory | None = None,
) -> DeployResult:
    """Deploy ``request.image`` and record it. Raises DeployError / HealthCheckError on failure."""
    return _run(replace(request, action="deploy"), request.image, client=client, history=history)


def rollback_image(history: DeployHistory, name: str) -> DeployRecord:
    """The record ``rollback`` returns to (last good version before the current one)."""
    return history.rollback_target(name)


def rollback(
    request: DeployRequest,
    *,
    client: docker.DockerClient | None = None,
    history: DeployHistory | None = None,
) -> DeployResult:
    """Deploy the last good version before the current one (``request.image`` is ignored).

    The recorded image ID is used when that image is still present, so a moved tag does not change what
    a rollback runs; otherwise the recorded reference is pulled.
    """
    history = history or DeployHistory(request.state_dir)
    target = history.rollback_target(request.name)
    client = client or connect()
    image_id = ""
    if target.image_id:
        with docker_errors(f"find image {target.image_id}"):
            try:
                client.images.get(target.image_id)
                image_id = target.image_id
            except docker.errors.ImageNotFound:
                image_id = ""
    return _run(
        replace(request, action="rollback", image=target.image),
        target.image,
        client=client,
        history=history,
        image_id=image_id,
    )
