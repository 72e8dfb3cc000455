"""The intake writer's process: ``python -m conveyor.receiver.intake_process DB LOG_LEVEL``.

Started by :class:`conveyor.receiver.queue.IntakeWriter`, never by hand. It opens the queue
(``synchronous=FULL``, no auto-checkpoints), answers ``("ready",)`` (or ``("error", why)``), then
serves messages from stdin until it ends (framing: :func:`conveyor.receiver.queue.write_frame`):

* ``("batch", [NewEvent | Delivery, ...], [Op, ...])`` ->
  ``("batch", [Accepted | Refusal | error message, ...], storage_error, [("ok", result) |
  ("error", why)])``: each :class:`Delivery` is routed first (``receiver.admission``: a
  :class:`NewEvent`, or a :class:`Refusal` that is not stored), then one transaction for the
  batch (group commit) and the workers' writes sent with it (``BatchStore.run``), committed
  before the reply;
* ``("probe",)`` -> ``("probe", None | error message)``;
* ``("routing", RoutingSetup)``, no reply: what the deliveries of the batches after it are
  routed with (sent before the first batch, and again when the server learns a project id).

It logs ``event stored`` for every new event (stderr is the server's), so that the server's
own process spends nothing on those lines. Its only input is its parent's pipe.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from typing import IO, Any

from conveyor.errors import QueueError
from conveyor.receiver import runtime
from conveyor.receiver.admission import Admission
from conveyor.receiver.logs import json_line, setup_logging
from conveyor.receiver.queue import (
    Accepted,
    BatchStore,
    Delivery,
    IntakeStore,
    NewEvent,
    Op,
    Refusal,
    read_frame,
    write_frame,
)
from conveyor.receiver.queue.location import from_child_arg, open_intake

log = logging.getLogger("conveyor.receiver")


class BatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes its lines when :meth:`flush_lines` is called (once a batch), not one write a line."""

    def flush(self) -> None:
        pass

    def flush_lines(self) -> None:
        self.acquire()
        try:
            self.stream.flush()
        finally:
            self.release()

    def add_lines(self, lines: list[str]) -> None:
        """Lines already formatted (:func:`conveyor.receiver.logs.json_line`), in one write."""
        self.acquire()
        try:
            self.stream.write("\n".join(lines) + "\n")
        finally:
            self.release()


def _handlers() -> list[BatchedHandler]:
    return [h for h in logging.getLogger("conveyor").handlers if isinstance(h, BatchedHandler)]


def _flush_logs() -> None:
    for handler in _handlers():
        handler.flush_lines()


def _admit(
    admission: Admission | None, items: list[NewEvent | Delivery]
) -> tuple[list[NewEvent], list[Accepted | Refusal | str | None]]:
    """The events to store, and each item's outcome so far (``None``: the store's to give).

    A delivery that cannot be routed (no routing yet, or an error routing it) fails alone."""
    events: list[NewEvent] = []
    outcomes: list[Accepted | Refusal | str | None] = []
    for item in items:
        if isinstance(item, NewEvent):
            events.append(item)
            outcomes.append(None)
            continue
        if admission is None:
            outcomes.append("event queue: the intake process has no routing")
            continue
        try:
            routed = admission.admit(item)
        except Exception as exc:
            log.error("event not routed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            outcomes.append(f"event queue: cannot route the event ({type(exc).__name__})")
            continue
        if isinstance(routed, Refusal):
            outcomes.append(routed)
        else:
            events.append(routed)
            outcomes.append(None)
    return events, outcomes


def _merged(
    admitted: list[Accepted | Refusal | str | None], stored: list[Accepted | str]
) -> list[Accepted | Refusal | str]:
    """Each item's outcome: the store's, in order, where admission left ``None``."""
    results = iter(stored)
    return [next(results) if outcome is None else outcome for outcome in admitted]


def _log_stored(events: list[NewEvent], outcomes: list[Accepted | str]) -> None:
    """An ``event stored`` line for each new event, formatted at once (the lines a logger call
    would write, without the 25 µs an event of making and handling a record for each)."""
    if not log.isEnabledFor(logging.INFO):
        return
    now = time.time()
    lines = [
        json_line(
            now,
            "info",
            log.name,
            "event stored",
            {
                "event_id": outcome.event_id,
                "project": event.project,
                "kind": event.kind,
                "ref": event.ref,
                "status": outcome.status.value,
                "reason": outcome.reason,
            },
        )
        for event, outcome in zip(events, outcomes, strict=True)
        if isinstance(outcome, Accepted) and not outcome.duplicate
    ]
    if lines:
        for handler in _handlers():
            handler.add_lines(lines)


def serve(store: IntakeStore, inbox: IO[bytes], outbox: IO[bytes]) -> None:
    admission: Admission | None = None
    while True:
        try:
            message = read_frame(inbox)
        except EOFError:
            return
        if message[0] == "routing":
            admission = Admission.replica(message[1])
            continue
        if message[0] == "probe":
            try:
                store.probe()
            except QueueError as exc:
                write_frame(outbox, ("probe", exc.message))
            else:
                write_frame(outbox, ("probe", None))
            continue
        events, admitted = _admit(admission, message[1])
        ops: list[Op] = message[2] if len(message) > 2 else []
        results: list[tuple[str, Any]]
        if isinstance(store, BatchStore):
            outcomes, storage_error, results = store.run(events, ops)
        else:  # only the SQLite store takes the workers' writes (see WriterQueue)
            outcomes, storage_error = store.commit(events)
            results = [("error", "event queue: this store takes no worker writes")] * len(ops)
        write_frame(outbox, ("batch", _merged(admitted, outcomes), storage_error, results))
        _log_stored(events, outcomes)
        _flush_logs()


def main() -> None:
    location, level = from_child_arg(sys.argv[1]), sys.argv[2]
    # The same JSON lines on the same stderr, written once a batch (a line buffer writes each).
    stream = io.TextIOWrapper(
        io.FileIO(sys.stderr.fileno(), "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
    )
    setup_logging(level, stream, handler_class=BatchedHandler)
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    try:
        store = open_intake(location)
    except QueueError as exc:
        write_frame(outbox, ("error", exc.message))
        return
    runtime.settle()  # as in the server: logging fields off, the imports' objects frozen
    write_frame(outbox, ("ready",))
    try:
        serve(store, inbox, outbox)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        store.close()


if __name__ == "__main__":
    main()
