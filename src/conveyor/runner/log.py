"""A run's log: every line timestamped and masked, each stage's tail kept, lines forwarded live."""

from __future__ import annotations

import threading
import time
from collections import deque

from conveyor.masking import Masker
from conveyor.runner.output import OutputSink

TAIL_LINES = 30


class RunLog:
    """The run's full log and each stage's tail, thread-safe, masked; forwards lines to the sink."""

    def __init__(self, sink: OutputSink, mask: Masker) -> None:
        self._sink = sink
        self.mask = mask
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._tails: dict[str, deque[str]] = {}
        self._start = time.monotonic()

    def line(self, stage: str, text: str) -> None:
        text = self.mask(text)
        with self._lock:
            self._lines.append(f"[{time.monotonic() - self._start:8.2f}] [{stage}] {text}")
            self._tails.setdefault(stage, deque(maxlen=TAIL_LINES)).append(text)
        self._sink.line(stage, text)

    def note(self, text: str) -> None:
        with self._lock:
            self._lines.append(f"[{time.monotonic() - self._start:8.2f}] {self.mask(text)}")

    def tail(self, stage: str) -> str:
        with self._lock:
            return "\n".join(self._tails.get(stage, ()))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._lines) + ("\n" if self._lines else "")
