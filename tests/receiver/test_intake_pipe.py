"""The intake writer's pipes (conveyor.receiver.queue.intake_pipe) and the writer on its loop:
frames survive any split, a frame far larger than the pipe never blocks the loop, the end of
the process is seen at once, and deliveries that wait too long fail instead of hanging."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.errors import QueueError
from conveyor.receiver.queue import Accepted, IntakeWriter, NewEvent, Status
from conveyor.receiver.queue.intake_pipe import FrameReader, IntakePipe, encode_frame
from conveyor.receiver.queue.location import open_queue
from tests.receiver import payloads as p

messages = st.lists(
    st.tuples(st.text(max_size=20), st.binary(max_size=300), st.integers()), max_size=8
)


@given(messages, st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_frames_split_anywhere_come_out_whole_and_in_order(
    sent: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    data = b"".join(encode_frame(m) for m in sent)
    reader = FrameReader()
    got: list[tuple[Any, ...]] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        got.extend(reader.feed(data[start:cut]))
        start = cut
    assert got == sent


class Echo:
    """An IntakePipe to ``cat``: every frame sent comes back as a message."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.messages: list[tuple[Any, ...]] = []
        self.lost: list[str] = []
        self.pipe = IntakePipe(loop, ["cat"], None, self.messages.append, self.lost.append)
        self.pipe.attach()


def test_a_frame_far_larger_than_the_pipe_never_blocks_the_loop() -> None:
    async def main() -> tuple[list[tuple[Any, ...]], int]:
        echo = Echo(asyncio.get_running_loop())
        ticks = 0
        big = ("batch", b"x" * 8_000_000)  # cat blocks on its output until the loop reads it
        echo.pipe.send(encode_frame(big))
        echo.pipe.send(encode_frame(("probe",)))
        deadline = time.monotonic() + 20
        while len(echo.messages) < 2 and time.monotonic() < deadline:
            ticks += 1
            await asyncio.sleep(0.001)
        echo.pipe.kill()
        return echo.messages, ticks

    got, ticks = asyncio.run(main())
    assert got == [("batch", b"x" * 8_000_000), ("probe",)]
    assert ticks > 1  # the loop ran while the frame was on its way


def test_the_end_of_the_process_is_seen_at_once_and_once() -> None:
    async def main() -> Echo:
        echo = Echo(asyncio.get_running_loop())
        assert echo.pipe.pid is not None
        os.kill(echo.pipe.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not echo.lost and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return echo

    echo = asyncio.run(main())
    assert echo.lost == [f"the intake process exited ({-signal.SIGKILL})"]
    assert not echo.pipe.alive and echo.pipe.pid is None


def test_end_input_lets_the_process_finish_what_was_sent() -> None:
    async def main() -> Echo:
        echo = Echo(asyncio.get_running_loop())
        echo.pipe.send(encode_frame(("last", b"y" * 200_000)))
        echo.pipe.end_input()
        deadline = time.monotonic() + 10
        while not echo.lost and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return echo

    echo = asyncio.run(main())
    assert echo.messages == [("last", b"y" * 200_000)]
    assert echo.lost == ["the intake process exited (0)"]


def event(key: str) -> NewEvent:
    return p.stored(key)


def test_a_delivery_not_committed_in_time_fails_and_the_writer_goes_on(tmp_path: Path) -> None:
    writer = IntakeWriter(tmp_path / "events.db", store_timeout_s=1.0)
    assert writer.pid is not None
    pid = writer.pid
    try:
        os.kill(pid, signal.SIGSTOP)  # a stuck disk, say
        started = time.monotonic()
        late = writer.submit(event("a"))
        with pytest.raises(QueueError, match="not committed within 1 s"):
            late.result(10)
        assert time.monotonic() - started < 5
        os.kill(pid, signal.SIGCONT)
        assert writer.submit(event("b")).result(10).duplicate is False
        # The late one committed after all: its resend is a duplicate, not a second event.
        assert writer.submit(event("a")).result(10).duplicate is True
    finally:
        os.kill(pid, signal.SIGCONT)
        writer.close()


def test_store_from_another_event_loop_than_the_writers(tmp_path: Path) -> None:
    writer = IntakeWriter(tmp_path / "events.db")  # its own loop, in a thread of its own
    try:
        accepted = asyncio.run(writer.store(event("a")))
        assert accepted.duplicate is False and accepted.status is Status.QUEUED
    finally:
        writer.close()


def test_close_commits_everything_already_submitted(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    writer = IntakeWriter(db, max_batch=7)
    futures = [writer.submit(event(f"k{i}")) for i in range(60)]
    writer.close()
    assert all(not f.result(0).duplicate for f in futures)
    with pytest.raises(QueueError, match="stopped"):
        writer.submit(event("late")).result(0)
    queue = open_queue(db)
    try:
        assert len(queue.list_events(limit=100)) == 60
    finally:
        queue.close()


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _two_in_flight(writer: IntakeWriter) -> tuple[int, list[Future[Accepted]]]:
    """Stop the intake process, then send it two batches (one delivery each)."""
    assert writer.pid is not None
    pid = writer.pid
    os.kill(pid, signal.SIGSTOP)
    first = writer.submit(event("a"))
    _wait(lambda: len(writer._flight) == 1)
    second = writer.submit(event("b"))
    _wait(lambda: len(writer._flight) == 2)  # sent behind the first, not held back
    return pid, [first, second]


def test_a_second_batch_is_sent_before_the_first_is_answered(tmp_path: Path) -> None:
    writer = IntakeWriter(tmp_path / "events.db")
    assert writer.pid is not None
    pid = writer.pid
    try:
        pid, (first, second) = _two_in_flight(writer)
        third = writer.submit(event("c"))
        time.sleep(0.1)
        assert len(writer._flight) == 2 and len(writer._events) == 1  # at most IN_FLIGHT
        os.kill(pid, signal.SIGCONT)
        ids = [f.result(10).event_id for f in (first, second, third)]
        assert ids == sorted(ids)  # each reply answered the batch it belongs to
    finally:
        os.kill(pid, signal.SIGCONT)
        writer.close()


def test_every_batch_in_flight_fails_when_the_process_dies(tmp_path: Path) -> None:
    writer = IntakeWriter(tmp_path / "events.db")
    try:
        pid, in_flight = _two_in_flight(writer)
        os.kill(pid, signal.SIGKILL)
        for future in in_flight:
            with pytest.raises(QueueError, match="exited"):
                future.result(10)
        _wait(lambda: writer.pid not in (None, pid))
        assert writer.submit(event("b")).result(10).duplicate is False  # never committed
    finally:
        writer.close()
