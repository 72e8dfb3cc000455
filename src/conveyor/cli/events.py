"""``conveyor events list|show|replay`` (and ``prune``, ``compact``): look into the receiver's
event queue.

The queue is found like ``conveyor serve`` finds it: ``--state``, else ``CONVEYOR_STATE``,
else the per-user default.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from conveyor.cli.options import state_dir, state_option
from conveyor.errors import QueueError
from conveyor.receiver.queue import QueueStore, Status
from conveyor.receiver.queue.location import QUEUE_URL_ENV, PgLocation, resolve
from conveyor.receiver.queue.location import open_queue as open_store

_STATE = state_option("the receiver's event queue")
QUEUE = click.option(
    "--queue",
    "queue_url",
    metavar="URL",
    help=f"The receivers' postgresql:// queue (default: ${QUEUE_URL_ENV}, else SQLite in --state).",
)


def open_queue(state: Path | None, queue_url: str | None = None) -> QueueStore:
    location = resolve(queue_url, state_dir(state))
    if not isinstance(location, PgLocation) and not location.exists():
        raise QueueError(
            f"no event queue at {location}",
            hint="run `conveyor serve` first, or point --state / CONVEYOR_STATE at its state dir",
        )
    return open_store(location)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group("events")
def command() -> None:
    """Inspect and replay received GitLab events."""


@command.command("list")
@_STATE
@QUEUE
@click.option(
    "--status", "status", type=click.Choice([s.value for s in Status]), help="Only this status."
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array of event summaries.")
def list_events(
    state: Path | None, queue_url: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List events, newest first."""
    queue = open_queue(state, queue_url)
    try:
        records = queue.list_events(Status(status) if status else None, limit=limit)
    finally:
        queue.close()
    if as_json:
        click.echo(json.dumps([r.summary() for r in records], indent=2))
        return
    if not records:
        click.echo("no events")
        return
    click.echo(
        f"{'ID':>6}  {'RECEIVED (UTC)':19}  {'STATUS':10}  {'KIND':13}  {'PROJECT':28}  {'REF':24}  REASON"
    )
    for r in records:
        ref = (r.ref or "-").removeprefix("refs/heads/").removeprefix("refs/tags/")
        click.echo(
            f"{r.id:>6}  {_when(r.received_at):19}  {r.status.value:10}  {(r.kind or r.event_header)[:13]:13}"
            f"  {(r.project or '-')[:28]:28}  {ref[:24]:24}  {r.reason or r.last_error or ''}"
        )


@command.command("show")
@_STATE
@QUEUE
@click.argument("event_id", type=int)
@click.option(
    "--json", "as_json", is_flag=True, help="Summary, attempts, statuses and payload as JSON."
)
def show_event(state: Path | None, queue_url: str | None, event_id: int, as_json: bool) -> None:
    """Show one event: its state, each attempt, commit statuses and payload."""
    queue = open_queue(state, queue_url)
    try:
        record = queue.get(event_id)
        if record is None:
            raise QueueError(f"no event with id {event_id}", hint="see `conveyor events list`")
        statuses = queue.statuses_for(event_id)
        attempts = queue.attempts_for(event_id)
    finally:
        queue.close()
    try:
        payload = record.payload()
    except ValueError:
        payload = record.body.decode("utf-8", "replace")
    if as_json:
        data = record.summary() | {"attempts": attempts, "statuses": statuses, "payload": payload}
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in record.summary().items():
        if value is not None:
            click.echo(f"{key:16} {value}")
    for a in attempts:
        ended = f"{a['outcome']} at {_when(a['ended_at'])}" if a["ended_at"] else "running"
        extra = "; ".join(x for x in (a["note"], a["detail"]) if x)
        click.echo(
            f"{'attempt ' + str(a['attempt']):16} {_when(a['started_at'])} {ended}"
            + (f": {extra}" if extra else "")
        )
    for item in statuses:
        sent = "sent" if item["sent_at"] else ("gave up" if item["gave_up"] else "pending")
        if item.get("dropped"):
            sent = f"not posted: {item['dropped']}"
        click.echo(f"{'status':16} {item['state']} ({sent}) {item['target_url'] or ''}")
    click.echo("payload:")
    click.echo(json.dumps(payload, indent=2))


@command.command("replay")
@_STATE
@QUEUE
@click.argument("event_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the new event's summary as JSON.")
def replay_event(state: Path | None, queue_url: str | None, event_id: int, as_json: bool) -> None:
    """Queue a stored event again (a running `conveyor serve` picks it up)."""
    queue = open_queue(state, queue_url)
    try:
        new_id = queue.replay(event_id)
        record = queue.get(new_id)
    finally:
        queue.close()
    if as_json:
        click.echo(json.dumps(record.summary() if record else {"id": new_id}, indent=2))
        return
    click.echo(f"event {event_id} queued again as event {new_id}")


def _register() -> None:
    from conveyor.cli import events_compact, events_prune

    command.add_command(events_prune.command)
    command.add_command(events_compact.command)


_register()
