"""``conveyor plugins``: the loaded plugins, their versions and the hooks they implement."""

from __future__ import annotations

import click
from rich.table import Table

from conveyor.cli.output import console, print_json
from conveyor.plugins import loaded_plugins


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def command(as_json: bool) -> None:
    """List loaded plugins (entry-point group `conveyor.plugins`), built-ins included."""
    plugins = loaded_plugins()
    if as_json:
        print_json([p.__dict__ for p in plugins])
        return
    table = Table("plugin", "distribution", "version", "hooks")
    for p in plugins:
        table.add_row(p.name, p.distribution, p.version, ", ".join(p.hooks) or "-")
    console.print(table)
