"""The intake: verified deliveries committed with group commit, in a process of its own.

:class:`IntakeWriter` (on the server's event loop) batches every delivery waiting at a moment
and sends the batch over a pipe (:mod:`conveyor.receiver.queue.intake_pipe`) to
``conveyor.receiver.intake_process``, whose :class:`BatchStore` commits it in one
``synchronous=FULL`` transaction before the reply.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from conveyor.errors import QueueError
from conveyor.gitlab.status import StatusTarget
from conveyor.receiver.queue.events import EventQueue, insert_event
from conveyor.receiver.queue.intake_pipe import IntakePipe, encode_frame
from conveyor.receiver.queue.location import Location, child_arg, child_env
from conveyor.receiver.queue.records import (
    Accepted,
    Claim,
    Delivery,
    NewEvent,
    Refusal,
    Status,
    StatusUpdate,
)
from conveyor.receiver.queue.store import open_database, transaction

log = logging.getLogger("conveyor.receiver")

# The workers' writes the intake process runs for them (methods of EventQueue), inside its
# batches: with them the intake process is the only writer on the hot path. Each is conditional
# on the claim's lease, so running one again after a lost reply changes nothing twice.
WORKER_OPS = frozenset(
    {"claim", "heartbeat", "progress", "finish", "retry_later", "dead_letter", "release"}
)


@dataclass(frozen=True)
class Op:
    """One worker's write (an :class:`EventQueue` method and its arguments)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


OpResult = tuple[str, Any]  # ("ok", the method's result) or ("error", message)


