"""``conveyor deploy SPEC``: run a stage's image as a service (thin over :mod:`conveyor.docker.deploy`).

The image is ``--image``, else the deploy block's ``image``, else the first tag the spec builds, with
``{sha} {branch} {tag}`` ... taken from git in ``--workdir`` (:mod:`conveyor.docker.deploy.stage`, the
same answer the runner's deploy stages get). The engine is ``--engine``, else
``CONVEYOR_DEPLOY_HOST``, else the spec's ``deploy.engine``, else the host's
(:mod:`conveyor.docker.deploy.engine`). Every deploy is recorded on that engine for ``conveyor history``
and ``conveyor rollback``, which therefore work from any machine or agent container that reaches it.
Secrets (``deploy.secrets``) are read from the environment variable of the same name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.markup import escape

from conveyor.cli.options import state_dir, state_option
from conveyor.cli.output import console, err_console, print_json
from conveyor.docker.deploy import DeployResult, deploy
from conveyor.docker.deploy.stage import request_from_file
from conveyor.errors import HealthCheckError
from conveyor.kubernetes import target as kubernetes_target


def result_json(result: DeployResult, seconds: float) -> dict[str, object]:
    return {
        "name": result.name,
        "target": result.target,
        "strategy": result.strategy,
        "action": result.action,
        "image": result.image,
        "image_id": result.image_id,
        "digest": result.digest,
        "previous_image": result.previous_image,
        "endpoints": list(result.endpoints),
        "message": result.message,
        "seconds": round(seconds, 3),
    }


def report(result: DeployResult, seconds: float, as_json: bool) -> None:
    if as_json:
        print_json(result_json(result, seconds))
        return
    verb = "rolled back" if result.action == "rollback" else "deployed"
    console.print(
        f"{verb} {escape(result.image)} ({result.digest[:19]}) as {escape(result.name)} "
        + escape(f"[{result.target}/{result.strategy}]")
        + f" in {seconds:.1f} s"
    )
    if result.previous_image:
        console.print(f"  previous: {escape(result.previous_image)}")
    for endpoint in result.endpoints:
        console.print(f"  serving at http://{endpoint}/")


def report_health_failure(exc: HealthCheckError) -> None:
    if exc.health_log:
        err_console.print("health log:")
        for line in exc.health_log.splitlines():
            err_console.print(f"  | {escape(line)}")


STATE_OPTION = state_option(
    "read only, to copy a deploy history kept there by older versions to the engine once"
)
ENGINE_HELP = (
    "Docker engine of the deployed service (unix://, tcp://, ssh:// URL); default: "
    "$CONVEYOR_DEPLOY_HOST, the spec's deploy.engine, else the host's engine."
)


def engine_option(function: Callable[..., None]) -> Callable[..., None]:
    """``--engine URL`` (shared by deploy, rollback and history)."""
    return click.option("--engine", metavar="URL", help=ENGINE_HELP)(function)


WORKDIR_HELP = "The repository checkout: relative bind mounts and {sha}/{branch} come from here."
FORCE_HELP = "target kubernetes: take fields other field managers own (server-side apply force)."


def kube_progress() -> kubernetes_target.Progress:
    """Kubernetes steps and rollout status lines, on stderr."""
    return kubernetes_target.Progress(say=lambda line: err_console.print(escape(line)))


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--stage", "stage_name", help="The deploy stage (default: the first deploy stage).")
@click.option("--image", help="Image reference to deploy (default: deploy.image or the built tag).")
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
    image: str | None,
    workdir: Path,
    state: Path | None,
    engine: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Deploy a spec's image (docker: blue-green/recreate behind caddy; compose; swarm; kubernetes:
    server-side apply, rollout wait, automatic rollback).

    A new version that never becomes healthy is removed (the old one keeps serving); the health log is
    printed and the exit status is 1.
    """
    request = request_from_file(
        spec, stage_name, image=image, workdir=workdir, state_dir=state_dir(state), engine=engine
    )
    start = time.monotonic()
    try:
        if request.deploy.target == "kubernetes":
            result = kubernetes_target.deploy(request, force=force, progress=kube_progress())
        else:
            result = deploy(request)
    except HealthCheckError as exc:
        report_health_failure(exc)
        raise
    report(result, time.monotonic() - start, as_json)
