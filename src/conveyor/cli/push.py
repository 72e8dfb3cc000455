"""``conveyor push SPEC``: push a build stage's tags (thin over :mod:`conveyor.docker.push`).

Credentials: CONVEYOR_REGISTRY_USER/CONVEYOR_REGISTRY_PASSWORD, else REGISTRY_USER/REGISTRY_PASSWORD
(what the generated Jenkinsfile binds), else ~/.docker/config.json. Per-layer progress on stderr (rich
on a terminal), then the digest of every pushed tag."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from conveyor.cli.options import checkout_options
from conveyor.cli.output import console, err_console, print_json
from conveyor.docker.build import find_stage, plan_build
from conveyor.docker.engine import connect
from conveyor.docker.gitfacts import git_facts
from conveyor.docker.push import PushEvent, progress_line, push_tags
from conveyor.spec.load import load_spec


@contextmanager
def push_progress(as_json: bool) -> Iterator[Callable[[PushEvent], None]]:
    if as_json:
        yield lambda _event: None
        return
    if not err_console.is_terminal:

        def plain(event: PushEvent) -> None:
            line = progress_line(event)
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


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--stage", "stage_name", help="The build stage whose tags to push (default: first).")
@checkout_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def command(
    spec: Path,
    stage_name: str | None,
    workdir: Path,
    sha: str | None,
    branch: str | None,
    git_tag: str | None,
    build_number: str,
    as_json: bool,
) -> None:
    """Push every tag of a spec's build stage to the stage's push registry."""
    loaded = load_spec(spec)
    stage = find_stage(loaded.spec, stage_name, "build")
    if stage.push is None:
        raise click.UsageError(f"stage {stage.name!r} has no `push:` section")
    facts = git_facts(workdir, sha=sha, branch=branch, tag=git_tag)
    request = plan_build(
        loaded.spec,
        stage,
        facts,
        workdir.resolve(),
        build_number=build_number or os.environ.get("BUILD_NUMBER", ""),
    )
    client = connect()
    try:
        with push_progress(as_json) as on_event:
            result = push_tags(
                client, request.tags, registry=stage.push.registry, on_event=on_event
            )
    finally:
        client.close()
    if as_json:
        print_json(
            {
                "registry": result.registry,
                "credentials": result.credentials,
                "pushed": [
                    {"reference": p.reference, "digest": p.digest, "size": p.size}
                    for p in result.pushed
                ],
            }
        )
        return
    for pushed in result.pushed:
        console.print(f"pushed {pushed.reference}@{pushed.digest}")
