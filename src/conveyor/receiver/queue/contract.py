"""The queue's contract: what any store behind ``conveyor serve`` must keep (SQLite today:
:class:`~conveyor.receiver.queue.events.EventQueue` and
:class:`~conveyor.receiver.queue.intake.BatchStore`; a second store implements the same two).

Promises every store keeps:

* **Durable before acknowledged.** :meth:`IntakeStore.commit` returns an :class:`Accepted` for an
  event only once its row would survive a power loss; the 2xx is sent after that, never before.
* **Dedupe per project.** A delivery whose (project, Idempotency-Key) or (project, verified
  webhook-id) is already stored is not stored again: its outcome is the first one's id, marked
  ``duplicate``.
* **Supersede per lane.** Storing a queued event marks every older *queued* event of its lane
  ``superseded`` (with a "canceled" status in the outbox) in the same transaction.
* **Leases.** A claim belongs to one owner until its lease expires; every change made through a
  :class:`Claim` is conditional on that owner still holding it, so an outcome is recorded once.
  Expired claims are runnable again (the attempt counts); deploy targets are held with the lease.
* **Attempts.** Each claim opens an attempt record; each settle (finish, retry, dead-letter,
  release, expiry, recovery) closes it with how it ended.
* **Outbox order.** Statuses are queued in the same transaction as the change they report and
  are handed out oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from conveyor.receiver.queue.records import (
    Accepted,
    Claim,
    EventRecord,
    NewEvent,
    OutboxItem,
    Status,
    StatusHead,
    StatusUpdate,
)


class IntakeStore(Protocol):
    """The intake's side: commits batches of verified deliveries (one writer at a time)."""

    def commit(self, batch: Sequence[NewEvent]) -> tuple[list[Accepted | str], str | None]:
        """Store ``batch`` in one durable transaction (group commit). Returns each event's
        :class:`Accepted` or the message of the error that refused it (one bad event fails only
        itself), and the storage error that failed the whole batch, if one did."""
        ...

    def probe(self) -> None:
        """Raise :class:`~conveyor.errors.QueueError` if the store cannot be reached."""
        ...

    def close(self) -> None: ...


class QueueStore(Protocol):
    """The workers', the status sender's and the operators' side (one instance per thread)."""

    # operators
    def get(self, event_id: int) -> EventRecord | None: ...

    def list_events(self, status: Status | None = None, limit: int = 100) -> list[EventRecord]:
        """Newest first."""
        ...

    def counts(self) -> dict[Status, int]:
        """Events per status (every status present, zero when none)."""
        ...

    def replay(self, event_id: int, *, now: float | None = None) -> int:
        """Queue a copy of a stored event (superseding its lane); the new id. QueueError for an
        unknown or an ignored event."""
        ...

    def attempts_for(self, event_id: int) -> list[dict[str, Any]]:
        """The event's attempts, oldest first."""
        ...

    # workers
    def claim(self, owner: str, *, lease_s: float, now: float | None = None) -> Claim | None:
        """The oldest runnable event (queued and due, or running with an expired lease) whose
        deploy targets are free, now held by ``owner`` for ``lease_s``; None if there is none."""
        ...

    def recover_orphans(self) -> int:
        """Requeue every running event (only for the one server holding the store's lock);
        resume state kept, the attempt closed as interrupted. How many."""
        ...

    def heartbeat(self, claim: Claim, *, lease_s: float) -> bool:
        """Extend the lease (and the deploy locks); False if the claim was lost."""
        ...

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
        """Record how to follow the work (``durable``: power-safe before returning); False if
        the claim was lost."""
        ...

    def finish(
        self,
        claim: Claim,
        *,
        succeeded: bool,
        result_url: str | None,
        detail: str | None,
        status: StatusUpdate | None,
    ) -> bool:
        """done / failed, deploy locks freed, status queued; False if the claim was lost."""
        ...

    def retry_later(self, claim: Claim, *, error: str, delay_s: float) -> bool: ...

    def dead_letter(self, claim: Claim, *, error: str, status: StatusUpdate | None) -> bool: ...

    def release(self, claim: Claim) -> bool:
        """Give the event back untouched (the attempt does not count)."""
        ...

    # retention
    def prune_boundary(self, *, max_age_s: float | None, max_events: int | None, now: float) -> int:
        """Events with a smaller id are past the policy; the newest event never is."""
        ...

    def prune_candidates(self, *, after: int, below: int, limit: int) -> list[int]:
        """Finished events in ``(after, below)`` with no status left to send."""
        ...

    def prune_stats(self, *, below: int) -> tuple[int, int]: ...

    def delete_events(self, ids: Sequence[int]) -> int:
        """Delete those still prunable (checked again), with their statuses and attempts."""
        ...

    # status outbox
    def pending_statuses(self, *, limit: int = 500) -> list[OutboxItem]:
        """Unsent statuses, oldest first."""
        ...

    def status_head(self, key: tuple[str, str, str, str]) -> StatusHead | None: ...

    def learn_status_head(self, key: tuple[str, str, str, str], head: StatusHead) -> None: ...

    def status_sent(self, item: OutboxItem, *, head: StatusHead | None = None) -> None: ...

    def prune_status_heads(self, *, older_than_s: float) -> int: ...

    def status_dropped(self, item: OutboxItem, reason: str) -> None: ...

    def status_failed(
        self, item: OutboxItem, *, error: str, delay_s: float, give_up: bool
    ) -> None: ...

    def statuses_for(self, event_id: int) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...
