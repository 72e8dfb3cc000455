"""cli/output.emit: one way every verb prints a library result (text or --json) and exits."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from conveyor.cli.output import Reportable, emit
from conveyor.docker.build import BuildResult
from conveyor.docker.push import PushedTag, PushResult
from conveyor.receiver.retention import PruneReport
from conveyor.sync.model import SyncPlan


@dataclass(frozen=True)
class Half:
    exit_code: int

    def to_json(self) -> dict[str, object]:
        return {"ok": self.exit_code == 0, "text": "[red]kept as data[/red]"}

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        return ["first: [bold]not markup[/bold]", *(["every detail"] if verbose else [])]


def test_text_lines_are_printed_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    emit(Half(0), as_json=False)
    assert capsys.readouterr().out == "first: [bold]not markup[/bold]\n"
    emit(Half(0), as_json=False, verbose=True)
    assert capsys.readouterr().out.splitlines()[-1] == "every detail"


def test_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    emit(Half(0), as_json=True)
    assert json.loads(capsys.readouterr().out) == {"ok": True, "text": "[red]kept as data[/red]"}


def test_exit_code_after_the_output_unless_a_preview(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        emit(Half(1), as_json=True)
    assert exited.value.code == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    emit(Half(1), as_json=False, final=False)  # destroy's plan, shown before the question
    assert "first" in capsys.readouterr().out


def test_library_results_are_reportable() -> None:
    results: list[Reportable] = [
        BuildResult("sha256:" + "a" * 64, ("r/app:1",), 1.25, 3, 1, ()),
        PushResult("r", (PushedTag("r/app:1", "sha256:" + "b" * 64, 10),), ""),
        PruneReport(2, 100, 1, True, "30 days"),
        SyncPlan("plan"),
    ]
    lines = [r.text_lines() for r in results]
    assert lines[0] == ["built aaaaaaaaaaaa in 1.2 s (1/3 steps cached)", "  r/app:1"]
    assert lines[1] == ["pushed r/app:1@sha256:" + "b" * 64]
    assert lines[2] == ["would delete 2 finished events (100 bytes of payload) (policy: 30 days)"]
    assert lines[3][-1].startswith("0 project(s)")
    assert [r.exit_code for r in results] == [0, 0, 0, 0]
    assert results[0].to_json()["duration"] == 1.25
