"""The deploy history lives on the deploy's engine: records, the engine-wide lock, migration of old
local history, and deploy -> history -> rollback from different agent containers run as Jenkins runs
them (uid 1000, ``HOME=/``, no passwd entry, the socket's group added; jenkins.md "Container user")."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from conveyor.docker.deploy.docker import remove_deploy
from conveyor.docker.deploy.proxy import ensure_proxy_image
from conveyor.docker.history import DeployHistory, holder_name, lock_name, volume_name
from conveyor.errors import DeployError
from tests.docker.deploy_support import build_app, get, wait_body
from tests.docker.fixtures import free_port

pytestmark = pytest.mark.docker

SOCKET = "/var/run/docker.sock"


@pytest.fixture
def history(
    docker_client: docker.DockerClient, unique: Callable[[str], str]
) -> Iterator[DeployHistory]:
    name = unique("hist")
    yield DeployHistory(docker_client, name)
    remove_deploy(docker_client, name, volumes=True)


def _record(history: DeployHistory, image: str, result: str, action: str = "deploy") -> int:
    rid = history.start(
        target="docker",
        action=action,
        spec="s.yml",
        project="g/p",
        image=image,
        previous_image=None,
    )
    history.finish(rid, result, image_id=f"id-{image}", digest=f"sha256:{image}")  # type: ignore[arg-type]
    return rid


def test_records_live_in_a_labelled_volume_on_the_engine(
    history: DeployHistory, docker_client: docker.DockerClient
) -> None:
    assert not history.exists() and history.records() == []
    assert history.read_file("deploys.jsonl") is None  # reading creates nothing
    assert not docker_client.volumes.list(filters={"name": volume_name(history.name)})
    with pytest.raises(DeployError, match="no successful deploy"):
        history.rollback_target()
    assert [_record(history, v, r) for v, r in [("v1", "success"), ("v2", "success")]] == [1, 2]
    _record(history, "v3", "failure")
    assert history.rollback_target().image == "v1"  # v2 serves; v3 never did
    _record(history, "v1", "success", "rollback")
    assert history.rollback_target().image == "v2"
    records = history.records()
    assert [(r.id, r.image) for r in records] == [(4, "v1"), (3, "v3"), (2, "v2"), (1, "v1")]
    assert records[1].result == "failure" and records[1].digest == "sha256:v3"
    current = history.current()
    assert current is not None and current.id == 4

    volume = docker_client.volumes.get(volume_name(history.name))
    assert volume.attrs["Labels"]["conveyor.deploy"] == history.name
    holder = docker_client.containers.get(holder_name(history.name))
    assert holder.status == "created"  # never started: no process runs for the history
    # another client of the same engine (another agent) sees the same records
    other = DeployHistory(docker.DockerClient(base_url=f"unix://{SOCKET}"), history.name)
    assert other.records() == records


def test_one_deploy_of_a_name_at_a_time_engine_wide(
    history: DeployHistory, docker_client: docker.DockerClient, unique: Callable[[str], str]
) -> None:
    with history.lock():
        assert docker_client.containers.get(lock_name(history.name)).status == "created"
        other_client = DeployHistory(docker_client, history.name)
        with (
            pytest.raises(DeployError, match=r"another deploy of .* is running") as held,
            other_client.lock(),
        ):
            pass  # pragma: no cover - never entered
        assert f"docker rm {lock_name(history.name)}" in (held.value.hint or "")
        with DeployHistory(docker_client, unique("other")).lock():  # other names are independent
            pass
        # a lock older than the stale limit (its owner died elsewhere) is taken over
        with other_client.lock(stale_after=0):
            pass
    with history.lock():  # released
        pass
    assert not docker_client.containers.list(all=True, filters={"name": lock_name(history.name)})


def test_local_history_of_older_versions_is_copied_to_the_engine_once(
    history: DeployHistory, tmp_path: Path
) -> None:
    db = sqlite3.connect(tmp_path / "deploys.sqlite")
    db.executescript(
        "CREATE TABLE deploys (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, target TEXT,"
        " action TEXT, spec TEXT, project TEXT, image TEXT, image_id TEXT, digest TEXT,"
        " previous_image TEXT, started TEXT, finished TEXT, result TEXT, message TEXT);"
    )
    rows = [
        (history.name, "v1", None, "success"),
        ("someone-else", "x1", None, "success"),
        (history.name, "v2", "v1", "success"),
    ]
    for name, image, previous, result in rows:
        db.execute(
            "INSERT INTO deploys (name, target, action, spec, project, image, image_id, digest,"
            " previous_image, started, finished, result, message) VALUES"
            " (?, 'docker', 'deploy', 's.yml', 'g/p', ?, ?, 'sha256:d', ?,"
            " '2026-11-30T10:00:00+00:00', '2026-11-30T10:00:05+00:00', ?, 'ok')",
            (name, image, f"id-{image}", previous, result),
        )
    db.commit()
    db.close()
    before = (tmp_path / "deploys.sqlite").read_bytes()

    assert history.migrate_from(tmp_path) == 2
    assert [(r.id, r.image, r.previous_image) for r in history.records()] == [
        (2, "v2", "v1"),
        (1, "v1", None),
    ]
    assert history.rollback_target().image == "v1"
    assert history.migrate_from(tmp_path) == 0  # the engine has a history now: never again
    assert (tmp_path / "deploys.sqlite").read_bytes() == before  # only read


SPEC = """\
apiVersion: conveyor/v1
project: demo/agent-web
jenkins:
  job: demo/agent-web
  agent: {{docker: {mode}}}
