"""The ``conveyor`` command group. Each verb lives in its own module under :mod:`conveyor.cli`
and exposes a click command (or group) named ``command``; this module only assembles them and turns
conveyor errors into one clear message and an exit code (never a traceback)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from conveyor import __version__
from conveyor.errors import ConveyorError

# Verb modules, in the order ``conveyor --help`` lists them.
VERBS = (
    "init",
    "validate",
    "schema",
    "render",
    "plan",
    "apply",
    "destroy",
    "hooks",
    "build",
    "push",
    "deploy",
    "rollback",
    "history",
    "run",
    "runs",
    "serve",
    "events",
    "queue",
    "demo",
    "plugins",
)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [v for v in VERBS if v in self.commands]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conveyor")
def cli() -> None:
    """conveyor: wire GitLab repositories for delivery through Jenkins and Docker.

    Settings come from CONVEYOR_* environment variables (or the file named by CONVEYOR_CONFIG).
    """


for _verb in VERBS:
    try:
        _module = importlib.import_module(f"conveyor.cli.{_verb}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"conveyor.cli.{_verb}":
            raise
        continue
    cli.add_command(_module.command, name=_verb)


def main() -> None:
    cli(prog_name="conveyor")


if __name__ == "__main__":  # pragma: no cover
    main()
