"""What a deploy is asked to do and what it did: the request every target reads, the result it returns.

A :class:`DeployRequest` is built once (by the CLI or the runner) from the spec's ``deploy`` block, the
image to run, the checkout directory, the state directory (only read, for history written by older
versions) and the engine to deploy on (:func:`conveyor.docker.deploy.engine.deploy_engine`). Secrets are resolved here, at run time,
from the environment variable of the same name (Jenkins' credentials binding sets it in a pipeline; locally
you export it yourself); their values never reach labels, files, history or messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from conveyor.docker.deploy.mounts import HostPaths
from conveyor.docker.engine import EngineAddress
from conveyor.errors import DeployError
from conveyor.spec.model import Deploy

Action = Literal["deploy", "rollback"]

LABEL_PREFIX = "conveyor."


@dataclass(frozen=True)
class DeployRequest:
    """One deploy of ``image`` for ``deploy`` (the spec's block)."""

    deploy: Deploy
    image: str
    project: str
    spec_file: str
    workdir: Path
    state_dir: Path
    stage: str = ""
    action: Action = "deploy"
    drain_timeout: float = 30.0
    engine: EngineAddress = field(default_factory=EngineAddress)
    record: int = 0  # the history record of this deploy (set by conveyor.docker.deploy)
    # bind sources on the deploy engine's host, when conveyor runs in a container (set likewise)
    host_paths: HostPaths | None = None

    @property
    def name(self) -> str:
        return self.deploy.name

    def labels(self, role: str, **extra: str) -> dict[str, str]:
        """Labels naming the spec, project, deploy name and role (plus ``extra``) on everything created."""
        labels = {
            LABEL_PREFIX + "spec": self.spec_file,
            LABEL_PREFIX + "project": self.project,
            LABEL_PREFIX + "deploy": self.name,
            LABEL_PREFIX + "stage": self.stage,
            LABEL_PREFIX + "role": role,
        }
        if self.record and role == "app":  # not on extras: compose would recreate them
            labels[LABEL_PREFIX + "record"] = str(self.record)
        labels.update({LABEL_PREFIX + k: v for k, v in extra.items()})
        return labels


@dataclass(frozen=True)
class ImageRef:
    """An image as deployed: the reference asked for, the local image ID and the registry digest."""

    ref: str
    image_id: str
    digest: str  # repo digest (``sha256:...`` of the manifest) when pushed, else the image ID


@dataclass(frozen=True)
class Deployed:
    """What a deployer reports of a deploy that converged: its own part of the :class:`DeployResult`
    (the rest -- name, target, action, image, digest, previous image, times -- is filled once, by
    :mod:`conveyor.docker.deploy`, for every target)."""

    strategy: str
    endpoints: tuple[str, ...] = ()  # host:port addresses serving the new version
    message: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployResult:
    """What a successful deploy did."""

    name: str
    target: str
    strategy: str
    action: Action
    image: str
    image_id: str
    digest: str
    previous_image: str | None
    started: datetime
    finished: datetime
    endpoints: tuple[str, ...] = ()  # host:port addresses serving the new version
    message: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


def resolve_env(deploy: Deploy, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The container environment: ``env`` plus every secret's value from the variable of the same name.

    A missing secret variable is a DeployError naming the variable and its credentials ID (never a value).
    """
    environ = os.environ if environ is None else environ
    env = dict(deploy.env)
    missing = [
        f"{var} (credentials {cred!r})"
        for var, cred in deploy.secrets.items()
        if var not in environ
    ]
    if missing:
        raise DeployError(
            f"deploy {deploy.name!r}: secret variable(s) not set: {', '.join(missing)}",
            hint="in Jenkins the credentials binding sets them; locally export each variable first",
        )
    for var in deploy.secrets:
        env[var] = environ[var]
    return env
