"""The PostgreSQL store under the queue (``conveyor serve --queue postgresql://...``): the same
contract as the SQLite store (:mod:`conveyor.receiver.queue.contract`), for two or more receivers
and workers on several hosts sharing one database. This module holds the connection, the schema
and its migrations, and the intake's side (:class:`PgBatchStore`); the workers', status sender's
and operators' side is :class:`conveyor.receiver.queue.pg_queue.PgQueue`.

Durability: every transaction commits with PostgreSQL's default ``synchronous_commit=on`` (the
commit returns once its WAL is flushed), so the 2xx that follows :meth:`PgBatchStore.commit` is
power-safe like SQLite's ``synchronous=FULL``. A batch of deliveries is one transaction (group
commit), exactly as on SQLite.

How the rules that SQLite gets from its single writer hold across processes and hosts:

* **Claims** take candidates with ``SELECT ... FOR UPDATE SKIP LOCKED``: two workers never lock
  the same event, and neither waits for the other. The candidates come from three bounded reads
  (new events, due retries, expired leases), as on SQLite, so that a claim costs the same
  however many events wait for their retry.
* **Deploy locks are rows** (``deploy_locks``), not advisory locks. A lock row carries the same
  lease as the claim and is taken with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the old
  holder's lease has expired, which PostgreSQL evaluates on the latest committed row under its
  row lock: of two workers racing for one target exactly one gets it. Session advisory locks
  were the other choice; they are freed when the connection drops, which is wrong twice here:
  a pooled connection outlives the claim that took it, and a worker that lost its connection
  for a moment (the database restarted) would lose its lock while its deploy still runs. A row
  is freed by the same lease that frees the claim, so a deploy target is held exactly as long
  as the event is, and a dead process's lock lapses with its lease.
* **Lanes** (supersede) are serialised with a *transaction* advisory lock per lane
  (``pg_advisory_xact_lock``), taken before the insert, in sorted order. Ids come from a
  sequence, so without it two receivers committing events of one lane at once could each miss
  the other's (neither would supersede the older one). Under the lock, ids within a lane grow
  in commit order. Transaction locks end with the transaction, so they never outlive a process.
* **A merge and its push build once** (:func:`conveyor.receiver.queue.events.commit_built_by`):
  an event that may pair with another (a merged MR, a push) takes a transaction advisory lock on
  its (project, ref, commit) after the lane locks, so of two receivers storing the pair at once
  the second sees the first and is stored ignored.
* **Dedupe** is the unique partial indexes on (project, idempotency_key) and (project,
  webhook_id): a concurrent duplicate waits for the first commit, then conflicts.
* **Leases use the database's clock** (the offset to it is measured when a pool opens), so
  hosts with skewed clocks still agree on when a lease has expired.
* **Orphans**: there is no single server holding the queue, so
  :meth:`~conveyor.receiver.queue.pg_queue.PgQueue.recover_orphans`
  requeues only running events whose lease has already expired; a crashed receiver's claims
  run again when their leases lapse (``--lease``, 60 s by default).

Migrations run on start under a transaction advisory lock (two receivers starting at once: the
second waits, then finds the schema current); ``conveyor queue migrate`` runs them by hand.

The URL's password never appears in an error or a log line: errors name host, port and database
only (:func:`describe`), and driver messages are scrubbed of the password before they are kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from conveyor.errors import QueueError
from conveyor.gitlab.events import PayloadError, parse_event
from conveyor.gitlab.status import CommitState, StatusTarget, status_name, status_target
from conveyor.receiver.queue.events import COMMIT_BUILT_BY, TARGETS_KEPT, commit_built_by
from conveyor.receiver.queue.records import (
    INSERT_COLUMNS,
    Accepted,
    EventRecord,
    NewEvent,
    Status,
    StatusUpdate,
    built_elsewhere,
    event_record,
    insert_values,
    merge_counterpart,
    short_ref,
)

Conn = psycopg.Connection[DictRow]
SCHEMA_VERSION = 3
URL_SCHEMES = ("postgresql://", "postgres://")
_MIGRATE_LOCK = 0x636F6E76  # 'conv': the advisory lock class of conveyor's migrations
LANE_LOCK = 0x6C616E65  # 'lane': one advisory lock per lane (objid: the lane's hash)
_COMMIT_LOCK = 0x73686131  # 'sha1': one per (project, ref, commit) a merge and its push share

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
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
    next_attempt_at  DOUBLE PRECISION NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires    DOUBLE PRECISION,
    last_error       TEXT,
    result_url       TEXT,
    dispatch_state   TEXT,
    replay_of        BIGINT,
    received_at      DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    updated_at       DOUBLE PRECISION NOT NULL,
    body             BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS events_runnable ON events(id) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS events_status ON events(status, id);
CREATE INDEX IF NOT EXISTS events_lane ON events(lane, id) WHERE status = 'queued';
CREATE UNIQUE INDEX IF NOT EXISTS events_project_idempotency ON events(project, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS events_project_webhook_id ON events(project, webhook_id)
    WHERE webhook_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS deploy_locks (
    target         TEXT PRIMARY KEY,
    event_id       BIGINT NOT NULL,
    lease_expires  DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS deploy_locks_event ON deploy_locks(event_id);
CREATE TABLE IF NOT EXISTS status_outbox (
    id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    event_id       BIGINT NOT NULL,
    project        TEXT NOT NULL,
    sha            TEXT NOT NULL,
    ref            TEXT,
    state          TEXT NOT NULL,
    target_url     TEXT,
    description    TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at        DOUBLE PRECISION NOT NULL DEFAULT 0,
    sent_at        DOUBLE PRECISION,
    gave_up        INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    target_project TEXT,
    name           TEXT,
    protected      INTEGER,
    tag            INTEGER NOT NULL DEFAULT 0,
    created_at     DOUBLE PRECISION,
    dropped        TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON status_outbox(id)
    WHERE sent_at IS NULL AND gave_up = 0 AND dropped IS NULL;
CREATE INDEX IF NOT EXISTS outbox_event ON status_outbox(event_id, id);
CREATE TABLE IF NOT EXISTS event_attempts (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    event_id     BIGINT NOT NULL,
    attempt      INTEGER NOT NULL,
    owner        TEXT NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    ended_at     DOUBLE PRECISION,
    outcome      TEXT,
    note         TEXT,
    detail       TEXT
);
CREATE INDEX IF NOT EXISTS attempts_event ON event_attempts(event_id, id);
CREATE TABLE IF NOT EXISTS status_heads (
    target_project TEXT NOT NULL,
    sha            TEXT NOT NULL,
    ref            TEXT NOT NULL,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    event_id       BIGINT NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (target_project, sha, ref, name)
);
"""

