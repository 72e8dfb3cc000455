"""Post commit statuses to GitLab from the queue's status outbox, in order.

Statuses are written to the outbox in the same transaction as the state change they
describe (pending on accept, running, success/failed, canceled when superseded), and a
single sender thread posts them with :class:`conveyor.gitlab.status.CommitStatusClient`
(python-gitlab; its errors arrive as conveyor errors). Each event's statuses go out in
the order they were written: while one waits for a retry, the later ones of that event wait
too. A refused status (400/401/403/404) is given up at once; others are retried with
backoff up to :data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from conveyor.errors import GitLabError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.status import CommitStatusClient
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import EventQueue, OutboxItem

log = logging.getLogger("conveyor.receiver.statuses")

STATUS_NAME = "conveyor"
MAX_ATTEMPTS = 8
PERMANENT = (400, 401, 403, 404, 422)


class GitLabStatusPoster:
    """Posts one outbox item through :class:`conveyor.gitlab.status.CommitStatusClient`."""

    def __init__(
        self, url: str, token: str, *, name: str = STATUS_NAME, timeout: float = 10.0
    ) -> None:
        self._client = CommitStatusClient(GitLabClient(url, token, timeout=timeout, max_retries=2))
        self._name = name

    def post(self, item: OutboxItem) -> None:
        try:
            self._client.post_status(
                item.project,
                item.sha,
                item.state,
                self._name,
                ref=item.ref,
                target_url=item.target_url,
                description=item.description,
            )
        except ValueError as exc:  # refused before sending: bad sha, state or ref
            raise GitLabError(f"commit status for {item.project}: {exc}", status=400) from None


class StatusSender:
    """A thread draining the outbox. ``wake()`` after writing statuses; ``stop()`` flushes."""

    def __init__(
        self,
        db_path: Path,
        poster: GitLabStatusPoster,
        metrics: Metrics,
        *,
        poll_s: float = 1.0,
        backoff_s: float = 1.0,
    ) -> None:
        self._db_path = db_path
        self._poster = poster
        self._metrics = metrics
        self._poll_s = poll_s
        self._backoff_s = backoff_s
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
        queue = EventQueue(self._db_path, synchronous="NORMAL")
        try:
            while True:
                try:
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

    def drain(self, queue: EventQueue) -> bool:
        """One pass over the outbox; True if anything was posted."""
        now = time.time()
        blocked: set[int] = set()
        sent = False
        for item in queue.pending_statuses():
            if item.event_id in blocked:
                continue
            if item.next_at > now:
                blocked.add(item.event_id)
                continue
            try:
                self._poster.post(item)
            except GitLabError as exc:
                give_up = exc.status in PERMANENT or item.attempts + 1 >= MAX_ATTEMPTS
                delay = self._backoff_s * (2**item.attempts)
                queue.status_failed(item, error=exc.message, delay_s=delay, give_up=give_up)
                self._metrics.inc(
                    "conveyor_status_posts_total", outcome="gave_up" if give_up else "retry"
                )
                log.warning(
                    "commit status not posted",
                    extra={
                        "event_id": item.event_id,
                        "state": item.state,
                        "error": exc.message,
                        "gave_up": give_up,
                    },
                )
                if not give_up:
                    blocked.add(item.event_id)
                continue
            queue.status_sent(item)
            self._metrics.inc("conveyor_status_posts_total", outcome="sent")
            sent = True
        return sent
