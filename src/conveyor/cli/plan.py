"""``conveyor plan PATH...``: what ``apply`` would change in Jenkins and GitLab (reads only), and what
``deploy`` would change for each ``target: kubernetes`` stage (:mod:`conveyor.kubernetes.plan`)."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import emit
from conveyor.cli.sync_common import prepare, sync_options
from conveyor.kubernetes import plan as kubernetes_plan
from conveyor.sync import build_plan


@click.command()
@sync_options
@click.option(
    "--prune",
    is_flag=True,
    help="Also list every conveyor-managed Jenkins job (on the whole Jenkins) that "
    "none of the given specs wants.",
)
@click.option("-v", "--verbose", is_flag=True, help="List unchanged jobs and hooks too.")
def command(
    paths: tuple[Path, ...], as_json: bool, concurrency: int, prune: bool, verbose: bool
) -> None:
    """Show what apply would do: Jenkins folders and jobs (with a diff of the normalised
    config.xml), GitLab hooks; and for Kubernetes deploys the server-side apply dry-run diff and
    the prunes. Sends no write request.

    Exit status: 0, or 1 when a project cannot be read (it is named, with the reason).
    """
    ctx, specs = prepare(paths, concurrency)
    kube_requests = kubernetes_plan.requests_of(specs, Path("."))
    plan = build_plan(ctx, specs, prune=prune)
    kube = kubernetes_plan.plan_requests(kube_requests, concurrency=concurrency)
    emit(kubernetes_plan.WithKubernetes(plan, tuple(kube)), as_json, verbose=verbose)
