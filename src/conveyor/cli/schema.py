"""``conveyor schema``: the JSON Schema of the pipeline spec (for editor completion)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from conveyor.spec.reference import spec_reference_markdown
from conveyor.spec.schema import spec_json_schema


@click.command()
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write to a file instead of stdout."
)
@click.option("--markdown", is_flag=True, help="Print the spec reference as Markdown instead.")
def command(output: Path | None, markdown: bool) -> None:
    """Print the JSON Schema of `apiVersion: conveyor/v1` specs.

    Point your editor's YAML language server at it, e.g. a first line
    `# yaml-language-server: $schema=conveyor.schema.json`.
    """
    if markdown:
        text = spec_reference_markdown()
    else:
        text = json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)
