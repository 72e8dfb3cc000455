"""``conveyor push SPEC``: push a build stage's tags (thin over :mod:`conveyor.docker.push`).

Credentials: CONVEYOR_REGISTRY_USER/CONVEYOR_REGISTRY_PASSWORD, else REGISTRY_USER/REGISTRY_PASSWORD
(what the generated Jenkinsfile binds), else ~/.docker/config.json. Per-layer progress on stderr (rich
on a terminal), then the digest of every pushed tag."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.options import checkout_options
from conveyor.cli.output import emit
from conveyor.cli.progress import push_progress
from conveyor.docker.build import load_build_stage, plan_checkout_build
from conveyor.docker.push import push_on_engine


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
    loaded, stage = load_build_stage(spec, stage_name)
    if stage.push is None:
        raise click.UsageError(f"stage {stage.name!r} has no `push:` section")
    request = plan_checkout_build(
        loaded, stage, workdir, sha=sha, branch=branch, tag=git_tag, build_number=build_number
    )
    result = push_on_engine(
        request.tags, registry=stage.push.registry, progress=push_progress(as_json)
    )
    emit(result, as_json)
