"""``conveyor queue migrate``: bring the event queue's schema up to date now.

Receivers migrate on start (PostgreSQL: under an advisory lock, so two starting at once are
safe); this is for operators who prefer to run the migration by hand, before a rolling upgrade.
The queue is found like ``conveyor serve`` finds it: ``--queue`` / ``CONVEYOR_QUEUE_URL``, else
SQLite in ``--state`` / ``CONVEYOR_STATE``.
"""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.events import QUEUE
from conveyor.cli.options import state_dir, state_option
from conveyor.receiver.queue.location import migrate, resolve


@click.group("queue")
def command() -> None:
    """Operate the receivers' event queue."""


@command.command("migrate")
@state_option("the receiver's event queue")
@QUEUE
def migrate_command(state: Path | None, queue_url: str | None) -> None:
    """Create or upgrade the queue's schema (idempotent)."""
    location = resolve(queue_url, state_dir(state))
    found, now = migrate(location)
    if found == now:
        click.echo(f"event queue {location}: schema version {now}, up to date")
    else:
        click.echo(f"event queue {location}: schema version {found} -> {now}")
