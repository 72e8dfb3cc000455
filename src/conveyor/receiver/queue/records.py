"""The queue's records: what goes in (:class:`NewEvent`, or a :class:`Delivery` still to
route), what comes back (:class:`Accepted` or a :class:`Refusal`, :class:`EventRecord`,
:class:`Claim`, :class:`OutboxItem`, :class:`StatusHead`) and the event's :class:`Status`. Plain frozen data: no store is imported here, so any store can return them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from conveyor.gitlab.status import StatusTarget, status_name


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
    # A merge request's merge: ``sha`` is the merge commit on the target branch (``ref``), which
    # GitLab's Push Hook for that branch builds too (see events.commit_built_by).
    merged: bool = False


@dataclass(frozen=True)
class Delivery:
    """A verified delivery not routed yet: the intake process routes it into a
    :class:`NewEvent` (or a :class:`Refusal`) before it stores it
    (``conveyor.receiver.admission``)."""

    event_header: str
    body: bytes  # a JSON object naming its project (the token was checked against it)
    received_at: float
    idempotency_key: str | None = None
    delivery_uuid: str | None = None
    webhook_id: str | None = None  # only from a verified signature (it is then a dedupe key)


@dataclass(frozen=True)
class Refusal:
    """A delivery whose payload fails a check: nothing is stored, the sender gets a 400."""

    reason: str  # a metric label: ``payload``
    message: str


@dataclass(frozen=True)
class Accepted:
    """The intake's answer: the stored event's id, and whether it was a resend."""

    event_id: int
    duplicate: bool
    status: Status
    reason: str | None = None  # why it was stored ignored, when the store decided it


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


class Row(Protocol):
    """A stored row, read by column name (``sqlite3.Row``, or another store's)."""

    def __getitem__(self, column: str) -> Any: ...


def event_record(row: Row) -> EventRecord:
    """The record of one ``events`` row."""
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


def outbox_item(row: Row) -> OutboxItem:
    """The item of one ``status_outbox`` row (either store)."""
    return OutboxItem(
        id=row["id"],
        event_id=row["event_id"],
        project=row["project"],
        sha=row["sha"],
        ref=row["ref"],
        state=row["state"],
        target_url=row["target_url"],
        description=row["description"],
        attempts=row["attempts"],
        next_at=row["next_at"],
        target_project=row["target_project"] or row["project"],
        name=row["name"] or status_name(""),
        protected=None if row["protected"] is None else bool(row["protected"]),
        tag=bool(row["tag"]),
        created_at=row["created_at"] or 0.0,
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


@dataclass(frozen=True)
class Claim:
    """An event a worker now holds until its lease expires."""

    record: EventRecord
    owner: str


def short_ref(ref: str | None) -> str | None:
    """``refs/heads/main`` -> ``main`` (the ref GitLab statuses name)."""
    if ref is None:
        return None
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def merge_counterpart(event: NewEvent) -> str | None:
    """The kind of event that builds the same commit of the same branch as ``event`` when one is
    a merge request's merge and the other the push GitLab sends for it (``push`` for a merge,
    ``merge_request`` for a push), else None. Where the stores look it up and why:
    :func:`conveyor.receiver.queue.events.commit_built_by`."""
    if event.status is not Status.QUEUED or not (event.project and event.ref and event.sha):
        return None
    if event.merged:
        return "push"
    return "merge_request" if event.kind == "push" else None


def built_elsewhere(event: NewEvent, by_id: int, by_kind: str) -> NewEvent:
    """``event`` stored ignored: event ``by_id`` (of ``by_kind``) builds its commit."""
    other = "push" if by_kind == "push" else "merge request merge"
    return replace(
        event,
        status=Status.IGNORED,
        reason=f"commit {(event.sha or '')[:12]} is built by event {by_id} (its {other})",
        pending_status=None,
    )


#: The columns an intake insert writes, in :func:`insert_values`' order (both stores).
INSERT_COLUMNS = (
    "idempotency_key, delivery_uuid, webhook_id, event_header, kind, project, ref, sha, lane,"
    " deploy_targets, status, reason, received_at, updated_at, body"
)


def insert_values(event: NewEvent, *, lane: str | None, now: float) -> tuple[Any, ...]:
    """``event``'s values for :data:`INSERT_COLUMNS` (``lane`` as the store keeps it)."""
    return (
        event.idempotency_key,
        event.delivery_uuid,
        event.webhook_id,
        event.event_header,
        event.kind,
        event.project,
        event.ref,
        event.sha,
        lane,
        json.dumps(list(event.deploy_targets)) if event.deploy_targets else "[]",
        event.status.value,
        event.reason,
        event.received_at,
        now,
        event.body,
    )
