"""The built-in runner plugin: conveyor's local Docker runner as the ``local`` dispatch target for
received events."""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.plugins.hookspecs import hookimpl
from conveyor.receiver.dispatch import DispatcherFactory


@hookimpl
def conveyor_dispatchers() -> Mapping[str, DispatcherFactory]:
    from conveyor.runner.dispatcher import LocalDispatcher

    return {"local": LocalDispatcher}
