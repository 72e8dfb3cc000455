"""``conveyor serve`` as a real process: kill -9 mid-burst, SIGTERM with running work, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from conveyor.receiver.queue import EventQueue, Status, database_path
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.receiver import payloads as p
from tests.receiver.conftest import free_port
from tests.receiver.test_dispatch_e2e import job_xml


class Serve:
    """One ``conveyor serve`` subprocess; killed at teardown whatever happens."""

    def __init__(self, specs: list[Path], state: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state.parent / f"serve-{self.port}.log"
        self._log_file = self.log.open("wb")
        cmd = [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "serve",
            *map(str, specs),
            "--port",
            str(self.port),
            "--state",
            str(state),
            *args,
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("serve did not start:\n" + self.log.read_text())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()


@pytest.fixture
def serve(spec_paths: list[Path], tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []
    env = {
        **os.environ,
        "CONVEYOR_SECRET": p.SECRET,
        "CONVEYOR_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    for name in list(env):
        if name.startswith("CONVEYOR_") and name not in ("CONVEYOR_SECRET", "CONVEYOR_CONFIG"):
            del env[name]

    def start(*args: str, extra_env: dict[str, str] | None = None) -> Serve:
        server = Serve(spec_paths, tmp_path / "state", {**env, **(extra_env or {})}, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def drained(db: Path) -> bool:
    queue = EventQueue(db)
    try:
        counts = queue.counts()
    finally:
        queue.close()
    return counts[Status.QUEUED] == 0 and counts[Status.RUNNING] == 0


def wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_mid_burst_loses_no_acknowledged_event(serve: Any, tmp_path: Path) -> None:
    server = serve("--dispatch", "none", "--workers", "2", "--log-level", "warning")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for i in range(2000):
                if stop.is_set():
                    return
                payload = p.push(branch=f"release/{worker}-{i}")
                key = f"burst-{worker}-{i}"
                try:
                    answer = client.post(
                        "/hooks/gitlab",
                        content=p.body(payload),
                        headers=p.headers(payload, key=key),
                    )
                except httpx.TransportError:
                    return
                if 200 <= answer.status_code < 300:
                    with lock:
                        acked.append(key)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    wait(lambda: len(acked) >= 300)
    os.kill(server.proc.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(30)
    server.proc.wait(10)
    db = database_path(tmp_path / "state")
    restarted = serve("--dispatch", "none", "--workers", "2", "--log-level", "warning")
    wait(lambda: drained(db))
    # Resending every acknowledged delivery is recognised, not stored again.
    with httpx.Client(base_url=restarted.url, timeout=5) as client:
        for key in acked[:50]:
            worker, i = key.removeprefix("burst-").split("-")
            payload = p.push(branch=f"release/{worker}-{i}")
            answer = client.post(
                "/hooks/gitlab", content=p.body(payload), headers=p.headers(payload, key=key)
            )
            assert answer.status_code == 200 and answer.json()["duplicate"] is True
    queue = EventQueue(db)
    try:
        records = queue.list_events(limit=100000)
    finally:
        queue.close()
    by_key: dict[str | None, list[Any]] = {}
    for record in records:
        by_key.setdefault(record.idempotency_key, []).append(record)
    missing = [k for k in acked if k not in by_key]
    assert missing == []
    assert all(len(rows) == 1 for rows in by_key.values())
    assert all(r.status is Status.DONE for r in records), {r.status for r in records}
    assert all(r.finished_at is not None for r in records)


@pytest.mark.slow
def test_sigterm_releases_running_work_and_restart_resumes_the_same_build(
    serve: Any, tmp_path: Path, make_jenkins_emulator: Any
) -> None:
    import jenkins

    emulator = make_jenkins_emulator(build_duration=3.0)
    api = jenkins.Jenkins(emulator.url, JENKINS_USER, JENKINS_API_TOKEN)
    api.create_folder("demo")
    api.create_job("demo/app", job_xml(tmp_path))
    env = {
        "CONVEYOR_JENKINS_URL": emulator.url,
        "CONVEYOR_JENKINS_USER": JENKINS_USER,
        "CONVEYOR_JENKINS_TOKEN": JENKINS_API_TOKEN,
    }
    server = serve("--dispatch", "auto", "--grace", "0", extra_env=env)
    payload = p.push()
    event_id = httpx.post(
        server.url + "/hooks/gitlab", content=p.body(payload), headers=p.headers(payload)
    ).json()["id"]
    db = database_path(tmp_path / "state")

    def record() -> Any:
        queue = EventQueue(db)
        try:
            return queue.get(event_id)
        finally:
            queue.close()

    wait(lambda: (record().dispatch_state or {}).get("build_number") == 1)
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert server.proc.wait(30) in (0, -signal.SIGTERM)
    logged = [
        json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")
    ]
    assert any(entry.get("msg") == "receiver stopped" for entry in logged)
    released = record()
    assert released.status is Status.QUEUED and released.attempts == 0
    assert released.dispatch_state["queue_id"] == 1
    serve("--dispatch", "auto", extra_env=env)
    wait(lambda: record().status is Status.DONE)
    assert len(emulator.triggered_builds("demo/app")) == 1  # followed, not triggered again
    assert record().result_url.endswith("/job/demo/job/app/1/")


def test_second_server_on_the_same_state_is_refused(
    serve: Any, spec_paths: list[Path], tmp_path: Path
) -> None:
    serve("--dispatch", "none")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "serve",
            *map(str, spec_paths),
            "--state",
            str(tmp_path / "state"),
            "--dispatch",
            "none",
            "--port",
            str(free_port()),
        ],
        env={"CONVEYOR_SECRET": p.SECRET, "CONVEYOR_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code != 0
    assert "another `conveyor serve` is using the event queue" in result.output


def test_events_cli_list_show_replay(serve: Any, tmp_path: Path) -> None:
    server = serve("--dispatch", "none")
    payload = p.push()
    first = httpx.post(
        server.url + "/hooks/gitlab", content=p.body(payload), headers=p.headers(payload)
    ).json()
    ignored = httpx.post(
        server.url + "/hooks/gitlab",
        content=p.body(p.push(after=p.ZERO)),
        headers=p.headers(p.push(after=p.ZERO)),
    ).json()
    db = database_path(tmp_path / "state")
    wait(lambda: drained(db))
    runner = CliRunner()
    env = {
        "CONVEYOR_STATE": str(tmp_path / "state"),
        "CONVEYOR_CONFIG": str(tmp_path / "none.toml"),
    }
    listed = runner.invoke(cli, ["events", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert [(e["id"], e["status"]) for e in data] == [
        (ignored["id"], "ignored"),
        (first["id"], "done"),
    ]
    only = runner.invoke(cli, ["events", "list", "--status", "ignored"], env=env)
    assert "branch deleted" in only.output and "done" not in only.output
    shown = runner.invoke(cli, ["events", "show", str(first["id"]), "--json"], env=env)
    assert json.loads(shown.output)["payload"]["after"] == p.SHA_B
    assert p.SECRET not in shown.output
    replayed = runner.invoke(cli, ["events", "replay", str(first["id"])], env=env)
    assert replayed.exit_code == 0 and "queued again as event" in replayed.output
    wait(lambda: drained(db))
    again = json.loads(runner.invoke(cli, ["events", "list", "--json"], env=env).output)
    assert again[0]["replay_of"] == first["id"] and again[0]["status"] == "done"
    as_json = runner.invoke(cli, ["events", "replay", str(first["id"]), "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    replay = json.loads(as_json.output)
    assert replay["replay_of"] == first["id"] and replay["id"] > again[0]["id"]
    wait(lambda: drained(db))
    refused = runner.invoke(cli, ["events", "replay", str(ignored["id"])], env=env)
    assert refused.exit_code == 1 and "was ignored" in refused.output
    flag = runner.invoke(cli, ["events", "list", "--state", str(tmp_path / "nowhere")], env=env)
    assert flag.exit_code == 1 and "no event queue" in flag.output
    # Structured logs: one JSON object per line, each event's lines carry its id, no secrets.
    log_text = server.log.read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    stored = [line for line in lines if line["msg"] == "event stored"]
    assert {line["event_id"] for line in stored} == {first["id"], ignored["id"]}
    assert any(line.get("event_id") == first["id"] and line["msg"] == "finished" for line in lines)
    token = p.headers(payload)["X-Gitlab-Token"]
    assert token not in log_text and p.SECRET not in log_text
