"""The ``local`` dispatch target: run a received event's pipeline with conveyor's own Docker runner.

Check out the event's commit (:mod:`conveyor.gitlab.checkout`) and run
:func:`conveyor.runner.execute.run_pipeline` on it. A local run cannot be handed to another worker,
so on shutdown it is finished, not released. The run's trigger carries ``CONVEYOR_EVENT_ID`` (in its
stages' environment too, as in a Jenkins build), and before it starts the attempt fsyncs its intent
(``{"local": {"since": t}}``); the run number and each stage are recorded as they start, each before
its containers do. A later attempt at the same event looks its run up in the run history first: a
finished run gives its result (not run again); a run still going in this process is waited for; a
run left ``running`` by a dead process is marked ``crashed``, the containers it left are removed
(:mod:`conveyor.runner.leftovers`), and when no stage had started (nothing
outside conveyor happened yet), run afresh, otherwise the event is failed with the stage it was cut
off in (its stages may have had effects: deploys, pushes; `conveyor events replay` runs it again on
purpose). No run found means none started: run it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.gitlab.checkout import checkout, gitlab_repo_url
from conveyor.gitlab.events import trigger_of
from conveyor.pipeline.context import EVENT_PARAMETER
from conveyor.receiver.dispatch import DispatchJob, Interrupted, Outcome, Progress
from conveyor.runner.execute import run_pipeline
from conveyor.runner.history import History
from conveyor.runner.leftovers import remove_run_containers
from conveyor.runner.results import RunResult, StageResult
from conveyor.spec.model import Spec

log = logging.getLogger("conveyor.runner.dispatcher")


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

    def stage_finished(self, result: StageResult) -> None:
        log.info(
            "stage finished",
            extra={**self._extra, "stage": result.name, "result": result.result},
        )

    def run_finished(self, result: RunResult) -> None:
        log.info("local run finished", extra={**self._extra, "summary": result.summary})


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


@dataclass
class _Run:
    """One event's run in its thread: the result or the error it ended with."""

    thread: threading.Thread | None = None
    result: RunResult | None = None
    error: BaseException | None = None


class LocalDispatcher:
    """Run the pipeline with conveyor's local Docker runner (:mod:`conveyor.runner.execute`)."""

    name = "local"

    def __init__(self, settings: Settings, *, poll_s: float = 2.0) -> None:
        self._settings = settings
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._active: dict[int, _Run] = {}

    def check(self) -> None:
        return None  # the runner is part of conveyor; each stage connects to Docker itself

    def job_url(self, spec: Spec) -> str | None:
        return None

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
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
            plain = trigger_of(job.event, repo_url=repo_url)
            trigger = replace(plain, extra=(*plain.extra, (EVENT_PARAMETER, str(job.event_id))))
            run = _Run()

            def target() -> None:
                try:
                    run.result = run_pipeline(
                        job.spec,
                        trigger,
                        workdir=workdir / "src",
                        state_dir=self._settings.state_dir,
                        sink=sink,
                    )
                except BaseException as exc:
                    run.error = exc
                finally:
                    with self._lock:
                        self._active.pop(job.event_id, None)

            run.thread = threading.Thread(target=target, name=f"conveyor-local-{job.event_id}")
            with self._lock:
                self._active[job.event_id] = run
            run.thread.start()
            outcome = self._wait(run, progress)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    def _workdir(self, job: DispatchJob) -> Path:
        return self._settings.state_dir / "work" / f"event-{job.event_id}"

    def _wait(self, run: _Run, progress: Progress) -> Outcome:
        assert run.thread is not None  # set before the run is registered or waited for
        while run.thread.is_alive():
            run.thread.join(self._poll_s)
            try:
                progress.tick()
            except Interrupted as exc:
                if str(exc) != "shutting down":
                    raise
                # A local run cannot be handed over: finish it before letting go.
        if run.error is not None:
            raise run.error
        assert run.result is not None  # the thread ended with a result or an error
        return Outcome(succeeded=run.result.succeeded, detail=f"local {run.result.summary}")

    def _remove_leftovers(self, number: int, progress: Progress) -> None:
        """Stop what the dead run's stages still run (:mod:`conveyor.runner.leftovers`)."""
        try:
            removed = remove_run_containers(self._settings.state_dir, number)
        except ConveyorError as exc:
            progress.note(f"cannot remove the containers run #{number} left: {exc.message}")
            return
        if removed:
            progress.note(f"removed {len(removed)} container(s) run #{number} left running")

    def _earlier_run(
        self, job: DispatchJob, earlier: Mapping[str, Any], progress: Progress
    ) -> Outcome | None:
        """What became of the run an earlier attempt started, or ``None`` to run it now."""
        with self._lock:
            active = self._active.get(job.event_id)
        if active is not None:
            progress.note("following the run an earlier attempt started in this process")
            return self._wait(active, progress)
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
        self._remove_leftovers(record.number, progress)
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
