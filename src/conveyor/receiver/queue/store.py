"""The SQLite store under the queue: schema, migrations, connections, transactions, the server lock
and the WAL checkpointer (see the package docstring for the durability promise).

Every other module of the queue runs its SQL through :func:`open_database`'s connections and
:func:`transaction`; :class:`SQLiteStore` is the connection a worker- or operator-side view holds.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from conveyor.errors import QueueError

# 2: event_attempts, outbox_event; 3: dedupe per project, webhook_id; 4: events_commit;
# 5: events_fresh
SCHEMA_VERSION = 5

# The page size of a new queue file. The intake writer's COMMIT writes each page a batch
# changed, whole, into the WAL and fsyncs it: a delivery changes about four pages, two of them
# random index pages (events_commit, the (project, Idempotency-Key) index) that share nothing
# with the batch's other events. With 512-byte pages those writes are an eighth of 4 KiB's
# bytes, and a stored event takes 3.4 KB instead of 4.9 (a full queue under the default
# retention: 364 MB instead of 514). Intake was 1.15x faster while the disk's writes were slow
# and the same otherwise (bench/RESULTS.md, "Smaller pages"). SQLite fixes the size when the
# file is created (in WAL mode even VACUUM keeps it), so an older queue keeps its size until
# ``conveyor events compact`` rewrites it.
PAGE_SIZE = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id               INTEGER PRIMARY KEY,
    idempotency_key  TEXT,
    delivery_uuid    TEXT,
    webhook_id       TEXT,
    event_header     TEXT NOT NULL,
    kind             TEXT,
    project          TEXT,
    ref              TEXT,
    sha              TEXT,
    lane             TEXT,
    deploy_targets   TEXT NOT NULL DEFAULT '[]',
    status           TEXT NOT NULL,
    reason           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires    REAL,
    last_error       TEXT,
    result_url       TEXT,
    dispatch_state   TEXT,
    replay_of        INTEGER,
    received_at      REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    updated_at       REAL NOT NULL,
    body             BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_status ON events(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_lane ON events(lane, status);
CREATE INDEX IF NOT EXISTS events_commit ON events(sha, kind);
CREATE INDEX IF NOT EXISTS events_fresh ON events(id)
    WHERE status = 'queued' AND next_attempt_at = 0;
CREATE TABLE IF NOT EXISTS deploy_locks (
    target         TEXT PRIMARY KEY,
    event_id       INTEGER NOT NULL,
    lease_expires  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS status_outbox (
    id             INTEGER PRIMARY KEY,
    event_id       INTEGER NOT NULL,
    project        TEXT NOT NULL,
    sha            TEXT NOT NULL,
    ref            TEXT,
    state          TEXT NOT NULL,
    target_url     TEXT,
    description    TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at        REAL NOT NULL DEFAULT 0,
    sent_at        REAL,
    gave_up        INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    target_project TEXT,
    name           TEXT,
    protected      INTEGER,
    tag            INTEGER NOT NULL DEFAULT 0,
    created_at     REAL,
    dropped        TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON status_outbox(sent_at, gave_up, id);
CREATE TABLE IF NOT EXISTS event_attempts (
    id           INTEGER PRIMARY KEY,
    event_id     INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    owner        TEXT NOT NULL,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    outcome      TEXT,
    note         TEXT,
    detail       TEXT
);
CREATE INDEX IF NOT EXISTS attempts_event ON event_attempts(event_id, id);
CREATE INDEX IF NOT EXISTS outbox_event ON status_outbox(event_id);
CREATE TABLE IF NOT EXISTS status_heads (
    target_project TEXT NOT NULL,
    sha            TEXT NOT NULL,
    ref            TEXT NOT NULL,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    event_id       INTEGER NOT NULL,
    updated_at     REAL NOT NULL,
    PRIMARY KEY (target_project, sha, ref, name)
);
"""

