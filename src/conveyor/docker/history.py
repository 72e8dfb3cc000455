"""Deploy history: every deploy and rollback, in SQLite under the state directory (``deploys.sqlite``).

A record is opened (``running``) before a deploy touches anything and closed with ``success`` or
``failure`` and a message, so an interrupted deploy stays visible. ``rollback`` asks
:meth:`DeployHistory.rollback_target` for the last good version: the newest successful image that differs
from the one now serving.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from conveyor.errors import DeployError

Result = Literal["running", "success", "failure"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deploys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL,
    target         TEXT NOT NULL,
    action         TEXT NOT NULL,
    spec           TEXT NOT NULL,
    project        TEXT NOT NULL,
    image          TEXT NOT NULL,
    image_id       TEXT NOT NULL DEFAULT '',
    digest         TEXT NOT NULL DEFAULT '',
    previous_image TEXT,
    started        TEXT NOT NULL,
    finished       TEXT,
    result         TEXT NOT NULL,
    message        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS deploys_by_name ON deploys (name, id);
"""


@dataclass(frozen=True)
class DeployRecord:
    """One row of the history."""

    id: int
    name: str
    target: str
    action: str
    spec: str
    project: str
    image: str
    image_id: str
    digest: str
    previous_image: str | None
    started: datetime
    finished: datetime | None
    result: Result
    message: str


def _now() -> datetime:
    return datetime.now(UTC)


class DeployHistory:
    """The history database at ``state_dir/deploys.sqlite`` (created on first use)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "deploys.sqlite"
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise DeployError(
                f"cannot open the deploy history {self.path}: {exc}",
                hint="set --state / CONVEYOR_STATE to a writable directory",
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        except sqlite3.Error as exc:
            raise DeployError(f"deploy history {self.path}: {exc}") from None
        finally:
            db.close()

    def start(
        self,
        *,
        name: str,
        target: str,
        action: str,
        spec: str,
        project: str,
        image: str,
        previous_image: str | None,
    ) -> int:
        """Open a ``running`` record; returns its id for :meth:`finish`."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO deploys (name, target, action, spec, project, image, previous_image,"
                " started, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (name, target, action, spec, project, image, previous_image, _now().isoformat()),
            )
            return int(cur.lastrowid or 0)

    def finish(
        self,
        record_id: int,
        result: Result,
        message: str = "",
        *,
        image_id: str = "",
        digest: str = "",
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE deploys SET result = ?, message = ?, finished = ?,"
                " image_id = CASE WHEN ? != '' THEN ? ELSE image_id END,"
                " digest = CASE WHEN ? != '' THEN ? ELSE digest END WHERE id = ?",
                (
                    result,
                    message,
                    _now().isoformat(),
                    image_id,
                    image_id,
                    digest,
                    digest,
                    record_id,
                ),
            )

    def records(self, name: str, limit: int = 50) -> list[DeployRecord]:
        """The newest ``limit`` records of deploy ``name``, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM deploys WHERE name = ? ORDER BY id DESC LIMIT ?", (name, limit)
            ).fetchall()
        return [_record(row) for row in rows]

    def current(self, name: str) -> DeployRecord | None:
        """The newest successful record: the version that should be serving now."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM deploys WHERE name = ? AND result = 'success' ORDER BY id DESC LIMIT 1",
                (name,),
            ).fetchone()
        return _record(row) if row else None

    def rollback_target(self, name: str) -> DeployRecord:
        """The last good version before the current one (newest success with a different image)."""
        successes = [r for r in self.records(name, limit=1000) if r.result == "success"]
        if not successes:
            raise DeployError(f"deploy {name!r} has no successful deploy to roll back from")
        current = successes[0]
        for record in successes[1:]:
            if (record.image, record.image_id) != (current.image, current.image_id):
                return record
        raise DeployError(
            f"deploy {name!r} has no earlier good version than {current.image}",
            hint="`conveyor history SPEC` lists what was deployed",
        )


def _record(row: sqlite3.Row) -> DeployRecord:
    finished = row["finished"]
    return DeployRecord(
        id=row["id"],
        name=row["name"],
        target=row["target"],
        action=row["action"],
        spec=row["spec"],
        project=row["project"],
        image=row["image"],
        image_id=row["image_id"],
        digest=row["digest"],
        previous_image=row["previous_image"],
        started=datetime.fromisoformat(row["started"]),
        finished=datetime.fromisoformat(finished) if finished else None,
        result=row["result"],
        message=row["message"],
    )
