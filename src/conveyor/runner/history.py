"""Run history in the state directory: ``<state>/runs.sqlite`` (numbers, results, full logs).

While a run goes on, its masked lines and stage boundaries are appended to ``run_lines``
(:class:`conveyor.runner.live.LiveLog`), so the dashboard can stream them; they stay after it ends.
The database is in WAL mode, so readers (``conveyor runs``, the dashboard) never block the run.

A run gets its number (its ``BUILD_NUMBER``) when it starts, so a crashed run still shows up
(``running``, until the receiver's next attempt at its event marks it ``crashed``). Logs are
stored already masked. sqlite3 errors become :class:`RunnerError`. The receiver finds the run
of an event by the ``CONVEYOR_EVENT_ID`` its trigger carries (:meth:`History.for_event`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import RunnerError
from conveyor.runner.results import RunResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    number      INTEGER PRIMARY KEY AUTOINCREMENT,
    project     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    started     REAL NOT NULL,
    finished    REAL,
    result      TEXT,
    log         TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS run_lines (
    number  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    stage   TEXT,
    kind    TEXT NOT NULL,
    at      REAL NOT NULL,
    text    TEXT NOT NULL,
    PRIMARY KEY (number, seq)
);
"""

DB_NAME = "runs.sqlite"


@dataclass(frozen=True)
class LiveLine:
    """One row of a run's live log: a line (``kind`` ``line``) or a stage's ``start``,
    ``skip`` (text: the reason) or ``finish`` (text: the stage result as JSON)."""

    seq: int
    stage: str | None
    kind: str
    at: float
    text: str


@dataclass(frozen=True)
class RunRecord:
    """One row of the history."""

    number: int
    project: str
    spec: str
    trigger: dict[str, Any]
    status: str
    exit_code: int | None
    started: float
    finished: float | None
    result: dict[str, Any] | None
    log: str

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class History:
    """The run history of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DB_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
        except OSError as exc:
            raise RunnerError(
                f"cannot use the state directory {state_dir}: {exc}",
                hint="set CONVEYOR_STATE or pass --state DIR",
            ) from None

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as exc:
            raise RunnerError(f"cannot open the run history {self.path}: {exc}") from None
        try:
            with db:
                yield db
        except sqlite3.Error as exc:
            raise RunnerError(f"run history {self.path}: {exc}") from None
        finally:
            db.close()

    def start(self, project: str, spec: str, trigger: dict[str, Any]) -> int:
        """Record a new run as ``running``; return its number."""
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO runs (project, spec, trigger, status, started) VALUES (?, ?, ?, ?, ?)",
                (project, spec, json.dumps(trigger, sort_keys=True), "running", time.time()),
            )
            number = cursor.lastrowid
        assert number is not None
        return int(number)

    def finish(self, result: RunResult, log: str) -> None:
        """Store the result and the full (masked) log."""
        with self._db() as db:
            db.execute(
                "UPDATE runs SET status = ?, exit_code = ?, finished = ?, result = ?, log = ? "
                "WHERE number = ?",
                (
                    result.status,
                    result.exit_code,
                    time.time(),
                    json.dumps(result.to_json(), sort_keys=True),
                    log,
                    result.number,
                ),
            )

    def for_event(self, project: str, event_id: int, since: float) -> RunRecord | None:
        """The latest run of ``project`` started at or after ``since`` whose trigger carries
        ``CONVEYOR_EVENT_ID=event_id`` (the receiver's local dispatch of that event)."""
        with self._db() as db:
            row = db.execute(
                f"SELECT {self._COLUMNS} FROM runs WHERE project = ? AND started >= ?"
                " AND json_extract(trigger, '$.extra.CONVEYOR_EVENT_ID') = ?"
                " ORDER BY number DESC LIMIT 1",
                (project, since, str(event_id)),
            ).fetchone()
        return self._record(row) if row is not None else None

    def append_lines(self, number: int, rows: Sequence[LiveLine]) -> None:
        """Append a run's live lines (masked already): what the dashboard streams."""
        with self._db() as db:
            db.executemany(
                "INSERT OR IGNORE INTO run_lines (number, seq, stage, kind, at, text)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(number, r.seq, r.stage, r.kind, r.at, r.text) for r in rows],
            )

    def mark_crashed(self, number: int, reason: str) -> None:
        """A run left ``running`` by a process that died: record it as ``crashed``."""
        with self._db() as db:
            db.execute(
                "UPDATE runs SET status = 'crashed', finished = ?, result = ?"
                " WHERE number = ? AND status = 'running'",
                (
                    time.time(),
                    json.dumps({"status": "crashed", "error": reason, "stages": []}),
                    number,
                ),
            )

    def _record(self, row: tuple[Any, ...]) -> RunRecord:
        return RunRecord(
            number=row[0],
            project=row[1],
            spec=row[2],
            trigger=json.loads(row[3]),
            status=row[4],
            exit_code=row[5],
            started=row[6],
            finished=row[7],
            result=json.loads(row[8]) if row[8] else None,
            log=row[9],
        )

    _COLUMNS = "number, project, spec, trigger, status, exit_code, started, finished, result, log"

    def list(self, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {self._COLUMNS} FROM runs ORDER BY number DESC LIMIT ?", (limit,)
            ).fetchall()
        return [self._record(r) for r in rows]

    def get(self, number: int) -> RunRecord:
        """One run; RunnerError if there is none with that number."""
        with self._db() as db:
            row = db.execute(
                f"SELECT {self._COLUMNS} FROM runs WHERE number = ?", (number,)
            ).fetchone()
        if row is None:
            raise RunnerError(
                f"no run #{number} in {self.path}", hint="`conveyor runs list` shows the runs"
            )
        return self._record(row)
