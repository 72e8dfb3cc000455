"""Deploys: run an image as a service on one host (``docker``), as a compose project (``compose``) or
as a Swarm service (``swarm``), record every deploy, and roll back to the last good version.

A deployer (one per target, registered through the ``conveyor_deploy_targets`` plugin hook, see
:func:`builtin_targets`) has ``target`` and ``deploy(client, request, image) -> Deployed`` (its strategy,
endpoints, message and details; the shared fields of the :class:`DeployResult` are filled here, once)
and raises DeployError / HealthCheckError when the new version does not converge.
:func:`deploy` and :func:`rollback` wrap any deployer the same way, on the request's engine
(``request.engine``, chosen by :func:`conveyor.docker.deploy.engine.deploy_engine`: never a DinD stage's
nested daemon): one deploy per name at a time (a lock on that engine), a ``running`` history record
first (:mod:`conveyor.docker.history`, also on that engine), then ``success`` or ``failure`` with the
message. A rollback *is* a deploy of the recorded previous good image, so it passes the same health gate
and traffic switch, and is recorded with ``action = rollback``. Because lock and history live on the
engine, a deploy from one agent container and a rollback from another (another machine, uid 1000 with
``HOME=/``) see the same history.

Rollbacks run exactly the recorded image on the ``docker`` target (containers are created from the image
ID). ``compose`` and ``swarm`` run the recorded reference; deploy immutable tags (``{sha}``, the default
build tag) so a reference always names the same image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import docker
import docker.errors

from conveyor.docker.credentials import find_auth
from conveyor.docker.deploy.engine import deploy_engine
from conveyor.docker.deploy.model import Deployed, DeployRequest, DeployResult, ImageRef
from conveyor.docker.deploy.placement import host_paths
from conveyor.docker.engine import EngineAddress, docker_errors
from conveyor.docker.history import DeployHistory
from conveyor.docker.images import parse_ref
from conveyor.errors import ConveyorError, DeployError

__all__ = [
    "DeployRequest",
    "DeployResult",
    "Deployed",
    "Deployer",
    "EngineAddress",
    "ImageRef",
    "builtin_targets",
    "deploy",
    "deploy_engine",
    "history_of",
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
    ) -> Deployed: ...


def builtin_targets() -> Mapping[str, Any]:
    """``docker``, ``compose`` and ``swarm`` deployers (the docker plugin's hook answer)."""
    from conveyor.docker.deploy.compose import ComposeDeployer
    from conveyor.docker.deploy.docker import DockerDeployer
    from conveyor.docker.deploy.swarm import SwarmDeployer

    return {"docker": DockerDeployer(), "compose": ComposeDeployer(), "swarm": SwarmDeployer()}


def _deployer(target: str) -> Deployer:
    from conveyor.plugins.answers import deploy_targets

    targets = deploy_targets()
    if target not in targets:
        known = ", ".join(sorted(targets)) or "none (is the docker plugin disabled?)"
        raise DeployError(f"no deployer for target {target!r}; known: {known}")
    return targets[target]


def resolve_image(client: docker.DockerClient, ref: str) -> ImageRef:
    """The engine's image for ``ref`` (pulled when absent, with the registry credentials of
    :func:`conveyor.docker.credentials.find_auth`): its ID and registry digest."""
    with docker_errors(f"find image {ref}"):
        try:
            image = client.images.get(ref)
        except docker.errors.ImageNotFound:
            image = None
    if image is None:
        registry = parse_ref(ref).registry if not ref.startswith("sha256:") else ""
        auth = find_auth(registry).auth if registry else None
        with docker_errors(f"pull image {ref}"):
            image = client.images.pull(ref, auth_config=auth.auth_config() if auth else None)
    repo_digests = image.attrs.get("RepoDigests") or []
    digest = str(repo_digests[0]).split("@", 1)[1] if repo_digests else str(image.id)
    return ImageRef(ref=ref, image_id=str(image.id), digest=digest)


def history_of(client: docker.DockerClient, request: DeployRequest) -> DeployHistory:
    """The history of ``request``'s deploy name on ``client``'s engine; a history left by older
    versions in ``request.state_dir`` is copied there first when the engine has none."""
    history = DeployHistory(client, request.name, labels=request.labels("history"))
    history.migrate_from(request.state_dir)
    return history


def _run(
    request: DeployRequest,
    client: docker.DockerClient | None,
    pick: Callable[[docker.DockerClient, DeployHistory], tuple[str, str]],
) -> DeployResult:
    """Under the engine-wide lock: ``pick`` the (reference, image ID) to run, then deploy it."""
    deployer = _deployer(request.deploy.target)
    client = client or request.engine.connect()
    if request.host_paths is None:
        found = host_paths(client, request.workdir, engine=request.engine.describe())
        request = replace(request, host_paths=found)
    history = history_of(client, request)
    with history.lock():
        image_ref, image_id = pick(client, history)
        return _run_locked(
            deployer, replace(request, image=image_ref), image_ref, client, history, image_id
        )


def _run_locked(
    deployer: Deployer,
    request: DeployRequest,
    image_ref: str,
    client: docker.DockerClient,
    history: DeployHistory,
    image_id: str,
) -> DeployResult:
    previous = history.current()
    record = history.start(
        target=request.deploy.target,
        action=request.action,
        spec=request.spec_file,
        project=request.project,
        image=image_ref,
        previous_image=previous.image if previous else None,
    )
    request = replace(request, record=record)
    resolved: ImageRef | None = None
    started = datetime.now(UTC)
    try:
        resolved = resolve_image(client, image_id or image_ref)
        resolved = replace(resolved, ref=image_ref)
        done = deployer.deploy(client, request, resolved)
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
    result = DeployResult(
        name=request.name,
        target=deployer.target,
        strategy=done.strategy,
        action=request.action,
        image=resolved.ref,
        image_id=resolved.image_id,
        digest=resolved.digest,
        previous_image=previous.image if previous else None,
        started=started,
        finished=datetime.now(UTC),
        endpoints=done.endpoints,
        message=done.message,
        details=done.details,
    )
    history.finish(
        record, "success", result.message, image_id=result.image_id, digest=result.digest
    )
    return result


def deploy(request: DeployRequest, *, client: docker.DockerClient | None = None) -> DeployResult:
    """Deploy ``request.image`` on ``request.engine`` (or ``client``'s engine) and record it there.
    Raises DeployError / HealthCheckError on failure."""
    return _run(replace(request, action="deploy"), client, lambda _c, _h: (request.image, ""))


def _rollback_image(client: docker.DockerClient, history: DeployHistory) -> tuple[str, str]:
    target = history.rollback_target()
    if target.image_id:
        with docker_errors(f"find image {target.image_id}"):
            try:
                client.images.get(target.image_id)
                return target.image, target.image_id
            except docker.errors.ImageNotFound:
                pass
    return target.image, ""


def rollback(request: DeployRequest, *, client: docker.DockerClient | None = None) -> DeployResult:
    """Deploy the last good version before the current one (``request.image`` is ignored), as
    recorded on the deploy's engine.

    The recorded image ID is used when that image is still present, so a moved tag does not change what
    a rollback runs; otherwise the recorded reference is pulled.
    """
    return _run(replace(request, action="rollback"), client, _rollback_image)
