"""Where a routed event's work goes: a Jenkins build, the local Docker runner, or nowhere.

Every target implements :class:`Dispatcher`. ``dispatch`` runs one attempt to completion and
returns an :class:`Outcome` (the build ran: succeeded or not), or raises a
:class:`~conveyor.errors.ConveyorError` for a failure worth retrying (the server could not
be reached, refused, ...). Through :class:`Progress` it reports where the work can be
followed, saves *resume state* (so a retried or reclaimed attempt follows the build it
already started instead of starting another), and calls ``tick`` between polls, which
extends the claim's lease and raises :class:`Interrupted` when the worker must let go.

Targets:

* ``jenkins``: ``buildWithParameters`` with the gitlab-plugin variables from
  :func:`conveyor.pipeline.context.build_variables` (``gitlabBranch``, ``gitlabSourceBranch``,
  ``gitlabTargetBranch``, ``gitlabActionType`` PUSH|TAG_PUSH|MERGE, ``gitlabMergeRequestIid``,
  ``GIT_COMMIT``...) plus ``CONVEYOR_EVENT_ID``; then queue item -> build number -> result.
  Effectively once: before ``build_job`` the intent (the job's ``nextBuildNumber``) is
  committed with an fsync; an attempt that finds an intent but no queue item id (the
  earlier one died, or lost the answer, between sending the request and saving its queue
  item) looks for the queue item or build carrying this event's ``CONVEYOR_EVENT_ID`` (and
  ``gitlabAfter``) numbered from that ``nextBuildNumber`` on, and follows it; only when
  there is none does it trigger. Without an intent nothing was sent, so it triggers.
* ``local``: check out the event's commit (:mod:`conveyor.gitlab.checkout`) and run
  ``conveyor.runner.execute.run_pipeline`` on it, imported lazily; :meth:`check` fails at
  startup with a clear error when the runner is not installed. A local run cannot be handed
  to another worker, so on shutdown it is finished, not released. The run's trigger carries
  ``CONVEYOR_EVENT_ID`` (in its stages' environment too, as in a Jenkins build), and before it
  starts the attempt fsyncs its intent (``{"local": {"since": t}}``); the run number and each
  stage are recorded as they start, each before its containers do. A later attempt at the
  same event looks its run up in the run history first: a finished run gives its result (not
  run again); a run still going in this process is waited for; a run left ``running`` by a
  dead process is marked ``crashed`` and, when no stage had started (nothing outside conveyor
  happened yet), run afresh, otherwise the event is failed with the stage it was cut off in
  (its stages may have had effects: deploys, pushes; `conveyor events replay` runs it again
  on purpose). No run found means none started: run it.
* ``none``: store only; the event is marked done.
* ``auto``: ``jenkins`` when the Jenkins settings are complete, else ``local``.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from conveyor.config import Settings
from conveyor.errors import ConfigError
from conveyor.gitlab.checkout import checkout, gitlab_repo_url
from conveyor.gitlab.events import GitLabEvent
from conveyor.jenkins import builds
from conveyor.pipeline.context import Trigger, build_variables, trigger_parameters
from conveyor.spec.model import Spec

log = logging.getLogger("conveyor.receiver.dispatch")


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


def trigger_of(event: GitLabEvent, *, repo_url: str | None = None) -> Trigger:
    """The build trigger (shared with the local runner) described by a GitLab event.

    ``repo_url`` (``gitlabSourceRepoHttpUrl``) is the configured GitLab's URL of the project
    (:func:`conveyor.gitlab.checkout.gitlab_repo_url`), never the payload's ``git_http_url``: a
    Jenkins checkout would send its credentials there."""
    # A merge builds the target branch's merge commit: BRANCH_NAME is the target, while
    # gitlabSourceBranch still names the merged branch.
    extra: tuple[tuple[str, str], ...] = ()
    if event.merged and event.source_branch:
        extra = (("gitlabSourceBranch", event.source_branch),)
    return Trigger(
        kind=event.kind.value,
        project=event.project_path,
        sha=event.sha,
        branch=event.build_branch,
        tag=event.tag,
        target_branch=event.target_branch,
        before=event.before,
        mr_iid=event.mr_iid,
        mr_action=event.action,
        mr_title=event.mr_title,
        repo_url=repo_url,
        user_name=event.user_name,
        extra=extra,
    )


def jenkins_parameters(job: DispatchJob, *, repo_url: str | None = None) -> dict[str, str]:
    """The parameters sent with ``buildWithParameters`` (never empty)."""
    trigger = trigger_of(job.event, repo_url=repo_url)
    return trigger_parameters(build_variables(trigger), job.event_id)


class NoneDispatcher:
    """Store only: the event is recorded as done without running anything."""

    name = "none"

    def check(self) -> None:
        return None

    def job_url(self, spec: Spec) -> str | None:
        return None

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
        return Outcome(succeeded=True, detail="stored only (--dispatch none)")


class JenkinsDispatcher:
    """Trigger the spec's Jenkins job and follow the build to its result."""

    name = "jenkins"

    def __init__(
        self,
        settings: Settings,
        *,
        queue_poll_s: float = 1.0,
        build_poll_s: float = 2.0,
        start_timeout_s: float = 3600.0,
    ) -> None:
        self._settings = settings
        self._queue_poll_s = queue_poll_s
        self._build_poll_s = build_poll_s
        self._start_timeout_s = start_timeout_s

    def check(self) -> None:
        self._settings.require("jenkins_url", "jenkins_user", "jenkins_token")

    def job_url(self, spec: Spec) -> str | None:
        base = self._settings.jenkins_url
        return builds.job_url(base, spec.jenkins.job) if base else None

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
        settings = self._settings
        assert settings.jenkins_url is not None  # check() ran at startup
        server = builds.connect(settings.jenkins_url, settings.jenkins_user, settings.jenkins_token)
        name = job.spec.jenkins.job
        state: dict[str, Any] = {"job": name, **dict(job.resume or {})}
        number, queue_id = state.get("build_number"), state.get("queue_id")
        url: str | None = None
        if not isinstance(number, int) and not isinstance(queue_id, int):
            since = state.get("next_build")
            found = None
            if isinstance(since, int):  # an earlier attempt may have sent the request
                found = builds.find_build(server, name, self._marks(job), since_number=since)
                progress.note(
                    "the earlier attempt's request never reached Jenkins"
                    if found is None
                    else f"found {found.what} of an earlier attempt"
                )
            if found is not None:
                number, queue_id, url = found.number, found.queue_id, found.url or None
                state.update(queue_id=queue_id, build_number=number)
                progress.remember(state, url=url)
            else:
                state = {"job": name, "next_build": builds.next_build_number(server, name)}
                progress.remember(state, durable=True)  # the intent, before the point of no return
                queue_id = builds.trigger(server, name, self._parameters(job))
                state["queue_id"] = queue_id
                progress.remember(state)
        elif not isinstance(number, int):
            progress.note(f"following queue item {queue_id} of an earlier attempt")
        else:
            progress.note(f"following build #{number} of an earlier attempt")
        if isinstance(number, int):
            progress.started(url)
        else:
            assert isinstance(queue_id, int)
            started = builds.wait_started(
                server,
                name,
                queue_id,
                poll_s=self._queue_poll_s,
                timeout_s=self._start_timeout_s,
                tick=progress.tick,
            )
            number = started.number
            state["build_number"] = number
            progress.remember(state, url=started.url or None)
            progress.started(started.url or None)
        result = builds.wait_finished(
            server, name, number, poll_s=self._build_poll_s, tick=progress.tick
        )
        return Outcome(
            succeeded=result.succeeded,
            detail=f"{name} #{number}: {result.result}",
            url=result.url or None,
        )

    def _parameters(self, job: DispatchJob) -> dict[str, str]:
        repo_url = gitlab_repo_url(self._settings.gitlab_url, job.event.project_path)
        return jenkins_parameters(job, repo_url=repo_url)

    def _marks(self, job: DispatchJob) -> dict[str, str]:
        """The parameters that tell this event's requests from any other's."""
        params = self._parameters(job)
        return {k: params[k] for k in (builds.EVENT_PARAMETER, "gitlabAfter") if k in params}


