"""What an events row says conveyor decided, for every status."""

from __future__ import annotations

from conveyor.dashboard.decisions import Decision, decision_of


def test_each_status_says_what_and_why() -> None:
    def of(**row: object) -> Decision:
        return decision_of({"attempts": 0, "last_error": None, "reason": None, **row})

    assert of(status="ignored", reason="branch not in triggers") == Decision(
        "ignored", "branch not in triggers"
    )
    assert of(status="superseded", reason="superseded by event 42") == Decision(
        "superseded", "superseded by event 42", 42
    )
    assert of(status="dead", attempts=5, last_error="Jenkins answered 500") == Decision(
        "dead", "after 5 attempt(s): Jenkins answered 500"
    )
    assert (
        of(status="failed", last_error="run #3 failed at 'test'").why == "run #3 failed at 'test'"
    )
    assert of(status="queued", attempts=2, last_error="timeout").why == (
        "retry after attempt 2: timeout"
    )
    assert of(status="queued", replay_of=7).why == "replay of event 7"
    assert of(status="queued").why == "waiting for a worker"
    assert of(status="running", attempts=1).why == "attempt 1"
