"""``conveyor events prune``: apply the retention policy now (what ``serve`` does every minute).

Only finished events whose commit statuses were all sent (or given up) are deleted; queued,
running and retrying events always stay, and so does the newest event. Safe while
``conveyor serve`` runs: the deletes go in small transactions.
"""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.events import QUEUE
from conveyor.cli.options import state_option
from conveyor.cli.output import emit
from conveyor.config import load_settings
from conveyor.receiver.retention import RetentionPolicy, prune


@click.command("prune")
@state_option("the receiver's event queue")
@QUEUE
@click.option(
    "--days",
    type=click.FloatRange(0),
    help="Delete finished events older than this (default $CONVEYOR_RETENTION_DAYS, else 30; 0: no age limit).",
)
@click.option(
    "--keep",
    type=click.IntRange(0),
    help="Keep at most this many events (default $CONVEYOR_RETENTION_EVENTS, else 100000; 0: no limit).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def command(
    state: Path | None,
    queue_url: str | None,
    days: float | None,
    keep: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete finished events past the retention policy."""
    from conveyor.cli.events import open_queue

    settings = load_settings()
    policy = RetentionPolicy.of(
        settings.retention_days if days is None else days,
        settings.retention_events if keep is None else keep,
    )
    queue = open_queue(state, queue_url)
    try:
        report = prune(queue, policy, dry_run=dry_run)
    finally:
        queue.close()
    emit(report, as_json)
