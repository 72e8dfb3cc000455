"""Effectively-once Jenkins dispatch: an attempt that may have started a build finds it and
follows it instead of starting another (the kill -9 loop is in test_kill_loop.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jenkins
import pytest

from conveyor.gitlab.events import parse_event
from conveyor.receiver.dispatch import DispatchJob, JenkinsDispatcher, jenkins_parameters
from conveyor.receiver.queue import Status
from conveyor.spec.load import load_spec
from tests.receiver import payloads as p
from tests.receiver import test_dispatch_e2e as e2e
from tests.receiver.test_app import rows, send
from tests.receiver.test_dispatch_e2e import SPEC, settled, start

world = e2e.world  # the demo/app job in the Jenkins emulator, GitLab, settings


class Recorder:
    """A Progress that keeps what the dispatcher told it."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []
        self.durable: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.urls: list[str | None] = []

    def remember(
        self, state: Mapping[str, Any], *, url: str | None = None, durable: bool = False
    ) -> None:
        self.states.append(dict(state))
        if durable:
            self.durable.append(dict(state))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def started(self, url: str | None) -> None:
        self.urls.append(url)

    def tick(self) -> None:
        return None


def job_for(tmp_path: Path, event_id: int, resume: dict[str, Any] | None) -> DispatchJob:
    spec_file = tmp_path / "app.yml"
    spec_file.write_text(SPEC)
    payload = p.push()
    return DispatchJob(
        event_id=event_id,
        event=parse_event("Push Hook", payload),
        spec=load_spec(spec_file).spec,
        attempt=2,
        resume=resume,
    )


@pytest.fixture
def dispatcher(world: Any) -> JenkinsDispatcher:
    return JenkinsDispatcher(world[2], queue_poll_s=0.02, build_poll_s=0.02)


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


def test_intent_without_queue_item_follows_the_queued_item(
    world: Any, dispatcher: JenkinsDispatcher, jenkins_api: jenkins.Jenkins, tmp_path: Path
) -> None:
    _, jenkins_emu, _ = world
    jenkins_emu.queue_delay = 0.3
    job = job_for(tmp_path, 7, {"job": "demo/app", "next_build": 1})
    queue_id = jenkins_api.build_job("demo/app", jenkins_parameters(job))  # the earlier attempt
    progress = Recorder()
    outcome = dispatcher.dispatch(job, progress)
    assert outcome.succeeded and outcome.detail == "demo/app #1: SUCCESS"
    assert len(jenkins_emu.triggered_builds()) == 1
    assert progress.notes == [f"found queue item {queue_id} of an earlier attempt"]
    assert progress.durable == []  # nothing new was sent


def test_intent_for_another_event_or_an_older_build_is_not_taken(
    world: Any, dispatcher: JenkinsDispatcher, jenkins_api: jenkins.Jenkins, tmp_path: Path
) -> None:
    """A build of another event, and a build of the same event id numbered before the intent
    (an older database's event 7), are not ours: trigger, once."""
    _, jenkins_emu, _ = world
    old = job_for(tmp_path, 7, None)
    jenkins_api.build_job("demo/app", jenkins_parameters(old))  # #1: event 7 of long ago
    jenkins_api.build_job("demo/app", jenkins_parameters(job_for(tmp_path, 8, None)))  # #2
    job = job_for(tmp_path, 7, {"job": "demo/app", "next_build": 3})
    progress = Recorder()
    outcome = dispatcher.dispatch(job, progress)
    assert outcome.detail == "demo/app #3: SUCCESS"
    assert len(jenkins_emu.triggered_builds()) == 3
    assert progress.notes == ["the earlier attempt's request never reached Jenkins"]
    assert progress.durable == [{"job": "demo/app", "next_build": 3}]


