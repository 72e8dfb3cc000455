"""The intake process's ``event stored`` lines: the lines a logger call would write, one per new
event, formatted without a log record each (``intake_process._log_stored``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence

import pytest

from conveyor.receiver import intake_process
from conveyor.receiver.logs import JsonFormatter, setup_logging
from conveyor.receiver.queue import Accepted, NewEvent, read_frame, write_frame
from conveyor.receiver.queue.records import Status


class Store:
    """An intake store answering from a script: event 1 new, 2 a resend, 3 refused, 4 ignored."""

    def commit(self, batch: Sequence[NewEvent]) -> tuple[list[Accepted | str], str | None]:
        answers: list[Accepted | str] = [
            Accepted(event_id=1, duplicate=False, status=Status.QUEUED),
            Accepted(event_id=1, duplicate=True, status=Status.QUEUED),
            "event queue: cannot store the event (ValueError)",
            Accepted(event_id=2, duplicate=False, status=Status.IGNORED, reason="no spec for x"),
        ]
        return answers[: len(batch)], None

    def probe(self) -> None:
        pass

    def close(self) -> None:
        pass


def _event(key: str, ref: str) -> NewEvent:
    return NewEvent(
        event_header="Push Hook",
        body=b"{}",
        status=Status.QUEUED,
        received_at=0.0,
        idempotency_key=key,
        kind="push",
        project="group/app",
        ref=ref,
    )


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level)
        for name in ("conveyor", "uvicorn", "uvicorn.error")
    }
    yield out
    for name, (handlers, level) in saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).setLevel(level)


def _serve(events: list[NewEvent]) -> tuple[tuple[object, ...], ...]:
    inbox, outbox = io.BytesIO(), io.BytesIO()
    write_frame(inbox, ("batch", events, []))
    inbox.seek(0)
    intake_process.serve(Store(), inbox, outbox)
    outbox.seek(0)
    return (read_frame(outbox),)


def test_each_new_event_gets_the_line_a_logger_call_writes(stream: io.StringIO) -> None:
    setup_logging("info", stream, handler_class=intake_process.BatchedHandler)
    events = [_event(f"k{i}", f"refs/heads/b{i}") for i in range(4)]
    (reply,) = _serve(events)
    assert reply[0] == "batch" and len(reply[1]) == 4  # type: ignore[arg-type]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # the resend and the refused event get none; the new and the ignored one get theirs
    assert [(line["event_id"], line["status"], line["ref"]) for line in lines] == [
        (1, "queued", "refs/heads/b0"),
        (2, "ignored", "refs/heads/b3"),
    ]
    # the same fields, in the same order, as the formatter gives a record of the same call
    record = logging.LogRecord(
        "conveyor.receiver", logging.INFO, __file__, 1, "event stored", (), None
    )
    fields = {
        "event_id": 2,
        "project": "group/app",
        "kind": "push",
        "ref": "refs/heads/b3",
        "status": "ignored",
        "reason": "no spec for x",
    }
    record.__dict__.update(fields)
    expected = json.loads(JsonFormatter().format(record))
    assert list(lines[1]) == list(expected)
    assert {k: v for k, v in lines[1].items() if k != "ts"} == {
        k: v for k, v in expected.items() if k != "ts"
    }
    assert lines[1]["ts"].endswith("+00:00")


def test_no_line_below_the_log_level(stream: io.StringIO) -> None:
    setup_logging("warning", stream, handler_class=intake_process.BatchedHandler)
    _serve([_event("k0", "refs/heads/main")])
    assert stream.getvalue() == ""