RUNNER_MODULE = "conveyor.runner.execute"


class LogSink:
    """The local runner's output as structured log lines carrying the event id."""

    def __init__(self, event_id: int) -> None:
        self._extra: dict[str, Any] = {"event_id": event_id}

    def run_started(self, number: int, project: str) -> None:
        log.info("local run started", extra={**self._extra, "run": number, "project": project})

    def stage_started(self, stage: str) -> None:
        log.info("stage started", extra={**self._extra, "stage": stage})

    def stage_skipped(self, stage: str, reason: str) -> None:
        log.info("stage skipped", extra={**self._extra, "stage": stage, "reason": reason})

    def line(self, stage: str, text: str) -> None:
        log.debug(text, extra={**self._extra, "stage": stage})

    def stage_finished(self, result: Any) -> None:
        log.info(
            "stage finished",
            extra={
                **self._extra,
                "stage": getattr(result, "name", ""),
                "result": getattr(result, "result", ""),
            },
        )

    def run_finished(self, result: Any) -> None:
        log.info(
            "local run finished", extra={**self._extra, "summary": getattr(result, "summary", "")}
        )


class LocalDispatcher:
    """Run the pipeline with conveyor's local Docker runner (``conveyor.runner.execute``)."""

    name = "local"

    def __init__(self, settings: Settings, *, poll_s: float = 2.0) -> None:
        self._settings = settings
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._active: dict[int, tuple[threading.Thread, dict[str, Any]]] = {}

    def _runner(self) -> Any:
        try:
            module = importlib.import_module(RUNNER_MODULE)
        except ImportError:
            raise ConfigError(
                f"--dispatch local needs the local runner ({RUNNER_MODULE}), which is not installed",
                hint="use --dispatch jenkins (set CONVEYOR_JENKINS_URL/USER/TOKEN) or --dispatch none",
            ) from None
        run = getattr(module, "run_pipeline", None)
        if not callable(run):
            raise ConfigError(
                f"{RUNNER_MODULE} has no run_pipeline(): the local runner is incomplete",
                hint="use --dispatch jenkins or --dispatch none",
            )
        return run

    def check(self) -> None:
        self._runner()

    def job_url(self, spec: Spec) -> str | None:
        return None

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
        run = self._runner()
        earlier = (job.resume or {}).get("local")
        if isinstance(earlier, Mapping) and isinstance(earlier.get("since"), int | float):
            found = self._earlier_run(job, earlier, progress)
            if found is not None:
                return found
        state: dict[str, Any] = {"since": time.time()}
        progress.remember({"local": dict(state)}, durable=True)  # before anything starts
        # one directory per event under the state dir: what a crashed attempt left is removed
        workdir = self._workdir(job)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True, mode=0o700)
        try:
            checkout(job.event, workdir / "src", self._settings)
            repo_url = gitlab_repo_url(self._settings.gitlab_url, job.event.project_path)
            progress.started(None)
            sink = _TrackingSink(job.event_id, progress, state)
            box: dict[str, Any] = {}
            plain = trigger_of(job.event, repo_url=repo_url)
            trigger = replace(
                plain, extra=(*plain.extra, (builds.EVENT_PARAMETER, str(job.event_id)))
            )

            def target() -> None:
                try:
                    box["result"] = run(
                        job.spec,
                        trigger,
                        workdir=workdir / "src",
                        state_dir=self._settings.state_dir,
                        sink=sink,
                    )
                except BaseException as exc:
                    box["error"] = exc
                finally:
                    with self._lock:
                        self._active.pop(job.event_id, None)

            thread = threading.Thread(target=target, name=f"conveyor-local-{job.event_id}")
            with self._lock:
                self._active[job.event_id] = (thread, box)
            thread.start()
            outcome = self._wait((thread, box), progress)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    def _workdir(self, job: DispatchJob) -> Path:
        return self._settings.state_dir / "work" / f"event-{job.event_id}"

    def _wait(self, active: tuple[threading.Thread, dict[str, Any]], progress: Progress) -> Outcome:
        thread, box = active
        while thread.is_alive():
            thread.join(self._poll_s)
            try:
                progress.tick()
            except Interrupted as exc:
                if str(exc) != "shutting down":
                    raise
                # A local run cannot be handed over: finish it before letting go.
        if "error" in box:
            raise box["error"]
        result = box["result"]
        succeeded = bool(getattr(result, "succeeded", False))
        detail = str(getattr(result, "summary", "") or ("succeeded" if succeeded else "failed"))
        return Outcome(succeeded=succeeded, detail=f"local {detail}")

    def _earlier_run(
        self, job: DispatchJob, earlier: Mapping[str, Any], progress: Progress
    ) -> Outcome | None:
        """What became of the run an earlier attempt started, or ``None`` to run it now."""
        with self._lock:
            active = self._active.get(job.event_id)
        if active is not None:
            progress.note("following the run an earlier attempt started in this process")
            return self._wait(active, progress)
        from conveyor.runner.history import History

        # no run of it is alive here: what a dead attempt checked out goes
        shutil.rmtree(self._workdir(job), ignore_errors=True)
        history = History(self._settings.state_dir)
        record = history.for_event(job.spec.project, job.event_id, float(earlier["since"]))
        if record is None:
            progress.note("the earlier attempt had not started a run")
            return None
        if record.status != "running":
            progress.note(f"run #{record.number} of an earlier attempt finished: {record.status}")
            summary = (record.result or {}).get("error") or record.status
            return Outcome(
                succeeded=record.status == "success",
                detail=f"local run #{record.number} {summary} (finished by an earlier attempt)",
            )
        stage = earlier.get("stage")
        if not isinstance(stage, str):
            history.mark_crashed(record.number, "the receiver stopped before any stage started")
            progress.note(f"run #{record.number} crashed before any stage started; running again")
            return None
        history.mark_crashed(record.number, f"the receiver stopped during stage {stage!r}")
        progress.note(f"run #{record.number} crashed during stage {stage!r}; not run again")
        return Outcome(
            succeeded=False,
            detail=f"local run #{record.number} was cut off by a crash during stage {stage!r};"
            f" not run again (its stages may have had effects): `conveyor events replay"
            f" {job.event_id}` runs it anew",
        )


