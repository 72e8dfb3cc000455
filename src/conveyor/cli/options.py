"""Click options shared by several verbs: the checkout (``build``, ``push``) and ``--state``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from conveyor.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

_CHECKOUT_OPTIONS = (
    click.option(
        "--workdir",
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        default=Path("."),
        show_default="the current directory",
        help="The repository checkout (build context root); sha/branch/tag come from git here.",
    ),
    click.option("--sha", help="Commit sha for {sha}/{short_sha} (default: git HEAD)."),
    click.option(
        "--branch",
        help="Branch for {branch} (default: the checked-out branch, else $gitlabBranch).",
    ),
    click.option(
        "--tag",
        "git_tag",
        help="Tag for {tag} (default: a tag pointing at HEAD, else the pushed tag).",
    ),
    click.option(
        "--build-number", default="", help="Value of {build_number} (default: $BUILD_NUMBER)."
    ),
)


def checkout_options(func: F) -> F:
    """``--workdir --sha --branch --tag --build-number``, in that order."""
    for option in reversed(_CHECKOUT_OPTIONS):
        func = option(func)
    return func


def state_option(purpose: str = "") -> Callable[[F], F]:
    """``--state DIR`` (the parameter ``state``: a Path, or None when not given; resolve it with
    :func:`state_dir`). ``purpose`` says what the verb keeps or reads there."""
    what = f": {purpose}" if purpose else ""
    return click.option(
        "--state",
        "state",
        type=click.Path(file_okay=False, path_type=Path),
        help=f"State directory{what} (default: $CONVEYOR_STATE, else the per-user state dir).",
    )


def state_dir(option: Path | None, settings: Settings | None = None) -> Path:
    """``--state`` wins; else the settings' state dir (``CONVEYOR_STATE``, else the default)."""
    if option is not None:
        return option.expanduser()
    return (settings or load_settings()).state_dir
