"""``conveyor build SPEC``: build a stage's image with the docker SDK (thin over
:mod:`conveyor.docker.build`). Progress is a rich display on a terminal, plain lines otherwise;
a failed build prints the failing step and the last lines of its log and exits 1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from conveyor.cli.options import checkout_options
from conveyor.cli.output import emit, print_build_failure
from conveyor.cli.progress import build_progress
from conveyor.docker.build import build_on_engine, load_build_stage, plan_checkout_build
from conveyor.errors import BuildError


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
    loaded, stage = load_build_stage(spec, stage_name)
    request = plan_checkout_build(
        loaded, stage, workdir, sha=sha, branch=branch, tag=git_tag, build_number=build_number
    )
    try:
        result = build_on_engine(
            dataclasses.replace(request, nocache=no_cache), build_progress(as_json)
        )
    except BuildError as exc:
        print_build_failure(exc)
        raise SystemExit(1) from None
    emit(result, as_json)
