"""A merge request's merge builds its merge commit once, though GitLab sends two hooks for it.

Merging moves the target branch through Gitaly's receive hooks, so GitLab sends a Push Hook for
the target branch (``after`` = the merge commit) beside the Merge Request Hook (``action:
merge``, ``merge_commit_sha``): see ``conveyor.receiver.queue.events.commit_built_by``. With a
spec triggering on both, the first to arrive builds; the other is stored ignored, saying which
event builds the commit.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.receiver.queue import Status
from conveyor.receiver.worker import WorkerOptions
from tests.receiver import payloads as p

MERGE_SHA = "d" * 40


def _post(running: Any, payload: dict[str, Any], key: str) -> Any:
    answer = running.client.post("/hooks/gitlab", json=payload, headers=p.headers(payload, key=key))
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def _merge() -> dict[str, Any]:
    return p.merge_request(action="merge", merge_commit_sha=MERGE_SHA)


@pytest.mark.parametrize("first", ["merge", "push"])
def test_the_merge_commit_is_built_once_whichever_hook_comes_first(
    start_receiver: Any, first: str
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    hooks = {"merge": _merge(), "push": p.push(after=MERGE_SHA)}
    second = "push" if first == "merge" else "merge"
    one = _post(running, hooks[first], "k1")
    two = _post(running, hooks[second], "k2")
    assert one["status"] == "queued"
    assert two["status"] == "ignored"
    kind = "push" if first == "push" else "merge request merge"
    assert two["reason"] == f"commit {MERGE_SHA[:12]} is built by event {one['id']} (its {kind})"
    queue = running.queue()
    try:
        assert queue.get(two["id"]).status is Status.IGNORED  # type: ignore[union-attr]
        assert queue.counts()[Status.QUEUED] == 1
    finally:
        queue.close()
    # a resend of the ignored one is a duplicate, with the stored answer
    again = _post(running, hooks[second], "k2")
    assert again["duplicate"] is True and again["status"] == "ignored"


def test_other_commits_and_other_events_still_build(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    merge = _post(running, _merge(), "k1")
    other_sha = _post(running, p.push(after="e" * 40), "k2")  # another commit of main
    assert merge["status"] == other_sha["status"] == "queued"
    # the same commit pushed again (not a merge's push pair): GitLab builds each push
    again = _post(running, p.push(after="e" * 40), "k3")
    assert again["status"] == "queued"
    # an MR update (not a merge) whose head a push also carries: two kinds of build, kept
    update = _post(running, p.merge_request(action="update", oldrev=p.SHA_A, sha="f" * 40), "k4")
    push_head = _post(running, p.push(branch="main", after="f" * 40), "k5")
    assert update["status"] == push_head["status"] == "queued"


def test_an_ignored_push_does_not_count(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    # a push to a branch the spec does not build is ignored by the router, then the merge comes
    skipped = _post(running, p.push(branch="feature/x", after=MERGE_SHA), "k1")
    assert skipped["status"] == "ignored"
    merge = _post(running, _merge(), "k2")
    assert merge["status"] == "queued"