stages:
  - name: deploy
    deploy:
      name: {name}
      ports: ["{port}:8080"]
      health: {{http: /healthz, timeout: 10s, interval: 200ms}}
"""


class Agents:
    """Runs ``conveyor`` in a fresh agent container each time, as docker-workflow runs a step:
    ``-u 1000:1000`` (no passwd entry), ``HOME=/``, the socket mounted with its group added, only
    the given variables in the environment, the spec directory read-only."""

    def __init__(self, client: docker.DockerClient, image: str, spec_dir: Path) -> None:
        self.client = client
        self.image = image
        self.spec_dir = spec_dir
        self.gid = os.stat(SOCKET).st_gid
        self.containers: list[str] = []

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        container = self.client.containers.create(
            self.image,
            ["conveyor", *args],
            user="1000:1000",
            group_add=[str(self.gid)],
            environment={"HOME": "/", **(env or {})},
            volumes={
                SOCKET: {"bind": SOCKET, "mode": "rw"},
                str(self.spec_dir): {"bind": "/spec", "mode": "ro"},
            },
            working_dir="/spec",
        )
        self.containers.append(str(container.id))
        try:
            container.start()
            code = int(container.wait(timeout=300)["StatusCode"])
            out = container.logs(stdout=True, stderr=False).decode()
            err = container.logs(stdout=False, stderr=True).decode()
        finally:
            container.remove(force=True, v=True)
        return code, out, err


@pytest.fixture
def agents(
    docker_client: docker.DockerClient, agent_image: str, tmp_path: Path
) -> Iterator[Agents]:
    ensure_proxy_image(docker_client)  # the host builds it (from its caddy) if it is missing
    tmp_path.chmod(0o755)
    yield Agents(docker_client, agent_image, tmp_path)


def test_deploy_history_rollback_from_different_agent_containers(
    docker_client: docker.DockerClient,
    unique: Callable[[str], str],
    agents: Agents,
    tmp_path: Path,
) -> None:
    name, repo, port = unique("agentweb"), unique("app"), free_port()
    v1, v2 = f"{repo}:v1", f"{repo}:v2"
    build_app(docker_client, v1, "v1")
    build_app(docker_client, v2, "v2")
    (tmp_path / "conveyor.yml").write_text(SPEC.format(mode="socket", name=name, port=port))
    url = f"http://127.0.0.1:{port}/version"
    try:
        code, out, err = agents.run("deploy", "conveyor.yml", "--image", v1, "--json")
        assert code == 0, err
        assert json.loads(out)["image"] == v1
        assert get(url) == (200, "v1")
        code, out, err = agents.run("deploy", "conveyor.yml", "--image", v2)
        assert code == 0, err
        assert f"previous: {v1}" in out
        assert get(url) == (200, "v2")

        code, out, err = agents.run("history", "conveyor.yml", "--json")  # a third container
        assert code == 0, err
        assert [(r["image"], r["result"]) for r in json.loads(out)] == [
            (v2, "success"),
            (v1, "success"),
        ]
        code, out, err = agents.run("rollback", "conveyor.yml", "--json")  # and a fourth
        assert code == 0, err
        assert json.loads(out)["image"] == v1
        assert get(url) == (200, "v1")

        records = DeployHistory(docker_client, name).records()  # and from the host
        assert [(r.action, r.image) for r in records] == [
            ("rollback", v1),
            ("deploy", v2),
            ("deploy", v1),
        ]
        app = docker_client.containers.get(f"{name}-blue")
        assert app.labels["conveyor.record"] == "3"  # the record that started it
    finally:
        remove_deploy(docker_client, name, volumes=True)


def test_dind_mode_deploys_to_the_host_engine_not_the_stages_daemon(
    docker_client: docker.DockerClient,
    unique: Callable[[str], str],
    agents: Agents,
    tmp_path: Path,
) -> None:
    """With ``agent.docker: dind`` DOCKER_HOST names the stage's nested daemon, which ``withRun``
    removes when the stage ends (jenkins.md). Here it names a daemon already gone: the deploy still
    lands on the host's engine, and CONVEYOR_DEPLOY_HOST chooses the engine in any mode."""
    name, repo, port = unique("dindweb"), unique("app"), free_port()
    v1 = f"{repo}:v1"
    build_app(docker_client, v1, "v1")
    (tmp_path / "conveyor.yml").write_text(SPEC.format(mode="dind", name=name, port=port))
    gone = {"DOCKER_HOST": "tcp://127.0.0.1:9", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/x"}
    try:
        code, _, err = agents.run("deploy", "conveyor.yml", "--image", v1, env=gone)
        assert code == 0, err
        assert wait_body(f"http://127.0.0.1:{port}/version", "v1") == "v1"

        (tmp_path / "conveyor.yml").write_text(SPEC.format(mode="socket", name=name, port=port))
        code, _, err = agents.run("history", "conveyor.yml", env=gone)  # socket: DOCKER_HOST
        assert code != 0 and "DOCKER_HOST=tcp://127.0.0.1:9" in err
        chosen = {**gone, "CONVEYOR_DEPLOY_HOST": f"unix://{SOCKET}"}
        code, out, err = agents.run("history", "conveyor.yml", "--json", env=chosen)
        assert code == 0, err
        assert [r["image"] for r in json.loads(out)] == [v1]
    finally:
        remove_deploy(docker_client, name, volumes=True)
