"""One intake process and its two pipes, driven by an event loop.

:class:`IntakePipe` starts ``conveyor.receiver.intake_process`` and exchanges frames with it
(:func:`encode_frame`: length, then pickle) without ever blocking the loop: what does not fit
in the pipe is written when the loop says it is writable, replies are read when the loop says
they are readable, and the end of the process's output (it exited, or was killed) is seen at
once, busy or idle. All methods but :meth:`IntakePipe.wait_ready` run on the loop's thread.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import IO, Any

FRAME_HEAD = 4  # bytes of length before each pickled message
READ_CHUNK = 1 << 20
EXIT_WAIT_S = 0.1  # how long the end of its output may precede a process's exit


def encode_frame(message: tuple[Any, ...]) -> bytes:
    """One message between conveyor's own processes: length, then pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(FRAME_HEAD, "big") + data


class FrameReader:
    """Splits bytes read from a pipe into messages (a frame may arrive in many reads)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        self._buffer += data
        messages: list[tuple[Any, ...]] = []
        start = 0
        buffer = self._buffer
        while len(buffer) - start >= FRAME_HEAD:
            size = int.from_bytes(buffer[start : start + FRAME_HEAD], "big")
            end = start + FRAME_HEAD + size
            if len(buffer) < end:
                break
            messages.append(pickle.loads(buffer[start + FRAME_HEAD : end]))
            start = end
        if start:
            del buffer[:start]
        return messages


class IntakePipe:
    """The loop's side of one intake process.

    ``on_message(message)`` gets each reply, the first being ``("ready",)`` or
    ``("error", why)``; ``on_lost(why)`` is called once when the process's output ends (it
    exited or was killed) or a pipe fails. After that the pipe is closed and the process
    reaped; a new one is a new :class:`IntakePipe`.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        command: Sequence[str],
        env: dict[str, str] | None,
        on_message: Callable[[tuple[Any, ...]], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self._loop = loop
        self._on_message = on_message
        self._on_lost = on_lost
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        self._reader = FrameReader()
        self._pending: deque[memoryview] = deque()  # what the pipe did not take yet
        self._writing = False  # the loop watches self._in for room
        self._eof_after_write = False
        self._attached = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None

    def wait_ready(self) -> tuple[Any, ...] | None:
        """Off the loop, before :meth:`attach`: block for the first message (None: it exited)."""
        assert not self._attached and self._proc is not None and self._proc.stdout is not None
        try:
            return read_frame(self._proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None

    def attach(self) -> None:
        """Start watching the process's output (on the loop's thread)."""
        if self._proc is None or self._attached:
            return
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._loop.add_reader(self._out, self._readable)
        self._attached = True
        if self._pending:
            self._flush()

    def send(self, frame: bytes) -> None:
        """Queue ``frame`` (:func:`encode_frame`) for the process; writes what fits now."""
        if self._proc is None:
            return
        self._pending.append(memoryview(frame))
        if self._attached and not self._writing:
            self._flush()

    def end_input(self) -> None:
        """Close the process's input once everything sent is written (it then exits)."""
        self._eof_after_write = True
        if self._attached and not self._pending:
            self._close_input()

    def kill(self) -> None:
        """Kill the process and close both pipes (no ``on_lost``)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._attached:
            self._loop.remove_reader(self._out)
            if self._writing:
                self._loop.remove_writer(self._in)
        self._writing = False
        self._pending.clear()
        with suppress(OSError):
            proc.kill()
        proc.wait()  # a killed process is reaped at once
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with suppress(OSError):
                    pipe.close()

    # ------------------------------------------------------------------ the loop's callbacks

    def _flush(self) -> None:
        try:
            while self._pending:
                chunk = self._pending[0]
                written = os.write(self._in, chunk)
                if written < len(chunk):
                    self._pending[0] = chunk[written:]  # a view: no copy of the rest
                    raise BlockingIOError
                self._pending.popleft()
        except BlockingIOError:
            if not self._writing:
                self._loop.add_writer(self._in, self._flush)
                self._writing = True
            return
        except OSError as exc:  # BrokenPipeError: the process is gone
            self._lose(f"cannot write to the intake process ({exc.strerror or exc})")
            return
        if self._writing:
            self._loop.remove_writer(self._in)
            self._writing = False
        if self._eof_after_write:
            self._close_input()

    def _close_input(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with suppress(OSError):
                self._proc.stdin.close()

    def _readable(self) -> None:
        try:
            data = os.read(self._out, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lose(f"cannot read from the intake process ({exc.strerror or exc})")
            return
        if not data:
            self._lose(self._ended())
            return
        try:
            messages = self._reader.feed(data)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            self._lose(f"the intake process sent a broken reply ({type(exc).__name__})")
            return
        for message in messages:
            if self._proc is None:
                return  # on_message ended this pipe
            self._on_message(message)

    def _ended(self) -> str:
        """Why the process's output ended: it exited (its code), or it closed its output."""
        if self._proc is None:
            return "the intake process exited"
        with suppress(subprocess.TimeoutExpired):
            self._proc.wait(EXIT_WAIT_S)  # its output ends as it exits: a moment at most
        code = self._proc.returncode
        if code is None:
            return "the intake process closed its output"
        return f"the intake process exited ({code})"

    def _lose(self, why: str) -> None:
        if self._proc is None:
            return
        self.kill()
        self._on_lost(why)


def write_frame(pipe: IO[bytes], message: tuple[Any, ...]) -> None:
    """Write one message on a blocking pipe (the intake process's side)."""
    pipe.write(encode_frame(message))
    pipe.flush()


def read_frame(pipe: IO[bytes]) -> tuple[Any, ...]:
    """The next message on a blocking pipe (EOFError at its end)."""
    head = _read_exactly(pipe.read, FRAME_HEAD)
    body = _read_exactly(pipe.read, int.from_bytes(head, "big")) if head is not None else None
    if body is None:
        raise EOFError
    message: tuple[Any, ...] = pickle.loads(body)
    return message


def _read_exactly(read: Callable[[int], bytes | None], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
