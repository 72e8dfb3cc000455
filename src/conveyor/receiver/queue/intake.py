"""The intake: verified deliveries committed with group commit, in a process of its own.

:class:`IntakeWriter` (in the server) batches every delivery waiting at a moment and sends the
batch over a pipe (:func:`write_frame` / :func:`read_frame`) to ``conveyor.receiver.intake_process``,
whose :class:`BatchStore` commits it in one ``synchronous=FULL`` transaction before the reply.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import queue as stdlib_queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from conveyor.errors import QueueError
from conveyor.gitlab.status import StatusTarget
from conveyor.receiver.queue.events import EventQueue, insert_event
from conveyor.receiver.queue.location import Location, child_arg, child_env
from conveyor.receiver.queue.records import Accepted, Claim, NewEvent, Status, StatusUpdate
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

_Waiter = Future[Accepted] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[Accepted]"]
_Call = tuple[Op, "Future[Any]"]
# an event, a worker's write, a probe, or stop
_Entry = tuple[NewEvent, _Waiter] | _Call | Future[float] | None
_Outcome = Accepted | QueueError


def _settle_async(items: list[tuple[asyncio.Future[Accepted], _Outcome]]) -> None:
    for future, outcome in items:
        if future.done():
            continue
        if isinstance(outcome, QueueError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


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


class IntakeWriter:
    """Stores verified deliveries with group commit, in a process of its own.

    :meth:`store` (async) and :meth:`submit` (a concurrent Future) resolve with
    :class:`Accepted` once the row is committed, or fail with :class:`QueueError`. A thread
    takes every delivery waiting at that moment, sends the batch to the intake process
    (``conveyor.receiver.intake_process``: a :class:`BatchStore`, ``synchronous=FULL``), and
    answers them all when it replies; the answers of one batch reach an event loop in a single
    wake-up. The commits run outside this process's GIL, so acknowledging never competes with
    them for it. ``on_commit`` is called after each batch that queued new work.

    :meth:`call` (blocking, for worker threads) sends a worker's write (:data:`WORKER_OPS`) with
    the next batch and returns its result once committed: :class:`WriterQueue` routes a
    worker's claims, leases and outcomes this way, so no other connection takes SQLite's write
    lock while deliveries are waiting for theirs.

    If the intake process dies, its batch fails (503: GitLab resends) and the next batch
    starts a new one. :meth:`probe` is a round trip through the same inbox and process, so a
    writer that is dead, wedged or failing its commits shows in ``/healthz``.
    """

    def __init__(
        self,
        path: Location,
        *,
        max_batch: int = 512,
        store_timeout_s: float = 30.0,
        on_commit: Callable[[], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        self._path = path
        self._log_level = log_level
        self._max_batch = max_batch
        self._store_timeout_s = store_timeout_s
        self._on_commit = on_commit
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawn()
        self._inbox: stdlib_queue.SimpleQueue[_Entry] = stdlib_queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="conveyor-intake", daemon=True)
        self._stopped = False
        self.storage_error: str | None = None  # the last batch's storage failure, until one commits
        self._thread.start()

    # ------------------------------------------------------------------ the intake process

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "conveyor.receiver.intake_process", child_arg(self._path)]
        self._proc = subprocess.Popen(
            [*cmd, self._log_level],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=child_env(self._path),
        )
        reply = self._exchange(None)
        if reply is None or reply[0] != "ready":
            self._kill()
            detail = reply[1] if reply is not None else "it exited"
            raise QueueError(
                f"event queue {self._path}: the intake process did not start: {detail}"
            )

    def _kill(self) -> None:
        if self._proc is not None:
            with suppress(OSError):
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._proc = None

    def _exchange(self, message: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """Send ``message`` (None: only read) and read the reply; None if the process is gone."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            return None
        try:
            if message is not None:
                write_frame(proc.stdin, message)
            return read_frame(proc.stdout)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            return None  # ValueError: the pipe was closed by close() meanwhile

    def _call(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """One round trip; a dead process fails this call, and the next one starts a new one."""
        if self._proc is None:
            self._spawn()
        reply = self._exchange(message)
        if reply is None:
            code = self._proc.poll() if self._proc is not None else None
            self._kill()
            raise QueueError(f"event queue: the intake process exited ({code})")
        return reply

    # ------------------------------------------------------------------ callers' side

    def _refusal(self) -> QueueError | None:
        if self._stopped:
            return QueueError("event queue: the intake writer is stopped")
        if not self._thread.is_alive():
            return QueueError("event queue: the intake writer thread is not running")
        return None

    def submit(self, event: NewEvent) -> Future[Accepted]:
        future: Future[Accepted] = Future()
        refusal = self._refusal()
        if refusal is not None:
            future.set_exception(refusal)
            return future
        self._inbox.put((event, future))
        return future

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``EventQueue.<name>(*args, **kwargs)`` in the intake process, with the next batch;
        its result once committed (QueueError if it failed, or did not commit in time)."""
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        future: Future[Any] = Future()
        self._inbox.put((Op(name, args, kwargs), future))
        try:
            return future.result(self._store_timeout_s)
        except FutureTimeout:
            raise QueueError(
                f"event queue: {name} not committed within {self._store_timeout_s:g} s"
            ) from None

    async def store(self, event: NewEvent) -> Accepted:
        """Commit ``event``; returns once it is durable (QueueError if not, or not in time)."""
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        self._inbox.put((event, (loop, future)))
        try:
            async with asyncio.timeout(self._store_timeout_s):
                return await future
        except TimeoutError:
            # It may still commit later: the sender's resend is then answered as a duplicate.
            raise QueueError(
                f"event queue: not committed within {self._store_timeout_s:g} s"
            ) from None

    async def probe(self, timeout_s: float) -> float:
        """Round trip through the writer (behind any waiting batch); its duration in seconds.

        Raises QueueError if the writer is stopped, dead, does not answer in time, or its
        last commit failed for a storage reason.
        """
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        started = time.perf_counter()
        future: Future[float] = Future()
        self._inbox.put(future)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            raise QueueError(
                f"event queue: the intake writer did not answer in {timeout_s:g} s"
            ) from None
        if self.storage_error is not None:
            raise QueueError(f"event queue: the last commit failed: {self.storage_error}")
        return time.perf_counter() - started

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is waiting, then stop the thread and the intake process."""
        if self._stopped:
            return
        self._stopped = True
        self._inbox.put(None)
        self._thread.join(timeout_s)
        proc = self._proc
        if proc is not None and not self._thread.is_alive() and proc.stdin is not None:
            proc.stdin.close()  # end of input: the process closes its database and exits
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
        # A hung intake process (the thread still waits on it) is killed: its batch was never
        # acknowledged, so GitLab resends it. Nothing is left running after a stop.
        self._kill()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._inbox.get()
            if first is None:
                break
            batch: list[tuple[NewEvent, _Waiter]] = []
            calls: list[_Call] = []
            probes: list[Future[float]] = []
            item: _Entry = first
            while True:
                if item is None:
                    stop = True
                    break
                if isinstance(item, Future):
                    probes.append(item)
                elif isinstance(item[0], Op):
                    calls.append(item)
                else:
                    batch.append(item)
                if len(batch) + len(calls) >= self._max_batch:
                    break
                try:
                    item = self._inbox.get_nowait()
                except stdlib_queue.Empty:
                    break
            try:
                if batch or calls:
                    self._commit(batch, calls)
                for probe in probes:
                    self._answer_probe(probe)
            except Exception:
                log.exception("intake writer: unexpected error (the thread goes on)")

    def _answer_probe(self, probe: Future[float]) -> None:
        try:
            reply = self._call(("probe",))
            if reply[1] is not None:
                raise QueueError(reply[1])
        except QueueError as exc:
            with suppress(InvalidStateError):
                probe.set_exception(exc)
            return
        with suppress(InvalidStateError):
            probe.set_result(time.time())

    def _commit(self, batch: list[tuple[NewEvent, _Waiter]], calls: list[_Call]) -> None:
        outcomes: list[_Outcome]
        results: list[OpResult]
        try:
            reply = self._call(("batch", [event for event, _ in batch], [op for op, _ in calls]))
            outcomes = [o if isinstance(o, Accepted) else QueueError(o) for o in reply[1]]
            self.storage_error = reply[2]
            results = reply[3]
        except QueueError as exc:
            self.storage_error = exc.message
            outcomes = [exc] * len(batch)
            results = [("error", exc.message)] * len(calls)
        self._answer(batch, outcomes)
        for (_, future), (kind, value) in zip(calls, results, strict=True):
            with suppress(InvalidStateError):
                if kind == "ok":
                    future.set_result(value)
                else:
                    future.set_exception(QueueError(value))
        queued_new = any(
            isinstance(o, Accepted) and not o.duplicate and o.status is Status.QUEUED
            for o in outcomes
        )
        if queued_new and self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:
                log.exception("intake writer: on_commit failed")

    @staticmethod
    def _answer(batch: list[tuple[NewEvent, _Waiter]], outcomes: list[_Outcome]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Accepted], _Outcome]]
        ] = {}
        for (_, waiter), outcome in zip(batch, outcomes, strict=True):
            if isinstance(waiter, Future):
                with suppress(InvalidStateError):
                    if isinstance(outcome, QueueError):
                        waiter.set_exception(outcome)
                    else:
                        waiter.set_result(outcome)
            else:
                loop, future = waiter
                by_loop.setdefault(loop, []).append((future, outcome))
        for loop, items in by_loop.items():
            # RuntimeError: the loop is closed, nobody waits for these answers any more.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_async, items)


def write_frame(pipe: IO[bytes], message: tuple[Any, ...]) -> None:
    """One message on a pipe between conveyor's own processes: length, then pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(4, "big") + data)
    pipe.flush()


def read_frame(pipe: IO[bytes]) -> tuple[Any, ...]:
    """The next message (EOFError at the end of the pipe)."""
    head = _read_exactly(pipe, 4)
    message: tuple[Any, ...] = pickle.loads(_read_exactly(pipe, int.from_bytes(head, "big")))
    return message


def _read_exactly(pipe: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = pipe.read(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


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
