"""``conveyor events compact``: rewrite a stopped receiver's SQLite queue (today's page size, no
free pages); see :mod:`conveyor.receiver.queue.compact`."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.events import QUEUE
from conveyor.cli.options import state_dir, state_option
from conveyor.cli.output import emit
from conveyor.errors import QueueError
from conveyor.receiver.queue.compact import compact
from conveyor.receiver.queue.location import PgLocation, resolve


@click.command("compact")
@state_option("the receiver's event queue")
@QUEUE
@click.option(
    "--dry-run", is_flag=True, help="Report the file's size and page size; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def command(state: Path | None, queue_url: str | None, dry_run: bool, as_json: bool) -> None:
    """Rewrite the SQLite queue with small pages, giving back freed space (server stopped)."""
    location = resolve(queue_url, state_dir(state))
    if isinstance(location, PgLocation):
        raise QueueError(
            f"`conveyor events compact` rewrites the SQLite queue; {location} is PostgreSQL",
            hint="PostgreSQL's autovacuum reuses the space; VACUUM FULL gives it back to the disk",
        )
    emit(compact(location, dry_run=dry_run), as_json)