# what each schema version adds to the one before (version 1: the whole schema above)
_UPGRADES: dict[int, str] = {
    1: _SCHEMA,
    # 2: the merge/push pair lookup (commit_built_by) by commit
    2: "CREATE INDEX IF NOT EXISTS events_commit ON events(sha, kind);",
    # 3: a claim's bounded reads (pg_queue.CLAIM_STEP): new events in id order, the retries by
    # when they are due; events_runnable (every queued event in id order) is read no more
    3: "CREATE INDEX IF NOT EXISTS events_fresh ON events(id)"
    " WHERE status = 'queued' AND next_attempt_at = 0;\n"
    "CREATE INDEX IF NOT EXISTS events_due ON events(next_attempt_at)"
    " WHERE status = 'queued' AND next_attempt_at > 0;\n"
    "DROP INDEX IF EXISTS events_runnable;",
}


def is_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database (else it is a SQLite state dir)."""
    return location.startswith(URL_SCHEMES)


def describe(url: str) -> str:
    """``postgresql host:port/db``: how errors name the database (never user or password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql (unparsable URL)"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port")
    db = params.get("dbname") or params.get("user") or "?"
    return f"postgresql {host}{':' + str(port) if port else ''}/{db}"


def _password(url: str) -> str | None:
    try:
        value = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        return None
    return str(value) if value else None


