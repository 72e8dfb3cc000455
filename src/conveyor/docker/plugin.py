"""The built-in docker plugin: the docker, compose and swarm deploy targets, and the local Docker
runner as a dispatch target for received events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.plugins.hookspecs import hookimpl


@hookimpl
def conveyor_deploy_targets() -> Mapping[str, Any]:
    from conveyor.docker.deploy import builtin_targets

    return builtin_targets()


@hookimpl
def conveyor_dispatchers() -> Mapping[str, Any]:
    from conveyor.receiver.dispatch import LocalDispatcher

    return {"local": LocalDispatcher}
