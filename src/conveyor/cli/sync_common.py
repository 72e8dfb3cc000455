"""What ``plan``, ``apply`` and ``destroy`` share: their options, loading specs and settings in the
right order (specs, then every setting, before any request). Each prints its plan or report
with :func:`conveyor.cli.output.emit`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from conveyor.config import load_settings
from conveyor.spec.load import LoadedSpec, load_specs
from conveyor.sync import DEFAULT_CONCURRENCY, SyncContext

F = TypeVar("F", bound=Callable[..., Any])


def sync_options(fn: F) -> F:
    """PATHS, --json and --concurrency."""
    fn = click.option(
        "--concurrency",
        type=click.IntRange(min=1, max=64),
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        help="Projects handled at once.",
    )(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(fn)
    fn = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))(fn)
    return fn


def prepare(
    paths: Sequence[Path], concurrency: int, *, need_secret: bool = True
) -> tuple[SyncContext, list[LoadedSpec]]:
    """Load specs (default ./pipelines) and settings; raise before any request if one is wrong."""
    specs = load_specs(list(paths) or [Path("pipelines")])
    ctx = SyncContext.create(
        load_settings(), specs, concurrency=concurrency, need_secret=need_secret
    )
    return ctx, specs
