"""Where the queue lives, and the one place that picks its store: a SQLite file in the state
directory (the default) or a PostgreSQL database (``--queue postgresql://...`` or
``CONVEYOR_QUEUE_URL``).

Everything that opens the queue (server, intake process, workers, status sender, pruner,
``conveyor events``) takes a :data:`Location` and calls :func:`open_queue` / :func:`open_intake`,
so no caller knows which store it talks to. A :class:`PgLocation` prints as host, port and
database only: the URL (and its password) never reaches a log line, an error or a process list
(the intake process gets it through its environment, see :func:`child_env`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.errors import ConfigError
from conveyor.receiver.queue.contract import IntakeStore, QueueStore
from conveyor.receiver.queue.store import Checkpointer, ServerLock, database_path

QUEUE_URL_ENV = "CONVEYOR_QUEUE_URL"
CHILD_MARK = "postgresql:env"  # the intake process's argument: the URL is in its environment


@dataclass(frozen=True)
class PgLocation:
    """A PostgreSQL queue; ``str()`` names host, port and database, never the credentials."""

    url: str = field(repr=False)

    def __str__(self) -> str:
        from conveyor.receiver.queue.postgres import describe

        return describe(self.url)

    def __repr__(self) -> str:
        return f"PgLocation({self})"


Location = Path | PgLocation


def resolve(queue: str | None, state_dir: Path, env: Mapping[str, str] | None = None) -> Location:
    """``--queue`` wins, then ``CONVEYOR_QUEUE_URL``; without either, SQLite in ``state_dir``."""
    env = os.environ if env is None else env
    url = queue if queue else env.get(QUEUE_URL_ENV, "").strip()
    if not url:
        return database_path(state_dir)
    from conveyor.receiver.queue.postgres import is_url

    if not is_url(url):
        raise ConfigError(
            f"--queue / {QUEUE_URL_ENV} takes a postgresql:// URL",
            hint="leave it unset for the SQLite queue in the state directory",
        )
    return PgLocation(url)


def open_queue(location: Location, *, synchronous: str = "FULL") -> QueueStore:
    """A worker-, sender- or operator-side view of the queue (one per thread)."""
    if isinstance(location, PgLocation):
        from conveyor.receiver.queue.pg_queue import PgQueue

        return PgQueue(location.url)
    from conveyor.receiver.queue.events import EventQueue

    return EventQueue(location, synchronous=synchronous)


def open_intake(location: Location) -> IntakeStore:
    """The intake process's store (commits batches)."""
    if isinstance(location, PgLocation):
        from conveyor.receiver.queue.postgres import PgBatchStore

        return PgBatchStore(location.url)
    from conveyor.receiver.queue.intake import BatchStore

    return BatchStore(location)


def migrate(location: Location) -> tuple[int, int]:
    """Bring the queue's schema up to date now (what opening it does): (version found, now)."""
    if isinstance(location, PgLocation):
        from conveyor.receiver.queue.postgres import SCHEMA_VERSION as PG_VERSION
        from conveyor.receiver.queue.postgres import Database

        db = Database(location.url)
        db.close()
        return db.found_version, PG_VERSION
    from conveyor.receiver.queue.store import SCHEMA_VERSION, open_database, read_pragma

    found = read_pragma(location, "user_version") if location.exists() else 0
    open_database(location).close()
    return found, SCHEMA_VERSION


def older_page_size(location: Location) -> int | None:
    """A SQLite queue file made with another page size than today's (PostgreSQL: ``None``)."""
    if isinstance(location, PgLocation):
        return None
    from conveyor.receiver.queue.compact import older_page_size as of_file

    return of_file(location)


class NoLock:
    """Receivers sharing a PostgreSQL queue run side by side: nothing to hold."""

    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None


class NoCheckpoints:
    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def server_lock(location: Location) -> ServerLock | NoLock:
    """SQLite: one ``conveyor serve`` per queue file; PostgreSQL: any number."""
    return NoLock() if isinstance(location, PgLocation) else ServerLock(location)


def checkpointer(location: Location) -> Checkpointer | NoCheckpoints:
    """SQLite's WAL checkpointer (PostgreSQL checkpoints by itself)."""
    return NoCheckpoints() if isinstance(location, PgLocation) else Checkpointer(location)


def child_arg(location: Location) -> str:
    """How the intake process is told its queue (never the URL on a command line)."""
    return CHILD_MARK if isinstance(location, PgLocation) else str(location)


def child_env(location: Location) -> dict[str, str] | None:
    """The intake process's environment (None: inherit as it is)."""
    if isinstance(location, PgLocation):
        return {**os.environ, QUEUE_URL_ENV: location.url}
    return None


def from_child_arg(arg: str) -> Location:
    """The intake process's side of :func:`child_arg`."""
    if arg == CHILD_MARK:
        return PgLocation(os.environ[QUEUE_URL_ENV])
    return Path(arg)


def state_of(location: Location, state_dir: Path) -> Path:
    """The receiver's own files (project ids) stay in the state directory with either store."""
    return database_path(state_dir).parent if isinstance(location, PgLocation) else location.parent
