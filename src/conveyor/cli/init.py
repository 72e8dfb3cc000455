"""``conveyor init``: scaffold a spec from a template, for one project or a whole GitLab group."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from conveyor.cli.output import console, emit, print_json
from conveyor.errors import ConveyorError
from conveyor.scaffold import available_templates, default_spec_path, scaffold_spec


@click.command()
@click.argument("project", required=False)
@click.option("-t", "--template", "template", help="Template name (see --list).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Spec file (default: pipelines/<project>.yml); with --group, a directory.",
)
@click.option(
    "--dockerfile",
    type=click.Path(path_type=Path),
    help="Also write the template's Dockerfile here (kept if it exists).",
)
@click.option(
    "--group", help="Write one spec per project of this GitLab group (subgroups included)."
)
@click.option("--list", "list_templates", is_flag=True, help="List the available templates.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def command(
    project: str | None,
    template: str | None,
    output: Path | None,
    dockerfile: Path | None,
    group: str | None,
    list_templates: bool,
    as_json: bool,
) -> None:
    """Scaffold a pipeline spec for PROJECT (a GitLab path like group/app) from a template.

    \b
    Examples:
      conveyor init demo/hello-web --template python-service
      conveyor init --group demo --template python-service -o pipelines/
    Existing files are never overwritten.
    """
    if list_templates:
        templates = available_templates()
        if as_json:
            print_json(
                [
                    {
                        "name": t.name,
                        "description": t.description,
                        "spec": str(t.spec),
                        "dockerfile": str(t.dockerfile) if t.dockerfile else None,
                    }
                    for t in templates.values()
                ]
            )
            return
        table = Table("template", "Dockerfile", "description")
        for t in templates.values():
            table.add_row(t.name, "yes" if t.dockerfile else "-", t.description)
        console.print(table)
        return
    if not template:
        raise click.UsageError("--template is required (see `conveyor init --list`)")
    if group:
        if project:
            raise click.UsageError("give either PROJECT or --group, not both")
        from conveyor.config import load_settings
        from conveyor.scaffold_group import scaffold_group

        emit(scaffold_group(load_settings(), group, template, output or Path("pipelines")), as_json)
        return
    if not project:
        raise click.UsageError("PROJECT is required (or --group GROUP)")
    out = output or default_spec_path(project)
    if out.exists() and out.is_dir():
        raise ConveyorError(f"{out} is a directory; give the spec file path with -o")
    result = scaffold_spec(project, template, out, dockerfile=dockerfile)
    if as_json:
        print_json(
            {"written": [str(p) for p in result.written], "kept": [str(p) for p in result.kept]}
        )
        return
    for path in result.written:
        console.print(f"wrote {path}")
    for kept in result.kept:
        console.print(f"kept  {kept} (exists)")
    console.print(f"next: edit {out}, then `conveyor validate {out}`")
