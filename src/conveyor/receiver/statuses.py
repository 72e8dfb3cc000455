"""Post commit statuses to GitLab from the queue's status outbox: legal moves only, in order.

Statuses are written to the outbox in the same transaction as the state change they describe
(pending on accept, running, success/failed, canceled when superseded), each naming the GitLab
status it moves: ``(project, sha, ref, name)`` (see :mod:`conveyor.gitlab.status`). One sender
thread posts them with :class:`conveyor.gitlab.status.CommitStatusClient` (python-gitlab).

GitLab keeps one status per key and moves it only ``pending -> running -> final``, so the sender
remembers, per key, the state it last posted and the event that posted it (the ``status_heads``
table) and decides each item against that (:func:`plan`):

* **Order per status.** Items of one key go out in the order they were written; while one waits
  for a retry, the later ones of that key wait too (other keys carry on).
* **Newer events win.** Once an event has posted to a key, an older event's statuses for it are
  dropped: a slow build never overwrites the status of a newer build of the same commit.
* **Intermediate statuses are dropped when superseded**: a ``pending``/``running`` item that
  failed to post, with a later item of the same key behind it, is not retried
  (``pending -> success`` is a legal move).
* **No illegal moves.** A repeat of the state a status is in (``running`` again on retry or
  resume), ``pending`` after ``running`` and anything after the event's own final status are not
  posted (recorded as dropped, with the reason). When a newer event takes over a key whose status
  an older one left ``running``, the old status is closed as ``canceled`` first.
* **A refused move is not silently dropped.** If GitLab answers 400 "Cannot transition" anyway
  (someone else posts under the same name, or the queue's memory was lost), its answer says the
  state the status is really in: "already there" counts as sent, anything else is logged as an
  error, remembered, and the item re-planned from GitLab's state.
* **A retried final is not posted twice**: before retrying a final status whose earlier try
  failed without an answer (timeout, 5xx), the sender reads GitLab's newest status of that name
  and ref; if it is this one, the earlier try got through and it counts as sent.
* **Final statuses are retried for hours** (:data:`RETRY_FOR_S`, ``CONVEYOR_STATUS_RETRY_HOURS``)
  with exponential backoff capped at :data:`BACKOFF_CAP_S`; intermediate ones for as long, unless
  superseded first. Refusals (401/403/404/422, other 400s) are given up at once, with a message
  that names the missing right.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.errors import GitLabError, GitLabTransitionError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.status import (
    ACTIVE_STATES,
    FINAL_STATES,
    MAX_FIELD_LENGTH,
    CommitState,
    CommitStatusClient,
    legal_move,
    truncate,
)
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import OutboxItem, QueueStore, StatusHead
from conveyor.receiver.queue.location import Location, open_queue

log = logging.getLogger("conveyor.receiver.statuses")

RETRY_FOR_S = 6 * 3600.0
HEADS_KEPT_S = 30 * 86400.0  # finished statuses are remembered this long (for late replays)
BACKOFF_CAP_S = 600.0
PERMANENT = (400, 401, 403, 404, 422)
MAX_RESYNCS = 3  # refused moves re-planned from GitLab's state within one pass


class GitLabStatusPoster:
    """Posts one outbox item through :class:`conveyor.gitlab.status.CommitStatusClient`."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        # No retries inside python-gitlab: a POST retried after a lost answer could post a final
        # status twice. The sender retries instead, and reads back before retrying a final.
        self._client = CommitStatusClient(GitLabClient(url, token, timeout=timeout, max_retries=0))

    def post(
        self, item: OutboxItem, *, state: str | None = None, description: str | None = None
    ) -> None:
        """Post ``item`` (or, with ``state``, another state onto the same status)."""
        try:
            self._client.post_status(
                item.target_project,
                item.sha,
                state or item.state,
                item.name,
                ref=item.ref,
                target_url=item.target_url,
                description=description if state else item.description,
                protected=item.protected,
                tag=item.tag,
            )
        except ValueError as exc:  # refused before sending: bad sha, state or ref
            raise GitLabError(f"commit status for {item.project}: {exc}", status=400) from None

    def landed(self, item: OutboxItem) -> bool:
        """Whether GitLab's newest status for ``item`` is ``item`` (an earlier try got through)."""
        latest = self._client.latest(item.target_project, item.sha, item.name, item.ref)
        return (
            latest is not None
            and latest.state == item.state
            and latest.description == truncate(item.description)
            and latest.target_url
            == (item.target_url[:MAX_FIELD_LENGTH] if item.target_url else None)
        )


