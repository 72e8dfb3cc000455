"""Effectively-once Jenkins dispatch through the receiver: an attempt that may have started a build
finds it and follows it instead of starting another (the dispatcher's own cases are in
tests/jenkins/test_dispatcher.py, the kill -9 loop in test_kill_loop.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.receiver.queue import Status
from tests.receiver import payloads as p
from tests.receiver import test_dispatch_e2e as e2e
from tests.receiver.test_app import rows, send
from tests.receiver.test_dispatch_e2e import settled, start

world = e2e.world  # the demo/app job in the Jenkins emulator, GitLab, settings


def test_lost_trigger_answer_is_followed_not_sent_again(world: Any, start_receiver: Any) -> None:
    """Jenkins queued the build but its answer was lost (a timeout, a reset, or a crash before
    the queue item was saved): the retry finds the build by CONVEYOR_EVENT_ID."""
    _, jenkins_emu, settings = world
    jenkins_emu.faults.lose_answer("POST", r"/buildWithParameters$")
    running = start(start_receiver, settings)
    event_id = send(running, p.push()).json()["id"]
    running.wait_for(lambda: settled(running, event_id))
    [build] = jenkins_emu.triggered_builds("demo/app")
    assert build.parameters["CONVEYOR_EVENT_ID"] == str(event_id)
    record = next(r for r in rows(running) if r.id == event_id)
    assert record.status is Status.DONE and record.attempts == 2
    queue = running.queue()
    try:
        attempts = queue.attempts_for(event_id)
    finally:
        queue.close()
    assert [a["outcome"] for a in attempts] == ["retry", "done"]
    assert "cannot reach Jenkins" in attempts[0]["detail"]
    assert attempts[1]["note"] == "found build #1 of an earlier attempt"


def test_a_version_1_queue_gains_the_attempts_table(tmp_path: Path) -> None:
    import sqlite3

    from conveyor.receiver.queue import SCHEMA_VERSION, database_path, open_database

    db = database_path(tmp_path / "state")
    db.parent.mkdir(parents=True)
    old = sqlite3.connect(db)
    old.executescript(
        # (version 1's events had project, idempotency_key, sha, kind and next_attempt_at too;
        # versions 3 to 5 index them)
        "CREATE TABLE events (id INTEGER PRIMARY KEY, status TEXT, project TEXT,"
        " idempotency_key TEXT, sha TEXT, kind TEXT, next_attempt_at REAL);"
        "CREATE TABLE status_outbox (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL,"
        " project TEXT NOT NULL, sha TEXT NOT NULL, state TEXT NOT NULL);"
        "PRAGMA user_version=1;"
    )
    old.close()
    conn = open_database(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"event_attempts", "attempts_event", "outbox_event"} <= names
    finally:
        conn.close()
