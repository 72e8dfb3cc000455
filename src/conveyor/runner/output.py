"""Live output of a run: a header per stage, its lines with elapsed time, a summary table.

:class:`PlainOutput` writes plain lines (logs, pipes, CI); :class:`RichOutput` uses rich on a terminal.
:func:`make_output` picks one. Every sink is thread-safe (parallel stages write at the same time).
Lines reaching a sink are already masked by the executor (secret values replaced by ``****``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.runner.results import RunResult, StageResult


class OutputSink(Protocol):
    """Receives a run's progress as it happens."""

    def run_started(self, number: int, project: str) -> None: ...

    def stage_started(self, stage: str) -> None: ...

    def stage_skipped(self, stage: str, reason: str) -> None: ...

    def line(self, stage: str, text: str) -> None: ...

    def stage_finished(self, result: StageResult) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...


def summary_rows(result: RunResult) -> list[tuple[str, str, str]]:
    """(stage, result, duration) rows; parallel branches are indented under their parent."""
    rows: list[tuple[str, str, str]] = []
    for stage in result.stages:
        name = f"  {stage.name}" if stage.parent else stage.name
        outcome = stage.result
        if stage.result == "failed" and stage.exit_code is not None:
            outcome = f"failed ({stage.exit_code})"
        if stage.result == "skipped" and stage.reason:
            outcome = f"skipped: {stage.reason}"
        duration = f"{stage.duration:.1f}s" if stage.result in ("success", "failed") else "-"
        rows.append((name, outcome, duration))
    return rows


def summary_text(result: RunResult) -> str:
    """The summary table as plain text."""
    rows = [("STAGE", "RESULT", "DURATION"), *summary_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows]
    return "\n".join(lines) + "\n" + result.summary + "\n"


class PlainOutput:
    """``[  12.3s] [stage] line``; headers and footers as ``==>`` / ``<==`` lines."""

    def __init__(self, stream: TextIO | None = None, *, summary: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._summary = summary

    def _write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def _elapsed(self) -> str:
        return f"[{time.monotonic() - self._start:7.1f}s]"

    def run_started(self, number: int, project: str) -> None:
        self._start = time.monotonic()
        self._write(f"==> run #{number} of {project}")

    def stage_started(self, stage: str) -> None:
        self._write(f"{self._elapsed()} ==> stage {stage}")

    def stage_skipped(self, stage: str, reason: str) -> None:
        self._write(f"{self._elapsed()} --- stage {stage} skipped: {reason}")

    def line(self, stage: str, text: str) -> None:
        self._write(f"{self._elapsed()} [{stage}] {text}")

    def stage_finished(self, result: StageResult) -> None:
        code = f" (exit {result.exit_code})" if result.result == "failed" else ""
        self._write(
            f"{self._elapsed()} <== stage {result.name}: {result.result}{code} "
            f"in {result.duration:.1f}s"
        )

    def run_finished(self, result: RunResult) -> None:
        if not result.succeeded and result.log_tail:
            self._write(f"--- log tail of {result.failed_stage or 'the run'} ---")
            self._write(result.log_tail.rstrip("\n"))
        if self._summary:
            self._write(summary_text(result).rstrip("\n"))


_STYLES = {"success": "green", "failed": "bold red", "skipped": "dim", "not_run": "yellow"}


class RichOutput:
    """The same events, styled with rich for a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console if console is not None else Console()
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._start:7.1f}s"

    def run_started(self, number: int, project: str) -> None:
        self._start = time.monotonic()
        with self._lock:
            self._console.rule(f"run #{number} · {project}")

    def stage_started(self, stage: str) -> None:
        with self._lock:
            self._console.print(Text(f"{self._elapsed()} ▶ {stage}", style="bold cyan"))

    def stage_skipped(self, stage: str, reason: str) -> None:
        with self._lock:
            self._console.print(Text(f"{self._elapsed()} ⏭ {stage} skipped: {reason}", style="dim"))

    def line(self, stage: str, text: str) -> None:
        out = Text(f"{self._elapsed()} ", style="dim")
        out.append(f"{stage} │ ", style="cyan")
        out.append(text)
        with self._lock:
            self._console.print(out, soft_wrap=True, markup=False, highlight=False)

    def stage_finished(self, result: StageResult) -> None:
        code = f" (exit {result.exit_code})" if result.result == "failed" else ""
        with self._lock:
            self._console.print(
                Text(
                    f"{self._elapsed()} ■ {result.name}: {result.result}{code} "
                    f"in {result.duration:.1f}s",
                    style=_STYLES.get(result.result, ""),
                )
            )

    def run_finished(self, result: RunResult) -> None:
        table = Table(title=result.summary)
        table.add_column("stage")
        table.add_column("result")
        table.add_column("duration", justify="right")
        for (name, outcome, duration), stage in zip(
            summary_rows(result), result.stages, strict=True
        ):
            table.add_row(name, Text(outcome, style=_STYLES.get(stage.result, "")), duration)
        with self._lock:
            if not result.succeeded and result.log_tail:
                self._console.rule(f"log tail of {result.failed_stage or 'the run'}", style="red")
                self._console.print(Text(result.log_tail.rstrip("\n")))
            self._console.print(table)


def make_output(stream: TextIO | None = None, *, summary: bool = True) -> OutputSink:
    """Rich on a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stdout
    if summary and stream.isatty():
        return RichOutput(Console(file=stream))
    return PlainOutput(stream, summary=summary)
