"""Dispatch to the local Docker runner, end to end: webhook -> checkout -> stages -> statuses."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from conveyor.config import Settings
from conveyor.receiver.queue import Status
from conveyor.receiver.worker import WorkerOptions
from conveyor.runner.dispatcher import LocalDispatcher
from tests.receiver import payloads as p
from tests.receiver.test_app import rows, send

pytestmark = pytest.mark.docker

SPEC = """\
apiVersion: conveyor/v1
project: demo/app
triggers:
  push:
    branches: [main]
jenkins:
  job: demo/app
stages:
  - name: STAGE
    image: busybox:latest
    run:
      - test "$(cat hello.txt)" = "hello from $gitlabBranch"
      - test "$gitlabActionType" = PUSH
"""


STAGE = f"receiver-check-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def spec_paths(tmp_path: Path) -> list[Path]:
    path = tmp_path / "specs" / "local.yml"
    path.parent.mkdir()
    path.write_text(SPEC.replace("STAGE", STAGE))
    return [path]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "git" / "demo" / "app.git"  # what CONVEYOR_GIT_URL=file://<tmp>/git names
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch", "main")
    return path


def commit(repo: Path, content: str) -> str:
    (repo / "hello.txt").write_text(content)
    git(repo, "add", "hello.txt")
    git(repo, "commit", "--quiet", "-m", f"set {content}")
    return git(repo, "rev-parse", "HEAD")


def local_push(repo: Path, sha: str, project_id: int) -> dict[str, Any]:
    data = p.for_project(p.push(after=sha), project_id)
    data["project"]["git_http_url"] = "http://127.0.0.1:9/never/used.git"
    return data


def test_local_runner_builds_the_pushed_commit_and_reports_statuses(
    start_receiver: Any, repo: Path, gitlab_emulator: Any, tmp_path: Path
) -> None:
    client = docker.from_env()
    good = commit(repo, "hello from main")
    bad = commit(repo, "something else")
    settings = Settings(
        secret=p.SECRET,
        state_dir=tmp_path / "state",
        gitlab_url=gitlab_emulator.url,
        git_url=(tmp_path / "git").as_uri(),
        gitlab_token=gitlab_emulator.tokens["maintainer"],
    )
    running = start_receiver(
        settings=settings,
        dispatcher=LocalDispatcher(settings, poll_s=0.1),
        worker_options=WorkerOptions(workers=1, poll_s=0.05),
    )
    ok_id = send(running, local_push(repo, good, gitlab_emulator.project("demo/app").id)).json()[
        "id"
    ]
    running.wait_for(
        lambda: rows(running)[0].status in (Status.DONE, Status.FAILED, Status.DEAD), 120
    )
    fail_id = send(running, local_push(repo, bad, gitlab_emulator.project("demo/app").id)).json()[
        "id"
    ]
    running.wait_for(
        lambda: (
            next(r for r in rows(running) if r.id == fail_id).status
            in (Status.DONE, Status.FAILED, Status.DEAD)
        ),
        120,
    )
    by_id = {r.id: r for r in rows(running)}
    assert by_id[ok_id].status is Status.DONE, by_id[ok_id].reason
    assert by_id[fail_id].status is Status.FAILED and by_id[fail_id].attempts == 1
    assert f"failed at '{STAGE}'" in (by_id[fail_id].reason or "")
    running.wait_for(lambda: len(gitlab_emulator.statuses("demo/app", bad)) >= 3)
    assert [s.state for s in gitlab_emulator.statuses("demo/app", good)] == [
        "pending",
        "running",
        "success",
    ]
    assert [s.state for s in gitlab_emulator.statuses("demo/app", bad)] == [
        "pending",
        "running",
        "failed",
    ]
    assert client.containers.list(all=True, filters={"label": f"conveyor.stage={STAGE}"}) == []
    assert not (tmp_path / "state" / "work" / f"event-{ok_id}").exists()


SLOW_SPEC = """\
apiVersion: conveyor/v1
project: demo/app
triggers: {push: {branches: [main]}}
jenkins: {job: demo/app}
stages:
  - name: STAGE
    image: busybox:latest
    run: ["sleep 300"]
"""


def test_kill_9_during_a_local_stage_fails_the_event_instead_of_running_it_twice(
    tmp_path: Path, repo: Path
) -> None:
    """The run got past its point of no return (a stage started): after the crash the event is
    failed with the stage named, the run is recorded as crashed, nothing runs twice, and the stage
    container the dead receiver left running is removed."""
    import docker

    from conveyor.receiver.queue import EventQueue, database_path
    from conveyor.runner.history import History
    from tests.receiver.test_serve_process import Serve, wait

    spec = tmp_path / "slow" / "app.yml"
    spec.parent.mkdir()
    spec.write_text(SLOW_SPEC.replace("STAGE", STAGE))
    state = tmp_path / "state"
    (tmp_path / "none.toml").write_text("")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("CONVEYOR_")} | {
        "CONVEYOR_SECRET": p.SECRET,
        "CONVEYOR_CONFIG": str(tmp_path / "none.toml"),
        "CONVEYOR_GIT_URL": (tmp_path / "git").as_uri(),
    }
    args = ("--dispatch", "local", "--workers", "1", "--log-level", "warning")
    server = Serve([spec], state, env, *args)
    db = database_path(state)

    def record() -> Any:
        queue = EventQueue(db)
        try:
            return queue.get(event_id)
        finally:
            queue.close()

    try:
        payload = local_push(repo, commit(repo, "hello from main"), 1)
        event_id = server_post(server.url, payload)
        wait(lambda: "stage" in ((record().dispatch_state or {}).get("local") or {}), 60)
        engine = docker.from_env()
        mine = {"label": [f"conveyor.stage={STAGE}"]}
        wait(lambda: bool(engine.containers.list(filters=mine)), 60)
        server.proc.kill()
        server.proc.wait(10)
    finally:
        server.stop()
    assert engine.containers.list(filters=mine), "the stage container outlives its receiver"
    restarted = Serve([spec], state, env, *args)
    try:
        wait(lambda: record().status is Status.FAILED, 60)
    finally:
        restarted.stop()
    final = record()
    assert list((state / "work").iterdir()) == []  # the dead attempt's checkout was removed
    assert f"cut off by a crash during stage '{STAGE}'" in (final.reason or "")
    runs = [r for r in History(state).list(100) if r.trigger["extra"].get("CONVEYOR_EVENT_ID")]
    assert [(r.trigger["extra"]["CONVEYOR_EVENT_ID"], r.status) for r in runs] == [
        (str(event_id), "crashed")
    ]
    queue = EventQueue(db)
    try:
        attempts = queue.attempts_for(event_id)
    finally:
        queue.close()
    assert [a["outcome"] for a in attempts] == ["interrupted", "failed"]
    assert "not run again" in attempts[1]["note"]
    assert engine.containers.list(all=True, filters=mine) == []
    assert "removed 1 container(s) run #" in attempts[1]["note"]


def server_post(url: str, payload: dict[str, Any]) -> int:
    import httpx

    answer = httpx.post(url + "/hooks/gitlab", content=p.body(payload), headers=p.headers(payload))
    assert answer.status_code == 202, answer.text
    return int(answer.json()["id"])
