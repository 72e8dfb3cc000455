"""The dashboard's reads: its own read-only connections to the event queue and the run history
(``runs.sqlite``), never the intake writer's.

The event queue is either store (see :mod:`conveyor.receiver.queue.location`); the queries below
are written once, against a :class:`Reader`, which has one implementation per store:

* :class:`SqliteReader`: a connection opened ``mode=ro`` with ``query_only``, so no page can
  write; in WAL mode a reader never blocks the intake writer nor waits for it.
* :class:`PgReader`: the dashboard's own small pool on the PostgreSQL queue, every query in a
  ``READ ONLY`` transaction (:meth:`conveyor.receiver.queue.postgres.Database.read_only`).

The events list pages by id (keyset: ``id < before``), newest first, so any page costs the same
whatever the queue holds; the body (the payload, up to 25 MB) is read only on an event's own page.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.errors import QueueError
from conveyor.runner.history import DB_NAME as RUNS_DB
from conveyor.runner.history import LiveLine

if TYPE_CHECKING:
    from conveyor.receiver.queue.postgres import Database

PAGE_SIZE = 50

_LIST_COLUMNS = (
    "id, event_header, kind, project, ref, sha, status, reason, attempts, last_error,"
    " replay_of, received_at, finished_at, result_url, dispatch_state"
)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path`` (QueueError if it cannot be read)."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise QueueError(f"cannot read {path}: {exc}") from None
    return conn


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """:func:`connect_read_only`, closed at the end (sqlite3 errors become QueueError)."""
    conn = connect_read_only(path)
    try:
        yield conn
    except sqlite3.Error as exc:
        raise QueueError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()


class Reader(Protocol):
    """Read-only rows from the event queue. ``sql`` marks its parameters ``?`` (the one SQL
    text both stores run; no query here holds a ``?`` or ``%`` of its own)."""

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class SqliteReader:
    """A :class:`Reader` on a :func:`connect_read_only` connection."""

    conn: sqlite3.Connection

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]


@dataclass(frozen=True)
class PgReader:
    """A :class:`Reader` on the PostgreSQL queue (each query a READ ONLY transaction)."""

    db: Database

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.db.read_only(sql.replace("?", "%s"), args)


@dataclass(frozen=True)
class EventFilter:
    """The events list's filters (all optional) and its page (``before``: ids below this)."""

    project: str | None = None
    kind: str | None = None
    status: str | None = None
    since: float | None = None  # received at or after (epoch seconds)
    until: float | None = None  # received before
    before: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("project", self.project),
            ("kind", self.kind),
            ("status", self.status),
        ):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since is not None:
            clauses.append("received_at >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("received_at < ?")
            args.append(self.until)
        if self.before is not None:
            clauses.append("id < ?")
            args.append(self.before)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


@dataclass(frozen=True)
class EventPage:
    rows: list[dict[str, Any]]
    next_before: int | None  # the next page's ``before``, None on the last page


def list_events(reader: Reader, filters: EventFilter, limit: int = PAGE_SIZE) -> EventPage:
    where, args = filters.where()
    rows = reader.rows(
        f"SELECT {_LIST_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?", [*args, limit + 1]
    )
    out = [_event_row(r) for r in rows[:limit]]
    return EventPage(out, out[-1]["id"] if len(rows) > limit else None)


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    data = dict(row)
    state = data.get("dispatch_state")
    data["dispatch_state"] = json.loads(state) if state else None
    return data


def get_event(reader: Reader, event_id: int) -> dict[str, Any] | None:
    rows = reader.rows("SELECT * FROM events WHERE id = ?", (event_id,))
    if not rows:
        return None
    data = _event_row(rows[0])
    data["deploy_targets"] = json.loads(data["deploy_targets"] or "[]")
    data["body"] = bytes(data["body"]).decode("utf-8", errors="replace")
    return data


def replays_of(reader: Reader, event_id: int) -> list[int]:
    return [
        int(r["id"])
        for r in reader.rows(
            "SELECT id FROM events WHERE replay_of = ? ORDER BY id LIMIT 50", (event_id,)
        )
    ]


def attempts_for(reader: Reader, event_id: int) -> list[dict[str, Any]]:
    """As :meth:`EventQueue.attempts_for`, on the dashboard's connection."""
    return reader.rows(
        "SELECT attempt, owner, started_at, ended_at, outcome, note, detail"
        " FROM event_attempts WHERE event_id = ? ORDER BY id",
        (event_id,),
    )


def statuses_for(reader: Reader, event_id: int) -> list[dict[str, Any]]:
    """As :meth:`StatusOutbox.statuses_for`, on the dashboard's connection."""
    return reader.rows(
        "SELECT state, name, target_project, ref, target_url, description, sent_at, gave_up,"
        " dropped, attempts, last_error FROM status_outbox WHERE event_id = ? ORDER BY id",
        (event_id,),
    )


def counts(reader: Reader) -> dict[str, int]:
    rows = reader.rows("SELECT status, COUNT(*) AS n FROM events GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}


def dead_letters(reader: Reader, limit: int = 20) -> list[dict[str, Any]]:
    return [
        _event_row(r)
        for r in reader.rows(
            f"SELECT {_LIST_COLUMNS} FROM events WHERE status = 'dead' ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    ]


# ---------------------------------------------------------------------- runs


def runs_path(state_dir: Path) -> Path:
    return state_dir / RUNS_DB


@dataclass(frozen=True)
class Stage:
    """One stage of a run's picture (a parallel branch has a ``parent``)."""

    name: str
    result: str  # running, success, failed, skipped, not_run
    duration: float | None = None
    parent: str | None = None
    reason: str = ""
    lines: list[str] = field(default_factory=list)


def list_runs(conn: sqlite3.Connection, limit: int = 50) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT number, project, status, exit_code, started, finished, trigger FROM runs"
            " ORDER BY number DESC LIMIT ?",
            (limit,),
        )
    ]


def get_run(conn: sqlite3.Connection, number: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT number, project, spec, trigger, status, exit_code, started, finished, result, log"
        " FROM runs WHERE number = ?",
        (number,),
    ).fetchone()
    if row is None:
        return None
    data = dict(row)
    data["trigger"] = json.loads(data["trigger"])
    data["result"] = json.loads(data["result"]) if data["result"] else None
    return data


def run_status(conn: sqlite3.Connection, number: int) -> str | None:
    row = conn.execute("SELECT status FROM runs WHERE number = ?", (number,)).fetchone()
    return str(row[0]) if row is not None else None


def live_lines(
    conn: sqlite3.Connection, number: int, after: int = 0, limit: int = 2000
) -> list[LiveLine]:
    return [
        LiveLine(r["seq"], r["stage"], r["kind"], r["at"], r["text"])
        for r in conn.execute(
            "SELECT seq, stage, kind, at, text FROM run_lines WHERE number = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (number, after, limit),
        )
    ]


def stages_of(run: dict[str, Any], lines: list[LiveLine]) -> list[Stage]:
    """The run's stages in order, each with its result, duration and log lines: from the stored
    result once the run ended, else from the live log's stage boundaries."""
    by_stage: dict[str, list[str]] = {}
    live: dict[str, Stage] = {}
    for line in lines:
        if line.stage is None:
            continue
        if line.kind == "line":
            by_stage.setdefault(line.stage, []).append(line.text)
        elif line.kind == "start":
            live[line.stage] = Stage(line.stage, "running")
        elif line.kind == "skip":
            live[line.stage] = Stage(line.stage, "skipped", reason=line.text)
        elif line.kind == "finish":
            data = json.loads(line.text)
            live[line.stage] = Stage(
                line.stage,
                str(data["result"]),
                float(data.get("duration") or 0.0),
                data.get("parent"),
                str(data.get("reason") or ""),
            )
    result = run.get("result")
    if result and result.get("stages"):
        stages = [
            Stage(s["name"], s["result"], s.get("duration"), s.get("parent"), s.get("reason") or "")
            for s in result["stages"]
        ]
    else:
        stages = list(live.values())
    return [
        Stage(s.name, s.result, s.duration, s.parent, s.reason, by_stage.get(s.name, []))
        for s in stages
    ]
