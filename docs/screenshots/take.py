"""Take the README's dashboard screenshots: ``.venv/bin/python docs/screenshots/take.py``.

Starts a real ``conveyor serve`` (temp state, free port, local dispatch) with a spec that runs
and deploys, sends a few events (one with a hostile commit message and branch), waits for the
run, deploys two versions on the real engine, and saves one PNG per page here. Everything it
starts is removed at the end.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import docker
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.dashboard.conftest import TOKEN, Serve, base_env, chromium  # noqa: E402
from tests.docker.deploy_support import build_app  # noqa: E402
from tests.docker.fixtures import free_port  # noqa: E402
from tests.receiver import payloads as p  # noqa: E402
from tests.receiver.test_local_dispatch import commit, git  # noqa: E402

from conveyor.docker.deploy import deploy  # noqa: E402
from conveyor.docker.deploy.docker import remove_deploy  # noqa: E402
from conveyor.docker.deploy.stage import request_from_file  # noqa: E402

OUT = Path(__file__).parent
SPEC = """\
apiVersion: conveyor/v1
project: demo/app
triggers: {{push: {{branches: [main]}}}}
jenkins: {{job: demo/app}}
stages:
  - name: test
    image: busybox:latest
    run: ["echo running the tests", "sleep 2", "echo 12 passed"]
  - name: checks
    parallel:
      - name: lint
        image: busybox:latest
        run: ["echo lint clean"]
      - name: audit
        image: busybox:latest
        run: ["echo no advisories"]
  - name: deploy
    when: {{branch: never-here}}
    deploy:
      name: {name}
      image: {image}
      ports: ["{port}:8080"]
      health: {{http: /healthz, timeout: 3s, interval: 200ms}}
"""


def main() -> None:
    client = docker.from_env()
    tag = f"conveyor-shots-{int(time.time())}"
    name, v1, v2 = f"{tag}-web", f"{tag}-app:v1", f"{tag}-app:v2"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = tmp / "specs" / "app.yml"
        spec.parent.mkdir()
        spec.write_text(SPEC.format(name=name, image=v1, port=free_port()))
        repo = tmp / "git" / "demo" / "app.git"
        repo.mkdir(parents=True)
        git(repo, "init", "--quiet", "--initial-branch", "main")
        sha = commit(repo, "hello")
        build_app(client, v1, "v1")
        build_app(client, v2, "v2")
        state = tmp / "state"
        server = Serve(
            [spec],
            state,
            base_env(tmp, CONVEYOR_GIT_URL=(tmp / "git").as_uri(), CONVEYOR_DASHBOARD_TOKEN=TOKEN),
            "--dispatch",
            "local",
            "--workers",
            "1",
        )
        try:
            for image in (v1, v2):
                deploy(request_from_file(spec, None, image=image, workdir=tmp, state_dir=state))
            data = p.push(after=sha)
            data["project"]["git_http_url"] = "http://127.0.0.1:9/never/used.git"
            event = server.send(data).json()["id"]
            server.send(p.push(branch="feature/x", after=p.SHA_C))
            server.send(
                p.push(
                    branch='x"><img/src=x/onerror=alert(1)>',
                    message='<script>alert(1)</script>"><img src=x onerror=alert(1)>',
                )
            )
            with sync_playwright() as play:
                browser = play.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server.url + "/dashboard/login")
                page.fill("input[name=token]", TOKEN)
                page.click("button[type=submit]")
                page.goto(f"{server.url}/dashboard/runs/1")
                page.wait_for_selector("#run-status:text('success')", timeout=120_000)
                page.screenshot(path=OUT / "run.png", full_page=True)
                page.goto(server.url + "/dashboard/events")
                page.screenshot(path=OUT / "events.png", full_page=True)
                page.goto(f"{server.url}/dashboard/events/{event}")
                page.screenshot(path=OUT / "event.png", full_page=True)
                page.goto(server.url + "/dashboard/deploys")
                page.screenshot(path=OUT / "deploys.png", full_page=True)
                page.goto(server.url + "/dashboard/health")
                page.screenshot(path=OUT / "health.png", full_page=True)
                browser.close()
        finally:
            server.stop()
            remove_deploy(client, name, volumes=True)
            for image in (v1, v2):
                client.images.remove(image, force=True)


if __name__ == "__main__":
    main()
