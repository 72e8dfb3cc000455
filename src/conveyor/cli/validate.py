"""``conveyor validate [PATH...]``: check spec files; every problem with file:line:column."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import console, err_console, print_json
from conveyor.errors import SpecIssue
from conveyor.plugins.answers import spec_checks
from conveyor.spec.load import check_paths, expand_paths


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate pipeline specs (files or directories; default: ./pipelines).

    Reports every problem of every file in one run, each as FILE:LINE:COLUMN: FIELD: MESSAGE.
    Exit status 0 when all are valid, 1 otherwise.
    """
    targets = list(paths) or [Path("pipelines")]
    loaded, issues = check_paths(targets)
    for item in loaded:
        issues.extend(SpecIssue(str(item.path), 1, 1, "", m) for m in spec_checks(item.spec))
    files = [str(f) for f in expand_paths(targets)]
    if as_json:
        print_json(
            {
                "valid": not issues,
                "files": files,
                "specs": [
                    {"file": str(s.path), "project": s.spec.project, "job": s.spec.jenkins.job}
                    for s in loaded
                ],
                "errors": [i.__dict__ for i in issues],
            }
        )
    else:
        for issue in issues:
            err_console.print(f"[red]{_escape(str(issue))}[/red]")
        bad = {i.file for i in issues}
        console.print(
            f"{len(files)} file(s) checked: {len(loaded)} valid"
            + (f", {len(issues)} problem(s) in {len(bad)} file(s)" if issues else "")
        )
    raise SystemExit(1 if issues else 0)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