class Database:
    """One process's connection pool to a queue database (shared by every store in it)."""

    def __init__(self, url: str, *, max_size: int = 16, timeout_s: float = 5.0) -> None:
        if not is_url(url):
            raise QueueError("event queue: not a postgresql:// URL")
        self.where = describe(url)
        self._secret = _password(url)
        try:
            conninfo_to_dict(url)
        except psycopg.Error:
            raise QueueError(
                f"event queue {self.where}: the URL cannot be parsed",
                hint="postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            ) from None
        self._timeout_s = timeout_s
        self.pool = psycopg_pool.ConnectionPool[Conn](
            url,
            connection_class=Conn,
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, round(timeout_s))},
            open=False,
            name="conveyor-queue",
        )
        self.pool.open(wait=False)
        self.clock_offset = 0.0
        self.found_version = 0
        try:
            with self.errors("open the event queue"), self.pool.connection() as conn:
                self.found_version = migrate(conn)
                before = time.time()
                row = conn.execute("SELECT extract(epoch FROM clock_timestamp()) AS t").fetchone()
                after = time.time()
                assert row is not None
                self.clock_offset = float(row["t"]) - (before + after) / 2
        except BaseException:
            self.pool.close()
            raise

    def now(self) -> float:
        """The database's clock (what every lease is measured against)."""
        return time.time() + self.clock_offset

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Map the driver's and the pool's errors to QueueError (once, here)."""
        try:
            yield
        except psycopg_pool.PoolTimeout:
            raise QueueError(
                f"event queue {self.where}: cannot {what}: the database does not answer "
                f"(no connection within {self._timeout_s:g} s)"
            ) from None
        except psycopg.Error as exc:
            detail = self.scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            message = f"event queue {self.where}: cannot {what}: {type(exc).__name__}: {detail}"
            # a value the database refuses fails only the event that holds it (see commit)
            refused = isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
            raise (ValueRefused if refused else QueueError)(message[:500]) from None

    @contextmanager
    def transaction(self, what: str) -> Iterator[Conn]:
        with self.errors(what), self.pool.connection() as conn, conn.transaction():
            yield conn

    def query(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self.errors("read the event queue"), self.pool.connection() as conn:
            return conn.execute(sql, args).fetchall()

    def read_only(
        self, sql: str, args: Sequence[Any] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """``sql`` in a ``READ ONLY`` transaction (the dashboard's reads: PostgreSQL refuses any
        write in it, ``ReadOnlySqlTransaction``)."""
        with self.transaction("read the event queue") as conn:
            conn.execute("SET TRANSACTION READ ONLY")
            return conn.execute(sql, args).fetchall()

    def close(self) -> None:
        self.pool.close()


_shared: dict[str, tuple[Database, int]] = {}
_shared_lock = threading.Lock()


def database(url: str) -> Database:
    """The process's :class:`Database` for ``url`` (opened, and migrated, on first use)."""
    with _shared_lock:
        db, refs = _shared.get(url, (None, 0))
        if db is None:
            db = Database(url)
        _shared[url] = (db, refs + 1)
        return db


def release(db: Database) -> None:
    with _shared_lock:
        for url, (held, refs) in list(_shared.items()):
            if held is db:
                if refs <= 1:
                    del _shared[url]
                    db.close()
                else:
                    _shared[url] = (held, refs - 1)
                return
    db.close()


