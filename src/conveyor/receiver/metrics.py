"""Receiver metrics in the Prometheus text exposition format (version 0.0.4).

Written here rather than with ``prometheus-client``: a handful of counters, gauges and
histograms, a lock, and a renderer is all the receiver needs, and it keeps the dependency
list short. Queue gauges (queued, running, done, failed, dead, ...) are read from the queue
at scrape time, so they are right across restarts.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Intake acks are expected in the low milliseconds; dispatches take minutes.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Histogram:
    """Cumulative-bucket histogram (one label set)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: Labels) -> list[str]:
        out: list[str] = []
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            out.append(f"{name}_bucket{_labels(labels, (('le', _num(bound)),))} {running}")
        out.append(f"{name}_bucket{_labels(labels, (('le', '+Inf'),))} {self.total}")
        out.append(f"{name}_sum{_labels(labels)} {_num(self.sum)}")
        out.append(f"{name}_count{_labels(labels)} {self.total}")
        return out


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.values: dict[Labels, float] = {}
        self.histograms: dict[Labels, Histogram] = {}


class Metrics:
    """All receiver metrics. Thread-safe; :meth:`render` produces the scrape body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self._buckets: dict[str, Sequence[float]] = {}
        for name, help_text in (
            ("conveyor_webhooks_received_total", "Webhook requests received, by event header."),
            ("conveyor_webhooks_rejected_total", "Webhook requests refused, by reason."),
            ("conveyor_webhooks_accepted_total", "Webhook deliveries stored, by outcome."),
            (
                "conveyor_webhooks_deduplicated_total",
                "Resent deliveries recognised by Idempotency-Key.",
            ),
            ("conveyor_dispatch_total", "Dispatch attempts, by dispatcher and outcome."),
            ("conveyor_status_posts_total", "Commit statuses posted to GitLab, by outcome."),
        ):
            self._families[name] = _Family(name, "counter", help_text)
        self._histogram(
            "conveyor_webhook_ack_seconds", "Time from request start to answer.", ACK_BUCKETS
        )
        self._histogram(
            "conveyor_event_queue_wait_seconds",
            "Time from receipt to a worker's claim.",
            RUN_BUCKETS,
        )
        self._histogram(
            "conveyor_dispatch_seconds", "Time to run one dispatch attempt.", RUN_BUCKETS
        )

    def _histogram(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self._families[name] = _Family(name, "histogram", help_text)
        self._buckets[name] = buckets

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            family = self._families[name]
            family.values[key] = family.values.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            family = self._families[name]
            hist = family.histograms.get(key)
            if hist is None:
                hist = family.histograms[key] = Histogram(self._buckets[name])
            hist.observe(value)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter (0 if never incremented)."""
        with self._lock:
            return self._families[name].values.get(tuple(sorted(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """A counter summed over all its labels."""
        with self._lock:
            return sum(self._families[name].values.values())

    def histogram_total(self, name: str) -> tuple[int, float]:
        """A histogram's observation count and sum over all its labels."""
        with self._lock:
            hists = self._families[name].histograms.values()
            return sum(h.total for h in hists), sum(h.sum for h in hists)

    def render(self, gauges: Mapping[str, Mapping[Labels, float]] | None = None) -> str:
        """The exposition text. ``gauges``: name -> labels -> value, read at scrape time."""
        lines: list[str] = []
        with self._lock:
            for family in self._families.values():
                lines.append(f"# HELP {family.name} {family.help}")
                lines.append(f"# TYPE {family.name} {family.kind}")
                if family.kind == "histogram":
                    for labels, hist in sorted(family.histograms.items()):
                        lines.extend(hist.lines(family.name, labels))
                else:
                    for labels, value in sorted(family.values.items()):
                        lines.append(f"{family.name}{_labels(labels)} {_num(value)}")
        for name, series in (gauges or {}).items():
            lines.append(f"# HELP {name} Current value read from the event queue.")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in sorted(series.items()):
                lines.append(f"{name}{_labels(labels)} {_num(value)}")
        return "\n".join(lines) + "\n"
