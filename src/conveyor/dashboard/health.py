"""Intake over the last hour, from the counters behind ``/metrics``.

:class:`Sampler` reads the receiver's :class:`Metrics` every ``interval_s`` (a thread; reading
takes the metrics lock for microseconds) and keeps an hour of samples. :func:`series` turns two
neighbouring samples into a rate (deliveries received per second) and a mean acknowledgement
latency; :func:`chart` lays a series out as SVG polyline points (numbers only, so the template
that draws it has nothing to escape but the labels).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

from conveyor.receiver.metrics import Metrics

WINDOW_S = 3600.0


@dataclass(frozen=True)
class Sample:
    at: float
    received: float  # conveyor_webhooks_received_total, all labels
    acks: int  # conveyor_webhook_ack_seconds count
    ack_sum: float  # ... and sum


@dataclass(frozen=True)
class Point:
    at: float
    rate: float  # deliveries per second
    latency_ms: float | None  # mean ack latency over the interval (None: no delivery)


def sample(metrics: Metrics, now: float | None = None) -> Sample:
    acks, ack_sum = metrics.histogram_total("conveyor_webhook_ack_seconds")
    return Sample(
        time.time() if now is None else now,
        metrics.total("conveyor_webhooks_received_total"),
        acks,
        ack_sum,
    )


def series(samples: list[Sample]) -> list[Point]:
    out: list[Point] = []
    for before, after in itertools.pairwise(samples):
        span = after.at - before.at
        if span <= 0:
            continue
        acks = after.acks - before.acks
        latency = (after.ack_sum - before.ack_sum) / acks * 1000 if acks > 0 else None
        out.append(Point(after.at, (after.received - before.received) / span, latency))
    return out


@dataclass(frozen=True)
class Chart:
    points: str  # "x,y x,y ..." for <polyline points=...>
    peak: float
    width: int
    height: int


def chart(
    values: list[tuple[float, float]], *, now: float, width: int = 600, height: int = 120
) -> Chart:
    """``(time, value)`` pairs of the last hour, as polyline points (time left to right)."""
    peak = max((v for _, v in values), default=0.0)
    scale = peak if peak > 0 else 1.0
    coords = []
    for at, value in values:
        x = width * (1 - (now - at) / WINDOW_S)
        if x < 0:
            continue
        y = height - (value / scale) * (height - 4) - 2
        coords.append(f"{x:.1f},{y:.1f}")
    return Chart(" ".join(coords), peak, width, height)


class Sampler:
    """Keeps an hour of samples of ``metrics`` (one every ``interval_s``)."""

    def __init__(self, metrics: Metrics, *, interval_s: float = 10.0) -> None:
        self._metrics = metrics
        self._interval = interval_s
        self._samples: deque[Sample] = deque(maxlen=int(WINDOW_S / interval_s) + 2)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> None:
        item = sample(self._metrics)
        with self._lock:
            self._samples.append(item)

    def samples(self) -> list[Sample]:
        """The samples kept, plus one taken now (so the latest interval shows at once)."""
        with self._lock:
            kept = list(self._samples)
        return [*kept, sample(self._metrics)]

    def start(self) -> None:
        self.take()
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.take()
