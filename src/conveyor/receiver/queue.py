"""The durable event queue: one SQLite file (``<state>/receiver/events.db``) in WAL mode.

Durability promise: an event is answered 2xx only after its row is committed. The database
runs ``journal_mode=WAL`` with ``synchronous=FULL``: every commit fsyncs the WAL, so a
committed event survives a power loss or kernel crash, not only a killed process (``NORMAL``
would survive ``kill -9`` but may lose the last commits on power loss, which would break the
promise made by the 2xx). The cost of the fsync is paid once per *batch*: the
:class:`IntakeWriter` thread commits every event waiting at that moment in one transaction
(group commit), then acknowledges them all. Its connection never checkpoints (a checkpoint
fsyncs the database file and would stall acknowledgements); the :class:`Checkpointer`
thread does that in the background.

Workers, the status sender and operators open their connections with ``synchronous=NORMAL``:
in WAL mode their commits (claims, outcomes) survive a process crash without an fsync, and
become power-safe with the next ``FULL`` commit or checkpoint. A power loss can only roll
back the latest outcomes, and those events then run again: at least once, never lost.

Tables::

    events        one row per accepted delivery (dedupe, per project: unique idempotency_key,
                  and unique webhook_id for deliveries whose Standard Webhooks signature verified)
    deploy_locks  deploy target -> event holding it (lease-bound, so a crash frees it)
    status_outbox commit statuses to post to GitLab, in order (sent by the status sender)
    event_attempts one row per claim: who, when, how it ended (done, failed, retry, dead,
                  released, interrupted, lease expired) and what it found (``note``:
                  "followed build #3 started by an earlier attempt")

Event lifecycle::

    queued -> running -> done | failed            (failed: the build ran and failed)
       |         |-> queued (retry with backoff)  -> ... -> dead (retries exhausted)
       |         '-> queued (released on shutdown, lease expired after a crash)
       '-> superseded (a newer event in the same lane arrived while this one waited)
    ignored (stored with a reason, never run)

Claims carry a lease (owner + expiry). A worker extends it while it follows a build; a
crashed worker's claims expire and are claimed again (that attempt counts). Finishing is
conditional on still owning the lease, so a completion is recorded exactly once.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import pickle
import queue as stdlib_queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from conveyor.errors import QueueError
from conveyor.gitlab.events import PayloadError, parse_event
from conveyor.gitlab.status import StatusTarget, status_name, status_target

SCHEMA_VERSION = 3  # 2: event_attempts, outbox_event; 3: dedupe per project, webhook_id

log = logging.getLogger("conveyor.receiver")


class Status(StrEnum):
    """Where an event is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    IGNORED = "ignored"
    SUPERSEDED = "superseded"


FINAL = frozenset({Status.DONE, Status.FAILED, Status.DEAD, Status.IGNORED, Status.SUPERSEDED})

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


