"""The queue, on both stores (the ``store`` fixture: sqlite | postgresql): leases, deploy locks,
supersede, release, replay, dedupe in one batch; then what is particular to each store."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.errors import QueueError
from conveyor.gitlab.status import CommitState
from conveyor.receiver.queue import (
    IntakeWriter,
    NewEvent,
    Status,
    StatusUpdate,
    database_path,
    open_database,
)
from conveyor.receiver.queue.events import SUPERSEDE_CHUNK, EventQueue
from conveyor.receiver.queue.location import Location, open_queue
from tests.receiver import payloads


def new(
    key: str | None,
    *,
    lane: str | None = None,
    targets: tuple[str, ...] = (),
    status: Status = Status.QUEUED,
) -> NewEvent:
    return payloads.stored(
        key,
        body=b'{"ref": "refs/heads/main"}',
        status=status,
        sha="a" * 40,
        lane=lane,
        deploy_targets=targets,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return database_path(tmp_path / "state")


def put(db: Location, *events: NewEvent) -> list[int]:
    writer = IntakeWriter(db)
    try:
        return [writer.submit(e).result(10).event_id for e in events]
    finally:
        writer.close()


def test_durability_pragmas(db: Path) -> None:
    conn = open_database(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        conn.close()


def test_duplicates_within_one_batch_and_across_batches(store: Location) -> None:
    writer = IntakeWriter(store)
    try:
        futures = [writer.submit(new("k")) for _ in range(5)] + [
            writer.submit(new(None)) for _ in range(2)
        ]
        results = [f.result(10) for f in futures]
        again = writer.submit(new("k")).result(10)
    finally:
        writer.close()
    assert [r.duplicate for r in results] == [False, True, True, True, True, False, False]
    assert len({r.event_id for r in results[:5]}) == 1
    assert again.duplicate and again.event_id == results[0].event_id
    queue = open_queue(store)
    assert len(queue.list_events()) == 3
    queue.close()


def test_deploy_targets_never_overlap(store: Location) -> None:
    first, second, third = put(
        store,
        new("a", targets=("prod",)),
        new("b", targets=("prod", "x")),
        new("c", targets=("y",)),
    )
    queue = open_queue(store)
    one = queue.claim("w1", lease_s=60)
    assert one is not None and one.record.id == first
    other = queue.claim("w2", lease_s=60)
    assert other is not None and other.record.id == third  # second waits for "prod"
    assert queue.claim("w3", lease_s=60) is None
    assert queue.finish(one, succeeded=True, result_url=None, detail="ok", status=None)
    follow = queue.claim("w3", lease_s=60)
    assert follow is not None and follow.record.id == second
    queue.close()


def test_expired_lease_is_reclaimed_and_the_old_owner_cannot_finish(store: Location) -> None:
    [event_id] = put(store, new("a", targets=("prod",)))
    queue = open_queue(store)
    lost = queue.claim("crashed", lease_s=5)
    assert lost is not None
    assert queue.claim("w2", lease_s=60) is None
    again = queue.claim("w2", lease_s=60, now=time.time() + 6)  # the lease has expired
    assert again is not None and again.record.id == event_id and again.record.attempts == 2
    assert not queue.finish(lost, succeeded=True, result_url=None, detail="late", status=None)
    assert not queue.heartbeat(lost, lease_s=60)
    assert queue.finish(again, succeeded=True, result_url=None, detail="ok", status=None)
    record = queue.get(event_id)
    assert record is not None and record.status is Status.DONE and record.reason == "ok"
    queue.close()


def test_release_keeps_resume_state_and_does_not_count(store: Location) -> None:
    [event_id] = put(store, new("a"))
    queue = open_queue(store)
    claim = queue.claim("w", lease_s=60)
    assert claim is not None
    assert queue.progress(claim, dispatch_state={"queue_id": 7}, result_url="http://j/1/")
    assert queue.release(claim)
    record = queue.get(event_id)
    assert record is not None
    assert (record.status, record.attempts, record.dispatch_state) == (
        Status.QUEUED,
        0,
        {"queue_id": 7},
    )
    queue.close()


def test_the_oldest_runnable_goes_first_retried_expired_or_new(store: Location) -> None:
    first, second, third, fourth = put(store, *[new(k) for k in "abcd"])
    queue = open_queue(store)
    try:
        now = time.time()
        retried = queue.claim("w", lease_s=60, now=now)
        assert retried is not None and retried.record.id == first
        assert queue.retry_later(retried, error="down", delay_s=30)
        crashed = queue.claim("crashed", lease_s=5, now=now)
        assert crashed is not None and crashed.record.id == second  # the retry is not due
        later = now + 40  # the retry is due, the lease has expired
        order = [queue.claim("w", lease_s=600, now=later) for _ in range(4)]
        assert [c.record.id if c else None for c in order] == [first, second, third, fourth]
        assert queue.claim("w", lease_s=600, now=later) is None
    finally:
        queue.close()


def test_retry_later_waits_for_backoff(store: Location) -> None:
    put(store, new("a"))
    queue = open_queue(store)
    claim = queue.claim("w", lease_s=60)
    assert claim is not None
    assert queue.retry_later(claim, error="down", delay_s=60)
    assert queue.claim("w", lease_s=60) is None
    assert queue.claim("w", lease_s=60, now=time.time() + 61) is not None
    queue.close()


def test_supersede_only_touches_queued_events_of_the_same_lane(store: Location) -> None:
    [running_id] = put(store, new("a", lane="L"))
    queue = open_queue(store)
    claim = queue.claim("w", lease_s=60)
    assert claim is not None and claim.record.id == running_id
    queued_id, other_lane = put(store, new("b", lane="L"), new("x", lane="M"))
    [newest] = put(store, new("c", lane="L"))
    states = {r.id: r.status for r in queue.list_events()}
    assert states == {
        running_id: Status.RUNNING,
        queued_id: Status.SUPERSEDED,
        other_lane: Status.QUEUED,
        newest: Status.QUEUED,
    }
    queue.close()


def test_every_queued_event_of_a_lane_is_superseded_however_many(db: Path) -> None:
    """More than one UPDATE's worth of ids (SUPERSEDE_CHUNK): a lane that holds many queued
    events (a queue copied from elsewhere, a lane whose name routing changed) is emptied at
    once, each superseded event canceled only where it reported a status."""
    count = 2 * SUPERSEDE_CHUNK + 3
    pending = StatusUpdate(CommitState.PENDING, "queued")
    ids = put(
        db,
        *[
            replace(new(f"k{i}", lane=f"L{i}"), pending_status=pending if i % 2 else None)
            for i in range(count)
        ],
    )
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE events SET lane = 'L'")
    conn.close()
    [newest] = put(db, new("z", lane="L"))
    queue = open_queue(db)
    try:
        records = {r.id: r for r in queue.list_events(limit=count + 1)}
        assert {records[i].status for i in ids} == {Status.SUPERSEDED}
        assert {records[i].reason for i in ids} == {f"superseded by event {newest}"}
        assert records[newest].status is Status.QUEUED
        for i, event_id in enumerate(ids):
            states = [s["state"] for s in queue.statuses_for(event_id)]
            assert states == (["pending", "canceled"] if i % 2 else [])
    finally:
        queue.close()


def test_a_claim_does_the_same_work_however_long_the_backlog(tmp_path: Path) -> None:
    """A claim reads at most 64 new events, in id order, and only the retries that are due. It
    used to read every queued event and sort them (15 ms a claim behind 50,000, in the intake
    process that answers deliveries). Counted in SQLite VM instructions (a progress handler),
    which do not depend on the machine's speed."""

    def claim_steps(backlog: int) -> int:
        db = database_path(tmp_path / f"backlog-{backlog}")
        writer = IntakeWriter(db)
        try:
            futures = [writer.submit(new(f"k{i}", targets=(f"t{i}",))) for i in range(backlog)]
            done = [f.result(30).event_id for f in futures]
        finally:
            writer.close()
        assert len(done) == backlog
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        conn = open_database(db)
        conn.set_progress_handler(count, 10)
        queue = EventQueue(db, conn=conn)
        try:
            claim = queue.claim("w", lease_s=30)
            assert claim is not None and claim.record.id == done[0]
            claimed = steps[0]
            # every other queued event waits for its retry (a dispatcher down): nothing is due
            with conn:
                conn.execute(
                    "UPDATE events SET next_attempt_at = ? WHERE status = 'queued'", (9e9,)
                )
            steps[0] = 0
            assert queue.claim("w", lease_s=30) is None
        finally:
            queue.close()
            conn.close()
        return claimed, steps[0]

    # both beyond the 64 candidates a claim reads at most
    (short, idle_short), (long, idle_long) = claim_steps(100), claim_steps(2000)
    assert long < 1.25 * short, (short, long)
    assert idle_long < 1.25 * idle_short, (idle_short, idle_long)


