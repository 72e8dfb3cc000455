"""Every hook a conveyor plugin can implement. This module is the whole contract.

A plugin is a module (or object) registered under the entry-point group ``conveyor.plugins``::

    [project.entry-points."conveyor.plugins"]
    slack = "conveyor_slack.plugin"

and implements any of the hooks below with ``@conveyor.plugins.hookimpl``. conveyor's own gitlab,
jenkins and docker plugins are registered through that same entry-point group, exactly like a
third-party plugin. A function decorated ``@hookimpl`` whose name is not a hook below makes conveyor
fail at start-up (``check_pending``), so a misspelt hook never silently does nothing.

All hooks receive keyword arguments only, by the names below; a plugin may accept a subset.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from conveyor.spec.model import Spec

PROJECT_NAME = "conveyor"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RenderedFile(Protocol):
    """What ``conveyor_render_files`` returns: a relative path and its text."""

    @property
    def path(self) -> str: ...

    @property
    def content(self) -> str: ...


@hookspec
def conveyor_render_files(spec: Spec) -> list[RenderedFile]:  # type: ignore[empty-body]
    """Files generated offline from ``spec`` for ``conveyor render`` (paths relative to the output dir).

    Pure: must not perform I/O. The jenkins plugin returns ``<job path>/Jenkinsfile`` and
    ``<job path>/config.xml``.
    """


@hookspec
def conveyor_spec_checks(spec: Spec) -> list[str]:  # type: ignore[empty-body]
    """Extra validation of a loaded spec; return human messages for problems (empty when fine).

    Reported by ``conveyor validate`` beside the model's own errors, naming the spec file.
    """


@hookspec
def conveyor_templates() -> list[Path]:  # type: ignore[empty-body]
    """Directories holding spec templates (``NAME.yml`` and optional ``NAME.Dockerfile``) for
    ``conveyor init --template NAME``. Later plugins' templates shadow earlier ones of the same name."""


@hookspec
def conveyor_deploy_targets() -> Mapping[str, Any]:  # type: ignore[empty-body]
    """Deploy targets by name (``docker``, ``compose``, ``swarm``...) -> a deployer object.

    The docker plugin provides the built-in ones. A deployer has a ``target`` name and
    ``deploy(client, request, image) -> Deployed`` (the ``Deployer`` protocol of
    :mod:`conveyor.docker.deploy`); history, locking and rollback are shared by every target.
    """


@hookspec
def conveyor_dispatchers() -> Mapping[str, Any]:  # type: ignore[empty-body]
    """Receiver dispatch targets by name (``jenkins``, ``local``) -> a factory taking the
    :class:`~conveyor.config.Settings` and returning a dispatcher (the ``Dispatcher`` protocol of
    :mod:`conveyor.receiver.dispatch`). ``conveyor serve --dispatch NAME`` picks one."""


@hookspec
def conveyor_event_processed(event: Any, outcome: str) -> None:
    """Called by the receiver's worker after an event reaches a final state (``done``, ``failed``,
    ``dead``, ``ignored``, ``superseded``). For notifications; must not raise."""
