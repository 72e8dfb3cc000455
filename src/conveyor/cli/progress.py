"""Live progress of a build or a push on stderr: a rich display on a terminal, plain lines
otherwise (a log file, the Jenkins console), nothing for ``--json`` (stdout stays one document)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from conveyor.cli.output import err_console
from conveyor.docker.build import BuildEvent
from conveyor.docker.build import progress_line as build_line
from conveyor.docker.push import PushEvent
from conveyor.docker.push import progress_line as push_line


@contextmanager
def build_progress(as_json: bool) -> Iterator[Callable[[BuildEvent], None]]:
    """A callback rendering build events: rich on a TTY, plain lines on stderr otherwise, or quiet
    (errors only) for --json so stdout stays one JSON document."""
    if as_json:
        yield lambda _event: None
        return
    if not err_console.is_terminal:

        def plain(event: BuildEvent) -> None:
            print(build_line(event), file=sys.stderr, flush=True)

        yield plain
        return
    progress = Progress(
        TextColumn("[bold]build"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    task = progress.add_task("starting", total=None)

    def rich(event: BuildEvent) -> None:
        if event.kind == "step":
            progress.update(
                task,
                total=event.total,
                completed=event.step - 1,
                description=escape(event.text[:80]),
            )
        elif event.kind == "cached":
            progress.console.print(f"[dim]step {event.step}/{event.total} cached[/dim]")
        elif event.kind == "note":
            progress.console.print(f"[cyan]{escape(event.text)}[/cyan]")
        else:
            progress.console.print(f"[dim]  {escape(event.text)}[/dim]")

    with progress:
        try:
            yield rich
        finally:
            if progress.tasks[0].total:
                progress.update(task, completed=progress.tasks[0].total)


@contextmanager
def push_progress(as_json: bool) -> Iterator[Callable[[PushEvent], None]]:
    """A callback rendering push events, per layer (as :func:`build_progress` for builds)."""
    if as_json:
        yield lambda _event: None
        return
    if not err_console.is_terminal:

        def plain(event: PushEvent) -> None:
            line = push_line(event)
            if line is not None:
                print(line, file=sys.stderr, flush=True)

        yield plain
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err_console
    )
    layers: dict[str, TaskID] = {}

    def rich(event: PushEvent) -> None:
        if event.kind == "note" or not event.layer:
            progress.console.print(f"[cyan]{escape(event.status)}[/cyan]")
            return
        task = layers.get(event.layer)
        if task is None:
            task = layers[event.layer] = progress.add_task(event.layer, total=None)
        if event.status == "Pushing" and event.total:
            progress.update(task, total=event.total, completed=event.current)
        else:
            total = progress.tasks[task].total
            done = event.status in ("Pushed", "Layer already exists")
            progress.update(
                task,
                description=f"{event.layer} {escape(event.status)}",
                completed=total if done and total else progress.tasks[task].completed,
            )

    with progress:
        yield rich