def test_forgotten_queue_item_is_found_through_the_build_queue_id(
    world: Any, dispatcher: JenkinsDispatcher, jenkins_api: jenkins.Jenkins, tmp_path: Path
) -> None:
    """Resumed more than 5 minutes after its build started, the queue item is gone
    (Queue.leftItems): the build that carries its queueId is followed."""
    _, jenkins_emu, _ = world
    jenkins_emu.left_item_ttl = 0.0
    job = job_for(tmp_path, 9, None)
    queue_id = jenkins_api.build_job("demo/app", jenkins_parameters(job))
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        jenkins_api.get_queue_item(queue_id)
    resumed = job_for(tmp_path, 9, {"job": "demo/app", "queue_id": queue_id, "next_build": 1})
    outcome = dispatcher.dispatch(resumed, Recorder())
    assert outcome.succeeded and outcome.detail == "demo/app #1: SUCCESS"
    assert len(jenkins_emu.triggered_builds()) == 1


# ------------------------------------------------------------------------ local dispatch


def started_run(state: Path, project: str, event_id: int) -> int:
    from conveyor.runner.history import History

    trigger = {"kind": "push", "extra": {"CONVEYOR_EVENT_ID": str(event_id)}}
    return History(state).start(project, "", trigger)


def test_local_finished_run_gives_its_result_without_running_again(tmp_path: Path) -> None:
    from conveyor.config import Settings
    from conveyor.receiver.dispatch import LocalDispatcher
    from conveyor.runner.history import History
    from conveyor.runner.results import RunResult

    state = tmp_path / "state"
    since = time.time() - 1
    other = started_run(state, "demo/app", 6)  # another event's run
    number = started_run(state, "demo/app", 5)
    History(state).finish(RunResult(number, "demo/app", "success", 0, 1.0, ()), "log")
    dispatcher = LocalDispatcher(Settings(secret="x", state_dir=state))
    progress = Recorder()
    outcome = dispatcher.dispatch(job_for(tmp_path, 5, {"local": {"since": since}}), progress)
    assert outcome.succeeded and f"run #{number}" in outcome.detail
    assert progress.notes == [f"run #{number} of an earlier attempt finished: success"]
    assert progress.states == []  # nothing started
    assert History(state).get(other).status == "running"  # not ours: untouched


def test_local_run_cut_off_after_its_first_stage_is_failed_not_rerun(tmp_path: Path) -> None:
    from conveyor.config import Settings
    from conveyor.receiver.dispatch import LocalDispatcher
    from conveyor.runner.history import History

    state = tmp_path / "state"
    since = time.time() - 1
    number = started_run(state, "demo/app", 5)
    dispatcher = LocalDispatcher(Settings(secret="x", state_dir=state))
    progress = Recorder()
    resume = {"local": {"since": since, "run": number, "stage": "t"}}
    outcome = dispatcher.dispatch(job_for(tmp_path, 5, resume), progress)
    assert not outcome.succeeded and "cut off by a crash during stage 't'" in outcome.detail
    assert "conveyor events replay 5" in outcome.detail
    assert History(state).get(number).status == "crashed"
    assert progress.states == []


def test_local_run_cut_off_before_any_stage_is_marked_crashed(tmp_path: Path) -> None:
    from conveyor.config import Settings
    from conveyor.receiver.dispatch import LocalDispatcher
    from conveyor.runner.history import History

    state = tmp_path / "state"
    since = time.time() - 1
    number = started_run(state, "demo/app", 5)
    dispatcher = LocalDispatcher(Settings(secret="x", state_dir=state))
    progress = Recorder()
    job = job_for(tmp_path, 5, {"local": {"since": since, "run": number}})
    assert dispatcher._earlier_run(job, {"since": since, "run": number}, progress) is None
    assert History(state).get(number).status == "crashed"
    assert progress.notes == [f"run #{number} crashed before any stage started; running again"]
    too_old = job_for(tmp_path, 5, None)
    assert dispatcher._earlier_run(too_old, {"since": time.time() + 60}, progress) is None
    assert progress.notes[-1] == "the earlier attempt had not started a run"


def test_a_version_1_queue_gains_the_attempts_table(tmp_path: Path) -> None:
    import sqlite3

    from conveyor.receiver.queue import SCHEMA_VERSION, database_path, open_database

    db = database_path(tmp_path / "state")
    db.parent.mkdir(parents=True)
    old = sqlite3.connect(db)
    old.executescript(
        # (version 1's events had project and idempotency_key too; version 3 indexes them)
        "CREATE TABLE events (id INTEGER PRIMARY KEY, status TEXT, project TEXT,"
        " idempotency_key TEXT);"
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