class _TrackingSink(LogSink):
    """Logs like :class:`LogSink` and records, before each begins, the run's number and every
    stage it starts (the point of no return: a stage's containers may act on the world)."""

    def __init__(self, event_id: int, progress: Progress, state: dict[str, Any]) -> None:
        super().__init__(event_id)
        self._progress = progress
        self._state = state
        self._lock = threading.Lock()

    def _record(self, *, durable: bool, **changes: Any) -> None:
        with self._lock:
            self._state.update(changes)
            self._progress.remember({"local": dict(self._state)}, durable=durable)

    def run_started(self, number: int, project: str) -> None:
        self._record(run=number, durable=False)
        super().run_started(number, project)

    def stage_started(self, stage: str) -> None:
        # the first stage is the point of no return: fsynced; later ones only name the stage
        self._record(stage=stage, durable="stage" not in self._state)
        super().stage_started(stage)


def available_dispatchers() -> dict[str, Any]:
    """Dispatch targets by name: ``none`` here, the others from plugins (``conveyor_dispatchers``:
    the jenkins plugin provides ``jenkins``, the docker plugin ``local``)."""
    from conveyor.plugins import get_plugin_manager

    targets: dict[str, Any] = {"none": lambda settings: NoneDispatcher()}
    for answer in get_plugin_manager().hook.conveyor_dispatchers():
        targets.update(answer)
    return targets


def make_dispatcher(mode: str, settings: Settings) -> Dispatcher:
    """The dispatcher for ``--dispatch MODE``, checked (raises ConfigError if unusable)."""
    targets = available_dispatchers()
    if mode != "auto" and mode not in targets:
        raise ConfigError(
            f"unknown dispatch mode {mode!r}: use one of {', '.join(['auto', *sorted(targets)])}"
        )
    if mode == "auto":
        mode = "jenkins" if settings.jenkins_configured else "local"
    dispatcher: Dispatcher = targets[mode](settings)
    dispatcher.check()
    return dispatcher
