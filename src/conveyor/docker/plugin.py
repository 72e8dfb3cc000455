"""The built-in docker plugin: the docker, compose and swarm deploy targets (the local runner's
dispatch target is the runner plugin's, :mod:`conveyor.runner.plugin`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.plugins.hookspecs import hookimpl


@hookimpl
def conveyor_deploy_targets() -> Mapping[str, Any]:
    from conveyor.docker.deploy import builtin_targets

    return builtin_targets()