class BatchStore:
    """Commits batches of deliveries on one connection (the intake process's side).

    A storage error fails the whole batch; any other error fails only the deliveries that
    raise it: the batch is retried one event per transaction to find them. Nothing a
    delivery carries gets past :meth:`commit`. The workers' writes sent with a batch
    (:meth:`run`) run in its transaction, each in a savepoint of its own, so one failing
    undoes only itself; they are committed (``synchronous=FULL``) before the reply too.
    """

    def __init__(self, path: Path) -> None:
        self._conn = open_database(path, autocheckpoint=False)
        # The status targets of the queued events this process committed last (by id): what
        # supersede() would otherwise parse each superseded event's stored payload for.
        self._targets: dict[int, StatusTarget] = {}
        self._queue = EventQueue(path, conn=self._conn)

    def close(self) -> None:
        self._conn.close()

    def probe(self) -> None:
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise QueueError(f"event queue: {exc}") from None

    def _store(
        self, batch: Sequence[NewEvent], ops: Sequence[Op] = ()
    ) -> tuple[list[Accepted], list[OpResult]]:
        try:
            with transaction(self._conn, "store events"):
                accepted = [insert_event(self._conn, event, self._targets) for event in batch]
                return accepted, [self._apply(op) for op in ops]
        except BaseException:
            self._targets.clear()  # ids of a rolled-back batch may be given out again
            raise

    def _apply(self, op: Op) -> OpResult:
        if op.name not in WORKER_OPS:
            return ("error", f"event queue: no such operation {op.name!r}")
        try:
            return ("ok", getattr(self._queue, op.name)(*op.args, **op.kwargs))
        except QueueError as exc:
            return ("error", exc.message)
        except Exception as exc:
            log.error("queue operation failed", extra={"error": f"{op.name}: {exc}"[:300]})
            return ("error", f"event queue: cannot {op.name} ({type(exc).__name__})")

    def commit(self, batch: Sequence[NewEvent]) -> tuple[list[Accepted | str], str | None]:
        """Each event's outcome (an :class:`Accepted` or an error message), and the storage
        error that failed the batch, if one did."""
        outcomes, storage_error, _ = self.run(batch, ())
        return outcomes, storage_error

    def run(
        self, batch: Sequence[NewEvent], ops: Sequence[Op]
    ) -> tuple[list[Accepted | str], str | None, list[OpResult]]:
        """:meth:`commit` for ``batch``, and each of ``ops``'s results, in one transaction."""
        try:
            accepted, results = self._store(batch, ops)
            return list(accepted), None, results
        except QueueError as exc:
            return [exc.message] * len(batch), exc.message, [("error", exc.message)] * len(ops)
        except Exception:
            pass
        outcomes: list[Accepted | str] = []
        for event in batch:
            try:
                outcomes.extend(self._store([event])[0])
            except QueueError as exc:
                outcomes.append(exc.message)
            except Exception as exc:
                log.error("event not stored", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
                outcomes.append(f"event queue: cannot store the event ({type(exc).__name__})")
        try:
            results = self._store([], ops)[1] if ops else []
        except QueueError as exc:
            results = [("error", exc.message)] * len(ops)
        return outcomes, None, results


class Routing(Protocol):
    """What routes :class:`Delivery` items in the intake process (``receiver.admission``):
    :meth:`setup` is sent to it before the first batch, and again when :attr:`version` changes."""

    @property
    def version(self) -> int: ...

    def setup(self) -> object: ...


class IntakeWriter:
    """Stores verified deliveries with group commit, in a process of its own.

    :meth:`store` (async) and :meth:`submit` (a concurrent Future) resolve with
    :class:`Accepted` once the row is committed, or fail with :class:`QueueError`. With a
    ``routing``, :meth:`deliver` sends a :class:`Delivery` that the intake process routes
    itself (see ``conveyor.receiver.admission``) and resolves with :class:`Accepted`, or with
    a :class:`Refusal` when its payload fails a check. The writer
    runs on one event loop: the server's (``loop``), or a private one in a thread of its own
    when none is given. Whenever fewer than :data:`IN_FLIGHT` batches wait for the intake
    process (``conveyor.receiver.intake_process``: a :class:`BatchStore`,
    ``synchronous=FULL``), the loop sends it every delivery waiting at that moment as one
    batch, and answers them all from the reply, in the same callback that reads it: on the
    server's loop, a delivery costs no thread hand-off and no wake-up of its own. The commits run outside this process's GIL. ``on_commit`` is called
    after each batch that queued new work.

    :meth:`call` (blocking, for worker threads) sends a worker's write (:data:`WORKER_OPS`) with
    the next batch and returns its result once committed: :class:`WriterQueue` routes a
    worker's claims, leases and outcomes this way, so no other connection takes SQLite's write
    lock while deliveries are waiting for theirs.

    The pipes never block the loop (:class:`IntakePipe`). If the intake process dies, the
    loop sees it at once: the batches it held fail (503: GitLab resends) and a new process is
    started for what waits. :meth:`probe` is a round trip through the same process, behind
    any waiting batch, so a writer that is stopped, wedged or failing its commits shows in
    ``/healthz``. A delivery not committed within ``store_timeout_s`` fails (a sweep once a
    second, not a timer each).
    """

    def __init__(
        self,
        path: Location,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_batch: int = 512,
        store_timeout_s: float = 30.0,
        on_commit: Callable[[], None] | None = None,
        log_level: str = "warning",
        routing: Routing | None = None,
    ) -> None:
        self._path = path
        self._routing = routing
        self._routing_sent: int | None = None  # the version the intake process has
        self._command = [
            sys.executable,
            "-m",
            "conveyor.receiver.intake_process",
            child_arg(path),
            log_level,
        ]
        self._max_batch = max_batch
        self._store_timeout_s = store_timeout_s
        self._on_commit = on_commit
        self._stopped = False
        # The loop's state (touched on its thread only).
        self._events: list[_Event] = []
        self._calls: list[_Call] = []
        self._probes: list[_Probe] = []
        self._flight: deque[_Batch] = deque()  # sent, in order, each waiting for its reply
        self._kick_scheduled = False
        self._sweeping = False
        self._closing: Future[None] | None = None
        self._input_ended = False
        self._start_error: str | None = None  # the last start's failure, until one starts
        self._start_failed_at = 0.0
        self._batch_error: str | None = None  # the last batch's storage failure, until one commits
        self._thread: threading.Thread | None = None
        self._loop_thread: int | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="conveyor-intake", daemon=True
            )
            self._thread.start()
        self._loop = loop
        pipe = self._new_pipe()
        first = pipe.wait_ready()
        if first is None or first[0] != "ready":
            pipe.kill()
            self._stop_own_loop()
            detail = first[1] if first is not None else "it exited"
            raise QueueError(f"event queue {path}: the intake process did not start: {detail}")
        self._pipe: IntakePipe | None = pipe
        self._ready = True
        loop.call_soon_threadsafe(self._attach)

    # ------------------------------------------------------------------ callers' side

    @property
    def pid(self) -> int | None:
        pipe = self._pipe
        return pipe.pid if pipe is not None else None

    @property
    def storage_error(self) -> str | None:
        """Why intake cannot commit now: the last batch's storage failure (until a batch
        commits) or the last start's (until one starts)."""
        return self._batch_error or self._start_error

    def _refusal(self) -> QueueError | None:
        if self._stopped:
            return QueueError("event queue: the intake writer is stopped")
        if self._loop.is_closed() or (self._thread is not None and not self._thread.is_alive()):
            return QueueError("event queue: the intake writer's event loop is not running")
        return None

    def _post(
        self, callback: Callable[..., None], *args: Any, closing: bool = False
    ) -> QueueError | None:
        """Run ``callback(*args)`` on the writer's loop (from any thread); why not if it cannot
        (``closing``: the close's own steps, which a stopped writer still takes)."""
        refusal = None if closing else self._refusal()
        if refusal is None:
            try:
                self._loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:  # the loop was closed meanwhile
                return QueueError("event queue: the intake writer's event loop is not running")
        return refusal

    def submit(self, event: NewEvent) -> Future[Accepted]:
        return self._submit(event)  # settled with an Accepted: a NewEvent is never refused

    def _submit(self, item: NewEvent | Delivery) -> Future[Any]:
        future: Future[Any] = Future()
        refusal = self._post(self._add_event, (item, future, time.monotonic()))
        if refusal is not None:
            future.set_exception(refusal)
        return future

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``EventQueue.<name>(*args, **kwargs)`` in the intake process, with the next batch;
        its result once committed (QueueError if it failed, or did not commit in time)."""
        future: Future[Any] = Future()
        refusal = self._post(self._add_call, (Op(name, args, kwargs), future))
        if refusal is not None:
            raise refusal
        try:
            return future.result(self._store_timeout_s)
        except FutureTimeout:
            raise QueueError(
                f"event queue: {name} not committed within {self._store_timeout_s:g} s"
            ) from None

    async def store(self, event: NewEvent) -> Accepted:
        """Commit ``event``; returns once it is durable (QueueError if not, or not in time)."""
        outcome = await self._store(event)
        assert isinstance(outcome, Accepted)  # only a Delivery can be refused
        return outcome

    async def deliver(self, delivery: Delivery) -> Accepted | Refusal:
        """Route ``delivery`` in the intake process and commit it (as :meth:`store`), or the
        :class:`Refusal` of a payload that fails a check (nothing stored). Needs ``routing``."""
        if self._routing is None:
            raise QueueError("event queue: this intake writer routes nothing (no routing)")
        return await self._store(delivery)

    async def _store(self, item: NewEvent | Delivery) -> Accepted | Refusal:
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        if asyncio.get_running_loop() is not self._loop:
            outcome: Accepted | Refusal = await asyncio.wrap_future(self._submit(item))
            return outcome
        waiter: asyncio.Future[Accepted | Refusal] = self._loop.create_future()
        self._add_event((item, waiter, time.monotonic()))
        return await waiter

    async def probe(self, timeout_s: float) -> float:
        """Round trip through the writer (behind any waiting batch); its duration in seconds.

        Raises QueueError if the writer is stopped, does not answer in time, cannot start its
        process, or its last commit failed for a storage reason.
        """
        started = time.perf_counter()
        future: Future[float] = Future()
        refusal = self._post(self._add_probe, future)
        if refusal is not None:
            raise refusal
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            raise QueueError(
                f"event queue: the intake writer did not answer in {timeout_s:g} s"
            ) from None
        error = self.storage_error
        if error is not None:
            raise QueueError(f"event queue: the last commit failed: {error}")
        return time.perf_counter() - started

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is waiting, then stop the intake process (and the writer's own loop).

        Not on the writer's loop: it waits for it. A hung intake process is killed after
        ``timeout_s``: its batch was never acknowledged, so GitLab resends it.
        """
        if self._stopped:
            return
        if self._loop_thread == threading.get_ident():
            raise RuntimeError("IntakeWriter.close() waits for its own event loop")
        closed: Future[None] = Future()
        if self._post(self._begin_close, closed, closing=True) is None:
            with suppress(FutureTimeout):
                closed.result(timeout_s)
            if not closed.done():
                killed: Future[None] = Future()
                if self._post(self._abort, killed, closing=True) is None:
                    with suppress(FutureTimeout):
                        killed.result(5.0)
        self._stopped = True
        self._stop_own_loop()
        pipe = self._pipe
        if pipe is not None and (self._loop.is_closed() or not self._loop.is_running()):
            pipe.kill()  # nobody runs the loop any more: nothing else will
            self._pipe = None

    def _stop_own_loop(self) -> None:
        if self._thread is None:
            return
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    # ------------------------------------------------------------------ the loop's side

    def _attach(self) -> None:
        self._loop_thread = threading.get_ident()
        if self._pipe is not None:
            self._pipe.attach()
        self._kick()

    def _new_pipe(self) -> IntakePipe:
        return IntakePipe(
            self._loop, self._command, child_env(self._path), self._message, self._lost
        )

    def _add_event(self, entry: _Event) -> None:
        self._events.append(entry)
        self._schedule()

    def _add_call(self, entry: _Call) -> None:
        self._calls.append(entry)
        self._schedule()

    def _add_probe(self, future: _Probe) -> None:
        self._probes.append(future)
        self._schedule()

    def _schedule(self) -> None:
        # Once per loop iteration: what the loop's callbacks add meanwhile joins the batch.
        if not self._kick_scheduled and len(self._flight) < IN_FLIGHT:
            self._kick_scheduled = True
            self._loop.call_soon(self._kick)
        if not self._sweeping and self._events:
            self._sweeping = True
            self._loop.call_later(SWEEP_S, self._sweep)

    def _kick(self) -> None:
        """Send the next batch if fewer than IN_FLIGHT wait for replies (or start a process).

        One a turn: a second batch gathers what arrives until the loop's next turn, rather
        than leaving at once with a single delivery."""
        self._kick_scheduled = False
        while len(self._flight) < IN_FLIGHT and self._waiting():
            if self._pipe is None and not self._launch():
                return
            if not self._ready:
                return  # sent once the new process says it is ready
            assert self._pipe is not None
            if self._send(self._pipe):
                return
        if not self._flight and self._closing is not None:
            if self._pipe is None:
                self._closed()
            elif not self._input_ended:
                self._input_ended = True
                self._pipe.end_input()  # the process commits nothing more and exits

    def _send(self, pipe: IntakePipe) -> bool:
        """Send one batch (True) or fail it if it cannot be encoded (False: try the next)."""
        calls = self._calls[: self._max_batch]
        del self._calls[: len(calls)]
        room = self._max_batch - len(calls)
        events = self._events[:room]
        del self._events[: len(events)]
        probes, self._probes = self._probes, []
        batch = _Batch(events, calls, probes)
        try:
            self._send_routing(pipe)
            if events or calls:
                message: tuple[Any, ...] = ("batch", [e[0] for e in events], [c[0] for c in calls])
            else:
                message = ("probe",)
            frame = encode_frame(message)
        except Exception as exc:
            log.exception("intake writer: a batch could not be encoded (the writer goes on)")
            self._fail(batch, QueueError(f"event queue: cannot send the batch ({exc})"))
            return False
        self._flight.append(batch)
        pipe.send(frame)
        return True

    def _send_routing(self, pipe: IntakePipe) -> None:
        """Send the routing to a process that does not have its current version (no reply:
        the process reads it before the batch that follows it in the pipe)."""
        routing = self._routing
        if routing is None or self._routing_sent == routing.version:
            return
        version = routing.version
        pipe.send(encode_frame(("routing", routing.setup())))
        self._routing_sent = version

    def _launch(self) -> bool:
        """Start a new intake process (False: it cannot be now; what waits has failed)."""
        if self._closing is not None:
            self._fail_waiting(QueueError("event queue: the intake writer is stopped"))
            self._closed()
            return False
        since = time.monotonic() - self._start_failed_at
        if self._start_error is not None and since < RESTART_AFTER_S:
            self._fail_waiting(QueueError(f"event queue: {self._start_error}"))
            return False
        try:
            pipe = self._new_pipe()
        except OSError as exc:
            self._start_failed(f"cannot start the intake process ({exc.strerror or exc})")
            return False
        self._pipe, self._ready, self._input_ended = pipe, False, False
        self._routing_sent = None
        pipe.attach()
        return True

    def _start_failed(self, why: str) -> None:
        self._start_error = why
        self._start_failed_at = time.monotonic()
        log.error("intake process did not start", extra={"error": why})
        self._fail_waiting(QueueError(f"event queue: {why}"))

    def _message(self, message: tuple[Any, ...]) -> None:
        try:
            self._receive(message)
        except Exception:
            log.exception("intake writer: unexpected error (the writer goes on)")
            if self._drop_pipe():
                self._lost("the intake writer failed on its reply")
        self._kick()

    def _receive(self, message: tuple[Any, ...]) -> None:
        if not self._ready:
            if message[0] == "ready":
                self._ready, self._start_error = True, None
                return
            self._drop_pipe()
            self._start_failed(f"the intake process did not start: {message[1]}")
            return
        # Replies come in the order the batches were sent. A batch stays in flight until it is
        # answered: if answering fails, _lost fails what is left of it.
        if not self._flight:
            raise ValueError(f"a reply nobody waits for: {message[0]!r}")
        batch = self._flight[0]
        if message[0] == "probe":
            self._answer_probes(batch.probes, message[1])
            self._flight.popleft()
            return
        _, outcomes, storage_error, results = message
        self._batch_error = storage_error
        queued_new = False
        for (_, future, _), outcome in zip(batch.events, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                _settle(future, outcome)
                queued_new = queued_new or (
                    not outcome.duplicate and outcome.status is Status.QUEUED
                )
            elif isinstance(outcome, Refusal):
                _settle(future, outcome)
            else:
                _settle(future, QueueError(outcome))
        for (_, future), (kind, value) in zip(batch.calls, results, strict=True):
            _settle(future, value if kind == "ok" else QueueError(value))
        self._answer_probes(batch.probes, None)
        self._flight.popleft()
        if queued_new and self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:
                log.exception("intake writer: on_commit failed")

    @staticmethod
    def _answer_probes(probes: list[_Probe], error: str | None) -> None:
        for probe in probes:
            _settle(probe, QueueError(error) if error is not None else time.time())

    def _lost(self, why: str) -> None:
        """The intake process is gone (its pipe is closed): fail its batches, start another."""
        was_ready = self._ready
        self._pipe, self._ready = None, False
        if self._closing is not None and not self._flight and not self._waiting():
            self._closed()  # the end of a close: the process exited at the end of its input
            return
        log.error("intake process lost", extra={"error": why})
        self._fail_flight(QueueError(f"event queue: {why}"))
        if not was_ready:
            self._start_failed(f"the intake process did not start: {why}")
        elif self._closing is None:
            self._launch()  # at once, not with the next delivery's wait
        self._kick()

    def _sweep(self) -> None:
        """Fail deliveries waiting longer than ``store_timeout_s`` (they may still commit
        later: the sender's resend is then answered as a duplicate)."""
        self._sweeping = False
        limit = time.monotonic() - self._store_timeout_s
        waiting = self._events + [event for batch in self._flight for event in batch.events]
        late = QueueError(f"event queue: not committed within {self._store_timeout_s:g} s")
        for _, future, since in waiting:
            if since < limit:
                _settle(future, late)
        if any(not future.done() for _, future, _ in waiting):
            self._sweeping = True
            self._loop.call_later(SWEEP_S, self._sweep)

    def _waiting(self) -> bool:
        return bool(self._events or self._calls or self._probes)

    def _fail(self, batch: _Batch, error: QueueError) -> None:
        for _, future, _ in batch.events:
            _settle(future, error)
        for _, call in batch.calls:
            _settle(call, error)
        for probe in batch.probes:
            _settle(probe, error)

    def _fail_flight(self, error: QueueError) -> None:
        lost, self._flight = self._flight, deque()
        for batch in lost:
            self._fail(batch, error)

    def _drop_pipe(self) -> bool:
        """Kill the intake process, if there is one (whether there was)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.kill()
        return pipe is not None

    def _fail_waiting(self, error: QueueError) -> None:
        batch = _Batch(self._events, self._calls, self._probes)
        self._events, self._calls, self._probes = [], [], []
        self._fail(batch, error)

    def _begin_close(self, closed: Future[None]) -> None:
        self._closing = closed
        self._stopped = True
        self._kick()

    def _closed(self) -> None:
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(None)

    def _abort(self, killed: Future[None]) -> None:
        """The close did not finish in time (a hung process): kill it, fail what waits."""
        stopped = QueueError("event queue: the intake writer is stopped")
        self._drop_pipe()
        self._fail_flight(stopped)
        self._fail_waiting(stopped)
        self._closed()
        killed.set_result(None)


# Batches sent ahead of the reply to the one before: the intake process reads the next as soon
# as it has answered one, instead of waiting for this loop's next turn (bench/RESULTS.md: about
# 1.1x the throughput of one at a time, though batches are smaller).
IN_FLIGHT = 2
SWEEP_S = 1.0  # how often deliveries waiting too long are looked for
RESTART_AFTER_S = 1.0  # after a failed start, the next waits this long (meanwhile: 503)

_Waiter = Future[Any] | asyncio.Future[Any]  # settled with an Accepted or a Refusal
_Event = tuple[NewEvent | Delivery, _Waiter, float]  # the delivery, who waits, since (monotonic)
_Call = tuple[Op, "Future[Any]"]
_Probe = Future[float]


@dataclass(slots=True)
class _Batch:
    """What was sent to the intake process in one message, waiting for its reply."""

    events: list[_Event]
    calls: list[_Call]
    probes: list[_Probe]


def _settle(future: Future[Any] | asyncio.Future[Any], outcome: Any) -> None:
    """Answer ``future`` unless it is answered already (or cancelled)."""
    if future.done():
        return
    with suppress(InvalidStateError, asyncio.InvalidStateError):
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class WriterQueue(EventQueue):
    """A worker's queue: reads on its own connection, writes through the intake writer.

    Claims, leases and outcomes run in the intake process with the next batch (see
    :data:`WORKER_OPS`), so the process that must commit deliveries before their 2xx never
    waits for SQLite's write lock held by a worker (which, in the server's process, may itself
    be waiting for the GIL). A write whose reply was lost (the intake process died) is sent
    once more: each is conditional on the lease, so the second finds it done (False) rather
    than doing it twice.
    """

    def __init__(self, path: Path, writer: IntakeWriter) -> None:
        super().__init__(path, synchronous="NORMAL")
        self._writer = writer

    def _write(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._writer.call(name, *args, **kwargs)
        except QueueError:
            if name == "claim":
                raise
            return self._writer.call(name, *args, **kwargs)

    def claim(self, owner: str, *, lease_s: float, now: float | None = None) -> Claim | None:
        return cast(Claim | None, self._write("claim", owner, lease_s=lease_s, now=now))

    def heartbeat(self, claim: Claim, *, lease_s: float) -> bool:
        return bool(self._write("heartbeat", claim, lease_s=lease_s))

    def progress(
        self,
        claim: Claim,
        *,
        result_url: str | None = None,
        dispatch_state: dict[str, Any] | None = None,
        status: StatusUpdate | None = None,
        note: str | None = None,
        durable: bool = False,  # the intake's commits always are
    ) -> bool:
        return bool(
            self._write(
                "progress",
                claim,
                result_url=result_url,
                dispatch_state=dispatch_state,
                status=status,
                note=note,
            )
        )

    def finish(
        self,
        claim: Claim,
        *,
        succeeded: bool,
        result_url: str | None,
        detail: str | None,
        status: StatusUpdate | None,
    ) -> bool:
        return bool(
            self._write(
                "finish",
                claim,
                succeeded=succeeded,
                result_url=result_url,
                detail=detail,
                status=status,
            )
        )

    def retry_later(self, claim: Claim, *, error: str, delay_s: float) -> bool:
        return bool(self._write("retry_later", claim, error=error, delay_s=delay_s))

    def dead_letter(self, claim: Claim, *, error: str, status: StatusUpdate | None) -> bool:
        return bool(self._write("dead_letter", claim, error=error, status=status))

    def release(self, claim: Claim) -> bool:
        return bool(self._write("release", claim))
