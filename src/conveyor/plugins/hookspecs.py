"""Every hook a conveyor plugin can implement. This module is the whole contract.

A plugin is a module (or object) registered under the entry-point group ``conveyor.plugins``::

    [project.entry-points."conveyor.plugins"]
    slack = "conveyor_slack.plugin"

and implements any of the hooks below with ``@conveyor.plugins.hookimpl``. conveyor's own gitlab,
jenkins and docker plugins are registered through that same entry-point group, exactly like a
third-party plugin. A function decorated ``@hookimpl`` whose name is not a hook below makes conveyor
fail at start-up (``check_pending``), so a misspelt hook never silently does nothing.

All hooks receive keyword arguments only, by the names below; a plugin may accept a subset.

**How answers combine** (:mod:`conveyor.plugins.answers` calls every hook and enforces this):
pluggy calls the last registered plugin first, but no answer here depends on that order, because no
plugin can shadow another. Hooks that offer *names* (deploy targets, dispatchers, templates, rendered
file paths) merge the answers of every plugin, and a name offered twice -- by two plugins, or by a
plugin and conveyor itself -- stops conveyor with a :class:`~conveyor.errors.PluginError` naming both
offerers; to replace a built-in, disable the plugin offering it (``CONVEYOR_DISABLE_PLUGINS``, which
blocks it in pluggy: ``PluginManager.set_blocked``). Hooks that report (spec checks) concatenate.
A hook wrapper cannot take part in a combination by name and is refused when such a hook is called.

There is no hook for "an event finished": the receiver decides ``ignored`` and ``superseded`` inside
its intake's group commit, where plugin code must not run, and a notification would need the
durability the commit-status outbox has (retries, restarts). The final state of every event is in
``conveyor events list --json`` and in the ``/metrics`` counters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from conveyor.docker.deploy import Deployer
    from conveyor.receiver.dispatch import DispatcherFactory
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
def conveyor_render_files(  # type: ignore[empty-body]
    spec: Spec, gitlab_url: str | None
) -> Sequence[RenderedFile]:
    """Files generated offline from ``spec``, written by ``conveyor render -o DIR`` (and the demo).

    Paths are relative to ``DIR``, ``/``-separated, without ``..``; two plugins writing one path is
    an error. ``gitlab_url`` is ``--gitlab-url`` (``$CONVEYOR_GITLAB_URL``), for clone URLs, or None.
    Pure: must not perform I/O, and never writes a secret. The jenkins plugin returns
    ``<job path>/Jenkinsfile`` and ``<job path>/config.xml``.
    """


@hookspec
def conveyor_spec_checks(spec: Spec) -> Sequence[str]:  # type: ignore[empty-body]
    """Extra validation of a loaded spec; return human messages for problems (empty when fine).

    Every plugin's messages are reported by ``conveyor validate`` beside the model's own errors,
    naming the spec file.
    """


@hookspec
def conveyor_templates() -> Sequence[Path]:  # type: ignore[empty-body]
    """Directories holding spec templates (``NAME.yml`` and optional ``NAME.Dockerfile``) for
    ``conveyor init --template NAME``. A template name must be new: one a built-in template or
    another plugin already offers is an error naming both."""


@hookspec
def conveyor_deploy_targets() -> Mapping[str, Deployer]:  # type: ignore[empty-body]
    """Deploy targets by name (``docker``, ``compose``, ``swarm``...) -> a deployer object.

    The docker plugin provides the built-in ones; a name another plugin already offers is an error
    naming both. A deployer has a ``target`` name and
    ``deploy(client, request, image) -> Deployed`` (the ``Deployer`` protocol of
    :mod:`conveyor.docker.deploy`); history, locking and rollback are shared by every target.
    """


@hookspec
def conveyor_dispatchers() -> Mapping[str, DispatcherFactory]:  # type: ignore[empty-body]
    """Receiver dispatch targets by name (``jenkins``, ``local``) -> a factory taking the
    :class:`~conveyor.config.Settings` and returning a dispatcher (the ``Dispatcher`` protocol of
    :mod:`conveyor.receiver.dispatch`). ``conveyor serve --dispatch NAME`` picks one; ``none`` and
    ``auto`` are conveyor's own, and a name offered twice is an error naming both offerers."""
