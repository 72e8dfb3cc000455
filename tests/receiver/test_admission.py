"""Routing in the intake process: its replica of the router routes as the router does, learnt
project ids reach it (also after it is restarted), and refusals come back from either side."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import QueueError
from conveyor.receiver.admission import Admission, RoutingFeed
from conveyor.receiver.app import INLINE_PARSE_BYTES
from conveyor.receiver.intake_process import _admit, _merged
from conveyor.receiver.queue import Accepted, Delivery, IntakeWriter, Refusal, Status
from conveyor.receiver.routing import ProjectIds, Router
from conveyor.receiver.worker import WorkerOptions
from conveyor.spec.load import load_specs
from conveyor.tokens import project_id_token
from tests.receiver import payloads as p
from tests.receiver.conftest import Running
from tests.receiver.specs import write_specs

HOOK = "/hooks/gitlab"


def _router(tmp_path: Path, ids: dict[int, str | None] | None = None) -> Router:
    specs = (s.spec for s in load_specs(write_specs(tmp_path / "specs")))
    return Router(specs, ProjectIds.of(ids or {}))


PAYLOADS = st.one_of(
    st.builds(
        p.push,
        path=st.sampled_from(["demo/app", "DEMO/App", "platform/renamed", "demo/backend/api"]),
        branch=st.sampled_from(["main", "release/1", "release/old", "dev", "-x", "a..b"]),
        after=st.sampled_from([p.SHA_B, p.ZERO, "not-a-sha"]),
        message=st.sampled_from(["fix", "wip [skip ci]", ""]),
        push_options=st.sampled_from([None, {"ci": {"skip": True}}]),
    ),
    st.builds(p.tag_push, path=st.sampled_from(["demo/app", "nobody/else"])),
    st.builds(
        p.merge_request,
        action=st.sampled_from(["open", "update", "merge", "close"]),
        target=st.sampled_from(["main", "dev"]),
        oldrev=st.sampled_from([None, p.SHA_A]),
        merge_commit_sha=st.sampled_from([None, p.SHA_A]),
    ),
)
HEADERS = st.sampled_from(["Push Hook", "Tag Push Hook", "Merge Request Hook", "Note Hook", "Push"])


@pytest.mark.parametrize("post_statuses", [False, True])
@settings(max_examples=150, deadline=None)
@given(payload=PAYLOADS, header=HEADERS, ids=st.sampled_from([{}, {15: "demo/app"}, {15: None}]))
def test_the_intake_processs_replica_routes_as_the_router(
    tmp_path_factory: pytest.TempPathFactory,
    post_statuses: bool,
    payload: dict[str, Any],
    header: str,
    ids: dict[int, str | None],
) -> None:
    router = _router(tmp_path_factory.mktemp("specs"), ids)
    here = Admission(
        router, post_statuses=post_statuses, job_url=lambda spec: f"https://ci/{spec.project}"
    )
    setup = pickle.loads(pickle.dumps(RoutingFeed(here).setup()))  # as the pipe carries it
    there = Admission.replica(setup)
    delivery = Delivery(header, json.dumps(payload).encode(), 1.5, "key", "uuid", None)
    routed = here.admit(delivery, payload)
    assert there.admit(delivery) == routed  # the job link too: there it comes from the setup


def test_the_feed_is_sent_again_when_an_id_is_learnt(tmp_path: Path) -> None:
    router = _router(tmp_path)
    feed = RoutingFeed(Admission(router, post_statuses=False, job_url=lambda spec: None))
    before = feed.version
    router.ids.learn(15, "demo/app")
    assert feed.version != before and feed.setup().ids == {15: "demo/app"}
    router.ids.learn(15, "demo/app")  # nothing new: nothing to send
    assert feed.version == before + 1


def _post(running: Running, payload: dict[str, Any], **kwargs: Any) -> Any:
    body = json.dumps(payload).encode()
    return running.client.post(HOOK, content=body, headers=p.headers(payload, **kwargs))


def test_learnt_ids_reach_the_intake_process_and_survive_its_restart(
    start_receiver: Any,
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    token = project_id_token(p.SECRET, 15)
    moved = p.push("platform/app-renamed")
    # Not learnt yet: a path with no spec is stored ignored.
    first = _post(running, moved, token=token)
    assert first.json()["reason"] == "no spec for project platform/app-renamed"
    assert _post(running, p.push(), token=token).json()["status"] == "queued"  # learns 15
    assert _post(running, moved, token=token).json()["status"] == "queued"
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    old = intake.pid
    os.kill(old, signal.SIGKILL)
    running.wait_for(lambda: intake.pid not in (None, old))
    again = _post(running, p.push("platform/app-renamed", branch="release/2"), token=token)
    assert again.status_code == 202 and again.json()["status"] == "queued"


def test_a_payload_that_fails_a_check_is_refused_on_either_side(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    small = p.push(after="not-a-sha")
    large = p.push(after="not-a-sha", message="m" * (INLINE_PARSE_BYTES + 1))
    for payload in (small, large):
        answer = _post(running, payload)
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == "payload" and "after" in answer.json()["error"]
    stored = _post(running, p.push(message="m" * (INLINE_PARSE_BYTES + 1)))
    assert stored.status_code == 202 and stored.json()["status"] == "queued"
    queue = running.queue()
    try:
        assert [r.status for r in queue.list_events(limit=10)] == [Status.QUEUED]
    finally:
        queue.close()


def test_a_delivery_that_cannot_be_routed_fails_alone(tmp_path: Path) -> None:
    admission = Admission(_router(tmp_path), post_statuses=False, job_url=lambda spec: None)
    good = Delivery("Push Hook", json.dumps(p.push()).encode(), 1.0, "a")
    broken = Delivery("Push Hook", b"[1]", 1.0, "b")  # not an object: a bug upstream
    refused = Delivery("Push Hook", json.dumps(p.push(after="x")).encode(), 1.0, "c")
    stored = p.stored("d")
    events, admitted = _admit(admission, [good, broken, refused, stored])
    assert [e.idempotency_key for e in events] == ["a", "d"]
    assert admitted[0] is None and admitted[3] is None
    assert isinstance(admitted[1], str) and "TypeError" in admitted[1]
    assert isinstance(admitted[2], Refusal) and admitted[2].reason == "payload"
    accepted = [Accepted(1, False, Status.QUEUED), Accepted(2, False, Status.QUEUED)]
    assert _merged(admitted, list(accepted)) == [accepted[0], admitted[1], admitted[2], accepted[1]]
    # Without a routing yet, a delivery fails; a routed event is stored as ever.
    events, admitted = _admit(None, [good, stored])
    assert events == [stored] and isinstance(admitted[0], str)


def test_a_writer_without_routing_refuses_deliveries(tmp_path: Path) -> None:
    import asyncio

    writer = IntakeWriter(tmp_path / "events.db")
    try:
        with pytest.raises(QueueError, match="routes nothing"):
            asyncio.run(writer.deliver(Delivery("Push Hook", b"{}", time.time())))
    finally:
        writer.close()