MERGE_SHA = "d" * 40


def hook(key: str, kind: str, *, sha: str = MERGE_SHA, merged: bool = False) -> NewEvent:
    """A push to main, or a merge request's merge whose merge commit lands on main."""
    return replace(
        new(key, lane=f"demo/app\x00{kind}"),
        event_header="Merge Request Hook" if kind == "merge_request" else "Push Hook",
        kind=kind,
        sha=sha,
        merged=merged,
    )


@pytest.mark.parametrize("first", ["merge", "push"])
def test_a_merge_and_its_push_build_the_merge_commit_once(store: Location, first: str) -> None:
    """Across receivers too: the rule holds in the store, under the commit's lock on PostgreSQL."""
    hooks = {"merge": hook("m", "merge_request", merged=True), "push": hook("p", "push")}
    second = "push" if first == "merge" else "merge"
    writer = IntakeWriter(store)
    try:
        one = writer.submit(hooks[first]).result(10)
        two = writer.submit(hooks[second]).result(10)
        other = writer.submit(hook("o", "push", sha="e" * 40)).result(10)  # another commit
    finally:
        writer.close()
    assert one.status is Status.QUEUED and other.status is Status.QUEUED
    kind = "push" if first == "push" else "merge request merge"
    assert two.status is Status.IGNORED
    assert two.reason == f"commit {MERGE_SHA[:12]} is built by event {one.event_id} (its {kind})"
    queue = open_queue(store)
    stored = queue.get(two.event_id)
    assert stored is not None and stored.status is Status.IGNORED and stored.reason == two.reason
    queue.close()