@dataclass(frozen=True)
class Decision:
    """What to do with one outbox item: ``post``, ``drop`` (with ``reason``) or ``wait``.

    ``close_first``: post ``canceled`` onto the status an older event left active, then the item.
    """

    action: str
    reason: str = ""
    close_first: bool = False


def plan(
    item: OutboxItem, head: StatusHead | None, later: Sequence[OutboxItem], now: float
) -> Decision:
    """Decide ``item`` against what its status is in (``head``) and the items queued behind it."""
    if head is not None and head.event_id > item.event_id:
        return Decision("drop", f"a newer build (event {head.event_id}) reports on this status")
    if (
        item.state in ACTIVE_STATES
        and item.attempts > 0
        and any(o.event_id >= item.event_id for o in later)
    ):  # an intermediate status GitLab could not take, and a later one is waiting
        return Decision("drop", "superseded by a later status")
    if item.next_at > now:
        return Decision("wait")
    if head is None or head.state not in ACTIVE_STATES:
        if head is not None and head.event_id == item.event_id:
            return Decision("drop", f"this build already reported {head.state}")
        return Decision("post")  # GitLab starts a new status: every state is legal
    if legal_move(head.state, item.state):
        return Decision("post")
    if head.event_id == item.event_id:
        if item.state == head.state:
            return Decision("drop", f"the status is already {head.state}")
        return Decision("drop", f"GitLab cannot move a {head.state} status to {item.state}")
    return Decision("post", close_first=True)


