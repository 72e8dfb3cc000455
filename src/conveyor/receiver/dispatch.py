"""The dispatch port: where a routed event's work goes is a :class:`Dispatcher` the receiver is given.

The receiver owns only this contract and the ``none`` target; the others are plugins
(``conveyor_dispatchers``): ``jenkins`` (:mod:`conveyor.jenkins.dispatcher`, from the jenkins
plugin) and ``local`` (:mod:`conveyor.runner.dispatcher`, from the runner plugin).

``dispatch`` runs one attempt to completion and returns an :class:`Outcome` (the work ran: succeeded
or not), or raises a :class:`~conveyor.errors.ConveyorError` for a failure worth retrying (the
server could not be reached, refused, ...). Through :class:`Progress` it reports where the work can
be followed, saves *resume state* (so a retried or reclaimed attempt follows the work it already
started instead of starting another), and calls ``tick`` between polls, which extends the claim's
lease and raises :class:`Interrupted` when the worker must let go.

Targets:

* ``jenkins``: trigger the spec's Jenkins job and follow the build, effectively once.
* ``local``: check out the event's commit and run it with conveyor's Docker runner.
* ``none``: store only; the event is marked done.
* ``auto``: ``jenkins`` when the Jenkins settings are complete, else ``local``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from conveyor.config import Settings
from conveyor.errors import ConfigError, UsageError
from conveyor.gitlab.events import GitLabEvent
from conveyor.spec.model import Spec


class Interrupted(Exception):
    """The worker must let go of the event (shutdown, or its lease was lost)."""


@dataclass(frozen=True)
class DispatchJob:
    """One attempt at one event. ``resume`` is what an earlier attempt saved, if anything."""

    event_id: int
    event: GitLabEvent
    spec: Spec
    attempt: int
    resume: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """The work ran. ``succeeded`` False means the build itself failed (not retried)."""

    succeeded: bool
    detail: str
    url: str | None = None


class Progress(Protocol):
    """What a dispatcher can tell the worker while it runs."""

    def remember(
        self, state: Mapping[str, Any], *, url: str | None = None, durable: bool = False
    ) -> None:
        """Save resume state (and the URL to follow) before going on; ``durable`` fsyncs it
        (an intent written just before a point of no return)."""

    def note(self, text: str) -> None:
        """Add to this attempt's record in the event history (what it found, what it did)."""

    def started(self, url: str | None) -> None:
        """The work is running now (posts the ``running`` commit status)."""

    def tick(self) -> None:
        """Between polls: extends the lease; raises :class:`Interrupted` to stop."""


class Dispatcher(Protocol):
    """A dispatch target."""

    name: str

    def check(self) -> None:
        """Raise ConfigError if this target cannot work (called once at startup)."""

    def job_url(self, spec: Spec) -> str | None:
        """A link for the ``pending`` commit status, if the target has one before running."""

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
        """Run one attempt."""


#: What a plugin's ``conveyor_dispatchers`` offers under each name: settings -> dispatcher.
DispatcherFactory = Callable[[Settings], Dispatcher]


class NoneDispatcher:
    """Store only: the event is recorded as done without running anything."""

    name = "none"

    def check(self) -> None:
        return None

    def job_url(self, spec: Spec) -> str | None:
        return None

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
        return Outcome(succeeded=True, detail="stored only (--dispatch none)")


def available_dispatchers() -> dict[str, DispatcherFactory]:
    """Dispatch targets by name: ``none`` here, the others from plugins (``conveyor_dispatchers``:
    the jenkins plugin provides ``jenkins``, the runner plugin ``local``); ``auto`` is reserved."""
    from conveyor.plugins.answers import dispatchers

    return dispatchers({"none": lambda settings: NoneDispatcher()}, reserved=("auto",))


def make_dispatcher(mode: str, settings: Settings) -> Dispatcher:
    """The dispatcher for ``--dispatch MODE``, checked (raises ConfigError if unusable)."""
    targets = available_dispatchers()
    if mode != "auto" and mode not in targets:
        raise UsageError(
            f"unknown dispatch mode {mode!r}: use one of {', '.join(['auto', *sorted(targets)])}"
        )
    if mode == "auto":
        mode = "jenkins" if settings.jenkins_configured else "local"
        if mode not in targets:
            raise ConfigError(
                f"--dispatch auto chose {mode!r}, which no plugin provides (is it disabled in"
                " CONVEYOR_DISABLE_PLUGINS?)",
                hint="set CONVEYOR_JENKINS_URL/USER/TOKEN for jenkins, or use --dispatch none",
            )
    dispatcher: Dispatcher = targets[mode](settings)
    dispatcher.check()
    return dispatcher
