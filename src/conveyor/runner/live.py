"""A run's live log: an :class:`OutputSink` that appends every (masked) line and stage boundary
to the run history's ``run_lines`` while the run goes on, then forwards it to the next sink.

Lines are written in small batches (at most :data:`FLUSH_S` late, by a one-shot timer), so a
chatty stage costs one SQLite transaction per batch, not per line; stage boundaries and the end
of the run are written at once. A failing write never fails the run: the full log is stored by
:meth:`History.finish` anyway, and the error is logged once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict

from conveyor.errors import RunnerError
from conveyor.runner.history import History, LiveLine
from conveyor.runner.output import OutputSink
from conveyor.runner.results import RunResult, StageResult

log = logging.getLogger("conveyor.runner")

FLUSH_S = 0.2


class LiveLog:
    """Records the run's progress in ``history`` and forwards it to ``inner``."""

    def __init__(self, history: History, inner: OutputSink) -> None:
        self._history = history
        self._inner = inner
        self._lock = threading.Lock()
        self._pending: list[LiveLine] = []
        self._seq = 0
        self._number: int | None = None
        self._timer: threading.Timer | None = None
        self._failed = False

    def _add(self, stage: str | None, kind: str, text: str, *, now: bool) -> None:
        with self._lock:
            self._seq += 1
            self._pending.append(LiveLine(self._seq, stage, kind, time.time(), text))
            if not now and self._timer is None:
                self._timer = threading.Timer(FLUSH_S, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if now:
            self.flush()

    def flush(self) -> None:
        """Write what is pending (called by the timer, at stage boundaries and at the end)."""
        with self._lock:
            rows, self._pending = self._pending, []
            self._timer = None
            number = self._number
        if not rows or number is None:
            return
        try:
            self._history.append_lines(number, rows)
        except RunnerError as exc:
            if not self._failed:
                self._failed = True
                log.warning("live log not recorded", extra={"run": number, "error": str(exc)})

    def run_started(self, number: int, project: str) -> None:
        self._number = number
        self._inner.run_started(number, project)

    def stage_started(self, stage: str) -> None:
        self._add(stage, "start", "", now=True)
        self._inner.stage_started(stage)

    def stage_skipped(self, stage: str, reason: str) -> None:
        self._add(stage, "skip", reason, now=True)
        self._inner.stage_skipped(stage, reason)

    def line(self, stage: str, text: str) -> None:
        self._add(stage, "line", text, now=False)
        self._inner.line(stage, text)

    def stage_finished(self, result: StageResult) -> None:
        data = asdict(result)
        data.pop("log_tail", None)
        self._add(result.name, "finish", json.dumps(data, sort_keys=True), now=True)
        self._inner.stage_finished(result)

    def run_finished(self, result: RunResult) -> None:
        self.flush()
        self._inner.run_finished(result)