def migrate(conn: Conn) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` under an advisory lock (safe when receivers
    start at once: each step and its version commit together). Returns the version found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS conveyor_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) AS v FROM conveyor_schema").fetchone()
        found = int(row["v"]) if row is not None and row["v"] is not None else 0
        if found > SCHEMA_VERSION:
            raise QueueError(
                f"event queue: the database has schema version {found}, newer than this "
                f"conveyor ({SCHEMA_VERSION})",
                hint="upgrade conveyor, or point --queue at another database",
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(_UPGRADES[version])
            conn.execute("INSERT INTO conveyor_schema (version) VALUES (%s)", (version,))
    return found


# ---------------------------------------------------------------------- the outbox's SQL


def _target_of(conn: Conn, event_id: int, project: str, ref: str | None) -> StatusTarget:
    """The target of an event's statuses: its first status's, else from the stored payload."""
    row = conn.execute(
        "SELECT target_project, ref, name, protected, tag FROM status_outbox"
        " WHERE event_id = %s AND name IS NOT NULL ORDER BY id LIMIT 1",
        (event_id,),
    ).fetchone()
    if row is not None:
        protected = None if row["protected"] is None else bool(row["protected"])
        return StatusTarget(
            row["target_project"], row["ref"], row["name"], protected, bool(row["tag"])
        )
    event = conn.execute(
        "SELECT event_header, kind, body FROM events WHERE id = %s", (event_id,)
    ).fetchone()
    if event is not None:
        try:
            parsed = parse_event(event["event_header"], json.loads(event["body"]))
        except (PayloadError, ValueError, TypeError, RecursionError):
            pass
        else:
            return status_target(parsed)
    kind = event["kind"] if event is not None else None
    return StatusTarget(project, ref, status_name(kind or ""))


def add_status(
    conn: Conn,
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
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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


def _stored_lane(lane: str | None) -> str | None:
    """Lanes join their parts with NUL (routing.lane_of), which PostgreSQL text cannot hold;
    stored with the unit separator instead (neither a ref nor a project path may contain one)."""
    return None if lane is None else lane.replace("\x00", "\x1f")


def record_of(row: dict[str, Any]) -> EventRecord:
    lane = row["lane"]
    return event_record({**row, "lane": None if lane is None else lane.replace("\x1f", "\x00")})


def _lock_batch(conn: Conn, batch: Sequence[NewEvent]) -> None:
    """Hold the transaction locks the batch's inserts need: every lane, then every commit a merge
    and its push may share. One order for all receivers (lanes before commits, each sorted), so
    two batches never wait on each other in a ring."""
    lanes = {_stored_lane(e.lane) or "" for e in batch if e.lane and e.status is Status.QUEUED}
    commits = {"\x1f".join(key) for key in map(_commit_key, batch) if key is not None}
    lock(conn, LANE_LOCK, lanes)
    lock(conn, _COMMIT_LOCK, commits)


def lock(conn: Conn, kind: int, keys: set[str]) -> None:
    for key in sorted(keys):
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (kind, key))


_SUPERSEDE = (
    "UPDATE events SET status = 'superseded', reason = 'superseded by event ' || {new},"
    " updated_at = %s, finished_at = %s"
    " WHERE {lane} AND lane = %s AND status = 'queued' AND id < {new}"
    " RETURNING id, project, sha, ref,"
    " EXISTS (SELECT 1 FROM status_outbox o WHERE o.event_id = events.id) AS reported"
)
#: One statement stores one delivery: the insert (nothing on a duplicate) and, for a queued event
#: of a lane, the supersede of the lane's older queued events, which returns those that reported a
#: status (a "canceled" follows for them). Independent of any earlier answer, so a batch's
#: statements go out in one pipeline (one round trip a batch, not three or four a delivery).
_INSERT = (
    f"WITH ins AS (INSERT INTO events ({INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 15)})"
    " ON CONFLICT DO NOTHING RETURNING id),"
    " sup AS ("
    + _SUPERSEDE.format(new="(SELECT id FROM ins)", lane="%s::text IS NOT NULL")
    + ") SELECT (SELECT id FROM ins) AS id,"
    " (SELECT coalesce(json_agg(json_build_array(id, project, sha, ref)), '[]'::json)"
    " FROM sup WHERE reported) AS canceled"
)


def _insert_args(event: NewEvent, now: float) -> tuple[Any, ...]:
    lane = _stored_lane(event.lane) if event.status is Status.QUEUED else None
    return (*insert_values(event, lane=_stored_lane(event.lane), now=now), now, now, lane, lane)


def _cancel(
    conn: Conn, event_id: int, rows: Sequence[Sequence[Any]], targets: dict[int, StatusTarget]
) -> None:
    """Queue "canceled" for the superseded events that reported a status (``rows``: id, project,
    sha, ref). As on SQLite (events.supersede): one that never queued a status has nothing to
    cancel, and a "canceled" nobody sends would keep it from being pruned."""
    for old_id, project, sha, ref in rows:
        add_status(
            conn,
            old_id,
            project,
            sha,
            short_ref(ref),
            StatusUpdate(
                CommitState.CANCELED,
                f"superseded by a newer event ({event_id})",
                target=targets.pop(old_id, None),
            ),
        )


def supersede(conn: Conn, event_id: int, lane: str, now: float) -> None:
    """A replayed event supersedes its lane's older queued events."""
    older = conn.execute(
        _SUPERSEDE.format(new="%s::bigint", lane="true"), (event_id, now, now, lane, event_id)
    ).fetchall()
    _cancel(conn, event_id, [_old(r) for r in older if r["reported"]], {})


def _old(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["id"], row["project"], row["sha"], row["ref"])


def _inserted(
    conn: Conn, event: NewEvent, row: dict[str, Any] | None, targets: dict[int, StatusTarget]
) -> Accepted:
    """What follows the insert statement of ``event``: a duplicate's stored answer, or the
    canceled statuses, the status target kept and the pending status of a new event."""
    if row is None or row["id"] is None:
        existing = conn.execute(
            "SELECT id, status FROM events WHERE project IS NOT DISTINCT FROM %s"
            " AND (idempotency_key = %s OR webhook_id = %s) ORDER BY id LIMIT 1",
            (event.project, event.idempotency_key, event.webhook_id),
        ).fetchone()
        if existing is None:  # the first one was pruned meanwhile: a resend of a pruned event
            raise ValueRefused("event queue: a duplicate of an event that is no longer stored")
        return Accepted(event_id=existing["id"], duplicate=True, status=Status(existing["status"]))
    event_id = int(row["id"])
    if event.status is Status.QUEUED:
        _cancel(conn, event_id, row["canceled"], targets)
        if event.status_target is not None:
            targets[event_id] = event.status_target
            if len(targets) > TARGETS_KEPT:
                del targets[next(iter(targets))]
        if event.pending_status is not None:
            add_status(
                conn, event_id, event.project, event.sha, event.status_ref, event.pending_status
            )
    return Accepted(event_id=event_id, duplicate=False, status=event.status, reason=event.reason)


def _commit_key(event: NewEvent) -> tuple[str, str, str] | None:
    if merge_counterpart(event) is None:
        return None
    return (event.project or "", event.ref or "", event.sha or "")


def _insert_batch(
    conn: Conn, batch: Sequence[NewEvent], targets: dict[int, StatusTarget]
) -> list[Accepted]:
    """Store ``batch`` in order, pipelined: the merge/push lookups, then the inserts, then what
    follows each. A batch holding both events of a merge/push pair is stored one by one instead
    (the second's lookup must see the first's row)."""
    keys = [k for k in map(_commit_key, batch) if k is not None]
    if len(keys) != len(set(keys)):
        return [_insert_event(conn, event, targets) for event in batch]
    with conn.pipeline():
        lookups = [
            conn.execute(
                COMMIT_BUILT_BY.replace("?", "%s"),
                (event.project, event.ref, event.sha, merge_counterpart(event)),
            )
            if _commit_key(event) is not None
            else None
            for event in batch
        ]
        events = []
        for event, lookup in zip(batch, lookups, strict=True):
            built = lookup.fetchone() if lookup is not None else None
            if built is not None:
                event = built_elsewhere(event, int(built["id"]), str(built["kind"]))
            events.append(event)
        now = time.time()
        inserts = [conn.execute(_INSERT, _insert_args(event, now)) for event in events]
        rows = [cursor.fetchone() for cursor in inserts]
        return [_inserted(conn, e, r, targets) for e, r in zip(events, rows, strict=True)]


def _insert_event(conn: Conn, event: NewEvent, targets: dict[int, StatusTarget]) -> Accepted:
    built = commit_built_by(conn, event, placeholder="%s")
    if built is not None:
        event = built_elsewhere(event, *built)
    row = conn.execute(_INSERT, _insert_args(event, time.time())).fetchone()
    return _inserted(conn, event, row, targets)


class PgBatchStore:
    """The intake's side on PostgreSQL: each batch in one transaction (see :class:`BatchStore`)."""

    def __init__(self, url: str) -> None:
        self._db = database(url)
        self._targets: dict[int, StatusTarget] = {}

    def close(self) -> None:
        release(self._db)

    def probe(self) -> None:
        self._db.query("SELECT 1 AS ok")

    def _store(self, batch: Sequence[NewEvent]) -> list[Accepted]:
        try:
            with self._db.transaction("store events") as conn:
                _lock_batch(conn, batch)
                return _insert_batch(conn, batch, self._targets)
        except BaseException:
            self._targets.clear()
            raise

    def commit(self, batch: Sequence[NewEvent]) -> tuple[list[Accepted | str], str | None]:
        try:
            return list(self._store(batch)), None
        except ValueRefused:
            pass  # find the event that holds it: one transaction each
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
                outcomes.append(f"event queue: cannot store the event ({type(exc).__name__})")
        return outcomes, None


class ValueRefused(QueueError):
    """The database refused a value of one event (the rest of its batch is stored)."""
