"""A bounded availability probe: steady HTTP requests to the service while it is switched."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class ProbeResult:
    requests: int
    failures: int
    failure_kinds: dict[str, int]
    versions_seen: tuple[str, ...]
    duration_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


class Probe:
    """GETs ``url`` at ``rate`` per second (new connection each time, like independent clients)
    until stopped or ``max_seconds`` pass; records every failure (non-200 or transport error)."""

    def __init__(self, url: str, *, rate: float = 50.0, max_seconds: float = 180.0) -> None:
        self.url = url
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-probe", daemon=True)
        self._count = 0
        self._failures: Counter[str] = Counter()
        self._bodies: list[str] = []
        self._started = 0.0
        self._ended = 0.0

    def start(self) -> Probe:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = self._started + self.max_seconds
        next_at = self._started
        with httpx.Client(timeout=5.0, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._count += 1
                try:
                    resp = client.get(self.url)
                    if resp.status_code != 200:
                        self._failures[f"HTTP {resp.status_code}"] += 1
                    else:
                        body = resp.text.strip()
                        if not self._bodies or self._bodies[-1] != body:
                            self._bodies.append(body)
                except httpx.HTTPError as exc:
                    self._failures[type(exc).__name__] += 1
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        self._ended = time.monotonic()

    @property
    def sent(self) -> int:
        """Requests sent so far."""
        return self._count

    def stop(self) -> ProbeResult:
        self._stop.set()
        self._thread.join()
        return ProbeResult(
            requests=self._count,
            failures=sum(self._failures.values()),
            failure_kinds=dict(self._failures),
            versions_seen=tuple(self._bodies),
            duration_s=round(self._ended - self._started, 3),
        )
