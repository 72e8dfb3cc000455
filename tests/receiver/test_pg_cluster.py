"""Receivers and workers on one PostgreSQL database, as on several hosts: two receivers behind a
real caddy load balancer and two worker processes; ``kill -9`` of one receiver and one worker
mid-burst. Every acknowledged delivery is stored exactly once, every event's pipeline is
dispatched exactly once, and the dead worker's deploy lock lapses with its lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jenkins
import psycopg
import pytest

from conveyor.jenkins.render import render
from conveyor.receiver.queue import Status
from conveyor.spec.load import load_spec
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.receiver import payloads as p
from tests.receiver import pg
from tests.receiver import test_serve_process as serving
from tests.receiver.conftest import free_port

serve = serving.serve  # real `conveyor serve` subprocesses, killed at teardown

pytestmark = pytest.mark.slow

DELIVERIES = 3000
BRANCHES = 40  # pushes to a branch supersede its older queued ones, as in GitLab
SENDERS = 8
LEASE_S = 5.0

APP = """\
apiVersion: conveyor/v1
project: demo/app
jenkins: {job: demo/app}
triggers: {push: {}}
stages: [{name: t, run: ["true"]}]
"""

API = """\
apiVersion: conveyor/v1
project: demo/backend/api
jenkins: {job: demo/backend/api}
triggers: {push: {}}
stages:
  - {name: t, run: ["true"]}
  - name: deploy
    deploy: {name: api-prod, target: docker, strategy: recreate}
"""


@pytest.fixture
def spec_paths(tmp_path: Path) -> list[Path]:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "app.yml").write_text(APP)
    (specs / "api.yml").write_text(API)
    return [specs / "app.yml", specs / "api.yml"]


@pytest.fixture
def database() -> Iterator[str]:
    url = pg.create_database()
    try:
        yield url
    finally:
        pg.drop_database(url)


class Caddy:
    """A real caddy reverse proxy spreading requests over the receivers (round robin)."""

    def __init__(self, directory: Path, upstreams: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "Caddyfile"
        config.write_text(
            "{\n  admin off\n  auto_https off\n}\n"
            f"http://127.0.0.1:{self.port} {{\n"
            f"  reverse_proxy {' '.join(upstreams)} {{\n"
            "    lb_policy round_robin\n"
            "    lb_try_duration 5s\n"
            # a retry on the other receiver needs the body again (caddy reads it once)
            "    buffer_requests\n"
            "    health_uri /healthz\n"
            "    health_interval 1s\n"
            "  }\n}\n"
        )
        self.log = (directory / "caddy.log").open("wb")
        env = {**os.environ, "HOME": str(directory), "XDG_DATA_HOME": str(directory)}
        self.proc = subprocess.Popen(
            ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        serving.wait(self._up, timeout=20)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "caddy exited"
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


class Sender:
    """GitLab's side: each delivery is resent (same Idempotency-Key) until it is acknowledged."""

    def __init__(self, url: str, total: int) -> None:
        self.url = url
        self.total = total
        self.acked: dict[str, int] = {}
        self.refused = Counter[int]()
        self._next = 0
        self._lock = threading.Lock()

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next - 1

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while (n := self._take()) is not None:
                path = "demo/backend/api" if n % 10 == 0 else "demo/app"
                payload = p.push(path, branch=f"release/{n % BRANCHES}")
                key = f"cluster-{n}"
                deadline = time.monotonic() + 600  # GitLab keeps resending
                while time.monotonic() < deadline:
                    try:
                        answer = client.post(
                            "/hooks/gitlab",
                            content=p.body(payload),
                            headers=p.headers(payload, key=key),
                        )
                    except httpx.TransportError:
                        time.sleep(0.1)
                        continue
                    if 200 <= answer.status_code < 300:
                        with self._lock:
                            self.acked[key] = int(answer.json()["id"])
                        break
                    self.refused[answer.status_code] += 1
                    time.sleep(0.1)


