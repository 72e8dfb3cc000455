"""``conveyor runs list|show N``: the local runner's history (in the state directory)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from conveyor.cli.options import state_dir, state_option
from conveyor.cli.output import console, print_json
from conveyor.runner.history import History, RunRecord

_STATE = state_option("the local run history")


def _history(state: Path | None) -> History:
    return History(state_dir(state))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _summary(record: RunRecord) -> dict[str, object]:
    trigger = record.trigger
    return {
        "number": record.number,
        "project": record.project,
        "status": record.status,
        "exit_code": record.exit_code,
        "started": _when(record.started),
        "duration": round(record.duration, 3) if record.duration is not None else None,
        "kind": trigger.get("kind"),
        "ref": trigger.get("tag") or trigger.get("branch") or "",
        "sha": trigger.get("sha", ""),
    }


@click.group("runs")
def command() -> None:
    """Show local runs (`conveyor run`) and their logs."""


@command.command("list")
@_STATE
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array of run summaries.")
def list_runs(state: Path | None, limit: int, as_json: bool) -> None:
    """The latest runs, newest first."""
    rows = [_summary(r) for r in _history(state).list(limit)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no runs yet")
        return
    header = f"{'#':>5}  {'STATUS':<8}  {'EXIT':>4}  {'STARTED':<19}  {'DURATION':>8}  PROJECT  REF"
    console.print(header, markup=False)
    for r in rows:
        duration = f"{r['duration']:.1f}s" if isinstance(r["duration"], float) else "-"
        code = "-" if r["exit_code"] is None else str(r["exit_code"])
        console.print(
            f"{r['number']:>5}  {r['status']!s:<8}  {code:>4}  {r['started']!s:<19}  "
            f"{duration:>8}  {r['project']}  {r['ref']}",
            markup=False,
        )


@command.command("show")
@_STATE
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="The run, its stages and its log as JSON.")
def show_run(state: Path | None, number: int, as_json: bool) -> None:
    """Run N: its result, stages and full log."""
    record = _history(state).get(number)
    if as_json:
        print_json(
            {
                **_summary(record),
                "trigger": record.trigger,
                "result": record.result,
                "log": record.log,
            }
        )
        return
    s = _summary(record)
    console.print(
        f"run #{record.number} of {record.project}: {record.status} (exit {s['exit_code']}), "
        f"{s['kind']} {s['ref']} {str(s['sha'])[:12]}, started {s['started']}",
        markup=False,
    )
    for stage in (record.result or {}).get("stages", []):
        indent = "  " if stage.get("parent") else ""
        console.print(
            f"  {indent}{stage['name']}: {stage['result']} ({stage.get('duration', 0):.1f}s)",
            markup=False,
        )
    console.print("--- log ---", markup=False)
    sys.stdout.write(record.log)
    sys.stdout.flush()
