"""``conveyor destroy PATH... [--yes]``: remove the hooks and jobs conveyor manages for the specs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from conveyor.cli.output import emit
from conveyor.cli.sync_common import prepare, sync_options
from conveyor.errors import ConveyorError
from conveyor.sync import build_destroy_plan, execute


@click.command()
@sync_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def command(paths: tuple[Path, ...], as_json: bool, concurrency: int, yes: bool) -> None:
    """Delete conveyor's GitLab hooks and conveyor-managed Jenkins jobs for these specs.

    Hooks and jobs conveyor did not create are never touched, nor are folders. Without --yes the
    plan is shown and confirmation asked; with no terminal to ask on, nothing is deleted.
    """
    ctx, specs = prepare(paths, concurrency, need_secret=False)
    plan = build_destroy_plan(ctx, specs)
    if not plan.has_changes:
        emit(plan, as_json)
        return
    if not yes:
        emit(plan, as_json=False, final=False)
        if not sys.stdin.isatty():
            raise ConveyorError(
                "refusing to delete without confirmation: no terminal to ask on",
                hint="re-run with --yes",
            )
        if not click.confirm("Delete these hooks and jobs?", default=False, err=True):
            click.echo("nothing deleted", err=True)
            raise SystemExit(1)
    emit(execute(ctx, plan, kind="destroy"), as_json)
