"""Worker threads: claim queued events, dispatch them, record the outcome.

Each worker has its own SQLite connection. A claim is a lease: the worker extends it at every
``tick`` while following a build, and a crashed worker's claims expire and go back to the
pool. An attempt that raises a :class:`~conveyor.errors.ConveyorError` is retried after an
exponential backoff (``backoff_s * 2**(attempt-1)``, capped) until ``max_attempts``, then
dead-lettered. An attempt whose build ran and failed is final (``failed``), not retried.

Shutdown (:meth:`WorkerPool.stop`): no new claims; running attempts get ``grace_s`` to finish,
after which their next ``tick`` raises :class:`Interrupted` and the event is released
(queued again, resume state kept, the attempt not counted).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from conveyor.errors import ConveyorError, QueueError
from conveyor.gitlab.events import PayloadError, parse_event
from conveyor.gitlab.status import CommitState
from conveyor.receiver.dispatch import Dispatcher, DispatchJob, Interrupted, Outcome
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import Claim, IntakeWriter, QueueStore, StatusUpdate, WriterQueue
from conveyor.receiver.queue.location import Location, open_queue
from conveyor.receiver.routing import Router

log = logging.getLogger("conveyor.receiver.worker")


@dataclass(frozen=True)
class WorkerOptions:
    workers: int = 2
    lease_s: float = 60.0
    max_attempts: int = 5
    backoff_s: float = 5.0
    backoff_cap_s: float = 600.0
    poll_s: float = 1.0
    grace_s: float = 20.0
    post_statuses: bool = True


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    return float(min(cap_s, base_s * (2 ** max(0, attempt - 1))))


class _Progress:
    """A dispatcher's line back to the queue. Thread-safe: a dispatcher may report from the
    thread doing the work (the local runner's) while the worker thread ticks."""

    def __init__(self, pool: WorkerPool, queue: QueueStore, claim: Claim) -> None:
        self._pool = pool
        self._queue = queue
        self._claim = claim
        self._lock = threading.Lock()

    def _status(self, state: str, description: str, url: str | None) -> StatusUpdate | None:
        if not self._pool.options.post_statuses:
            return None
        return StatusUpdate(state=state, description=description, target_url=url)

    def _progress(self, **changes: Any) -> None:
        with self._lock:
            if not self._queue.progress(self._claim, **changes):
                raise Interrupted("lease lost")

    def remember(
        self, state: Mapping[str, Any], *, url: str | None = None, durable: bool = False
    ) -> None:
        self._progress(result_url=url, dispatch_state=dict(state), durable=durable)

    def note(self, text: str) -> None:
        self._progress(note=text)

    def started(self, url: str | None) -> None:
        self._progress(result_url=url, status=self._status(CommitState.RUNNING, "running", url))
        self._pool.notify_statuses()

    def tick(self) -> None:
        if self._pool.must_let_go():
            raise Interrupted("shutting down")
        with self._lock:
            alive = self._queue.heartbeat(self._claim, lease_s=self._pool.options.lease_s)
        if not alive:
            raise Interrupted("lease lost")


class WorkerPool:
    """``options.workers`` threads draining the queue at ``db_path``."""

    def __init__(
        self,
        db_path: Location,
        router: Router,
        dispatcher: Dispatcher,
        metrics: Metrics,
        options: WorkerOptions,
        *,
        on_status: Callable[[], None] | None = None,
        writer: IntakeWriter | None = None,
    ) -> None:
        self.db_path = db_path
        # With the server's intake writer, claims and outcomes are written by the intake
        # process (WriterQueue): the only writer on the hot path. Without, each worker writes.
        self._writer = writer
        self.router = router
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.options = options
        self._on_status = on_status
        self._wake = threading.Condition()
        self._pending_wakes = 0
        self._stopping = threading.Event()
        self._let_go_at: float | None = None
        self._threads: list[threading.Thread] = []
        self._instance = uuid.uuid4().hex[:8]

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        for i in range(self.options.workers):
            thread = threading.Thread(
                target=self._run,
                args=(f"{self._instance}-{i}",),
                name=f"conveyor-worker-{i}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """New work was committed."""
        with self._wake:
            self._pending_wakes += 1
            self._wake.notify_all()

    def notify_statuses(self) -> None:
        if self._on_status is not None:
            self._on_status()

    def must_let_go(self) -> bool:
        return self._let_go_at is not None and time.monotonic() >= self._let_go_at

    def stop(self) -> None:
        """Stop claiming; give running attempts ``grace_s``; release what is still held."""
        self._let_go_at = time.monotonic() + self.options.grace_s
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(self.options.grace_s + self.options.lease_s)

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    # ----------------------------------------------------------------- the loop

    def _run(self, owner: str) -> None:
        try:
            # SQLite: claims and outcomes go through the intake process, the one writer
            # (WriterQueue). PostgreSQL takes many writers (row locks, SKIP LOCKED): direct.
            queue: QueueStore = (
                WriterQueue(self.db_path, self._writer)
                if self._writer is not None and isinstance(self.db_path, Path)
                else open_queue(self.db_path, synchronous="NORMAL")
            )
        except QueueError:
            log.exception("worker cannot open the queue", extra={"worker": owner})
            return
        try:
            while not self._stopping.is_set():
                try:
                    claim = queue.claim(owner, lease_s=self.options.lease_s)
                except QueueError:
                    log.exception("claim failed", extra={"worker": owner})
                    claim = None
                if claim is None:
                    with self._wake:
                        if self._pending_wakes == 0 and not self._stopping.is_set():
                            self._wake.wait(self.options.poll_s)
                        self._pending_wakes = 0
                    continue
                try:
                    self._process(queue, claim)
                except QueueError as exc:  # the claim's lease expires; it is tried again
                    log.error(
                        "cannot record the outcome",
                        extra={"worker": owner, "event_id": claim.record.id, "error": exc.message},
                    )
        finally:
            queue.close()

    def _status(self, state: str, description: str, url: str | None) -> StatusUpdate | None:
        if not self.options.post_statuses:
            return None
        return StatusUpdate(state=state, description=description, target_url=url)

    def _process(self, queue: QueueStore, claim: Claim) -> None:
        rec = claim.record
        extra = {"event_id": rec.id, "project": rec.project, "attempt": rec.attempts}
        self.metrics.observe(
            "conveyor_event_queue_wait_seconds", max(0.0, time.time() - rec.received_at)
        )
        try:
            # orjson, as at intake (JSONDecodeError is a ValueError): the body it accepted then
            event = parse_event(rec.event_header, orjson.loads(rec.body))
        except (PayloadError, ValueError, RecursionError) as exc:
            queue.dead_letter(claim, error=f"stored payload unreadable: {exc}", status=None)
            log.error("stored payload unreadable", extra=extra)
            return
        spec = self.router.spec_for_event(event)  # by project id first: survives renames
        if spec is None:
            queue.dead_letter(
                claim,
                error=f"no spec loaded for project {event.project_path}",
                status=self._status(CommitState.FAILED, "no conveyor spec for this project", None),
            )
            self.notify_statuses()
            log.error("no spec for the project of a queued event", extra=extra)
            return
        job = DispatchJob(
            event_id=rec.id, event=event, spec=spec, attempt=rec.attempts, resume=rec.dispatch_state
        )
        log.info("dispatching", extra={**extra, "dispatcher": self.dispatcher.name})
        started = time.monotonic()
        try:
            outcome: Outcome = self.dispatcher.dispatch(job, _Progress(self, queue, claim))
        except Interrupted as exc:
            if str(exc) == "shutting down":
                queue.release(claim)
                log.info("released on shutdown", extra=extra)
            else:
                log.warning("lease lost; another worker has the event", extra=extra)
            return
        except ConveyorError as exc:
            self._failed_attempt(queue, claim, exc.message, extra)
            return
        except Exception as exc:  # a dispatcher bug must not kill the worker
            log.exception("dispatcher crashed", extra=extra)
            self._failed_attempt(queue, claim, f"{type(exc).__name__}: {exc}", extra)
            return
        finally:
            self.metrics.observe(
                "conveyor_dispatch_seconds",
                time.monotonic() - started,
                dispatcher=self.dispatcher.name,
            )
        state = CommitState.of(outcome.succeeded)
        finished = queue.finish(
            claim,
            succeeded=outcome.succeeded,
            result_url=outcome.url,
            detail=outcome.detail,
            status=self._status(state, outcome.detail, outcome.url),
        )
        self.notify_statuses()
        self.metrics.inc(
            "conveyor_dispatch_total",
            dispatcher=self.dispatcher.name,
            outcome=state if finished else "lease_lost",
        )
        log.info(
            "finished" if finished else "finished after losing the lease (not recorded)",
            extra={**extra, "outcome": state, "detail": outcome.detail},
        )

    def _failed_attempt(
        self, queue: QueueStore, claim: Claim, error: str, extra: dict[str, Any]
    ) -> None:
        attempt = claim.record.attempts
        if attempt >= self.options.max_attempts:
            queue.dead_letter(
                claim,
                error=error,
                status=self._status(
                    CommitState.FAILED, f"dispatch failed {attempt} times: {error}", None
                ),
            )
            self.notify_statuses()
            self.metrics.inc(
                "conveyor_dispatch_total", dispatcher=self.dispatcher.name, outcome="dead"
            )
            log.error("dead-lettered", extra={**extra, "error": error})
            return
        delay = backoff_delay(attempt, self.options.backoff_s, self.options.backoff_cap_s)
        queue.retry_later(claim, error=error, delay_s=delay)
        self.metrics.inc(
            "conveyor_dispatch_total", dispatcher=self.dispatcher.name, outcome="retry"
        )
        log.warning(
            "attempt failed; will retry", extra={**extra, "error": error, "retry_in_s": delay}
        )