class StatusSender:
    """A thread draining the outbox. ``wake()`` after writing statuses; ``stop()`` flushes."""

    def __init__(
        self,
        db_path: Location,
        poster: GitLabStatusPoster,
        metrics: Metrics,
        *,
        poll_s: float = 1.0,
        backoff_s: float = 1.0,
        backoff_cap_s: float = BACKOFF_CAP_S,
        retry_for_s: float = RETRY_FOR_S,
    ) -> None:
        self._db_path = db_path
        self._poster = poster
        self._metrics = metrics
        self._poll_s = poll_s
        self._backoff_s = backoff_s
        self._backoff_cap_s = backoff_cap_s
        self._retry_for_s = retry_for_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-statuses", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        queue = open_queue(self._db_path, synchronous="NORMAL")
        pruned_at = float("-inf")
        try:
            while True:
                try:
                    if time.monotonic() - pruned_at > 3600:
                        queue.prune_status_heads(older_than_s=HEADS_KEPT_S)
                        pruned_at = time.monotonic()
                    sent_any = self.drain(queue)
                except Exception:  # keep the sender alive whatever one pass hits
                    log.exception("status sender pass failed")
                    sent_any = False
                if self._stop.is_set():
                    break
                if not sent_any:
                    self._wake.wait(self._poll_s)
                    self._wake.clear()
        finally:
            queue.close()

    # ------------------------------------------------------------------ one pass

    def drain(self, queue: QueueStore) -> bool:
        """One pass over the outbox; True if anything was posted."""
        now = time.time()
        groups: dict[tuple[str, str, str, str], list[OutboxItem]] = {}
        for item in queue.pending_statuses():
            groups.setdefault(item.key, []).append(item)
        sent = False
        for key, items in groups.items():
            head = queue.status_head(key)
            for index, item in enumerate(items):
                outcome, head = self._one(queue, item, head, items[index + 1 :], now)
                sent = sent or outcome == "sent"
                if outcome == "blocked":
                    break  # keep this status's order: the rest waits behind it
        return sent

    def _one(
        self,
        queue: QueueStore,
        item: OutboxItem,
        head: StatusHead | None,
        later: Sequence[OutboxItem],
        now: float,
    ) -> tuple[str, StatusHead | None]:
        """Handle one item: ``sent``, ``dropped``, ``failed`` or ``blocked`` (and the new head)."""
        for _ in range(MAX_RESYNCS):
            decision = plan(item, head, later, now)
            if decision.action == "wait":
                return "blocked", head
            if decision.action == "drop":
                queue.status_dropped(item, decision.reason)
                self._metrics.inc("conveyor_status_posts_total", outcome="dropped")
                log.info(
                    "commit status not posted",
                    extra={
                        "event_id": item.event_id,
                        "state": item.state,
                        "reason": decision.reason,
                    },
                )
                return "dropped", head
            try:
                if item.state in FINAL_STATES and item.attempts and self._poster.landed(item):
                    # A retried final whose earlier try got through (a timeout, a lost answer):
                    # posting again would add a second finished status.
                    queue.status_sent(item)
                    self._metrics.inc("conveyor_status_posts_total", outcome="already")
                    return "sent", StatusHead(item.state, item.event_id)
                if decision.close_first and head is not None:
                    self._poster.post(
                        item,
                        state=CommitState.CANCELED,
                        description=f"superseded by a newer build (event {item.event_id})",
                    )
                    head = StatusHead(CommitState.CANCELED, head.event_id)
                    queue.learn_status_head(item.key, head)
                self._poster.post(item)
            except GitLabTransitionError as exc:
                head = self._refused(queue, item, exc)
                if head.event_id == item.event_id and head.state == item.state:
                    queue.status_sent(item, head=head)
                    return "sent", head
                continue  # re-plan from the state GitLab reported
            except GitLabError as exc:
                return self._failed(queue, item, exc, now), head
            head = StatusHead(item.state, item.event_id)
            queue.status_sent(item, head=head)
            self._metrics.inc("conveyor_status_posts_total", outcome="sent")
            return "sent", head
        error = f"GitLab kept refusing the move to {item.state!r} (status is {head.state if head else '?'})"
        queue.status_failed(item, error=error, delay_s=0.0, give_up=True)
        self._metrics.inc("conveyor_status_posts_total", outcome="gave_up")
        log.error("commit status given up", extra={"event_id": item.event_id, "error": error})
        return "failed", head

    def _refused(
        self, queue: QueueStore, item: OutboxItem, exc: GitLabTransitionError
    ) -> StatusHead:
        """GitLab refused a move: learn the state its status is really in."""
        wanted = item.state
        already = exc.current == wanted
        # Already there (a retry whose first try landed): the status is this item's now.
        head = StatusHead(exc.current, item.event_id if already else 0)
        queue.learn_status_head(item.key, head)
        if already:
            self._metrics.inc("conveyor_status_posts_total", outcome="already")
            log.info(
                "commit status already in that state",
                extra={"event_id": item.event_id, "state": wanted},
            )
        else:
            self._metrics.inc("conveyor_status_posts_total", outcome="resynced")
            log.error(
                "GitLab's commit status was not in the state conveyor last posted: re-planning",
                extra={"event_id": item.event_id, "state": wanted, "error": exc.message},
            )
        return head

    def _failed(self, queue: QueueStore, item: OutboxItem, exc: GitLabError, now: float) -> str:
        permanent = exc.status in PERMANENT
        age = now - (item.created_at or now)
        expired = age + self._delay(item) > self._retry_for_s
        give_up = permanent or expired
        queue.status_failed(item, error=exc.message, delay_s=self._delay(item), give_up=give_up)
        self._metrics.inc("conveyor_status_posts_total", outcome="gave_up" if give_up else "retry")
        (log.error if give_up else log.warning)(
            "commit status not posted",
            extra={
                "event_id": item.event_id,
                "state": item.state,
                "error": exc.message,
                "gave_up": give_up,
                "final": item.state in FINAL_STATES,
            },
        )
        return "failed" if give_up else "blocked"

    def _delay(self, item: OutboxItem) -> float:
        return float(min(self._backoff_cap_s, self._backoff_s * (2 ** min(item.attempts, 30))))
