"""``conveyor build SPEC``: build a stage's image with the docker SDK (thin over
:mod:`conveyor.docker.build`). Progress is a rich display on a terminal, plain lines otherwise;
a failed build prints the failing step and the last lines of its log and exits 1."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conveyor.cli.options import checkout_options
from conveyor.cli.output import console, err_console, print_json
from conveyor.docker.build import (
    BuildEvent,
    BuildResult,
    build_image,
    find_stage,
    plan_build,
    progress_line,
)
from conveyor.docker.engine import connect
from conveyor.docker.gitfacts import git_facts
from conveyor.errors import BuildError
from conveyor.spec.load import load_spec


@contextmanager
def build_progress(as_json: bool) -> Iterator[Callable[[BuildEvent], None]]:
    """A callback rendering build events: rich on a TTY, plain lines on stderr otherwise, or quiet
    (errors only) for --json so stdout stays one JSON document."""
    if as_json:
        yield lambda _event: None
        return
    if not err_console.is_terminal:

        def plain(event: BuildEvent) -> None:
            print(progress_line(event), file=sys.stderr, flush=True)

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


def report_build_failure(exc: BuildError) -> None:
    err_console.print(f"[red]error: {escape(exc.message)}[/red]")
    if exc.step:
        err_console.print(f"failing step: {escape(exc.step)}")
    if exc.log_tail:
        err_console.print("last lines of its log:")
        for line in exc.log_tail.splitlines():
            err_console.print(f"  | {escape(line)}")


def result_json(result: BuildResult) -> dict[str, object]:
    return {
        "image_id": result.image_id,
        "tags": list(result.tags),
        "duration": round(result.duration, 3),
        "steps": result.steps,
        "steps_cached": result.steps_cached,
        "cache_from": list(result.cache_from),
    }


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--stage", "stage_name", help="The build stage (default: the first build stage).")
@checkout_options
@click.option("--no-cache", is_flag=True, help="Build without the layer cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def command(
    spec: Path,
    stage_name: str | None,
    workdir: Path,
    sha: str | None,
    branch: str | None,
    git_tag: str | None,
    build_number: str,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Build the image of a spec's build stage with the local Docker engine (or DOCKER_HOST)."""
    loaded = load_spec(spec)
    stage = find_stage(loaded.spec, stage_name, "build")
    facts = git_facts(workdir, sha=sha, branch=branch, tag=git_tag)
    request = plan_build(
        loaded.spec,
        stage,
        facts,
        workdir.resolve(),
        build_number=build_number or os.environ.get("BUILD_NUMBER", ""),
    )
    if no_cache:
        request = dataclasses.replace(request, nocache=True)
    client = connect()
    try:
        with build_progress(as_json) as on_event:
            result = build_image(client, request, on_event)
    except BuildError as exc:
        report_build_failure(exc)
        raise SystemExit(1) from None
    finally:
        client.close()
    if as_json:
        print_json(result_json(result))
        return
    console.print(
        f"built {result.image_id[7:19]} in {result.duration:.1f} s "
        f"({result.steps_cached}/{result.steps} steps cached)"
    )
    for tag in result.tags:
        console.print(f"  {tag}")
