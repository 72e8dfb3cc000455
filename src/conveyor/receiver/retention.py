"""Retention: finished events older than ``max_age_s`` or beyond the newest ``max_events`` go.

The default keeps 30 days and at most 100,000 events (``CONVEYOR_RETENTION_DAYS``,
``CONVEYOR_RETENTION_EVENTS``; 0 turns a limit off). Only finished events are ever deleted
(done, failed, dead, ignored, superseded), and only once each of their commit statuses was
sent or given up: queued, running and retrying events, and statuses still to post, stay
whatever their age. The newest event always stays, so event ids never start again from 1 (a
Jenkins build's ``CONVEYOR_EVENT_ID`` keeps naming one event).

:class:`Pruner` runs in ``conveyor serve`` on its own thread and connection
(``synchronous=NORMAL``, no fsync): it deletes in small batches, each its own short
transaction (100 events: about 15 ms here), then pauses three times as long as the batch
took (at least 20 ms): the intake writer never waits for more than one batch, pruning takes
at most a quarter of the time, and it still deletes far more events a second than arrive. SQLite reuses the freed pages for new events, so the file stops growing at
about the retained size; it does not shrink (run ``VACUUM`` on a stopped server for that).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from conveyor.errors import QueueError
from conveyor.receiver.queue import QueueStore
from conveyor.receiver.queue.location import Location, open_queue

log = logging.getLogger("conveyor.receiver.retention")

DEFAULT_DAYS = 30.0
DEFAULT_EVENTS = 100_000


@dataclass(frozen=True)
class RetentionPolicy:
    """``None`` means no limit of that kind; both ``None`` keeps everything."""

    max_age_s: float | None = DEFAULT_DAYS * 86400
    max_events: int | None = DEFAULT_EVENTS

    @classmethod
    def of(cls, days: float | None, events: int | None) -> RetentionPolicy:
        """From operator units (days, count); 0 or ``None`` turns a limit off."""
        return cls(max_age_s=days * 86400 if days else None, max_events=events or None)

    @property
    def active(self) -> bool:
        return self.max_age_s is not None or self.max_events is not None

    def describe(self) -> str:
        parts = []
        if self.max_age_s is not None:
            parts.append(f"{self.max_age_s / 86400:g} days")
        if self.max_events is not None:
            parts.append(f"{self.max_events:,} events")
        return " and ".join(parts) if parts else "keep everything"


@dataclass(frozen=True)
class PruneReport:
    """What a pass deleted (or, in a dry run, would delete)."""

    events: int
    payload_bytes: int | None
    batches: int
    dry_run: bool
    policy: str

    def to_json(self) -> dict[str, object]:
        return {
            "events": self.events,
            "payload_bytes": self.payload_bytes,
            "batches": self.batches,
            "dry_run": self.dry_run,
            "policy": self.policy,
        }

    exit_code = 0

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        if not self.dry_run:
            return [f"deleted {self.events:,} finished events (policy: {self.policy})"]
        size = f" ({self.payload_bytes:,} bytes of payload)" if self.payload_bytes else ""
        return [f"would delete {self.events:,} finished events{size} (policy: {self.policy})"]


def prune(
    queue: QueueStore,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    batch: int = 500,
    pause_s: float = 0.0,
    duty_pause: float = 3.0,
    now: float | None = None,
    stop: threading.Event | None = None,
) -> PruneReport:
    """One pass over the queue: delete what the policy lets go, ``batch`` events at a time."""
    now = time.time() if now is None else now
    if not policy.active:
        return PruneReport(0, 0, 0, dry_run, policy.describe())
    below = queue.prune_boundary(max_age_s=policy.max_age_s, max_events=policy.max_events, now=now)
    if dry_run:
        count, size = queue.prune_stats(below=below)
        return PruneReport(count, size, 0, True, policy.describe())
    deleted = batches = 0
    after = 0
    while stop is None or not stop.is_set():
        began = time.monotonic()
        ids = queue.prune_candidates(after=after, below=below, limit=batch)
        if not ids:
            break
        deleted += queue.delete_events(ids)
        batches += 1
        after = ids[-1]
        if pause_s > 0:
            # at most a quarter of the time: intake keeps three quarters of the lock and CPU
            time.sleep(max(pause_s, duty_pause * (time.monotonic() - began)))
    return PruneReport(deleted, None, batches, False, policy.describe())


class Pruner:
    """Applies the policy every ``interval_s`` in the background (``conveyor serve``)."""

    def __init__(
        self,
        path: Location,
        policy: RetentionPolicy,
        *,
        interval_s: float = 60.0,
        batch: int = 100,
        pause_s: float = 0.02,
    ) -> None:
        self._path = path
        self._policy = policy
        self._interval_s = interval_s
        self._batch = batch
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-prune", daemon=True)
        self.passes = 0
        self.deleted = 0

    def start(self) -> None:
        if self._policy.active:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        try:
            queue = open_queue(self._path, synchronous="NORMAL")
        except QueueError:
            log.exception("the pruner cannot open the queue")
            return
        try:
            while not self._stop.is_set():
                try:
                    report = prune(
                        queue,
                        self._policy,
                        batch=self._batch,
                        pause_s=self._pause_s,
                        stop=self._stop,
                    )
                except QueueError:
                    log.exception("pruning failed; will try again")
                else:
                    self.passes += 1
                    self.deleted += report.events
                    if report.events:
                        log.info(
                            "pruned events",
                            extra={"count": report.events, "policy": report.policy},
                        )
                self._stop.wait(self._interval_s)
        finally:
            queue.close()