def test_an_ignored_push_does_not_count_for_the_merge(store: Location) -> None:
    [ignored] = put(store, replace(hook("p", "push"), status=Status.IGNORED, reason="no spec"))
    writer = IntakeWriter(store)
    try:
        merge = writer.submit(hook("m", "merge_request", merged=True)).result(10)
    finally:
        writer.close()
    assert merge.status is Status.QUEUED and merge.event_id != ignored


def test_a_superseded_event_is_canceled_only_where_it_reported(store: Location) -> None:
    """A "canceled" for an event that never queued a status (statuses off) would be sent for
    nothing and keep the event from being pruned."""
    pending = StatusUpdate(CommitState.PENDING, "queued")
    reported, silent, newest = put(
        store,
        replace(new("a", lane="L"), pending_status=pending),
        new("b", lane="M"),
        new("c", lane="L"),
    )
    put(store, new("d", lane="M"))
    queue = open_queue(store)
    try:
        assert [s["state"] for s in queue.statuses_for(reported)] == ["pending", "canceled"]
        assert queue.statuses_for(silent) == []
        [canceled] = [s for s in queue.statuses_for(reported) if s["state"] == "canceled"]
        assert f"({newest})" in canceled["description"]
    finally:
        queue.close()


def test_lanes_are_any_text_routing_makes(store: Location) -> None:
    lane = "demo/app\x00push\x00main"  # routing.lane_of joins with NUL
    older, newer = put(store, new("a", lane=lane), new("b", lane=lane))
    queue = open_queue(store)
    first, second = queue.get(older), queue.get(newer)
    assert first is not None and first.status is Status.SUPERSEDED
    assert second is not None and second.status is Status.QUEUED and second.lane == lane
    queue.close()


def test_replay(store: Location) -> None:
    done_id, ignored_id = put(store, new("a"), new("b", status=Status.IGNORED))
    queue = open_queue(store)
    claim = queue.claim("w", lease_s=60)
    assert claim is not None
    queue.finish(claim, succeeded=True, result_url=None, detail="ok", status=None)
    copy = queue.replay(done_id)
    record = queue.get(copy)
    assert record is not None and record.status is Status.QUEUED and record.replay_of == done_id
    assert record.body == b'{"ref": "refs/heads/main"}' and record.idempotency_key is None
    with pytest.raises(QueueError, match="ignored"):
        queue.replay(ignored_id)
    with pytest.raises(QueueError, match="no event"):
        queue.replay(999)
    queue.close()


def test_unusable_state_dir_is_a_queue_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(QueueError, match="state"):
        open_database(blocker / "receiver" / "events.db")


def test_newer_schema_is_refused(db: Path) -> None:
    open_database(db).close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(QueueError, match="schema version 99"):
        open_database(db)
