"""The receiver over real HTTP: verification, durability answers, ignore reasons, bad input."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.config import Settings
from conveyor.receiver.app import ReceiverOptions
from conveyor.receiver.queue import Status
from conveyor.receiver.verify import sign
from conveyor.receiver.worker import WorkerOptions
from conveyor.tokens import project_token
from tests.receiver import payloads as p
from tests.receiver.conftest import Running

HOOK = "/hooks/gitlab"


def send(running: Running, payload: dict[str, Any], **kwargs: Any) -> Any:
    return running.client.post(HOOK, content=p.body(payload), headers=p.headers(payload, **kwargs))


def rows(running: Running) -> list[Any]:
    queue = running.queue()
    try:
        return queue.list_events(limit=1000)
    finally:
        queue.close()


def test_push_is_stored_then_processed(start_receiver: Any) -> None:
    running = start_receiver()
    answer = send(running, p.push())
    assert answer.status_code == 202
    data = answer.json()
    assert data["status"] == "queued" and data["id"] >= 1
    running.wait_for(lambda: rows(running)[0].status is Status.DONE)
    record = rows(running)[0]
    assert record.project == "demo/app" and record.sha == p.SHA_B and record.attempts == 1
    assert record.payload()["ref"] == "refs/heads/main"


def test_resend_with_same_idempotency_key_is_processed_once(start_receiver: Any) -> None:
    running = start_receiver()
    first = send(running, p.push(), key="key-1")
    second = send(running, p.push(), key="key-1")
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {
        "id": first.json()["id"],
        "status": second.json()["status"],
        "duplicate": True,
    }
    running.wait_for(lambda: rows(running)[0].status is Status.DONE)
    assert len(rows(running)) == 1
    metrics = running.client.get("/metrics").text
    assert "conveyor_webhooks_deduplicated_total 1" in metrics


@pytest.mark.parametrize(
    "token",
    ["", "wrong", project_token(p.SECRET, "demo/other"), project_token("other", "demo/app")],
)
def test_bad_token_is_401_and_nothing_is_stored(start_receiver: Any, token: str) -> None:
    running = start_receiver()
    payload = p.push()
    hdrs = p.headers(payload, token=token)
    if not token:
        del hdrs["X-Gitlab-Token"]
    answer = running.client.post(HOOK, content=p.body(payload), headers=hdrs)
    assert answer.status_code == 401
    assert token not in answer.text or not token
    assert rows(running) == []


def test_rotation_overlap_accepts_previous_secret_until_it_ends(
    start_receiver: Any, tmp_path: Any
) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    past = datetime.now(UTC) - timedelta(seconds=1)
    during = start_receiver(
        settings=Settings(
            secret="new",
            previous_secret=p.SECRET,
            previous_secret_until=future,
            state_dir=tmp_path / "a",
        )
    )
    assert send(during, p.push(), secret=p.SECRET).status_code == 202
    assert send(during, p.push(), secret="new").status_code == 202
    after = start_receiver(
        settings=Settings(
            secret="new",
            previous_secret=p.SECRET,
            previous_secret_until=past,
            state_dir=tmp_path / "b",
        )
    )
    assert send(after, p.push(), secret=p.SECRET).status_code == 401
    assert send(after, p.push(), secret="new").status_code == 202


@pytest.mark.parametrize(
    ("payload", "event", "reason"),
    [
        (p.push(after=p.ZERO), None, "branch deleted"),
        (p.tag_push(after=p.ZERO), None, "tag deleted"),
        (
            p.merge_request(action="update"),
            None,
            "merge request updated without new commits (no oldrev)",
        ),
        (p.push(message="wip [skip ci]"), None, "[skip ci] in the head commit message"),
        (p.push(push_options={"ci": {"skip": True}}), None, "push option ci.skip"),
        (p.push(branch="feature/x"), None, "branch 'feature/x' not in triggers.push.branches"),
        (
            p.push(branch="release/old"),
            None,
            "branch 'release/old' excluded by triggers.push.exclude",
        ),
        (p.tag_push(tag="nightly"), None, "tag 'nightly' not in triggers.tag_push.tags"),
        (p.merge_request(action="close"), None, "merge request action 'close' not in triggers"),
        (
            p.merge_request(target="develop"),
            None,
            "target branch 'develop' not in triggers.merge_request.target_branches",
        ),
        (p.push(), "Note Hook", "event kind 'Note Hook' not handled"),
        (p.push("someone/else"), None, "no spec for project someone/else"),
        (p.merge_request("demo/backend/api"), None, "spec does not trigger on merge requests"),
    ],
)
def test_ignored_events_are_2xx_with_a_recorded_reason(
    start_receiver: Any, payload: dict[str, Any], event: str | None, reason: str
) -> None:
    running = start_receiver()
    answer = send(running, payload, event=event)
    assert answer.status_code == 202
    assert answer.json()["status"] == "ignored"
    assert answer.json()["reason"] == reason
    [record] = rows(running)
    assert record.status is Status.IGNORED and record.reason == reason


@pytest.mark.parametrize(
    ("payload", "event", "expected"),
    [
        (p.push(branch="release/2.0"), "Push Hook", ("push", "refs/heads/release/2.0")),
        (p.push(before=p.ZERO), "Push Hook", ("push", "refs/heads/main")),
        (p.tag_push(tag="v3"), "Tag Push Hook", ("tag_push", "refs/tags/v3")),
        (
            p.merge_request(action="open"),
            "Merge Request Hook",
            ("merge_request", "refs/heads/feature/login"),
        ),
        (
            p.merge_request(action="update", oldrev=p.SHA_A),
            "Merge Request Hook",
            ("merge_request", "refs/heads/feature/login"),
        ),
        (
            p.merge_request(action="merge"),
            "Merge Request Hook",
            ("merge_request", "refs/heads/main"),  # a merge builds the target branch
        ),
    ],
)
def test_buildable_events_are_queued(
    start_receiver: Any, payload: dict[str, Any], event: str, expected: tuple[str, str]
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    answer = send(running, payload, event=event)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    [record] = rows(running)
    assert (record.kind, record.ref) == expected
    assert record.deploy_targets == ("app-prod",)


def test_bad_requests_are_4xx_with_a_reason(start_receiver: Any) -> None:
    running = start_receiver(options=ReceiverOptions(max_body_bytes=4096))
    good = p.push()
    hdrs = p.headers(good)
    client = running.client

    def post(content: bytes, **changes: str | None) -> Any:
        h = dict(hdrs)
        for name, value in changes.items():
            header = name.replace("_", "-")
            if value is None:
                h.pop(header, None)
            else:
                h[header] = value
        return client.post(HOOK, content=content, headers=h)

    named = b'{"project": {"path_with_namespace": "demo/app"}'  # authenticates, then fails
    cases = [
        (post(named + b", not json"), 400, "not_json"),
        (post(b"[" + named + b"}]"), 400, "not_object"),
        (post(named + b', "x": "\xff\xfe"}'), 400, "not_json"),
        # Nothing is parsed for a sender that is not authenticated.
        (post(b"{not json"), 401, "project_unknown"),
        (post(b"[1, 2]"), 401, "project_unknown"),
        (post(b"[" * 100000 + b"]" * 100000), 413, "too_large"),
        (post(p.body(good), **{"Content-Type": "text/plain"}), 415, "content_type"),
        (post(p.body(good), **{"Content-Type": None}), 415, "content_type"),
        (post(p.body(good), **{"X-Gitlab-Event": None}), 400, "event_header_missing"),
        (post(b'{"project": {}}'), 401, "project_unknown"),
        (
            post(json.dumps({"project": {"path_with_namespace": "demo/app"}}).encode()),
            400,
            "payload",
        ),
        (post(p.body(good), **{"Idempotency-Key": "k" * 300}), 400, "idempotency_key"),
    ]
    for answer, status, reason in cases:
        assert answer.status_code == status, (reason, answer.text)
        assert answer.json()["reason"] == reason
    big = client.post(HOOK, content=b" " * 5000 + p.body(good), headers=hdrs)
    assert big.status_code == 413
    assert client.get(HOOK).status_code == 405
    assert rows(running) == []
    metrics = client.get("/metrics").text
    assert 'conveyor_webhooks_rejected_total{reason="not_json"} 2' in metrics


def test_deeply_nested_json_is_a_400_not_a_crash(start_receiver: Any) -> None:
    running = start_receiver()
    payload = p.push()
    nested = b'{"a": ' + b"[" * 50000 + b"]" * 50000 + b"}"
    answer = running.client.post(HOOK, content=nested, headers=p.headers(payload))
    assert answer.status_code in (400, 401)
    assert running.client.get("/healthz").status_code == 200


def _signed(
    payload: dict[str, Any], key: bytes, *, ts: int | None = None, tamper: bool = False
) -> dict[str, str]:
    hdrs = p.headers(payload)
    stamp = str(ts if ts is not None else int(time.time()))
    msg_id = "msg_2LJy7PBnJ0aR7cNLUZ2rL2MFb2P"
    body = p.body(payload) + (b" " if tamper else b"")
    hdrs.update(
        {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1,bm90LXRoaXM= " + sign(key, msg_id, stamp, body),
        }
    )
    return hdrs


def test_standard_webhooks_signature(start_receiver: Any) -> None:
    key = b"0123456789abcdef0123456789abcdef"
    running = start_receiver(options=ReceiverOptions(signing_keys=(key,), require_signature=True))
    payload = p.push()
    ok = running.client.post(HOOK, content=p.body(payload), headers=_signed(payload, key))
    assert ok.status_code == 202
    cases = {
        "signature_mismatch": _signed(payload, key, tamper=True),
        "signature_timestamp_outside_window": _signed(payload, key, ts=int(time.time()) - 3600),
        "signature_missing": p.headers(payload),
    }
    wrong_key = _signed(payload, b"another key, not the one configured")
    cases["signature_mismatch"] = wrong_key
    for reason, hdrs in cases.items():
        answer = running.client.post(HOOK, content=p.body(payload), headers=hdrs)
        assert answer.status_code == 401, reason
        assert answer.json()["reason"] == reason
    assert len(rows(running)) == 1


def test_whsec_key_decoding() -> None:
    from conveyor.receiver.verify import decode_signing_key

    raw = b"secret-key-bytes"
    assert decode_signing_key("whsec_" + base64.b64encode(raw).decode()) == raw
    with pytest.raises(ValueError):
        decode_signing_key("not-whsec")
    with pytest.raises(ValueError):
        decode_signing_key("whsec_***")


def test_newer_push_supersedes_a_queued_one(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    first = send(running, p.push(after=p.SHA_B)).json()["id"]
    other = send(running, p.push(branch="release/1", after=p.SHA_B)).json()["id"]
    second = send(running, p.push(after=p.SHA_C)).json()["id"]
    by_id = {r.id: r for r in rows(running)}
    assert by_id[first].status is Status.SUPERSEDED
    assert by_id[first].reason == f"superseded by event {second}"
    assert by_id[second].status is Status.QUEUED
    assert by_id[other].status is Status.QUEUED


def test_healthz_and_metrics(start_receiver: Any) -> None:
    running = start_receiver()
    send(running, p.push())
    send(running, p.push(), token="bad")
    running.wait_for(lambda: rows(running)[0].status is Status.DONE)
    health = running.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["projects"] == [
        "demo/app",
        "demo/backend/api",
    ]
    metrics = running.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    for line in (
        'conveyor_webhooks_received_total{kind="push"} 2',
        'conveyor_webhooks_rejected_total{reason="token_invalid"} 1',
        'conveyor_webhooks_accepted_total{outcome="queued"} 1',
        'conveyor_events{status="done"} 1',
        'conveyor_events{status="dead"} 0',
        'conveyor_webhook_ack_seconds_bucket{le="+Inf"} 2',
        'conveyor_dispatch_total{dispatcher="none",outcome="success"} 1',
        "# TYPE conveyor_event_queue_wait_seconds histogram",
    ):
        assert line in text, line
