"""The status outbox: commit statuses queued in the same transaction as the event change they
report, then posted to GitLab in order by the status sender (receiver/statuses.py), with the
state each GitLab status was last moved to (``status_heads``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from conveyor.gitlab.events import PayloadError, parse_event
from conveyor.gitlab.status import StatusTarget, status_name, status_target
from conveyor.receiver.queue.records import OutboxItem, StatusHead, StatusUpdate, outbox_item
from conveyor.receiver.queue.store import SQLiteStore


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


def add_status(
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


class StatusOutbox(SQLiteStore):
    """The status sender's side of the queue (and the operator's view of an event's statuses)."""

    def pending_statuses(self, *, limit: int = 500) -> list[OutboxItem]:
        """Unsent statuses, oldest first (due or not: the sender keeps each status's order)."""
        rows = self._query(
            "SELECT * FROM status_outbox WHERE sent_at IS NULL AND gave_up = 0 AND dropped IS NULL"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [outbox_item(r) for r in rows]

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
        with self._transaction("record a commit status's state") as conn:
            self._set_head(conn, key, head)

    def status_sent(self, item: OutboxItem, *, head: StatusHead | None = None) -> None:
        """``item`` is posted (or already true on GitLab); ``head`` is the status's state now."""
        with self._transaction("record a sent status") as conn:
            conn.execute(
                "UPDATE status_outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                (time.time(), item.id),
            )
            self._set_head(conn, item.key, head or StatusHead(item.state, item.event_id))

    def prune_status_heads(self, *, older_than_s: float) -> int:
        """Forget finished statuses not touched for ``older_than_s`` (active ones are kept)."""
        with self._transaction("prune commit status heads") as conn:
            cur = conn.execute(
                "DELETE FROM status_heads WHERE updated_at < ?"
                " AND state NOT IN ('pending', 'running')",
                (time.time() - older_than_s,),
            )
        return int(cur.rowcount)

    def status_dropped(self, item: OutboxItem, reason: str) -> None:
        """``item`` will not be posted: a later status supersedes it, or it would be illegal."""
        with self._transaction("record a dropped status") as conn:
            conn.execute("UPDATE status_outbox SET dropped = ? WHERE id = ?", (reason, item.id))

    def status_failed(self, item: OutboxItem, *, error: str, delay_s: float, give_up: bool) -> None:
        with self._transaction("record a failed status") as conn:
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
