"""The dashboard over real work on the real Docker engine: a local run's log streaming live, and
the rollback button rolling a real deploy back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from playwright.sync_api import Page, expect

from conveyor.docker.deploy import deploy
from conveyor.docker.deploy.docker import remove_deploy
from conveyor.docker.deploy.stage import request_from_file
from conveyor.receiver.queue import EventQueue, database_path
from tests.dashboard.conftest import TOKEN
from tests.docker.deploy_support import build_app, get
from tests.docker.fixtures import free_port
from tests.receiver import payloads as p
from tests.receiver.test_local_dispatch import commit, git

pytestmark = pytest.mark.docker

RUN_SPEC = """\
apiVersion: conveyor/v1
project: demo/app
triggers: {push: {branches: [main]}}
jenkins: {job: demo/app}
stages:
  - name: STAGE
    image: busybox:latest
    run:
      - echo first-line
      - sleep 8
      - echo second-line
"""


def test_run_page_streams_log_lines_while_the_stage_runs(
    serve: Any, tmp_path: Path, page: Page, unique: Callable[[str], str], page_errors: list[str]
) -> None:
    stage = unique("printer")
    spec = tmp_path / "specs" / "app.yml"
    spec.parent.mkdir()
    spec.write_text(RUN_SPEC.replace("STAGE", stage))
    repo = tmp_path / "git" / "demo" / "app.git"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch", "main")
    sha = commit(repo, "hello")
    server = serve(
        [spec],
        "--dispatch",
        "local",
        "--workers",
        "1",
        CONVEYOR_GIT_URL=(tmp_path / "git").as_uri(),
    )
    data = p.push(after=sha)
    data["project"]["git_http_url"] = "http://127.0.0.1:9/never/used.git"
    event = server.send(data).json()["id"]

    db = database_path(server.state)
    deadline = time.monotonic() + 120
    number = None
    while number is None:
        assert time.monotonic() < deadline, "the run did not start"
        queue = EventQueue(db)
        try:
            record = queue.get(event)
        finally:
            queue.close()
        number = ((record.dispatch_state or {}).get("local") or {}).get("run") if record else None
        time.sleep(0.2)

    page.goto(f"{server.url}/dashboard/runs/{number}")
    log = page.locator(f"section.log[data-stage='{stage}'] pre")
    expect(log).to_contain_text("first-line", timeout=60_000)
    # still running: the second line is not there yet, then arrives without a reload
    expect(page.locator("#run-status")).to_have_text("running")
    assert "second-line" not in log.inner_text()
    expect(log).to_contain_text("second-line", timeout=60_000)
    expect(page.locator("#run-status")).to_have_text("success", timeout=60_000)
    expect(page.locator(f"#pipeline .stage[data-stage='{stage}']")).to_have_class(
        "stage result-success"
    )
    # kept after the run: a fresh load shows the stage and its lines from the history
    page.reload()
    expect(log).to_contain_text("first-line")
    expect(log).to_contain_text("second-line")
    expect(page.locator(f"#pipeline .stage[data-stage='{stage}'] .time")).not_to_be_empty()
    assert page_errors == []


DEPLOY_SPEC = """\
apiVersion: conveyor/v1
project: demo/dash-web
jenkins:
  job: demo/dash-web
stages:
  - name: deploy
    deploy:
      name: {name}
      image: {image}
      ports: ["{port}:8080"]
      health:
        http: /healthz
        timeout: 3s
        interval: 200ms
"""


def test_rollback_button_rolls_back_a_real_deploy(
    serve: Any,
    tmp_path: Path,
    page: Page,
    docker_client: docker.DockerClient,
    unique: Callable[[str], str],
) -> None:
    name, repo, port = unique("dash"), unique("app"), free_port()
    v1, v2 = f"{repo}:v1", f"{repo}:v2"
    build_app(docker_client, v1, "v1")
    build_app(docker_client, v2, "v2")
    spec = tmp_path / "specs" / "web.yml"
    spec.parent.mkdir()
    spec.write_text(DEPLOY_SPEC.format(name=name, image=v1, port=port))
    state = tmp_path / "state"
    url = f"http://127.0.0.1:{port}/version"
    try:
        for image in (v1, v2):
            deploy(request_from_file(spec, None, image=image, workdir=tmp_path, state_dir=state))
        assert get(url) == (200, "v2")
        server = serve([spec], "--dispatch", "none", CONVEYOR_DASHBOARD_TOKEN=TOKEN)
        page.goto(server.url + "/dashboard/login")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.goto(server.url + "/dashboard/deploys")
        service = page.locator(f"section.service[data-deploy='{name}']")
        expect(service.locator("tr.current .image")).to_have_text(v2)
        service.locator("button.rollback").click()
        expect(page.locator("#notice")).to_have_text(f"{name} rolled back to {v1}", timeout=120_000)
        expect(service.locator("tr.current .image")).to_have_text(v1)
        expect(service.locator("tbody tr").first).to_contain_text("rollback")
        assert get(url) == (200, "v1")
    finally:
        remove_deploy(docker_client, name, volumes=True)
