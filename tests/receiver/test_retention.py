"""Retention: finished events past the policy go, in batches; unfinished ones and unsent
statuses stay; the newest event stays; ``conveyor events prune``; ``serve`` prunes by itself.
The queue-level tests run on both stores (the ``store`` fixture: sqlite | postgresql)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from conveyor.config import load_settings
from conveyor.errors import ConfigError
from conveyor.receiver.queue import IntakeWriter, NewEvent, Status, database_path
from conveyor.receiver.queue.location import Location, open_queue
from conveyor.receiver.retention import Pruner, RetentionPolicy, prune
from tests.receiver import test_serve_process as serving
from tests.receiver.stores import sql

DAY = 86400.0
NOW = 1_800_000_000.0


def event(i: int, received_at: float, status: Status = Status.IGNORED) -> NewEvent:
    return NewEvent(
        event_header="Push Hook",
        body=b'{"ref": "refs/heads/main", "pad": "' + b"x" * 2000 + b'"}',
        status=status,
        received_at=received_at,
        idempotency_key=f"k-{i}",
        project="demo/app",
        ref="refs/heads/main",
        sha="a" * 40,
        reason="test" if status is Status.IGNORED else None,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return database_path(tmp_path / "state")


def put(db: Location, events: list[NewEvent]) -> list[int]:
    writer = IntakeWriter(db)
    try:
        futures = [writer.submit(e) for e in events]
        return [f.result(30).event_id for f in futures]
    finally:
        writer.close()


def set_status(db: Location, ids: list[int], status: str) -> None:
    sql(db, "UPDATE events SET status = ? WHERE id = ?", [(status, i) for i in ids])


def remaining(db: Location) -> list[int]:
    queue = open_queue(db)
    try:
        return sorted(r.id for r in queue.list_events(limit=1_000_000))
    finally:
        queue.close()


def test_age_and_count_limits_keep_unfinished_events_and_unsent_statuses(store: Location) -> None:
    db = store
    # 40 days of history, one event every 12 hours: ids 1..80, oldest first
    ids = put(db, [event(i, NOW - 40 * DAY + i * DAY / 2) for i in range(80)])
    set_status(db, ids[:3], "queued")  # old but waiting: never pruned
    set_status(db, ids[3:4], "running")
    set_status(db, ids[4:5], "done")
    # event 6 is done but its final status is still to be posted; event 7's was sent
    sql(
        db,
        "INSERT INTO status_outbox (event_id, project, sha, state, sent_at)"
        " VALUES (?, 'demo/app', ?, 'success', ?)",
        [(ids[5], "a" * 40, None), (ids[6], "a" * 40, 1)],
    )
    queue = open_queue(db)
    try:
        dry = prune(queue, RetentionPolicy.of(30, 0), dry_run=True, now=NOW)
        assert dry.dry_run and remaining(db) == ids
        report = prune(queue, RetentionPolicy.of(30, 0), batch=7, now=NOW)
    finally:
        queue.close()
    # received before NOW - 30 days: i < 20 -> ids 1..20; keep 1-4 (unfinished) and 6 (unsent)
    gone = set(ids[:20]) - set(ids[:4]) - {ids[5]}
    assert report.events == dry.events == len(gone) and report.batches == 3
    assert dry.payload_bytes and dry.payload_bytes > 2000 * len(gone)
    assert remaining(db) == sorted(set(ids) - gone)
    outbox = [r[0] for r in sql(db, "SELECT event_id FROM status_outbox ORDER BY id")]
    assert outbox == [ids[5]]  # the sent status went with its event
    queue = open_queue(db)
    try:
        prune(queue, RetentionPolicy.of(0, 10), now=NOW)
    finally:
        queue.close()
    left = remaining(db)
    assert left[-10:] == ids[-10:]
    assert set(left[:-10]) == set(ids[:4]) | {ids[5]}


def test_newest_event_stays_so_ids_never_restart(store: Location) -> None:
    db = store
    ids = put(db, [event(i, NOW - 90 * DAY + i) for i in range(5)])
    queue = open_queue(db)
    try:
        prune(queue, RetentionPolicy.of(30, 100_000), now=NOW)
    finally:
        queue.close()
    assert remaining(db) == [ids[-1]]
    [later] = put(db, [event(99, NOW)])
    assert later == ids[-1] + 1  # a Jenkins build's CONVEYOR_EVENT_ID never names two events


def test_pruner_runs_in_small_batches_while_intake_keeps_committing(store: Location) -> None:
    db = store
    put(db, [event(i, time.time() - 40 * DAY) for i in range(3000)])
    pruner = Pruner(db, RetentionPolicy.of(30, 0), interval_s=0.05, batch=200, pause_s=0.001)
    writer = IntakeWriter(db)
    pruner.start()
    try:
        latencies = []
        for i in range(200):
            started = time.monotonic()
            writer.submit(event(10_000 + i, time.time())).result(10)
            latencies.append(time.monotonic() - started)
        deadline = time.monotonic() + 30
        while pruner.deleted < 3000 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pruner.stop()
        writer.close()
    assert pruner.deleted == 3000
    assert len(remaining(db)) == 200
    assert all(lat < 10 for lat in latencies)  # every delivery was committed (no timing claim)


def test_events_prune_cli_dry_run_and_json(db: Path, tmp_path: Path) -> None:
    ids = put(db, [event(i, time.time() - 40 * DAY) for i in range(5)])
    put(db, [event(50, time.time())])
    runner = CliRunner()
    env = {"CONVEYOR_STATE": str(tmp_path / "state"), "CONVEYOR_CONFIG": str(tmp_path / "x.toml")}
    (tmp_path / "x.toml").write_text("")
    dry = runner.invoke(cli, ["events", "prune", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert (
        "would delete 5 finished events" in dry.output
        and "30 days and 100,000 events" in dry.output
    )
    assert len(remaining(db)) == 6
    done = runner.invoke(cli, ["events", "prune", "--json"], env=env)
    assert json.loads(done.output) == {
        "events": 5,
        "payload_bytes": None,
        "batches": 1,
        "dry_run": False,
        "policy": "30 days and 100,000 events",
    }
    assert ids[0] not in remaining(db)
    keep = runner.invoke(cli, ["events", "prune", "--keep", "0", "--days", "0", "--json"], env=env)
    assert json.loads(keep.output)["policy"] == "keep everything"
    bad = runner.invoke(cli, ["events", "prune"], env={**env, "CONVEYOR_RETENTION_DAYS": "soon"})
    assert bad.exit_code == 2 and "CONVEYOR_RETENTION_DAYS must be a number of days" in bad.output


def test_retention_settings() -> None:
    settings = load_settings({"CONVEYOR_CONFIG": "/dev/null"})
    assert (settings.retention_days, settings.retention_events) == (30.0, 100_000)
    custom = load_settings(
        {
            "CONVEYOR_CONFIG": "/dev/null",
            "CONVEYOR_RETENTION_DAYS": "7.5",
            "CONVEYOR_RETENTION_EVENTS": "0",
        }
    )
    assert RetentionPolicy.of(custom.retention_days, custom.retention_events) == RetentionPolicy(
        max_age_s=7.5 * DAY, max_events=None
    )
    with pytest.raises(ConfigError, match="CONVEYOR_RETENTION_EVENTS must be a count"):
        load_settings({"CONVEYOR_CONFIG": "/dev/null", "CONVEYOR_RETENTION_EVENTS": "-3"})


serve = serving.serve  # a real `conveyor serve` subprocess


def test_serve_prunes_in_the_background(serve: Any, tmp_path: Path) -> None:
    db = database_path(tmp_path / "state")
    ids = put(db, [event(i, time.time() - 10 * DAY) for i in range(50)])
    put(db, [event(100, time.time())])
    serve("--dispatch", "none", "--retention-days", "7")
    serving.wait(lambda: ids[-1] not in remaining(db))
    assert len(remaining(db)) == 1


def test_a_superseded_event_that_never_reported_a_status_is_pruned(store: Location) -> None:
    """With commit statuses off (no GitLab settings) a queued event has no "pending" status; when
    a newer one supersedes it, no "canceled" is queued either (nothing would ever send it, and an
    unsent status keeps its event from being pruned for ever)."""
    db = store
    lane = dict(lane="demo/app\x00push\x00main")
    ids = put(
        db,
        [
            NewEvent(**{**event(1, NOW - 40 * DAY, Status.QUEUED).__dict__, **lane}),
            NewEvent(**{**event(2, NOW, Status.QUEUED).__dict__, **lane}),
        ],
    )
    queue = open_queue(db)
    try:
        assert queue.get(ids[0]).status is Status.SUPERSEDED  # type: ignore[union-attr]
        assert queue.statuses_for(ids[0]) == []
        result = prune(queue, RetentionPolicy(max_age_s=30 * DAY, max_events=None), now=NOW)
        assert queue.get(ids[0]) is None, result
    finally:
        queue.close()
