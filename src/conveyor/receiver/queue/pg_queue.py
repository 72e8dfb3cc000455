"""The workers', status sender's and operators' side of the PostgreSQL store: claims with ``FOR
UPDATE SKIP LOCKED``, deploy locks as lease rows, leases, settling, replay, retention and the status
outbox. Why each rule holds across processes and hosts: :mod:`conveyor.receiver.queue.postgres`,
which also holds the connection, the schema and the intake's side."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from conveyor.errors import QueueError
from conveyor.receiver.queue.postgres import (
    LANE_LOCK,
    Conn,
    add_status,
    database,
    lock,
    record_of,
    release,
    supersede,
)
from conveyor.receiver.queue.records import (
    FINAL,
    Claim,
    EventRecord,
    OutboxItem,
    Status,
    StatusHead,
    StatusUpdate,
    outbox_item,
    short_ref,
)

_CANDIDATES = 8  # rows locked per claim step

#: One claim step: up to ``%(n)s`` runnable events after ``%(after)s`` that no other claim
#: holds, oldest first, locked. The candidates are the oldest 64 of three reads, each bounded
#: (as SQLite's, ``events._CANDIDATES``): new events, never retried, in id order from their
#: partial index (``events_fresh``); queued events whose retry is due (``events_due``: only
#: the retries are read); running events whose lease expired (as many as there are workers).
#: Walking every queued event in id order (the index ``events_runnable`` of schema 2) read each
#: retry still waiting for its backoff, at every claim, however idle the queue.
#:
#: * The due retries are read apart (a materialized CTE, with no order to keep): ordered by id
#:   and limited in the union, a generic plan (psycopg prepares a statement run 5 times, and
#:   PostgreSQL may then plan it once, without its values) walked the whole table in id order.
#: * Each candidate is locked by a ``LATERAL`` subquery of its own, in the candidates' order,
#:   until ``%(n)s`` are held: ``SKIP LOCKED`` passes over those another claim holds, and
#:   PostgreSQL checks the condition again on a row's latest version once it holds its lock.
CLAIM_STEP = (
    "WITH due AS MATERIALIZED (SELECT id FROM events"
    " WHERE status = 'queued' AND next_attempt_at > 0 AND next_attempt_at <= %(now)s)"
    " SELECT runnable.id, runnable.deploy_targets FROM ("
    " SELECT id FROM ("
    "  (SELECT id FROM events WHERE status = 'queued' AND next_attempt_at = 0"
    "   AND id > %(after)s ORDER BY id LIMIT 64)"
    "  UNION ALL"
    "  (SELECT id FROM due WHERE id > %(after)s ORDER BY id LIMIT 64)"
    "  UNION ALL"
    "  (SELECT id FROM events WHERE status = 'running' AND lease_expires < %(now)s"
    "   AND id > %(after)s ORDER BY id LIMIT 64)"
    " ) AS found ORDER BY id LIMIT 64) AS candidate"
    " CROSS JOIN LATERAL (SELECT id, deploy_targets FROM events WHERE id = candidate.id"
    "  AND ((status = 'queued' AND next_attempt_at <= %(now)s)"
    "   OR (status = 'running' AND lease_expires < %(now)s))"
    "  FOR UPDATE SKIP LOCKED) AS runnable"
    " LIMIT %(n)s"
)


class PgQueue:
    """The workers', status sender's and operators' side on PostgreSQL (:class:`QueueStore`)."""

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        del synchronous  # every PostgreSQL commit is durable (synchronous_commit=on)
        self._db = database(url)
        self.where = self._db.where

    def close(self) -> None:
        release(self._db)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._db.query(sql, args)

    # ------------------------------------------------------------------ operators

    def get(self, event_id: int) -> EventRecord | None:
        rows = self._query("SELECT * FROM events WHERE id = %s", (event_id,))
        return record_of(rows[0]) if rows else None

    def list_events(self, status: Status | None = None, limit: int = 100) -> list[EventRecord]:
        if status is None:
            rows = self._query("SELECT * FROM events ORDER BY id DESC LIMIT %s", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM events WHERE status = %s ORDER BY id DESC LIMIT %s",
                (status.value, limit),
            )
        return [record_of(r) for r in rows]

    def counts(self) -> dict[Status, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM events GROUP BY status")
        out = dict.fromkeys(Status, 0)
        for row in rows:
            out[Status(row["status"])] = int(row["n"])
        return out

    def replay(self, event_id: int, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._db.transaction(f"replay event {event_id}") as conn:
            row = conn.execute("SELECT * FROM events WHERE id = %s", (event_id,)).fetchone()
            if row is None:
                raise QueueError(f"no event with id {event_id}", hint="see `conveyor events list`")
            if row["status"] == Status.IGNORED.value:
                raise QueueError(
                    f"event {event_id} was ignored ({row['reason']}); there is nothing to replay",
                    hint="fix the spec's triggers and push again",
                )
            if row["lane"] is not None:
                lock(conn, LANE_LOCK, {row["lane"]})
            new = conn.execute(
                "INSERT INTO events (delivery_uuid, event_header, kind, project, ref, sha, lane,"
                " deploy_targets, status, received_at, updated_at, body, replay_of)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'queued', %s, %s, %s, %s) RETURNING id",
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
            ).fetchone()
            assert new is not None
            new_id = int(new["id"])
            if row["lane"] is not None:
                supersede(conn, new_id, row["lane"], now)
        return new_id

    def attempts_for(self, event_id: int) -> list[dict[str, Any]]:
        return self._query(
            "SELECT attempt, owner, started_at, ended_at, outcome, note, detail"
            " FROM event_attempts WHERE event_id = %s ORDER BY id",
            (event_id,),
        )

    # ------------------------------------------------------------------ workers

    def claim(self, owner: str, *, lease_s: float, now: float | None = None) -> Claim | None:
        now = self._db.now() if now is None else now
        with self._db.transaction("claim an event") as conn:
            after = 0
            for _ in range(64 // _CANDIDATES):
                step = {"after": after, "now": now, "n": _CANDIDATES}
                held = conn.execute(CLAIM_STEP, step).fetchall()
                for cand in held:
                    if self._hold_targets(conn, cand, now + lease_s, now):
                        return self._take(conn, int(cand["id"]), owner, now, lease_s)
                if len(held) < _CANDIDATES:
                    break
                after = int(held[-1]["id"])
        return None

    @staticmethod
    def _hold_targets(conn: Conn, cand: dict[str, Any], until: float, now: float) -> bool:
        targets = sorted(set(json.loads(cand["deploy_targets"])))
        if not targets:
            return True
        try:
            with conn.transaction():  # a savepoint: a busy target undoes the ones taken
                for target in targets:
                    got = conn.execute(
                        "INSERT INTO deploy_locks (target, event_id, lease_expires)"
                        " VALUES (%s, %s, %s) ON CONFLICT (target) DO UPDATE"
                        " SET event_id = excluded.event_id, lease_expires = excluded.lease_expires"
                        " WHERE deploy_locks.lease_expires < %s"
                        " OR deploy_locks.event_id = excluded.event_id RETURNING target",
                        (target, cand["id"], until, now),
                    ).fetchone()
                    if got is None:
                        raise _Busy
        except _Busy:
            return False
        return True

    @staticmethod
    def _take(conn: Conn, event_id: int, owner: str, now: float, lease_s: float) -> Claim:
        # one statement: close what an expired lease left open, take the lease, open the attempt
        row = conn.execute(
            "WITH lapsed AS (UPDATE event_attempts SET ended_at = %s, outcome = 'lease expired',"
            " detail = NULL WHERE event_id = %s AND ended_at IS NULL),"
            " taken AS (UPDATE events SET status = 'running', lease_owner = %s,"
            " lease_expires = %s, attempts = attempts + 1, started_at = %s, updated_at = %s"
            " WHERE id = %s RETURNING *),"
            " opened AS (INSERT INTO event_attempts (event_id, attempt, owner, started_at)"
            " SELECT id, attempts, %s, %s FROM taken)"
            " SELECT * FROM taken",
            (now, event_id, owner, now + lease_s, now, now, event_id, owner, now),
        ).fetchone()
        assert row is not None
        return Claim(record=record_of(row), owner=owner)

    def recover_orphans(self) -> int:
        """Requeue running events whose lease has expired (no single server owns the database,
        so a live receiver's claims are never touched; a dead one's lapse with their leases)."""
        now = self._db.now()
        with self._db.transaction("recover interrupted events") as conn:
            rows = conn.execute(
                "UPDATE events SET status = 'queued', lease_owner = NULL, lease_expires = NULL,"
                " last_error = 'interrupted: its lease expired', updated_at = %s"
                " WHERE status = 'running' AND lease_expires < %s RETURNING id",
                (now, now),
            ).fetchall()
            ids = [int(r["id"]) for r in rows]
            if ids:
                conn.execute(
                    "UPDATE event_attempts SET ended_at = %s, outcome = 'interrupted',"
                    " detail = 'its lease expired' WHERE ended_at IS NULL AND event_id = ANY(%s)",
                    (now, ids),
                )
                conn.execute("DELETE FROM deploy_locks WHERE event_id = ANY(%s)", (ids,))
        return len(ids)

    def heartbeat(self, claim: Claim, *, lease_s: float) -> bool:
        now = self._db.now()
        with self._db.transaction("extend a lease") as conn:
            cur = conn.execute(
                "UPDATE events SET lease_expires = %s, updated_at = %s"
                " WHERE id = %s AND status = 'running' AND lease_owner = %s",
                (now + lease_s, now, claim.record.id, claim.owner),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "UPDATE deploy_locks SET lease_expires = %s WHERE event_id = %s",
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
        with self._db.transaction(what) as conn:
            # one statement: settle the event if the lease is still ours, close its attempt and
            # free its deploy targets (nothing when the lease was lost)
            row = conn.execute(
                f"WITH settled AS ({sql} WHERE id = %s AND status = 'running'"
                " AND lease_owner = %s RETURNING id),"
                " closed AS (UPDATE event_attempts SET ended_at = %s, outcome = %s, detail = %s"
                " WHERE event_id IN (SELECT id FROM settled) AND ended_at IS NULL AND owner = %s),"
                " freed AS (DELETE FROM deploy_locks WHERE event_id IN (SELECT id FROM settled))"
                " SELECT count(*) AS n FROM settled",
                (*args, rec.id, claim.owner, time.time(), *outcome, claim.owner),
            ).fetchone()
            if row is None or not row["n"]:
                return False
            if status is not None:
                add_status(conn, rec.id, rec.project, rec.sha, short_ref(rec.ref), status)
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
        del durable  # every commit here is durable
        rec = claim.record
        state = json.dumps(dispatch_state, sort_keys=True) if dispatch_state is not None else None
        with self._db.transaction("record progress") as conn:
            cur = conn.execute(
                "UPDATE events SET result_url = COALESCE(%s, result_url),"
                " dispatch_state = COALESCE(%s, dispatch_state), updated_at = %s"
                " WHERE id = %s AND status = 'running' AND lease_owner = %s",
                (result_url, state, time.time(), rec.id, claim.owner),
            )
            if cur.rowcount == 0:
                return False
            if note is not None:
                conn.execute(
                    "UPDATE event_attempts SET note = COALESCE(note || '; ', '') || %s"
                    " WHERE event_id = %s AND owner = %s AND ended_at IS NULL",
                    (note, rec.id, claim.owner),
                )
            if status is not None:
                add_status(conn, rec.id, rec.project, rec.sha, short_ref(rec.ref), status)
        return True

    def finish(
        self,
        claim: Claim,
        *,
        succeeded: bool,
        result_url: str | None,
        detail: str | None,
        status: StatusUpdate | None,
    ) -> bool:
        now = time.time()
        state = Status.DONE.value if succeeded else Status.FAILED.value
        return self._settle(
            claim,
            "UPDATE events SET status = %s, reason = %s, result_url = COALESCE(%s, result_url),"
            " finished_at = %s, updated_at = %s, lease_owner = NULL, lease_expires = NULL",
            (state, detail, result_url, now, now),
            status,
            "finish an event",
            (state, detail),
        )

    def retry_later(self, claim: Claim, *, error: str, delay_s: float) -> bool:
        now = self._db.now()
        return self._settle(
            claim,
            "UPDATE events SET status = 'queued', last_error = %s, next_attempt_at = %s,"
            " updated_at = %s, lease_owner = NULL, lease_expires = NULL",
            (error, now + delay_s, now),
            None,
            "reschedule an event",
            ("retry", error),
        )

    def dead_letter(self, claim: Claim, *, error: str, status: StatusUpdate | None) -> bool:
        now = time.time()
        return self._settle(
            claim,
            "UPDATE events SET status = 'dead', last_error = %s, reason = %s, finished_at = %s,"
            " updated_at = %s, lease_owner = NULL, lease_expires = NULL",
            (error, "retries exhausted", now, now),
            status,
            "dead-letter an event",
            ("dead", error),
        )

    def release(self, claim: Claim) -> bool:
        return self._settle(
            claim,
            "UPDATE events SET status = 'queued', attempts = GREATEST(attempts - 1, 0),"
            " updated_at = %s, lease_owner = NULL, lease_expires = NULL",
            (time.time(),),
            None,
            "release an event",
            ("released", "shutdown: given back before it finished"),
        )

    # ------------------------------------------------------------------ retention

    def prune_boundary(self, *, max_age_s: float | None, max_events: int | None, now: float) -> int:
        top = self._query("SELECT MAX(id) AS hi FROM events")[0]["hi"]
        if top is None:
            return 0
        boundary = 0
        if max_age_s is not None:
            # ids grow with arrival: the first id received after the cutoff, by the primary key
            rows = self._query(
                "SELECT id FROM events WHERE received_at >= %s ORDER BY id LIMIT 1",
                (now - max_age_s,),
            )
            boundary = max(boundary, int(rows[0]["id"]) if rows else int(top))
        if max_events is not None:
            rows = self._query(
                "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET %s",
                (max(max_events, 1) - 1,),
            )
            if rows:
                boundary = max(boundary, int(rows[0]["id"]))
        return min(boundary, int(top))

    _PRUNABLE = (
        " status IN (" + ", ".join(f"'{s.value}'" for s in sorted(FINAL)) + ")"
        " AND NOT EXISTS (SELECT 1 FROM status_outbox o WHERE o.event_id = events.id"
        " AND o.sent_at IS NULL AND o.gave_up = 0 AND o.dropped IS NULL)"
    )

    def prune_candidates(self, *, after: int, below: int, limit: int) -> list[int]:
        rows = self._query(
            "SELECT id FROM events WHERE id > %s AND id < %s AND"
            + self._PRUNABLE
            + " ORDER BY id LIMIT %s",
            (after, below, limit),
        )
        return [int(r["id"]) for r in rows]

    def prune_stats(self, *, below: int) -> tuple[int, int]:
        row = self._query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(octet_length(body)), 0) AS b FROM events"
            " WHERE id < %s AND" + self._PRUNABLE,
            (below,),
        )[0]
        return int(row["n"]), int(row["b"])

    def delete_events(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        with self._db.transaction("prune events") as conn:
            gone = [
                int(r["id"])
                for r in conn.execute(
                    "DELETE FROM events WHERE id = ANY(%s) AND" + self._PRUNABLE + " RETURNING id",
                    (list(ids),),
                ).fetchall()
            ]
            if gone:
                conn.execute("DELETE FROM status_outbox WHERE event_id = ANY(%s)", (gone,))
                conn.execute("DELETE FROM event_attempts WHERE event_id = ANY(%s)", (gone,))
        return len(gone)

    # ------------------------------------------------------------------ status outbox

    def pending_statuses(self, *, limit: int = 500) -> list[OutboxItem]:
        rows = self._query(
            "SELECT * FROM status_outbox WHERE sent_at IS NULL AND gave_up = 0"
            " AND dropped IS NULL ORDER BY id LIMIT %s",
            (limit,),
        )
        return [outbox_item(r) for r in rows]

    def status_head(self, key: tuple[str, str, str, str]) -> StatusHead | None:
        rows = self._query(
            "SELECT state, event_id FROM status_heads"
            " WHERE target_project = %s AND sha = %s AND ref = %s AND name = %s",
            key,
        )
        return StatusHead(rows[0]["state"], rows[0]["event_id"]) if rows else None

    @staticmethod
    def _set_head(conn: Conn, key: tuple[str, str, str, str], head: StatusHead) -> None:
        conn.execute(
            "INSERT INTO status_heads (target_project, sha, ref, name, state, event_id, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (target_project, sha, ref, name)"
            " DO UPDATE SET state = excluded.state, event_id = excluded.event_id,"
            " updated_at = excluded.updated_at",
            (*key, head.state, head.event_id, time.time()),
        )

    def learn_status_head(self, key: tuple[str, str, str, str], head: StatusHead) -> None:
        with self._db.transaction("record a commit status's state") as conn:
            self._set_head(conn, key, head)

    def status_sent(self, item: OutboxItem, *, head: StatusHead | None = None) -> None:
        with self._db.transaction("record a sent status") as conn:
            conn.execute(
                "UPDATE status_outbox SET sent_at = %s, attempts = attempts + 1 WHERE id = %s",
                (time.time(), item.id),
            )
            self._set_head(conn, item.key, head or StatusHead(item.state, item.event_id))

    def prune_status_heads(self, *, older_than_s: float) -> int:
        with self._db.transaction("prune commit status heads") as conn:
            cur = conn.execute(
                "DELETE FROM status_heads WHERE updated_at < %s"
                " AND state NOT IN ('pending', 'running')",
                (time.time() - older_than_s,),
            )
        return int(cur.rowcount)

    def status_dropped(self, item: OutboxItem, reason: str) -> None:
        with self._db.transaction("record a dropped status") as conn:
            conn.execute("UPDATE status_outbox SET dropped = %s WHERE id = %s", (reason, item.id))

    def status_failed(self, item: OutboxItem, *, error: str, delay_s: float, give_up: bool) -> None:
        with self._db.transaction("record a failed status") as conn:
            conn.execute(
                "UPDATE status_outbox SET attempts = attempts + 1, last_error = %s, next_at = %s,"
                " gave_up = %s WHERE id = %s",
                (error, time.time() + delay_s, 1 if give_up else 0, item.id),
            )

    def statuses_for(self, event_id: int) -> list[dict[str, Any]]:
        return self._query(
            "SELECT state, name, target_project, ref, target_url, description, sent_at, gave_up,"
            " dropped, attempts, last_error FROM status_outbox WHERE event_id = %s ORDER BY id",
            (event_id,),
        )


class _Busy(Exception):
    """A deploy target is held by another event (undoes the savepoint)."""
