"""`conveyor demo` end to end: twice in a row, then after --down; and its checks fail loudly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor.demo.loop import Demo, DemoFailed
from conveyor.demo.probe import Probe

pytestmark = pytest.mark.docker


def conveyor(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", *args, "--state", str(state)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_demo_twice_then_after_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        versions = []
        for _ in range(2):
            res = conveyor(state, "demo", "--json")
            assert res.returncode == 0, res.stderr[-3000:]
            data = json.loads(res.stdout)
            assert data["ok"] is True
            assert [s["name"] for s in data["steps"]][-2:] == [
                "push 1: test, build, push, blue-green deploy (first version)",
                "push 2: a code change takes over with no failed requests",
            ]
            assert data["probe"]["failures"] == 0 and data["probe"]["requests"] > 50
            seen = data["probe"]["versions_seen"]
            assert seen[-1].startswith("hello again from hello-web ") and seen[-1].endswith(
                data["versions"][1]
            )
            assert all(Path(p).is_file() for p in data["rendered"])
            versions.append(tuple(data["versions"]))
            assert not (state / "demo" / "demo.json").exists(), "processes were left running"
        assert versions[0] != versions[1]
        down = conveyor(state, "demo", "--down")
        assert down.returncode == 0, down.stderr
        assert not (state / "demo").exists()
        again = conveyor(state, "demo")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "0 failed" in again.stdout
    finally:
        conveyor(state, "demo", "--down")


class _Fixed(BaseHTTPRequestHandler):
    version = "old"

    def do_GET(self) -> None:
        body = (self.version if self.path == "/version" else "hello").encode()
        self.send_response(200 if self.path != "/boom" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fixed_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_serving_check_fails_loudly_when_the_new_version_never_arrives(
    tmp_path: Path, fixed_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("conveyor.demo.loop.SERVICE_PORT", fixed_server)
    demo = Demo(tmp_path, receiver_port=1, keep=False, report=lambda s: None)
    with pytest.raises(DemoFailed, match="did not serve version new-sha"):
        demo.serving("new-sha", timeout=0.5)
    assert demo.serving("old", timeout=5) == "hello"


def test_probe_counts_failures(fixed_server: int) -> None:
    probe = Probe(f"http://127.0.0.1:{fixed_server}/boom", rate=100).start()
    import time

    deadline = time.monotonic() + 60  # a count, not a timing: a loaded machine only takes longer
    while probe.sent < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    result = probe.stop()
    assert result.requests > 5 and result.failures == result.requests
    assert result.failure_kinds == {"HTTP 500": result.requests}


def test_wait_event_fails_loudly_for_an_unknown_event(tmp_path: Path) -> None:
    from conveyor.receiver.queue import database_path, open_database

    (tmp_path / "state").mkdir()
    open_database(database_path(tmp_path / "state")).close()
    demo = Demo(tmp_path, receiver_port=1, keep=False, report=lambda s: None)
    with pytest.raises(DemoFailed, match="was not processed within"):
        demo.wait_event(12345, timeout=0.3)


@pytest.mark.usefixtures("jenkins_emulator")
def test_demo_shows_the_plan_against_configured_gitlab_and_jenkins(
    gitlab_emulator: Any, jenkins_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.demo.loop import show_plan
    from conveyor.demo.repo import find_example
    from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER

    spec = find_example("hello-web") / "conveyor.yml"
    monkeypatch.delenv("CONVEYOR_GITLAB_URL", raising=False)
    assert show_plan(spec) is None  # not configured: nothing to show
    env = {
        "CONVEYOR_GITLAB_URL": gitlab_emulator.url,
        "CONVEYOR_GITLAB_TOKEN": gitlab_emulator.tokens["maintainer"],
        "CONVEYOR_JENKINS_URL": jenkins_emulator.url,
        "CONVEYOR_JENKINS_USER": JENKINS_USER,
        "CONVEYOR_JENKINS_TOKEN": JENKINS_API_TOKEN,
        "CONVEYOR_WEBHOOK_URL": "https://conveyor.example.com",
        "CONVEYOR_SECRET": "demo-plan-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = show_plan(spec)
    assert plan is not None
    assert plan["summary"]["jobs"] == {"create": 1}
    assert plan["summary"]["hooks"] == {"create": 1}
    assert gitlab_emulator.log.count_writes() == 0 and jenkins_emulator.log.count_writes() == 0


@pytest.mark.usefixtures("jenkins_emulator")
def test_demo_plan_reads_the_settings_like_every_command(
    gitlab_emulator: Any, jenkins_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The demo's plan takes its settings where `conveyor plan` does (here: the config file)."""
    from conveyor.config import setting_variables
    from conveyor.demo.loop import show_plan
    from conveyor.demo.repo import find_example
    from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER

    for name in setting_variables():
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        f'gitlab_url = "{gitlab_emulator.url}"\n'
        f'gitlab_token = "{gitlab_emulator.tokens["maintainer"]}"\n'
        f'jenkins_url = "{jenkins_emulator.url}"\n'
        f'jenkins_user = "{JENKINS_USER}"\n'
        f'jenkins_token = "{JENKINS_API_TOKEN}"\n'
        'webhook_url = "https://conveyor.example.com"\n'
        'secret = "demo-plan-secret"\n'
    )
    monkeypatch.setenv("CONVEYOR_CONFIG", str(config))
    plan = show_plan(find_example("hello-web") / "conveyor.yml")
    assert plan is not None and plan["summary"]["jobs"] == {"create": 1}
    assert gitlab_emulator.log.count_writes() == 0 and jenkins_emulator.log.count_writes() == 0
