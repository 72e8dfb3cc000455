"""``conveyor rollback SPEC``: deploy the last good version before the current one again.

The target comes from the deploy history on the deploy's engine (``conveyor history SPEC``), so it
works from any agent or machine that reaches that engine; the rollback goes through the same health
gate and traffic switch as a deploy and is recorded too.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from conveyor.cli.deploy import (
    FORCE_HELP,
    STATE_OPTION,
    WORKDIR_HELP,
    engine_option,
    kube_progress,
    report,
    report_health_failure,
)
from conveyor.cli.options import state_dir
from conveyor.docker.deploy import rollback
from conveyor.docker.deploy.stage import request_from_file
from conveyor.errors import HealthCheckError
from conveyor.kubernetes import target as kubernetes_target


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--stage", "stage_name", help="The deploy stage (default: the first deploy stage).")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("."),
    show_default="the current directory",
    help=WORKDIR_HELP,
)
@STATE_OPTION
@engine_option
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def command(
    spec: Path,
    stage_name: str | None,
    workdir: Path,
    state: Path | None,
    engine: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Roll a deploy back to its previous successful image."""
    request = request_from_file(
        spec,
        stage_name,
        workdir=workdir,
        state_dir=state_dir(state),
        engine=engine,
        need_image=False,
    )
    start = time.monotonic()
    try:
        if request.deploy.target == "kubernetes":  # the Deployment's previous revision
            result = kubernetes_target.rollback(request, force=force, progress=kube_progress())
        else:
            result = rollback(request)
    except HealthCheckError as exc:
        report_health_failure(exc)
        raise
    report(result, time.monotonic() - start, as_json)
