"""Checking out the commit an event names (the receiver's local dispatch), from a real git repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conveyor.errors import RunnerError
from conveyor.gitlab.checkout import checkout, fetch_ref
from conveyor.gitlab.events import GitLabEvent, parse_event
from tests.docker.fixtures import git_commit
from tests.receiver import payloads as p


def event_for(repo: Path, sha: str, before: str, branch: str = "main") -> GitLabEvent:
    payload = p.push(branch=branch, before=before, after=sha)
    payload["project"]["git_http_url"] = str(repo)
    return parse_event("Push Hook", payload)


def test_checks_out_exactly_the_pushed_commit_even_after_the_branch_moved_on(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    first = git_commit(repo, {"a.txt": "one\n"})
    second = git_commit(repo, {"a.txt": "two\n"})
    git_commit(repo, {"a.txt": "three\n"})  # main moved on after the push of `second`
    subprocess.run(
        ["git", "-C", str(repo), "config", "uploadpack.allowAnySHA1InWant", "true"], check=True
    )
    event = event_for(repo, second, first)
    dest = checkout(event, tmp_path / "co")
    assert (dest / "a.txt").read_text() == "two\n"
    head = subprocess.run(
        ["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert head == second


def test_merge_requests_fetch_the_merge_request_ref() -> None:
    event = parse_event("Merge Request Hook", p.merge_request(action="open", iid=7))
    assert fetch_ref(event) == "refs/merge-requests/7/head"


def test_failures_name_the_step_and_never_the_token(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sha = git_commit(repo, {"a.txt": "one\n"})
    payload = p.push(after=sha)
    payload["project"]["git_http_url"] = "http://127.0.0.1:9/nothing/here.git"
    event = parse_event("Push Hook", payload)
    with pytest.raises(RunnerError, match="checkout: fetch refs/heads/main failed") as info:
        checkout(event, tmp_path / "co", token="glpat-very-secret")
    assert "glpat-very-secret" not in str(info.value)
    payload["project"].pop("git_http_url")
    with pytest.raises(RunnerError, match="names no clone URL"):
        checkout(parse_event("Push Hook", payload), tmp_path / "co2")
