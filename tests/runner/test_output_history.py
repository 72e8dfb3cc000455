"""Output sinks (plain and rich) and the run history."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from conveyor.errors import RunnerError
from conveyor.runner.history import History
from conveyor.runner.output import PlainOutput, RichOutput, summary_text
from conveyor.runner.results import RunResult, StageResult

RESULT = RunResult(
    number=4,
    project="demo/app",
    status="failed",
    exit_code=2,
    duration=3.5,
    stages=(
        StageResult("build", "success", 1.25, 0),
        StageResult("checks", "failed", 2.0, 2),
        StageResult("unit", "failed", 2.0, 2, parent="checks"),
        StageResult("lint", "success", 0.5, 0, parent="checks"),
        StageResult("docs", "skipped", reason="when: branch 'dev' does not match main"),
        StageResult("ship", "not_run", reason="an earlier stage failed"),
    ),
    failed_stage="checks",
    log_tail="FAIL: test_x",
)


def test_summary_table() -> None:
    text = summary_text(RESULT)
    lines = text.splitlines()
    assert lines[0].split() == ["STAGE", "RESULT", "DURATION"]
    assert lines[2].split() == ["checks", "failed", "(2)", "2.0s"]
    assert lines[3].startswith("  unit")
    assert "skipped: when: branch 'dev' does not match main" in lines[5]
    assert lines[6].split() == ["ship", "not_run", "-"]
    assert lines[-1] == "run #4 failed at 'checks' (exit 2)"


def test_plain_output_lines() -> None:
    out = io.StringIO()
    sink = PlainOutput(out)
    sink.run_started(4, "demo/app")
    sink.stage_started("build")
    sink.line("build", "compiling")
    sink.stage_finished(StageResult("build", "failed", 1.0, 3))
    sink.run_finished(RESULT)
    text = out.getvalue()
    assert text.startswith("==> run #4 of demo/app\n")
    assert "] ==> stage build\n" in text and "] [build] compiling\n" in text
    assert "<== stage build: failed (exit 3) in 1.0s" in text
    assert "--- log tail of checks ---\nFAIL: test_x\n" in text


def test_rich_output_renders_the_table() -> None:
    out = io.StringIO()
    sink = RichOutput(Console(file=out, force_terminal=True, width=120))
    sink.run_started(4, "demo/app")
    sink.line("build", "[red]not markup[/red]")
    sink.run_finished(RESULT)
    text = out.getvalue()
    assert "[red]not markup[/red]" in text  # stage output is never interpreted as markup
    assert "run #4 failed at 'checks' (exit 2)" in text and "FAIL: test_x" in text


def test_history_numbers_records_and_logs(tmp_path: Path) -> None:
    history = History(tmp_path / "state")
    first = history.start("demo/app", "spec.yml", {"kind": "push", "branch": "main"})
    second = history.start("demo/app", "spec.yml", {"kind": "push", "branch": "dev"})
    assert (first, second) == (1, 2)
    assert history.get(first).status == "running"
    history.finish(RunResult(first, "demo/app", "success", 0, 1.0, ()), "line 1\nline 2\n")
    listed = history.list()
    assert [r.number for r in listed] == [2, 1]
    done = History(tmp_path / "state").get(1)  # survives reopening
    assert done.status == "success" and done.log == "line 1\nline 2\n"
    assert done.result is not None and done.result["succeeded"] is True
    assert done.trigger == {"kind": "push", "branch": "main"}
    with pytest.raises(RunnerError, match="no run #7"):
        history.get(7)
