"""kill -9 a real ``conveyor serve`` again and again while it dispatches to Jenkins: every
acknowledged event's build runs exactly once, and the event history shows the attempts.

Half of the kills land at random moments; the other half exactly while Jenkins holds back the
answer to ``buildWithParameters`` (the build is queued, the receiver has not saved the queue
item yet), the window in which at-least-once used to become twice.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jenkins
import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from conveyor.receiver.queue import EventQueue, Status, database_path
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.receiver import payloads as p
from tests.receiver import test_serve_process as serving
from tests.receiver.test_dispatch_e2e import SPEC, job_xml
from tests.receiver.test_serve_process import drained, wait

serve = serving.serve  # a real `conveyor serve` subprocess, killed at teardown

EVENTS = 60
KILLS = 6

pytestmark = pytest.mark.slow


@pytest.fixture
def spec_paths(tmp_path: Path) -> list[Path]:
    path = tmp_path / "specs" / "app.yml"
    path.parent.mkdir()
    path.write_text(SPEC)  # demo/app, one stage, no deploy lock: events run side by side
    return [path]


class Sender:
    """Posts distinct pushes one after another; remembers which were acknowledged."""

    def __init__(self) -> None:
        self.next = 0
        self.acked: dict[str, int] = {}  # idempotency key -> event id

    def send_until(self, url: str, stop: threading.Event, limit: int) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.is_set() and self.next < limit:
                key = f"kill-loop-{self.next}"
                payload = p.push(branch=f"release/{self.next}")
                try:
                    answer = client.post(
                        "/hooks/gitlab",
                        content=p.body(payload),
                        headers=p.headers(payload, key=key),
                    )
                except httpx.TransportError:
                    return  # killed mid-request: not acknowledged, never counted
                if 200 <= answer.status_code < 300:
                    self.acked[key] = int(answer.json()["id"])
                self.next += 1
                time.sleep(0.02)


def test_kill_9_loop_dispatches_every_acked_event_exactly_once(
    serve: Any, tmp_path: Path, make_jenkins_emulator: Any
) -> None:
    rng = random.Random(int(os.environ.get("CONVEYOR_KILL_SEED", "10")))
    emulator = make_jenkins_emulator(queue_delay=0.05, build_duration=0.2)
    api = jenkins.Jenkins(emulator.url, JENKINS_USER, JENKINS_API_TOKEN)
    api.create_folder("demo")
    api.create_job("demo/app", job_xml(tmp_path))
    # every trigger is queued at once but answered 0.2 s later
    emulator.faults.add("POST", r"/buildWithParameters$", times=10_000, hold=0.2)
    env = {
        "CONVEYOR_JENKINS_URL": emulator.url,
        "CONVEYOR_JENKINS_USER": JENKINS_USER,
        "CONVEYOR_JENKINS_TOKEN": JENKINS_API_TOKEN,
    }
    args = ("--dispatch", "jenkins", "--workers", "4", "--log-level", "warning")
    sender = Sender()
    held_kills = 0
    for round_ in range(KILLS):
        server = serve(*args, extra_env=env)
        stop = threading.Event()
        thread = threading.Thread(target=sender.send_until, args=(server.url, stop, EVENTS))
        thread.start()
        if round_ % 2:
            time.sleep(rng.uniform(0.1, 1.2))
        else:  # kill while a trigger's answer is held back
            before = len(emulator.triggered_builds())
            deadline = time.monotonic() + 5
            while len(emulator.triggered_builds()) == before and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.2))
            held_kills += len(emulator.triggered_builds()) > before
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        stop.set()
        thread.join(10)
        server.stop()
    final = serve(*args, extra_env=env)
    thread = threading.Thread(target=sender.send_until, args=(final.url, threading.Event(), EVENTS))
    thread.start()
    thread.join(60)
    db = database_path(tmp_path / "state")
    wait(lambda: drained(db), timeout=60)

    assert len(sender.acked) >= 50 and held_kills >= KILLS // 2 - 1
    builds = Counter(b.parameters["CONVEYOR_EVENT_ID"] for b in emulator.triggered_builds())
    ids = sorted(sender.acked.values())
    assert {i: builds[str(i)] for i in ids if builds[str(i)] != 1} == {}
    assert max(builds.values()) == 1  # unacknowledged but stored events too: never twice
    queue = EventQueue(db)
    try:
        records = {i: queue.get(i) for i in ids}
        history = {i: queue.attempts_for(i) for i in ids}
    finally:
        queue.close()
    assert {
        i: r.status for i, r in records.items() if r is None or r.status is not Status.DONE
    } == {}
    for i in ids:
        outcomes = [a["outcome"] for a in history[i]]
        assert outcomes[-1] == "done" and set(outcomes[:-1]) <= {"interrupted"}, (i, history[i])
        assert len(outcomes) == records[i].attempts  # type: ignore[union-attr]
    resumed = [i for i in ids if len(history[i]) > 1]
    assert resumed, "no kill landed while an event was running"
    notes = " ".join(str(a["note"]) for i in resumed for a in history[i])
    assert "of an earlier attempt" in notes
    # ... and the operator sees them
    shown = CliRunner().invoke(
        cli,
        ["events", "show", str(resumed[0]), "--state", str(tmp_path / "state")],
        env={"CONVEYOR_CONFIG": str(tmp_path / "none.toml")},
    )
    assert shown.exit_code == 0, shown.output
    assert "attempt 1" in shown.output and "interrupted" in shown.output
    assert f"attempt {len(history[resumed[0]])}" in shown.output
