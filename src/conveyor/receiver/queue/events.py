"""Events in the store: insert with dedupe and supersede (the intake's), claim, lease, progress,
finish, retry, dead-letter, release (the workers'), attempts, replay and retention (operators').

Claims carry a lease (owner + expiry). A worker extends it while it follows a build; a
crashed worker's claims expire and are claimed again (that attempt counts). Finishing is
conditional on still owning the lease, so a completion is recorded exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from conveyor.errors import QueueError
from conveyor.gitlab.status import CommitState, StatusTarget
from conveyor.receiver.queue.outbox import StatusOutbox, add_status
from conveyor.receiver.queue.records import (
    FINAL,
    INSERT_COLUMNS,
    Accepted,
    Claim,
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

TARGETS_KEPT = 4096
SUPERSEDE_CHUNK = 500  # ids an UPDATE names at most (SQLite's variables are limited)


#: :func:`commit_built_by`'s lookup, written once for both stores (``?``: SQLite's placeholder;
#: PostgreSQL's store substitutes its own)
COMMIT_BUILT_BY = (
    "SELECT id, kind FROM events WHERE project = ? AND ref = ? AND sha = ? AND kind = ?"
    " AND status != 'ignored' ORDER BY id LIMIT 1"
)


def commit_built_by(
    conn: Any, event: NewEvent, *, placeholder: str = "?"
) -> tuple[int, str] | None:
    """The earlier event (id, kind) that builds the same commit of the same branch as ``event``
    when one is a merge request's merge and the other the push GitLab sends for it, else None.

    Merging an MR moves the target branch through Gitaly's ``UserMergeBranch``, which runs the
    receive hooks (gitaly internal/gitaly/service/operations/update_with_hooks.go,
    ``updateReferenceWithHooks``); GitLab's post-receive then runs ``Git::BranchPushService``,
    which "executes the project's webhooks" (gitlabhq app/services/git/branch_push_service.rb):
    a Push Hook whose ``after`` is the MR hook's ``merge_commit_sha`` (gitlab.md: "MR merge
    action: the merged result is merge_commit_sha on the target branch"). A spec triggering on
    both would build that commit twice; the first of the two to arrive builds it. An ignored
    event does not count; a superseded one does (a newer commit of the branch is built instead).

    ``conn``: a sqlite3 or psycopg connection whose rows read by column name.
    """
    other = merge_counterpart(event)
    if other is None:
        return None
    row = conn.execute(
        COMMIT_BUILT_BY.replace("?", placeholder), (event.project, event.ref, event.sha, other)
    ).fetchone()
    return (int(row["id"]), str(row["kind"])) if row is not None else None


_INSERT = (
    f"INSERT INTO events ({INSERT_COLUMNS}) VALUES ({', '.join('?' * 15)}) ON CONFLICT DO NOTHING"
)


def insert_event(
    conn: sqlite3.Connection, event: NewEvent, targets: dict[int, StatusTarget] | None = None
) -> Accepted:
    """Insert ``event`` unless the project already has one with its Idempotency-Key or webhook-id.

    A merge request's merge and the push GitLab sends for it are stored both, the second as
    ignored (:func:`commit_built_by`): the merge commit is built once."""
    now = time.time()
    built = commit_built_by(conn, event)
    if built is not None:
        event = built_elsewhere(event, *built)
    # rowcount and lastrowid, not RETURNING: SQLite returns rows through a temporary table
    cur = conn.execute(_INSERT, insert_values(event, lane=event.lane, now=now))
    if cur.rowcount == 0:  # ON CONFLICT DO NOTHING: the project has this delivery already
        existing = conn.execute(
            "SELECT id, status FROM events WHERE project IS ?"
            " AND (idempotency_key = ? OR webhook_id = ?) ORDER BY id LIMIT 1",
            (event.project, event.idempotency_key, event.webhook_id),
        ).fetchone()
        return Accepted(event_id=existing["id"], duplicate=True, status=Status(existing["status"]))
    event_id = cur.lastrowid
    if event_id is None:  # a row was inserted: SQLite gave it an id
        raise QueueError("event queue: an inserted event has no id")
    if event.status is Status.QUEUED:
        if event.lane is not None:
            supersede(conn, event_id, event.lane, now, targets)
        if targets is not None and event.status_target is not None:
            targets[event_id] = event.status_target
            if len(targets) > TARGETS_KEPT:
                del targets[next(iter(targets))]
        if event.pending_status is not None:
            add_status(
                conn, event_id, event.project, event.sha, event.status_ref, event.pending_status
            )
    return Accepted(event_id=event_id, duplicate=False, status=event.status, reason=event.reason)


def supersede(
    conn: sqlite3.Connection,
    event_id: int,
    lane: str,
    now: float,
    targets: dict[int, StatusTarget] | None = None,
) -> None:
    # Read, then update by id: cheaper in SQLite than UPDATE ... RETURNING (which returns its
    # rows through a temporary table), and a lane without a queued event costs only the read.
    # Whether each reported a status comes with it (as on PostgreSQL, postgres._SUPERSEDE).
    older = conn.execute(
        "SELECT id, project, sha, ref,"
        " EXISTS (SELECT 1 FROM status_outbox o WHERE o.event_id = events.id) AS reported"
        " FROM events WHERE lane = ? AND status = 'queued' AND id < ?",
        (lane, event_id),
    ).fetchall()
    ids = [row["id"] for row in older]
    for start in range(0, len(ids), SUPERSEDE_CHUNK):
        chunk = ids[start : start + SUPERSEDE_CHUNK]
        conn.execute(
            "UPDATE events SET status = 'superseded', reason = ?, updated_at = ?,"
            f" finished_at = ? WHERE id IN ({', '.join('?' * len(chunk))})",
            (f"superseded by event {event_id}", now, now, *chunk),
        )
    for row in older:
        target = targets.pop(row["id"], None) if targets is not None else None
        if not row["reported"]:
            # It never queued a status (commit statuses are off): there is nothing to cancel,
            # and a "canceled" nobody sends would keep the event from being pruned.
            continue
        add_status(
            conn,
            row["id"],
            row["project"],
            row["sha"],
            short_ref(row["ref"]),
            StatusUpdate(
                CommitState.CANCELED, f"superseded by a newer event ({event_id})", target=target
            ),
        )


def end_attempts(
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


# A claim's candidates: the oldest 64 of three reads, each bounded (EventQueue.claim).
_CANDIDATES = (
    "SELECT id, deploy_targets FROM ("
    " SELECT * FROM (SELECT id, deploy_targets FROM events INDEXED BY events_fresh"
    "  WHERE status = 'queued' AND next_attempt_at = 0 ORDER BY id LIMIT 64)"
    " UNION ALL"
    " SELECT * FROM (SELECT id, deploy_targets FROM events"
    "  WHERE status = 'queued' AND next_attempt_at > 0 AND next_attempt_at <= ?"
    "  ORDER BY id LIMIT 64)"
    " UNION ALL"
    " SELECT * FROM (SELECT id, deploy_targets FROM events"
    "  WHERE status = 'running' AND lease_expires < ? ORDER BY id LIMIT 64)"
    ") ORDER BY id LIMIT 64"
)


class EventQueue(StatusOutbox):
    """Worker- and operator-side access to the queue (one per thread)."""

    # ------------------------------------------------------------------ operator view

    def get(self, event_id: int) -> EventRecord | None:
        rows = self._query("SELECT * FROM events WHERE id = ?", (event_id,))
        return event_record(rows[0]) if rows else None

    def list_events(self, status: Status | None = None, limit: int = 100) -> list[EventRecord]:
        """Newest first."""
        if status is None:
            rows = self._query("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM events WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status.value, limit),
            )
        return [event_record(r) for r in rows]

    def counts(self) -> dict[Status, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM events GROUP BY status")
        out = dict.fromkeys(Status, 0)
        for row in rows:
            out[Status(row["status"])] = int(row["n"])
        return out

    def replay(self, event_id: int, *, now: float | None = None) -> int:
        """Queue a copy of a stored event (its routing as stored); returns the new id."""
        now = time.time() if now is None else now
        with self._transaction(f"replay event {event_id}") as conn:
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
                supersede(conn, int(new_id), row["lane"], now)
        return int(new_id)

    # ------------------------------------------------------------------ worker side

    def claim(self, owner: str, *, lease_s: float, now: float | None = None) -> Claim | None:
        """Take the oldest runnable event whose deploy targets are free, or ``None``.

        Runnable: queued and due, or running with an expired lease (a crashed worker's). The
        64 oldest candidates come from three bounded reads: queued events never retried, in id
        order from their partial index (``events_fresh``: read only until 64 are found); queued
        events whose retry is due; running events whose lease expired (at most one a worker).
        A single query over all queued events read every one of them and sorted them, so that
        a claim cost grew with the backlog (15 ms behind 50,000, in the intake process that
        answers deliveries). ``INDEXED BY`` makes a missing index an error, never a scan.
        """
        now = time.time() if now is None else now
        with self._transaction("claim an event") as conn:
            candidates = conn.execute(_CANDIDATES, (now, now)).fetchall()
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
                end_attempts(conn, cand["id"], "lease expired", None, now)
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
                return Claim(record=event_record(row), owner=owner)
        return None

    def recover_orphans(self) -> int:
        """Requeue every claim left by a server that died (call only holding the server lock).

        The interrupted attempt stays counted; its resume state is kept, so a Jenkins build
        already started is followed, not triggered again.
        """
        now = time.time()
        with self._transaction("recover interrupted events") as conn:
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
        with self._transaction("extend a lease") as conn:
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
        with self._transaction(what) as conn:
            cur = conn.execute(
                sql + " WHERE id = ? AND status = 'running' AND lease_owner = ?",
                (*args, rec.id, claim.owner),
            )
            if cur.rowcount == 0:
                return False
            end_attempts(conn, rec.id, outcome[0], outcome[1], time.time(), owner=claim.owner)
            conn.execute("DELETE FROM deploy_locks WHERE event_id = ?", (rec.id,))
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
        """Record how to follow (or resume following) the work, and post ``status``.

        ``dispatch_state`` (e.g. a Jenkins queue item id) lets a later attempt resume the
        same build instead of starting another. ``note`` is added to this attempt's record.
        ``durable`` commits with ``synchronous=FULL`` (an fsync), for the intent written just
        before a point of no return: it must survive a power loss, not only a crash. False if
        the claim was lost.
        """
        rec = claim.record
        state = json.dumps(dispatch_state, sort_keys=True) if dispatch_state is not None else None
        with self._durable(durable), self._transaction("record progress") as conn:
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
                add_status(conn, rec.id, rec.project, rec.sha, short_ref(rec.ref), status)
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
        with self._transaction("prune events") as conn:
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
