"""``conveyor apply PATH...``: converge Jenkins jobs and GitLab hooks to the specs."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import emit
from conveyor.cli.sync_common import prepare, sync_options
from conveyor.sync import apply


@click.command()
@sync_options
@click.option(
    "--prune",
    is_flag=True,
    help="Also delete every conveyor-managed Jenkins job (on the whole Jenkins) that "
    "none of the given specs wants.",
)
@click.option("-v", "--verbose", is_flag=True, help="List unchanged jobs and hooks too.")
def command(
    paths: tuple[Path, ...], as_json: bool, concurrency: int, prune: bool, verbose: bool
) -> None:
    """Create missing Jenkins folders and jobs, update drifted ones, and register each project's
    GitLab hook (duplicates merged). Idempotent: a second run makes no write request.

    A project that fails (not found, no Maintainer role, ...) is reported and the others carry on;
    exit status 1 if any failed.
    """
    ctx, specs = prepare(paths, concurrency)
    report = apply(ctx, specs, prune=prune)
    emit(report, as_json, verbose=verbose)
