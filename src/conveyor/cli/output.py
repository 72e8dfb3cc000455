"""CLI output: a library call's result as text or ``--json`` (:func:`emit`), JSON to stdout, human
text through rich."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Protocol

import click
from rich.console import Console
from rich.markup import escape

from conveyor.errors import BuildError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    print(json.dumps(data, indent=2, sort_keys=False, default=_default, ensure_ascii=False))


class Reportable(Protocol):
    """What a library call returns to a verb: data for ``--json``, lines for a human, an exit code
    (a plan with a failed project, say, still reports and exits 1)."""

    @property
    def exit_code(self) -> int: ...

    def to_json(self) -> Any: ...

    def text_lines(self, *, verbose: bool = False) -> list[str]: ...


def emit(result: Reportable, as_json: bool, *, verbose: bool = False, final: bool = True) -> None:
    """Print ``result`` as one JSON document, or as its text lines, on stdout; then, when it is the
    ``final`` word (not a preview before a question), exit with its code if that is not 0."""
    if as_json:
        print_json(result.to_json())
    else:
        for line in result.text_lines(verbose=verbose):
            click.echo(line)
    if final and result.exit_code:
        raise SystemExit(result.exit_code)


def print_build_failure(exc: BuildError) -> None:
    """A failed build on stderr: the message, the failing step and the last lines of its log."""
    err_console.print(f"[red]error: {escape(exc.message)}[/red]")
    if exc.step:
        err_console.print(f"failing step: {escape(exc.step)}")
    if exc.log_tail:
        err_console.print("last lines of its log:")
        for line in exc.log_tail.splitlines():
            err_console.print(f"  | {escape(line)}")
