"""Click options shared by the verbs that work on a checkout (``build``, ``push``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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