LOCKED = (
    "SELECT l.event_id, e.lease_owner FROM deploy_locks l JOIN events e"
    " ON e.id = l.event_id WHERE e.status = 'running'"
)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.timeout(1200)  # 3,000 deliveries through caddy on a shared 2-core machine
def test_two_receivers_two_workers_one_database_kill_9_mid_burst(
    serve: Any, tmp_path: Path, database: str, make_jenkins_emulator: Any, spec_paths: list[Path]
) -> None:
    emulator = make_jenkins_emulator(queue_delay=0.0, build_duration=0.3)
    api = jenkins.Jenkins(emulator.url, JENKINS_USER, JENKINS_API_TOKEN)
    for spec in spec_paths:
        loaded = load_spec(spec).spec
        folder, _, _ = loaded.jenkins.job.rpartition("/")
        parts = folder.split("/")
        for i in range(len(parts)):
            name = "/".join(parts[: i + 1])
            if not api.job_exists(name):
                api.create_folder(name)
        api.create_job(loaded.jenkins.job, render(loaded).config_xml)
    env = {
        "CONVEYOR_QUEUE_URL": database,
        "CONVEYOR_JENKINS_URL": emulator.url,
        "CONVEYOR_JENKINS_USER": JENKINS_USER,
        "CONVEYOR_JENKINS_TOKEN": JENKINS_API_TOKEN,
    }
    common = ("--dispatch", "jenkins", "--log-level", "warning", "--lease", str(LEASE_S))
    receivers = [serve(*common, "--workers", "0", extra_env=env) for _ in range(2)]
    first_worker = serve(*common, "--workers", "6", extra_env=env)
    caddy = Caddy(tmp_path, [f"127.0.0.1:{r.port}" for r in receivers])
    try:
        sender = Sender(caddy.url, DELIVERIES)
        threads = [threading.Thread(target=sender.run) for _ in range(SENDERS)]
        for thread in threads:
            thread.start()
        # the first worker is the only one: whatever deploy lock is held, it holds
        serving.wait(lambda: bool(rows(database, LOCKED)), timeout=60)
        first = {str(owner).rsplit("-", 1)[0] for _, owner in rows(database, LOCKED)}
        second_worker = serve(*common, "--workers", "6", extra_env=env)
        serving.wait(lambda: len(sender.acked) >= DELIVERIES // 3, timeout=600)
        os.kill(receivers[0].proc.pid, signal.SIGKILL)
        # kill whichever worker holds the deploy lock the moment one is seen held (one
        # deploy lane: waiting for a given worker to win it is a race on a loaded machine)
        held: list[tuple[Any, ...]] = []
        victim: list[Any] = []

        def a_worker_holds_a_lock() -> bool:
            held[:] = rows(database, LOCKED)
            if not held:
                return False
            mine = [r for r in held if str(r[1]).rsplit("-", 1)[0] in first]
            if mine:
                held[:], victim[:] = mine, [first_worker, second_worker]
            else:
                victim[:] = [second_worker, first_worker]
            os.kill(victim[0].proc.pid, signal.SIGKILL)  # while it holds a deploy lock
            return True

        serving.wait(a_worker_holds_a_lock, timeout=120)
        killed_at = time.time()
        for thread in threads:
            thread.join(max(1.0, killed_at + 900 - time.time()))
        assert not any(t.is_alive() for t in threads)

        def drained() -> bool:
            [(open_,)] = rows(
                database, "SELECT count(*) FROM events WHERE status IN ('queued', 'running')"
            )
            return open_ == 0

        serving.wait(drained, timeout=240)
    finally:
        caddy.stop()
    assert len(sender.acked) == DELIVERIES  # the live receiver took the dead one's share

    # every acknowledged delivery is stored exactly once, under the id it was answered with
    stored = rows(database, "SELECT idempotency_key, id, status FROM events")
    per_key = Counter(key for key, _, _ in stored)
    assert {k: n for k, n in per_key.items() if n != 1} == {}
    ids = {key: event_id for key, event_id, _ in stored}
    assert {k: i for k, i in sender.acked.items() if ids.get(k) != i} == {}
    statuses = Counter(Status(s) for _, _, s in stored)
    assert set(statuses) <= {Status.DONE, Status.SUPERSEDED}, statuses

    # every event's pipeline dispatched exactly once (superseded ones never)
    builds = Counter(b.parameters["CONVEYOR_EVENT_ID"] for b in emulator.triggered_builds())
    done = {str(i) for _, i, s in stored if s == Status.DONE.value}
    assert {i: builds[i] for i in done if builds[i] != 1} == {}
    assert set(builds) == done

    # the dead worker's deploy lock lapsed with its lease: another worker took its event
    assert rows(database, "SELECT * FROM deploy_locks") == []
    expired = []
    for event_id, owner in held:
        attempts = rows(
            database,
            "SELECT owner, outcome, ended_at FROM event_attempts"
            f" WHERE event_id = {int(event_id)} ORDER BY id",
        )
        mine = [a for a in attempts if a[0] == owner]
        if mine[-1][1] == "done":
            continue  # it finished between the look and the kill
        assert mine[-1][1] == "lease expired", attempts
        # not taken before its lease ran out (its last heartbeat was at most a poll before)
        assert mine[-1][2] >= killed_at + LEASE_S - 2.5, (killed_at, attempts)
        assert attempts[-1][1] == "done" and attempts[-1][0] != owner, attempts
        expired.append(event_id)
    assert expired, f"the killed worker held no deploy lock at the kill: {held}"
    assert victim[1].proc.poll() is None and receivers[1].proc.poll() is None