def connect(
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
def _transaction(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
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


# --------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StatusUpdate:
    """A commit status to post for an event (state in GitLab's vocabulary).

    ``target`` (where it goes: project, ref, name) is needed only on an event's first status
    when the caller has the parsed event at hand; later ones reuse the first one's target,
    and without any the queue derives it from the stored payload.
    """

    state: str
    description: str
    target_url: str | None = None
    target: StatusTarget | None = None


@dataclass(frozen=True)
class NewEvent:
    """A verified delivery, ready to store. ``status`` is QUEUED or IGNORED."""

    event_header: str
    body: bytes
    status: Status
    received_at: float
    idempotency_key: str | None = None
    delivery_uuid: str | None = None
    webhook_id: str | None = None  # only from a verified signature (it is then a dedupe key)
    kind: str | None = None
    project: str | None = None
    ref: str | None = None
    sha: str | None = None
    status_ref: str | None = None
    lane: str | None = None
    deploy_targets: tuple[str, ...] = ()
    reason: str | None = None
    pending_status: StatusUpdate | None = None
    # Where its statuses go, from the parsed event: a later event that supersedes this one
    # posts "canceled" there without re-reading the stored payload (see BatchStore).
    status_target: StatusTarget | None = None


@dataclass(frozen=True)
class Accepted:
    """The intake's answer: the stored event's id, and whether it was a resend."""

    event_id: int
    duplicate: bool
    status: Status


@dataclass(frozen=True)
class EventRecord:
    """One stored event (``body`` is the raw payload)."""

    id: int
    idempotency_key: str | None
    delivery_uuid: str | None
    event_header: str
    kind: str | None
    project: str | None
    ref: str | None
    sha: str | None
    lane: str | None
    deploy_targets: tuple[str, ...]
    status: Status
    reason: str | None
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_expires: float | None
    last_error: str | None
    result_url: str | None
    dispatch_state: dict[str, Any] | None
    replay_of: int | None
    received_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    body: bytes = field(repr=False)
    webhook_id: str | None = None

    def payload(self) -> Any:
        """The JSON payload."""
        return json.loads(self.body)

    def summary(self) -> dict[str, Any]:
        """Everything but the body, JSON-ready."""
        return {
            "id": self.id,
            "status": self.status.value,
            "reason": self.reason,
            "event": self.event_header,
            "kind": self.kind,
            "project": self.project,
            "ref": self.ref,
            "sha": self.sha,
            "idempotency_key": self.idempotency_key,
            "delivery_uuid": self.delivery_uuid,
            "webhook_id": self.webhook_id,
            "deploy_targets": list(self.deploy_targets),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at or None,
            "last_error": self.last_error,
            "result_url": self.result_url,
            "dispatch_state": self.dispatch_state,
            "replay_of": self.replay_of,
            "received_at": self.received_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "updated_at": self.updated_at,
        }


def _record(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        delivery_uuid=row["delivery_uuid"],
        event_header=row["event_header"],
        kind=row["kind"],
        project=row["project"],
        ref=row["ref"],
        sha=row["sha"],
        lane=row["lane"],
        deploy_targets=tuple(json.loads(row["deploy_targets"])),
        status=Status(row["status"]),
        reason=row["reason"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"],
        last_error=row["last_error"],
        result_url=row["result_url"],
        dispatch_state=json.loads(row["dispatch_state"]) if row["dispatch_state"] else None,
        replay_of=row["replay_of"],
        received_at=row["received_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        body=bytes(row["body"]),
        webhook_id=row["webhook_id"],
    )


@dataclass(frozen=True)
class OutboxItem:
    """A commit status waiting to be posted; (target_project, sha, ref, name) is its GitLab status."""

    id: int
    event_id: int
    project: str
    sha: str
    ref: str | None
    state: str
    target_url: str | None
    description: str | None
    attempts: int
    next_at: float
    target_project: str = ""
    name: str = ""
    protected: bool | None = None
    tag: bool = False
    created_at: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The GitLab status this item moves (GitLab reuses one per project, sha, ref, name)."""
        return (self.target_project, self.sha, self.ref or "", self.name)


@dataclass(frozen=True)
class StatusHead:
    """What conveyor last posted (or learnt) for one GitLab status: its state, and whose it is."""

    state: str
    event_id: int  # 0: learnt from GitLab, not posted by any event of ours


def _target_of(
    conn: sqlite3.Connection, event_id: int, project: str, ref: str | None
) -> StatusTarget:
    """The target of an event's statuses: its first status's, else from the stored payload."""
    row = conn.execute(
        "SELECT target_project, ref, name, protected, tag FROM status_outbox"
        " WHERE event_id = ? AND name IS NOT NULL ORDER BY id LIMIT 1",
        (event_id,),
    ).fetchone()
    if row is not None:
        protected = None if row["protected"] is None else bool(row["protected"])
        return StatusTarget(
            row["target_project"], row["ref"], row["name"], protected, bool(row["tag"])
        )
    event = conn.execute(
        "SELECT event_header, kind, body FROM events WHERE id = ?", (event_id,)
    ).fetchone()
    if event is not None:
        try:
            parsed = parse_event(event["event_header"], json.loads(event["body"]))
        except (PayloadError, ValueError, TypeError):
            pass
        else:
            return status_target(parsed)
    kind = event["kind"] if event is not None else None
    return StatusTarget(project, ref, status_name(kind or ""))


def _outbox(
    conn: sqlite3.Connection,
    event_id: int,
    project: str | None,
    sha: str | None,
    ref: str | None,
    update: StatusUpdate,
) -> None:
    if not project or not sha:
        return
    target = update.target or _target_of(conn, event_id, project, ref)
    conn.execute(
        "INSERT INTO status_outbox (event_id, project, sha, ref, state, target_url, description,"
        " target_project, name, protected, tag, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event_id,
            project,
            sha,
            target.ref,
            update.state,
            update.target_url,
            update.description[:255],
            target.project,
            target.name,
            None if target.protected is None else int(target.protected),
            int(target.tag),
            time.time(),
        ),
    )


# ---------------------------------------------------------------------------------- intake writer


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
        conn = connect(self._path)
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


_Waiter = Future[Accepted] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[Accepted]"]
_Entry = tuple[NewEvent, _Waiter] | Future[float] | None  # an event, a probe, or stop
_Outcome = Accepted | QueueError


def _settle_async(items: list[tuple[asyncio.Future[Accepted], _Outcome]]) -> None:
    for future, outcome in items:
        if future.done():
            continue
        if isinstance(outcome, QueueError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class BatchStore:
    """Commits batches of deliveries on one connection (the intake process's side).

    A storage error fails the whole batch; any other error fails only the deliveries that
    raise it: the batch is retried one event per transaction to find them. Nothing a
    delivery carries gets past :meth:`commit`.
    """

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, autocheckpoint=False)
        # The status targets of the queued events this process committed last (by id): what
        # _supersede would otherwise parse each superseded event's stored payload for.
        self._targets: dict[int, StatusTarget] = {}

    def close(self) -> None:
        self._conn.close()

    def probe(self) -> None:
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise QueueError(f"event queue: {exc}") from None

    def _store(self, batch: Sequence[NewEvent]) -> list[Accepted]:
        try:
            with _transaction(self._conn, "store events"):
                return [_insert(self._conn, event, self._targets) for event in batch]
        except BaseException:
            self._targets.clear()  # ids of a rolled-back batch may be given out again
            raise

    def commit(self, batch: Sequence[NewEvent]) -> tuple[list[Accepted | str], str | None]:
        """Each event's outcome (an :class:`Accepted` or an error message), and the storage
        error that failed the batch, if one did."""
        try:
            return list(self._store(batch)), None
        except QueueError as exc:
            return [exc.message] * len(batch), exc.message
        except Exception:
            pass
        outcomes: list[Accepted | str] = []
        for event in batch:
            try:
                outcomes.extend(self._store([event]))
            except QueueError as exc:
                outcomes.append(exc.message)
            except Exception as exc:
                log.error("event not stored", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
                outcomes.append(f"event queue: cannot store the event ({type(exc).__name__})")
        return outcomes, None


class IntakeWriter:
    """Stores verified deliveries with group commit, in a process of its own.

    :meth:`store` (async) and :meth:`submit` (a concurrent Future) resolve with
    :class:`Accepted` once the row is committed, or fail with :class:`QueueError`. A thread
    takes every delivery waiting at that moment, sends the batch to the intake process
    (``conveyor.receiver.intake_process``: a :class:`BatchStore`, ``synchronous=FULL``), and
    answers them all when it replies; the answers of one batch reach an event loop in a single
    wake-up. The commits run outside this process's GIL, so acknowledging never competes with
    them for it. ``on_commit`` is called after each batch that queued new work.

    If the intake process dies, its batch fails (503: GitLab resends) and the next batch
    starts a new one. :meth:`probe` is a round trip through the same inbox and process, so a
    writer that is dead, wedged or failing its commits shows in ``/healthz``.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 512,
        store_timeout_s: float = 30.0,
        on_commit: Callable[[], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        self._path = path
        self._log_level = log_level
        self._max_batch = max_batch
        self._store_timeout_s = store_timeout_s
        self._on_commit = on_commit
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawn()
        self._inbox: stdlib_queue.SimpleQueue[_Entry] = stdlib_queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="conveyor-intake", daemon=True)
        self._stopped = False
        self.storage_error: str | None = None  # the last batch's storage failure, until one commits
        self._thread.start()

    # ------------------------------------------------------------------ the intake process

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "conveyor.receiver.intake_process", str(self._path)]
        self._proc = subprocess.Popen(
            [*cmd, self._log_level], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        reply = self._exchange(None)
        if reply is None or reply[0] != "ready":
            self._kill()
            detail = reply[1] if reply is not None else "it exited"
            raise QueueError(
                f"event queue {self._path}: the intake process did not start: {detail}"
            )

    def _kill(self) -> None:
        if self._proc is not None:
            with suppress(OSError):
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._proc = None

    def _exchange(self, message: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """Send ``message`` (None: only read) and read the reply; None if the process is gone."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            return None
        try:
            if message is not None:
                write_frame(proc.stdin, message)
            return read_frame(proc.stdout)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            return None  # ValueError: the pipe was closed by close() meanwhile

    def _call(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """One round trip; a dead process fails this call, and the next one starts a new one."""
        if self._proc is None:
            self._spawn()
        reply = self._exchange(message)
        if reply is None:
            code = self._proc.poll() if self._proc is not None else None
            self._kill()
            raise QueueError(f"event queue: the intake process exited ({code})")
        return reply

    # ------------------------------------------------------------------ callers' side

    def _refusal(self) -> QueueError | None:
        if self._stopped:
            return QueueError("event queue: the intake writer is stopped")
        if not self._thread.is_alive():
            return QueueError("event queue: the intake writer thread is not running")
        return None

    def submit(self, event: NewEvent) -> Future[Accepted]:
        future: Future[Accepted] = Future()
        refusal = self._refusal()
        if refusal is not None:
            future.set_exception(refusal)
            return future
        self._inbox.put((event, future))
        return future

    async def store(self, event: NewEvent) -> Accepted:
        """Commit ``event``; returns once it is durable (QueueError if not, or not in time)."""
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        self._inbox.put((event, (loop, future)))
        try:
            async with asyncio.timeout(self._store_timeout_s):
                return await future
        except TimeoutError:
            # It may still commit later: the sender's resend is then answered as a duplicate.
            raise QueueError(
                f"event queue: not committed within {self._store_timeout_s:g} s"
            ) from None

    async def probe(self, timeout_s: float) -> float:
        """Round trip through the writer (behind any waiting batch); its duration in seconds.

        Raises QueueError if the writer is stopped, dead, does not answer in time, or its
        last commit failed for a storage reason.
        """
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        started = time.perf_counter()
        future: Future[float] = Future()
        self._inbox.put(future)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            raise QueueError(
                f"event queue: the intake writer did not answer in {timeout_s:g} s"
            ) from None
        if self.storage_error is not None:
            raise QueueError(f"event queue: the last commit failed: {self.storage_error}")
        return time.perf_counter() - started

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is waiting, then stop the thread and the intake process."""
        if self._stopped:
            return
        self._stopped = True
        self._inbox.put(None)
        self._thread.join(timeout_s)
        proc = self._proc
        if proc is not None and not self._thread.is_alive() and proc.stdin is not None:
            proc.stdin.close()  # end of input: the process closes its database and exits
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
        # A hung intake process (the thread still waits on it) is killed: its batch was never
        # acknowledged, so GitLab resends it. Nothing is left running after a stop.
        self._kill()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._inbox.get()
            if first is None:
                break
            batch: list[tuple[NewEvent, _Waiter]] = []
            probes: list[Future[float]] = []
            item: _Entry = first
            while True:
                if item is None:
                    stop = True
                    break
                if isinstance(item, Future):
                    probes.append(item)
                else:
                    batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._inbox.get_nowait()
                except stdlib_queue.Empty:
                    break
            try:
                if batch:
                    self._commit(batch)
                for probe in probes:
                    self._answer_probe(probe)
            except Exception:
                log.exception("intake writer: unexpected error (the thread goes on)")

    def _answer_probe(self, probe: Future[float]) -> None:
        try:
            reply = self._call(("probe",))
            if reply[1] is not None:
                raise QueueError(reply[1])
        except QueueError as exc:
            with suppress(InvalidStateError):
                probe.set_exception(exc)
            return
        with suppress(InvalidStateError):
            probe.set_result(time.time())

    def _commit(self, batch: list[tuple[NewEvent, _Waiter]]) -> None:
        outcomes: list[_Outcome]
        try:
            reply = self._call(("batch", [event for event, _ in batch]))
            outcomes = [o if isinstance(o, Accepted) else QueueError(o) for o in reply[1]]
            self.storage_error = reply[2]
        except QueueError as exc:
            self.storage_error = exc.message
            outcomes = [exc] * len(batch)
        self._answer(batch, outcomes)
        queued_new = any(
            isinstance(o, Accepted) and not o.duplicate and o.status is Status.QUEUED
            for o in outcomes
        )
        if queued_new and self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:
                log.exception("intake writer: on_commit failed")

    @staticmethod
    def _answer(batch: list[tuple[NewEvent, _Waiter]], outcomes: list[_Outcome]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Accepted], _Outcome]]
        ] = {}
        for (_, waiter), outcome in zip(batch, outcomes, strict=True):
            if isinstance(waiter, Future):
                with suppress(InvalidStateError):
                    if isinstance(outcome, QueueError):
                        waiter.set_exception(outcome)
                    else:
                        waiter.set_result(outcome)
            else:
                loop, future = waiter
                by_loop.setdefault(loop, []).append((future, outcome))
        for loop, items in by_loop.items():
            # RuntimeError: the loop is closed, nobody waits for these answers any more.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_async, items)


def write_frame(pipe: IO[bytes], message: tuple[Any, ...]) -> None:
    """One message on a pipe between conveyor's own processes: length, then pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(4, "big") + data)
    pipe.flush()


def read_frame(pipe: IO[bytes]) -> tuple[Any, ...]:
    """The next message (EOFError at the end of the pipe)."""
    head = _read_exactly(pipe, 4)
    message: tuple[Any, ...] = pickle.loads(_read_exactly(pipe, int.from_bytes(head, "big")))
    return message


def _read_exactly(pipe: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = pipe.read(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


TARGETS_KEPT = 4096


def _insert(
    conn: sqlite3.Connection, event: NewEvent, targets: dict[int, StatusTarget] | None = None
) -> Accepted:
    """Insert ``event`` unless the project already has one with its Idempotency-Key or webhook-id."""
    now = time.time()
    row = conn.execute(
        "INSERT INTO events (idempotency_key, delivery_uuid, webhook_id, event_header, kind,"
        " project, ref, sha, lane, deploy_targets, status, reason, received_at, updated_at, body)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (
            event.idempotency_key,
            event.delivery_uuid,
            event.webhook_id,
            event.event_header,
            event.kind,
            event.project,
            event.ref,
            event.sha,
            event.lane,
            json.dumps(list(event.deploy_targets)),
            event.status.value,
            event.reason,
            event.received_at,
            now,
            event.body,
        ),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT id, status FROM events WHERE project IS ?"
            " AND (idempotency_key = ? OR webhook_id = ?) ORDER BY id LIMIT 1",
            (event.project, event.idempotency_key, event.webhook_id),
        ).fetchone()
        return Accepted(event_id=existing["id"], duplicate=True, status=Status(existing["status"]))
    event_id = int(row[0])
    if event.status is Status.QUEUED:
        if event.lane is not None:
            _supersede(conn, event_id, event.lane, now, targets)
        if targets is not None and event.status_target is not None:
            targets[event_id] = event.status_target
            if len(targets) > TARGETS_KEPT:
                del targets[next(iter(targets))]
        if event.pending_status is not None:
            _outbox(
                conn, event_id, event.project, event.sha, event.status_ref, event.pending_status
            )
    return Accepted(event_id=event_id, duplicate=False, status=event.status)


def _supersede(
    conn: sqlite3.Connection,
    event_id: int,
    lane: str,
    now: float,
    targets: dict[int, StatusTarget] | None = None,
) -> None:
    older = conn.execute(
        "UPDATE events SET status = 'superseded', reason = ?, updated_at = ?, finished_at = ?"
        " WHERE lane = ? AND status = 'queued' AND id < ? RETURNING id, project, sha, ref",
        (f"superseded by event {event_id}", now, now, lane, event_id),
    ).fetchall()
    for row in older:
        _outbox(
            conn,
            row["id"],
            row["project"],
            row["sha"],
            short_ref(row["ref"]),
            StatusUpdate(
                "canceled",
                f"superseded by a newer event ({event_id})",
                target=targets.pop(row["id"], None) if targets is not None else None,
            ),
        )


def _end_attempts(
    conn: sqlite3.Connection,
    event_id: int,
    outcome: str,
    detail: str | None,
    now: float,
    *,
    owner: str | None = None,
) -> None:
    """Close the event's open attempt records (only ``owner``'s, when given)."""
    conn.execute(
        "UPDATE event_attempts SET ended_at = ?, outcome = ?, detail = ?"
        " WHERE event_id = ? AND ended_at IS NULL AND (? IS NULL OR owner = ?)",
        (now, outcome, detail, event_id, owner, owner),
    )


# ------------------------------------------------------------------------------------ the queue


@dataclass(frozen=True)
class Claim:
    """An event a worker now holds until its lease expires."""

    record: EventRecord
    owner: str


class EventQueue:
    """Worker- and operator-side access to the queue (one per thread)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._conn = connect(path, synchronous=synchronous)

    def close(self) -> None:
        self._conn.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise QueueError(f"event queue {self.path}: {exc}") from None

    # ------------------------------------------------------------------ operator view

    def get(self, event_id: int) -> EventRecord | None:
        rows = self._query("SELECT * FROM events WHERE id = ?", (event_id,))
        return _record(rows[0]) if rows else None

    def list_events(self, status: Status | None = None, limit: int = 100) -> list[EventRecord]:
        """Newest first."""
        if status is None:
            rows = self._query("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM events WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status.value, limit),
            )
        return [_record(r) for r in rows]

    def counts(self) -> dict[Status, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM events GROUP BY status")
        out = dict.fromkeys(Status, 0)
        for row in rows:
            out[Status(row["status"])] = int(row["n"])
        return out

    def replay(self, event_id: int, *, now: float | None = None) -> int:
        """Queue a copy of a stored event (its routing as stored); returns the new id."""
        now = time.time() if now is None else now
        with _transaction(self._conn, f"replay event {event_id}") as conn:
            row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise QueueError(f"no event with id {event_id}", hint="see `conveyor events list`")
            if row["status"] == Status.IGNORED.value:
                raise QueueError(
                    f"event {event_id} was ignored ({row['reason']}); there is nothing to replay",
                    hint="fix the spec's triggers and push again",
                )
            new_id = conn.execute(
                "INSERT INTO events (delivery_uuid, event_header, kind, project, ref, sha, lane,"
                " deploy_targets, status, received_at, updated_at, body, replay_of)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?) RETURNING id",
                (
                    row["delivery_uuid"],
                    row["event_header"],
                    row["kind"],
                    row["project"],
                    row["ref"],
                    row["sha"],
                    row["lane"],
                    row["deploy_targets"],
                    now,
                    now,
                    row["body"],
                    event_id,
                ),
            ).fetchone()[0]
            if row["lane"] is not None:
                _supersede(conn, int(new_id), row["lane"], now)
        return int(new_id)

    # ------------------------------------------------------------------ worker side

    def claim(self, owner: str, *, lease_s: float, now: float | None = None) -> Claim | None:
        """Take the oldest runnable event whose deploy targets are free, or ``None``.

        Runnable: queued and due, or running with an expired lease (a crashed worker's).
        """
        now = time.time() if now is None else now
        with _transaction(self._conn, "claim an event") as conn:
            candidates = conn.execute(
                "SELECT id, deploy_targets FROM events WHERE"
                " (status = 'queued' AND next_attempt_at <= ?)"
                " OR (status = 'running' AND lease_expires < ?)"
                " ORDER BY id LIMIT 64",
                (now, now),
            ).fetchall()
            for cand in candidates:
                targets = json.loads(cand["deploy_targets"])
                if targets:
                    marks = ",".join("?" * len(targets))
                    busy = conn.execute(
                        f"SELECT 1 FROM deploy_locks WHERE target IN ({marks})"
                        " AND lease_expires >= ? AND event_id != ? LIMIT 1",
                        (*targets, now, cand["id"]),
                    ).fetchone()
                    if busy is not None:
                        continue
                    conn.executemany(
                        "INSERT INTO deploy_locks (target, event_id, lease_expires) VALUES (?, ?, ?)"
                        " ON CONFLICT(target) DO UPDATE SET event_id = excluded.event_id,"
                        " lease_expires = excluded.lease_expires",
                        [(t, cand["id"], now + lease_s) for t in targets],
                    )
                _end_attempts(conn, cand["id"], "lease expired", None, now)
                row = conn.execute(
                    "UPDATE events SET status = 'running', lease_owner = ?, lease_expires = ?,"
                    " attempts = attempts + 1, started_at = ?, updated_at = ? WHERE id = ?"
                    " RETURNING *",
                    (owner, now + lease_s, now, now, cand["id"]),
                ).fetchone()
                conn.execute(
                    "INSERT INTO event_attempts (event_id, attempt, owner, started_at)"
                    " VALUES (?, ?, ?, ?)",
                    (cand["id"], row["attempts"], owner, now),
                )
                return Claim(record=_record(row), owner=owner)
        return None

    def recover_orphans(self) -> int:
        """Requeue every claim left by a server that died (call only holding the server lock).

        The interrupted attempt stays counted; its resume state is kept, so a Jenkins build
        already started is followed, not triggered again.
        """
        now = time.time()
        with _transaction(self._conn, "recover interrupted events") as conn:
            cur = conn.execute(
                "UPDATE events SET status = 'queued', lease_owner = NULL, lease_expires = NULL,"
                " last_error = 'interrupted: the server stopped while running it',"
                " updated_at = ? WHERE status = 'running'",
                (now,),
            )
            conn.execute(
                "UPDATE event_attempts SET ended_at = ?, outcome = 'interrupted',"
                " detail = 'the server stopped while running it' WHERE ended_at IS NULL",
                (now,),
            )
            conn.execute("DELETE FROM deploy_locks")
        return int(cur.rowcount)

    def heartbeat(self, claim: Claim, *, lease_s: float) -> bool:
        """Extend the lease; False if the claim was lost (expired and taken by another)."""
        now = time.time()
        with _transaction(self._conn, "extend a lease") as conn:
            cur = conn.execute(
                "UPDATE events SET lease_expires = ?, updated_at = ?"
                " WHERE id = ? AND status = 'running' AND lease_owner = ?",
                (now + lease_s, now, claim.record.id, claim.owner),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "UPDATE deploy_locks SET lease_expires = ? WHERE event_id = ?",
                (now + lease_s, claim.record.id),
            )
        return True

    def _settle(
        self,
        claim: Claim,
        sql: str,
        args: Sequence[Any],
        status: StatusUpdate | None,
        what: str,
        outcome: tuple[str, str | None],
    ) -> bool:
        rec = claim.record
        with _transaction(self._conn, what) as conn:
            cur = conn.execute(
                sql + " WHERE id = ? AND status = 'running' AND lease_owner = ?",
                (*args, rec.id, claim.owner),
            )
            if cur.rowcount == 0:
                return False
            _end_attempts(conn, rec.id, outcome[0], outcome[1], time.time(), owner=claim.owner)
            conn.execute("DELETE FROM deploy_locks WHERE event_id = ?", (rec.id,))
            if status is not None:
                _outbox(conn, rec.id, rec.project, rec.sha, short_ref(rec.ref), status)
        return True

    def progress(
        self,
        claim: Claim,
        *,
        result_url: str | None = None,
        dispatch_state: dict[str, Any] | None = None,
        status: StatusUpdate | None = None,
        note: str | None = None,
        durable: bool = False,
    ) -> bool:
        """Record how to follow (or resume following) the work, and post ``status``.

        ``dispatch_state`` (e.g. a Jenkins queue item id) lets a later attempt resume the
        same build instead of starting another. ``note`` is added to this attempt's record.
        ``durable`` commits with ``synchronous=FULL`` (an fsync), for the intent written just
        before a point of no return: it must survive a power loss, not only a crash. False if
        the claim was lost.
        """
        rec = claim.record
        state = json.dumps(dispatch_state, sort_keys=True) if dispatch_state is not None else None
        if durable:
            self._conn.execute("PRAGMA synchronous=FULL")
        try:
            with _transaction(self._conn, "record progress") as conn:
                now = time.time()
                cur = conn.execute(
                    "UPDATE events SET result_url = COALESCE(?, result_url),"
                    " dispatch_state = COALESCE(?, dispatch_state), updated_at = ?"
                    " WHERE id = ? AND status = 'running' AND lease_owner = ?",
                    (result_url, state, now, rec.id, claim.owner),
                )
                if cur.rowcount == 0:
                    return False
                if note is not None:
                    conn.execute(
                        "UPDATE event_attempts SET note = COALESCE(note || '; ', '') || ?"
                        " WHERE event_id = ? AND owner = ? AND ended_at IS NULL",
                        (note, rec.id, claim.owner),
                    )
                if status is not None:
                    _outbox(conn, rec.id, rec.project, rec.sha, short_ref(rec.ref), status)
        finally:
            if durable:
                self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return True

    def attempts_for(self, event_id: int) -> list[dict[str, Any]]:
        """The event's attempts, oldest first (what each claim did and how it ended)."""
        rows = self._query(
            "SELECT attempt, owner, started_at, ended_at, outcome, note, detail"
            " FROM event_attempts WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        return [dict(r) for r in rows]

    def finish(
        self,
        claim: Claim,
        *,
        succeeded: bool,
        result_url: str | None,
        detail: str | None,
        status: StatusUpdate | None,
    ) -> bool:
        """Mark done (or failed: the work ran and failed). False if the claim was lost."""
        now = time.time()
        return self._settle(
            claim,
            "UPDATE events SET status = ?, reason = ?, result_url = COALESCE(?, result_url),"
            " finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires = NULL",
            (Status.DONE.value if succeeded else Status.FAILED.value, detail, result_url, now, now),
            status,
            "finish an event",
            (Status.DONE.value if succeeded else Status.FAILED.value, detail),
        )

    def retry_later(self, claim: Claim, *, error: str, delay_s: float) -> bool:
        now = time.time()
        return self._settle(
            claim,
            "UPDATE events SET status = 'queued', last_error = ?, next_attempt_at = ?,"
            " updated_at = ?, lease_owner = NULL, lease_expires = NULL",
            (error, now + delay_s, now),
            None,
            "reschedule an event",
            ("retry", error),
        )

    def dead_letter(self, claim: Claim, *, error: str, status: StatusUpdate | None) -> bool:
        now = time.time()
        return self._settle(
            claim,
            "UPDATE events SET status = 'dead', last_error = ?, reason = ?, finished_at = ?,"
            " updated_at = ?, lease_owner = NULL, lease_expires = NULL",
            (error, "retries exhausted", now, now),
            status,
            "dead-letter an event",
            ("dead", error),
        )

    def release(self, claim: Claim) -> bool:
        """Give the event back untouched (shutdown): this attempt does not count."""
        now = time.time()
        return self._settle(
            claim,
            "UPDATE events SET status = 'queued', attempts = MAX(attempts - 1, 0),"
            " updated_at = ?, lease_owner = NULL, lease_expires = NULL",
            (now,),
            None,
            "release an event",
            ("released", "shutdown: given back before it finished"),
        )

    # ------------------------------------------------------------------ retention

    def _first_id_received_after(self, cutoff: float) -> int | None:
        """The smallest id received at or after ``cutoff`` (ids grow with arrival time, so a
        binary search over the primary key finds it without an index on ``received_at``)."""
        bounds = self._query("SELECT MIN(id) AS lo, MAX(id) AS hi FROM events")
        lo, hi = bounds[0]["lo"], bounds[0]["hi"]
        if lo is None:
            return None
        answer: int | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            rows = self._query(
                "SELECT id, received_at FROM events WHERE id >= ? ORDER BY id LIMIT 1", (mid,)
            )
            if not rows:
                hi = mid - 1
            elif rows[0]["received_at"] >= cutoff:
                answer, hi = int(rows[0]["id"]), mid - 1
            else:
                lo = int(rows[0]["id"]) + 1
        return answer

    def prune_boundary(self, *, max_age_s: float | None, max_events: int | None, now: float) -> int:
        """Events with an id below the returned one are past the retention policy: older than
        ``max_age_s`` or beyond the newest ``max_events`` (``None``: no such limit). The
        newest event is never past it, so ids never restart (CONVEYOR_EVENT_ID stays unique)."""
        top = self._query("SELECT MAX(id) AS hi FROM events")[0]["hi"]
        if top is None:
            return 0
        boundary = 0
        if max_age_s is not None:
            young = self._first_id_received_after(now - max_age_s)
            boundary = max(boundary, young if young is not None else int(top))
        if max_events is not None:
            rows = self._query(
                "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?", (max(max_events, 1) - 1,)
            )
            if rows:
                boundary = max(boundary, int(rows[0]["id"]))
        return min(boundary, int(top))

    _PRUNABLE = (
        # +status: walk the primary key in order (the status index would sort every finished row)
        " +status IN (" + ", ".join(f"'{s.value}'" for s in sorted(FINAL)) + ")"
        " AND NOT EXISTS (SELECT 1 FROM status_outbox o WHERE o.event_id = events.id"
        " AND o.sent_at IS NULL AND o.gave_up = 0 AND o.dropped IS NULL)"
    )

    def prune_candidates(self, *, after: int, below: int, limit: int) -> list[int]:
        """Up to ``limit`` ids in ``(after, below)`` that may go: finished (not queued,
        running or waiting for a retry) with every commit status sent, given up or dropped."""
        rows = self._query(
            "SELECT id FROM events WHERE id > ? AND id < ? AND"
            + self._PRUNABLE
            + " ORDER BY id LIMIT ?",
            (after, below, limit),
        )
        return [int(r["id"]) for r in rows]

    def prune_stats(self, *, below: int) -> tuple[int, int]:
        """(events that may go, bytes of their payloads) below ``below`` (a dry run)."""
        row = self._query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(body)), 0) AS b FROM events"
            " WHERE id < ? AND" + self._PRUNABLE,
            (below,),
        )[0]
        return int(row["n"]), int(row["b"])

    def delete_events(self, ids: Sequence[int]) -> int:
        """Delete these events, their sent statuses and their attempts, in one short
        transaction; the conditions are checked again inside it (an event replayed or a
        status queued meanwhile is kept). Returns how many events went."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with _transaction(self._conn, "prune events") as conn:
            gone = [
                int(r[0])
                for r in conn.execute(
                    f"DELETE FROM events WHERE id IN ({marks}) AND"
                    + self._PRUNABLE
                    + " RETURNING id",
                    tuple(ids),
                ).fetchall()
            ]
            if gone:
                marks = ",".join("?" * len(gone))
                conn.execute(f"DELETE FROM status_outbox WHERE event_id IN ({marks})", gone)
                conn.execute(f"DELETE FROM event_attempts WHERE event_id IN ({marks})", gone)
        return len(gone)

    # ------------------------------------------------------------------ status outbox

    def pending_statuses(self, *, limit: int = 500) -> list[OutboxItem]:
        """Unsent statuses, oldest first (due or not: the sender keeps each status's order)."""
        rows = self._query(
            "SELECT * FROM status_outbox WHERE sent_at IS NULL AND gave_up = 0 AND dropped IS NULL"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            OutboxItem(
                id=r["id"],
                event_id=r["event_id"],
                project=r["project"],
                sha=r["sha"],
                ref=r["ref"],
                state=r["state"],
                target_url=r["target_url"],
                description=r["description"],
                attempts=r["attempts"],
                next_at=r["next_at"],
                target_project=r["target_project"] or r["project"],
                name=r["name"] or status_name(""),
                protected=None if r["protected"] is None else bool(r["protected"]),
                tag=bool(r["tag"]),
                created_at=r["created_at"] or 0.0,
            )
            for r in rows
        ]

    def status_head(self, key: tuple[str, str, str, str]) -> StatusHead | None:
        """What was last posted (or learnt from GitLab) for one GitLab status."""
        rows = self._query(
            "SELECT state, event_id FROM status_heads"
            " WHERE target_project = ? AND sha = ? AND ref = ? AND name = ?",
            key,
        )
        return StatusHead(rows[0]["state"], rows[0]["event_id"]) if rows else None

    @staticmethod
    def _set_head(
        conn: sqlite3.Connection, key: tuple[str, str, str, str], head: StatusHead
    ) -> None:
        conn.execute(
            "INSERT INTO status_heads (target_project, sha, ref, name, state, event_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target_project, sha, ref, name)"
            " DO UPDATE SET state = excluded.state, event_id = excluded.event_id,"
            " updated_at = excluded.updated_at",
            (*key, head.state, head.event_id, time.time()),
        )

    def learn_status_head(self, key: tuple[str, str, str, str], head: StatusHead) -> None:
        """Record what GitLab says a status is in (e.g. after a refused move)."""
        with _transaction(self._conn, "record a commit status's state") as conn:
            self._set_head(conn, key, head)

    def status_sent(self, item: OutboxItem, *, head: StatusHead | None = None) -> None:
        """``item`` is posted (or already true on GitLab); ``head`` is the status's state now."""
        with _transaction(self._conn, "record a sent status") as conn:
            conn.execute(
                "UPDATE status_outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                (time.time(), item.id),
            )
            self._set_head(conn, item.key, head or StatusHead(item.state, item.event_id))

    def prune_status_heads(self, *, older_than_s: float) -> int:
        """Forget finished statuses not touched for ``older_than_s`` (active ones are kept)."""
        with _transaction(self._conn, "prune commit status heads") as conn:
            cur = conn.execute(
                "DELETE FROM status_heads WHERE updated_at < ?"
                " AND state NOT IN ('pending', 'running')",
                (time.time() - older_than_s,),
            )
        return int(cur.rowcount)

    def status_dropped(self, item: OutboxItem, reason: str) -> None:
        """``item`` will not be posted: a later status supersedes it, or it would be illegal."""
        with _transaction(self._conn, "record a dropped status") as conn:
            conn.execute("UPDATE status_outbox SET dropped = ? WHERE id = ?", (reason, item.id))

    def status_failed(self, item: OutboxItem, *, error: str, delay_s: float, give_up: bool) -> None:
        with _transaction(self._conn, "record a failed status") as conn:
            conn.execute(
                "UPDATE status_outbox SET attempts = attempts + 1, last_error = ?, next_at = ?,"
                " gave_up = ? WHERE id = ?",
                (error, time.time() + delay_s, 1 if give_up else 0, item.id),
            )

    def statuses_for(self, event_id: int) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT state, name, target_project, ref, target_url, description, sent_at, gave_up,"
            " dropped, attempts, last_error FROM status_outbox WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        return [dict(r) for r in rows]


def short_ref(ref: str | None) -> str | None:
    """``refs/heads/main`` -> ``main`` (the ref GitLab statuses name)."""
    if ref is None:
        return None
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
