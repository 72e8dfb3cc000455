"""``conveyor history SPEC``: what was deployed for a spec's deploy stage, newest first, as recorded on
the deploy's engine (the same one ``deploy`` and ``rollback`` use; see ``--engine``)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from conveyor.cli.deploy import STATE_OPTION, engine_option
from conveyor.cli.options import state_dir
from conveyor.cli.output import console, print_json
from conveyor.docker.deploy import history_of
from conveyor.docker.deploy.stage import request_from_file
from conveyor.kubernetes import target as kubernetes_target


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--stage", "stage_name", help="The deploy stage (default: the first deploy stage).")
@STATE_OPTION
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@engine_option
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON on stdout.")
def command(
    spec: Path,
    stage_name: str | None,
    state: Path | None,
    limit: int,
    engine: str | None,
    as_json: bool,
) -> None:
    """List the deploys and rollbacks of a spec: image, digest, time, result."""
    request = request_from_file(
        spec,
        stage_name,
        workdir=Path("."),
        state_dir=state_dir(state),
        engine=engine,
        need_image=False,
    )
    if request.deploy.target == "kubernetes":  # the Deployment's revisions
        records = kubernetes_target.history(request, limit=limit)
    else:
        client = request.engine.connect()
        try:
            records = history_of(client, request).records(limit=limit)
        finally:
            client.close()
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "action": r.action,
                    "target": r.target,
                    "image": r.image,
                    "digest": r.digest,
                    "image_id": r.image_id,
                    "previous_image": r.previous_image,
                    "started": r.started.isoformat(),
                    "finished": r.finished.isoformat() if r.finished else None,
                    "result": r.result,
                    "message": r.message,
                }
                for r in records
            ]
        )
        return
    if not records:
        console.print(
            f"no deploys of {escape(request.name)} recorded on {escape(request.engine.describe())}"
        )
        return
    table = Table(title=f"deploys of {request.name}")
    for column in ("#", "time (UTC)", "action", "image", "digest", "result", "message"):
        table.add_column(column)
    for r in records:
        style = {"success": "green", "failure": "red"}.get(r.result, "yellow")
        table.add_row(
            str(r.id),
            r.started.strftime("%Y-%m-%d %H:%M:%S"),
            r.action,
            escape(r.image),
            r.digest[:19],
            f"[{style}]{r.result}[/{style}]",
            escape(r.message.splitlines()[0][:80] if r.message else ""),
        )
    console.print(table)
