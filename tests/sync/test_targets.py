"""The hook's branch filter means what the spec's wildcards mean (GitLab's semantics differ)."""

from __future__ import annotations

import re

import pytest

from conveyor.pipeline.match import matches
from conveyor.spec.model import Spec
from conveyor.sync.targets import branch_filter, redact_url

BRANCHES = [
    "main",
    "mainx",
    "release/1",
    "release/1/hotfix",
    "feature/a-b",
    "v1",
    "v12",
    "x/main",
    "release/",
    "hotfix",
]


def _spec(branches: list[str]) -> Spec:
    return Spec.model_validate(
        {
            "apiVersion": "conveyor/v1",
            "project": "g/p",
            "jenkins": {"job": "g/p"},
            "triggers": {"push": {"branches": branches}},
            "stages": [{"name": "t", "run": ["true"]}],
        }
    )


def gitlab_matches(strategy: str, pattern: str, branch: str) -> bool:
    """GitLab's ActiveHookFilter: wildcard = RefMatcher ('*' -> '.*?', anchored), regex = search."""
    if strategy == "all_branches" or (strategy == "wildcard" and not pattern):
        return True
    if strategy == "wildcard":
        if "*" not in pattern:
            return branch == pattern
        regex = re.escape(pattern.replace("*", "\0")).replace("\0", ".*?")
        return re.fullmatch(regex, branch) is not None
    return re.search(pattern, branch) is not None


@pytest.mark.parametrize(
    ("branches", "strategy"),
    [
        (["**"], "all_branches"),
        (["main", "**"], "all_branches"),
        (["main"], "wildcard"),
        (["release/**"], "wildcard"),
        (["release/*"], "regex"),
        (["v?"], "regex"),
        (["main", "release/*"], "regex"),
        (["*/main"], "regex"),
    ],
)
def test_gitlab_filter_matches_exactly_the_spec_wildcards(
    branches: list[str], strategy: str
) -> None:
    chosen, pattern = branch_filter(_spec(branches))
    assert chosen == strategy
    for branch in BRANCHES:
        assert gitlab_matches(chosen, pattern, branch) == matches(branch, branches), branch


def test_no_push_trigger_sends_no_filter() -> None:
    spec = _spec(["main"]).model_copy(
        update={"triggers": _spec(["main"]).triggers.model_copy(update={"push": None})}
    )
    assert branch_filter(spec) == ("all_branches", "")


def test_redact_url() -> None:
    assert redact_url("https://u:p@h.example/x?token=1") == "https://***@h.example/x?***"
    assert redact_url("https://h.example/hooks/gitlab") == "https://h.example/hooks/gitlab"