_DEDUPE = """
CREATE UNIQUE INDEX IF NOT EXISTS events_project_idempotency ON events(project, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS events_project_webhook_id ON events(project, webhook_id)
    WHERE webhook_id IS NOT NULL;
"""


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`: a new file gets the whole schema, an older one
    what each version added. The version is re-read under the write lock, and set in the same
    transaction, so a crash or a concurrent opener never half-applies (or repeats) a step."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            steps = (
                _SCHEMA + _DEDUPE
                if version == 0
                else "".join(_UPGRADES[v] for v in range(version + 1, SCHEMA_VERSION + 1))
            )
            for statement in _statements(steps):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _schema_part(first: str, last: str) -> str:
    start = _SCHEMA.index(first)
    end = _SCHEMA.index(last, start)
    return _SCHEMA[start : _SCHEMA.index(";", end) + 1] + "\n"


# what each schema version added to the one before (applied to a queue written by an older conveyor)
_UPGRADES = {
    2: _schema_part(
        "CREATE TABLE IF NOT EXISTS event_attempts",
        "CREATE INDEX IF NOT EXISTS outbox_event",
    ),
    # Dedupe keys are scoped to the project (a key project A used no longer swallows project B's
    # delivery), and a verified signature's ``webhook-id`` dedupes too (a replay with a new key).
    3: "ALTER TABLE events ADD COLUMN webhook_id TEXT;\nDROP INDEX IF EXISTS events_idempotency;\n"
    + _DEDUPE,
    # A merge's Push Hook finds the merge request event that builds its commit (events.py,
    # commit_built_by) without scanning every event.
    4: _schema_part(
        "CREATE INDEX IF NOT EXISTS events_commit", "CREATE INDEX IF NOT EXISTS events_commit"
    ),
    # A worker's claim takes the oldest queued events never retried from their own index, in id
    # order (events.py, claim), instead of reading every queued one and sorting them: a claim
    # cost O(backlog) before.
    5: _schema_part(
        "CREATE INDEX IF NOT EXISTS events_fresh", "CREATE INDEX IF NOT EXISTS events_fresh"
    ),
}


def database_path(state_dir: Path) -> Path:
    """Where the queue lives inside a state directory."""
    return state_dir / "receiver" / "events.db"


class ServerLock:
    """An exclusive ``flock`` beside the database: one ``conveyor serve`` per queue.

    Holding it proves every ``running`` claim in the queue belongs to a dead server, so
    they can be recovered at once instead of waiting for their leases to expire. The
    kernel drops the lock when the process dies, even on ``kill -9``.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise QueueError(f"cannot create {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise QueueError(
                f"another `conveyor serve` is using the event queue {self.path.parent}",
                hint="stop it, or give this one another --state directory",
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_pragma(path: Path, name: str) -> int:
    """One integer ``PRAGMA`` of an existing queue file, read without writing to it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def open_database(
    path: Path, *, synchronous: str = "FULL", autocheckpoint: bool = True
) -> sqlite3.Connection:
    """Open (creating if needed) the queue database with the durability settings above.

    ``autocheckpoint=False`` leaves WAL checkpoints to someone else (the intake writer's
    commits must not pay for copying the WAL into the database: see :class:`Checkpointer`).
    The intake writer uses ``FULL``. Workers and operators may use ``NORMAL``: their
    commits (claims, outcomes) are made durable by the next ``FULL`` commit or checkpoint,
    and surviving a process crash needs no fsync in WAL mode. On a power loss the last
    outcomes may roll back, and those events run again (at least once, never lost).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL: a no-op on an existing file
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise QueueError(f"event queue {path}: the file system refused WAL mode ({mode})")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"event queue {path} has schema version {version}, newer than this conveyor "
                f"({SCHEMA_VERSION})",
                hint="upgrade conveyor or point --state at another directory",
            )
        if version < SCHEMA_VERSION:
            _migrate(conn)
        _migrate_outbox(conn)
        return conn
    except sqlite3.Error as exc:
        raise QueueError(
            f"cannot open the event queue {path}: {exc}",
            hint="check that the state directory is writable (--state / CONVEYOR_STATE)",
        ) from None
    except OSError as exc:
        raise QueueError(
            f"cannot create the state directory {path.parent}: {exc.strerror}",
            hint="choose a writable directory with --state or CONVEYOR_STATE",
        ) from None


_OUTBOX_COLUMNS = {
    "target_project": "TEXT",
    "name": "TEXT",
    "protected": "INTEGER",
    "tag": "INTEGER NOT NULL DEFAULT 0",
    "created_at": "REAL",
    "dropped": "TEXT",
}


def _migrate_outbox(conn: sqlite3.Connection) -> None:
    """Bring a queue written by an older conveyor up to the outbox columns and status heads."""
    have = {r["name"] for r in conn.execute("PRAGMA table_info(status_outbox)")}
    heads = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'status_heads'"
    ).fetchone()
    if set(_OUTBOX_COLUMNS) <= have and heads is not None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {r["name"] for r in conn.execute("PRAGMA table_info(status_outbox)")}
        for column, kind in _OUTBOX_COLUMNS.items():
            if column not in have:
                conn.execute(f"ALTER TABLE status_outbox ADD COLUMN {column} {kind}")
        start = _SCHEMA.index("CREATE TABLE IF NOT EXISTS status_heads")
        conn.execute(_SCHEMA[start:].rstrip().rstrip(";"))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def transaction(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise QueueError(f"event queue: cannot {what}: {exc}") from None
    try:
        yield conn
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise QueueError(f"event queue: cannot {what}: {exc}") from None
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise QueueError(f"event queue: cannot {what}: {exc}") from None


@contextmanager
def savepoint(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
    """One operation inside an open transaction: undone alone if it fails."""
    conn.execute("SAVEPOINT op")
    try:
        yield conn
    except BaseException as exc:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        if isinstance(exc, sqlite3.Error):
            raise QueueError(f"event queue: cannot {what}: {exc}") from None
        raise
    else:
        conn.execute("RELEASE op")


class Checkpointer:
    """Copies the WAL back into the database every ``interval_s`` (PASSIVE: never blocks writers).

    The intake writer runs with auto-checkpoints off so that no acknowledgement waits for a
    checkpoint's fsyncs; this thread keeps the WAL from growing instead.
    """

    def __init__(self, path: Path, *, interval_s: float = 1.0) -> None:
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        conn = open_database(self._path)
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue
            with suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()


class SQLiteStore:
    """One connection to the queue, for one thread (the base of :class:`EventQueue`).

    Every write runs in :meth:`_transaction`; the intake process's view (``conn`` given: the
    intake's own connection) makes each one a savepoint of the batch's transaction instead.
    """

    def __init__(
        self, path: Path, *, synchronous: str = "FULL", conn: sqlite3.Connection | None = None
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._in_batch = conn is not None
        self._conn = conn if conn is not None else open_database(path, synchronous=synchronous)

    def close(self) -> None:
        if not self._in_batch:
            self._conn.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise QueueError(f"event queue {self.path}: {exc}") from None

    def _transaction(self, what: str) -> AbstractContextManager[sqlite3.Connection]:
        if self._in_batch:
            return savepoint(self._conn, what)
        return transaction(self._conn, what)

    @contextmanager
    def _durable(self, durable: bool) -> Iterator[None]:
        """Commit what runs inside with ``synchronous=FULL`` when ``durable`` (an fsync; the
        intake's batches always are)."""
        if not durable or self._in_batch or self._synchronous == "FULL":
            yield
            return
        self._conn.execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
