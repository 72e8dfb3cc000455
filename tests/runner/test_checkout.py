"""Checking a commit out for a run that has no working tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conveyor.errors import RunnerError
from conveyor.runner.checkout import checkout
from tests.docker.fixtures import git_commit


def test_checkout_fetches_exactly_the_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first = git_commit(repo, {"a.txt": "one\n"})
    git_commit(repo, {"a.txt": "two\n"})
    # git serves unadvertised commits from a local repo with this setting
    subprocess.run(
        ["git", "-C", str(repo), "config", "uploadpack.allowAnySHA1InWant", "true"], check=True
    )
    dest = checkout(f"file://{repo}", first, tmp_path / "co")
    assert (dest / "a.txt").read_text() == "one\n"
    with pytest.raises(RunnerError, match="not empty"):
        checkout(f"file://{repo}", first, dest)
    with pytest.raises(RunnerError, match=r"fetch of https://gitlab.invalid/x.git failed") as info:
        checkout("https://user:tok-123@gitlab.invalid/x.git", first, tmp_path / "co2")
    assert "tok-123" not in str(info.value)
