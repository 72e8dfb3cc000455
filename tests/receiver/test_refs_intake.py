"""Hostile and unusual refs at the receiver, over real HTTP: 400 for what GitLab cannot send,
202 "ignored" for what it does send but names no commit to build (see conveyor.gitlab.events)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from conveyor.receiver.queue import NewEvent, Status
from conveyor.receiver.worker import WorkerOptions
from tests.receiver import payloads as p
from tests.receiver.test_app import HOOK, rows, send


def deep(depth: int) -> Any:
    value: Any = True
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ref", "--upload-pack=touch /tmp/PWNED"),
        ("ref", "main"),
        ("ref", "refs/heads/a..b"),
        ("after", "--upload-pack=x"),
        ("after", "HEAD"),
        ("before", "0" * 39),
        ("push_options", deep(40)),
    ],
)
def test_values_gitlab_cannot_send_are_a_400_naming_the_field(
    start_receiver: Any, field: str, value: Any
) -> None:
    running = start_receiver()
    payload = p.push()
    payload[field] = value
    answer = send(running, payload)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "payload"
    assert field in answer.json()["error"]
    assert rows(running) == []
    assert running.client.get("/healthz").status_code == 200


def test_push_options_at_any_depth_json_accepts_are_refused_not_a_500(start_receiver: Any) -> None:
    """Regression (issue 10 item 8): near the recursion limit json.loads still takes the body,
    and the old recursive walk of push_options, a few frames deeper, raised RecursionError (500).
    Every depth up to where json.loads itself gives up is tried: none may be a 5xx."""
    running = start_receiver()
    payload = p.push()
    headers = p.headers(payload)
    answers = {}
    for depth in range(900, 1001):
        body = json.dumps(payload)[:-1] + ', "push_options": ' + '{"a": ' * depth + "1"
        body += "}" * (depth + 1)
        try:
            answer = running.client.post(
                HOOK, content=body.encode(), headers=headers | {"Idempotency-Key": f"d{depth}"}
            )
        except httpx.HTTPError as exc:  # the old code's RecursionError dropped the connection
            answers[depth] = (0, repr(exc))
            continue
        reason = answer.json().get("reason") if answer.status_code < 500 else answer.text[:40]
        answers[depth] = (answer.status_code, reason)
    wrong = {depth: answer for depth, answer in answers.items() if answer[0] != 400}
    assert not wrong, sorted({status for status, _ in wrong.values()})
    assert {reason for _, reason in answers.values()} <= {"payload", "not_json"}
    assert answers[900] == (400, "payload")  # refused by conveyor's depth bound, not by json
    assert rows(running) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (p.push(before=p.SHA256_A, after=p.ZERO256), "branch deleted"),
        (p.tag_push(after=p.ZERO256), "tag deleted"),
        (
            p.merge_request(action="open", last_commit=False),
            "merge request has no head commit (last_commit is null)",
        ),
        (
            p.merge_request(action="update", last_commit=False, oldrev=p.SHA_A),
            "merge request has no head commit (last_commit is null)",
        ),
    ],
)
def test_what_gitlab_sends_but_cannot_be_built_is_stored_as_ignored(
    start_receiver: Any, payload: dict[str, Any], reason: str
) -> None:
    running = start_receiver()
    answer = send(running, payload)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"id": answer.json()["id"], "status": "ignored", "reason": reason}
    (record,) = rows(running)
    assert record.status is Status.IGNORED and record.reason == reason


def test_annotated_tags_and_merges_are_queued_for_a_commit(start_receiver: Any) -> None:
    running = start_receiver()
    tag = send(running, p.tag_push(tag="v2.0", after=p.SHA_C, tag_object=p.TAG_OBJECT))
    merged = p.merge_request(action="merge", target="main", merge_commit_sha=p.MERGE_SHA)
    merge = send(running, merged)
    sha256 = send(running, p.push(before=p.SHA256_A, after=p.SHA256_B))
    assert [a.json()["status"] for a in (tag, merge, sha256)] == ["queued"] * 3
    by_id = {r.id: r for r in rows(running)}
    assert (by_id[tag.json()["id"]].sha, by_id[tag.json()["id"]].ref) == (
        p.SHA_C,
        "refs/tags/v2.0",
    )
    assert (by_id[merge.json()["id"]].sha, by_id[merge.json()["id"]].ref) == (
        p.MERGE_SHA,
        "refs/heads/main",
    )
    assert by_id[sha256.json()["id"]].sha == p.SHA256_B


def test_a_stored_body_too_deep_to_parse_is_dead_lettered_and_the_workers_live_on(
    start_receiver: Any,
) -> None:
    """A row json.loads cannot read back (RecursionError, not a ValueError) once killed the
    worker thread that claimed it; it is dead-lettered now and the next event is processed."""
    running = start_receiver(worker_options=WorkerOptions(workers=1, poll_s=0.05))
    deep_body = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert running.receiver.intake is not None
    stored = running.receiver.intake.submit(
        NewEvent(
            event_header="Push Hook",
            body=deep_body,
            status=Status.QUEUED,
            received_at=time.time(),
            kind="push",
            project="demo/app",
            ref="refs/heads/main",
            sha=p.SHA_B,
        )
    )
    deep_id = stored.result(10).event_id
    after = send(running, p.push(after=p.SHA_C)).json()["id"]
    by_id = lambda: {r.id: r for r in rows(running)}  # noqa: E731
    running.wait_for(lambda: by_id()[after].status is Status.DONE)
    assert by_id()[deep_id].status is Status.DEAD
    assert "stored payload unreadable" in (by_id()[deep_id].last_error or "")
