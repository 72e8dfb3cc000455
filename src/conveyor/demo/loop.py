"""The demo's steps: validate and render, start a registry and the receiver, push twice, check.

Every step is timed and checked; a step that did not happen raises :class:`DemoFailed` naming it,
so the demo fails loudly instead of printing a success it did not earn.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conveyor.config import Settings, load_settings, setting_variables
from conveyor.demo import events, repo, services
from conveyor.demo.probe import Probe, ProbeResult
from conveyor.docker.credentials import ENV_PAIRS
from conveyor.docker.engine import connect, docker_errors
from conveyor.errors import ConveyorError
from conveyor.plugins.answers import render_files
from conveyor.receiver.queue import EventQueue, Status, database_path
from conveyor.spec.load import LoadedSpec, load_spec
from conveyor.sync import SyncContext, build_plan, required_settings
from conveyor.tokens import project_token

EXAMPLE = "hello-web"
REGISTRY_PORT = 5555  # the example spec pushes to localhost:5555
SERVICE_PORT = 8080  # the example spec's proxy port
FINAL = {Status.DONE, Status.FAILED, Status.DEAD, Status.IGNORED, Status.SUPERSEDED}
# The demo's receiver runs on the demo's own settings, registry and engine, never the caller's.
NOT_INHERITED = (
    *setting_variables(),
    *(name for pair in ENV_PAIRS for name in pair),
    "DOCKER_HOST",
)


class DemoFailed(ConveyorError):
    """A demo step did not happen as it must."""


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class DemoResult:
    ok: bool
    url: str
    steps: tuple[Step, ...]
    rendered: tuple[str, ...]
    versions: tuple[str, ...]
    switch_seconds: float
    probe: ProbeResult | None
    logs: dict[str, str]
    plan: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())


Report = Callable[[Step], None]


class Demo:
    def __init__(self, root: Path, *, receiver_port: int, keep: bool, report: Report) -> None:
        self.root = root
        self.receiver_port = receiver_port
        self.keep = keep
        self.report = report
        self.steps: list[Step] = []
        self.processes: list[services.Process] = []

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time a step; the body appends a one-line detail to the yielded list."""
        detail: list[str] = []
        started = time.monotonic()
        try:
            yield detail
        except ConveyorError as exc:
            raise DemoFailed(f"demo step '{name}' failed: {exc.message}", hint=exc.hint) from None
        step = Step(name, round(time.monotonic() - started, 2), "; ".join(detail))
        self.steps.append(step)
        self.report(step)

    # ------------------------------------------------------------------ steps

    def preflight(self) -> None:
        with self.step("check the Docker engine and base images") as d:
            client = connect()
            with docker_errors("looking up base images"):
                names = {t for img in client.images.list() for t in img.tags}
            missing = [i for i in ("python:3.11-slim",) if i not in names]
            if missing:
                raise DemoFailed(
                    f"base image(s) missing: {', '.join(missing)}",
                    hint="run ./dev.sh setup (builds local base images, no pulls)",
                )
            d.append(f"engine {client.version().get('Version', '?')}")

    def render(self, spec_path: Path) -> tuple[LoadedSpec, list[str]]:
        with self.step("validate and render the example spec") as d:
            loaded = load_spec(spec_path)
            out = self.root / "rendered"
            written = []
            for f in render_files(loaded.spec):
                target = out / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f.content, encoding="utf-8")
                written.append(str(target))
            if not any(w.endswith("Jenkinsfile") for w in written) or not any(
                w.endswith("config.xml") for w in written
            ):
                raise DemoFailed("rendering produced no Jenkinsfile/config.xml")
            d.append(f"{spec_path} is valid; wrote " + ", ".join(written))
        return loaded, written

    def start_services(self, spec_path: Path, secret: str) -> None:
        with self.step("start a local registry with auth") as d:
            creds = services.registry_credentials(self.root)
            self.processes.append(services.start_registry(self.root, REGISTRY_PORT, creds))
            services.record(self.root, self.processes)
            d.append(f"localhost:{REGISTRY_PORT} (htpasswd user {creds.username})")
        with self.step("start the receiver (conveyor serve --dispatch local)") as d:
            env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
            env.update(
                {
                    "CONVEYOR_SECRET": secret,
                    "CONVEYOR_STATE": str(self.root / "state"),
                    # The demo's stand-in for GitLab's repositories (repo.location()).
                    "CONVEYOR_GIT_URL": repo.clone_base(self.root),
                    "REGISTRY_USER": creds.username,
                    "REGISTRY_PASSWORD": creds.password,
                }
            )
            proc = services.start_receiver(self.root, spec_path, self.receiver_port, env)
            self.processes.append(proc)
            services.record(self.root, self.processes)
            d.append(f"http://127.0.0.1:{self.receiver_port}/hooks/gitlab")

    def post_push(self, project: str, commit: repo.Commit, token: str) -> int:
        # As GitLab would name it; the receiver never clones from a payload's URL.
        payload = events.push_payload(project, f"http://gitlab.invalid/{project}.git", commit)
        url = f"http://127.0.0.1:{self.receiver_port}/hooks/gitlab"
        resp = httpx.post(
            url, content=events.encode(payload), headers=events.push_headers(token), timeout=10
        )
        if resp.status_code != 202:
            raise DemoFailed(f"receiver answered {resp.status_code} to the push event: {resp.text}")
        answer = resp.json()
        if answer.get("status") != Status.QUEUED.value:
            raise DemoFailed(f"receiver did not queue the push event: {answer}")
        return int(answer["id"])

    def wait_event(self, event_id: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        queue = EventQueue(database_path(self.root / "state"))
        try:
            while time.monotonic() < deadline:
                record = queue.get(event_id)
                if record is not None and record.status in FINAL:
                    if record.status is not Status.DONE:
                        raise DemoFailed(
                            f"event {event_id} ended {record.status.value}: "
                            f"{record.last_error or record.reason or ''}",
                            hint=f"conveyor events show {event_id} --state {self.root / 'state'}; "
                            f"receiver log {self.root / 'logs' / 'receiver.log'}",
                        )
                    return record.result_url or record.reason or "done"
                time.sleep(0.2)
        finally:
            queue.close()
        raise DemoFailed(
            f"event {event_id} was not processed within {timeout:.0f} s",
            hint=f"see {self.root / 'logs' / 'receiver.log'}",
        )

    def serving(self, expect: str, timeout: float) -> str:
        """Wait until the service reports version ``expect``; return its greeting."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                version = httpx.get(
                    f"http://127.0.0.1:{SERVICE_PORT}/version", timeout=2
                ).text.strip()
                if version == expect:
                    return httpx.get(f"http://127.0.0.1:{SERVICE_PORT}/", timeout=2).text.strip()
                last = f"version {version}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise DemoFailed(
            f"the service did not serve version {expect} within {timeout:.0f} s (last: {last})"
        )

    def stop_services(self) -> None:
        if self.keep:
            return
        services.stop_recorded(self.root)
        self.processes.clear()


def show_plan(spec_path: Path, settings: Settings | None = None) -> dict[str, Any] | None:
    """What ``conveyor plan --json`` shows for the spec against the configured GitLab and Jenkins
    (reads only), or None while a setting the plan needs is unset."""
    settings = settings or load_settings()
    specs = [load_spec(spec_path)]
    if settings.missing(*required_settings(specs)):
        return None
    return build_plan(SyncContext.create(settings, specs), specs).to_json()


def demo_secret(root: Path) -> str:
    path = root / "secret"
    if path.exists():
        return path.read_text().strip()
    root.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    return value


def run_demo(
    root: Path, *, receiver_port: int = 8765, keep: bool = False, report: Report = lambda step: None
) -> DemoResult:
    """The whole loop. Raises DemoFailed naming the first step that did not happen."""
    root.mkdir(parents=True, exist_ok=True)
    services.stop_recorded(root)  # leftovers of an interrupted earlier run
    demo = Demo(root, receiver_port=receiver_port, keep=keep, report=report)
    example = repo.find_example(EXAMPLE)
    spec_path = example / "conveyor.yml"
    secret = demo_secret(root)
    try:
        demo.preflight()
        loaded, rendered = demo.render(spec_path)
        project = loaded.spec.project
        token = project_token(secret, project)
        demo.start_services(spec_path, secret)
        repo_dir = repo.location(root, project)
        with demo.step("push 1: test, build, push, blue-green deploy (first version)") as d:
            first = repo.create(example, repo_dir)
            event_id = demo.post_push(project, first, token)
            run = demo.wait_event(event_id, timeout=600)
            greeting = demo.serving(first.sha[:8], timeout=60)
            d.append(f"event {event_id} done ({run}); serving '{greeting}'")
        with demo.step("push 2: a code change takes over with no failed requests") as d:
            second = repo.change(repo_dir, "hello again from hello-web")
            probe = Probe(f"http://127.0.0.1:{SERVICE_PORT}/", rate=50).start()
            pushed = time.monotonic()
            event_id = demo.post_push(project, second, token)
            greeting = demo.serving(second.sha[:8], timeout=300)
            switch = round(time.monotonic() - pushed, 2)
            run = demo.wait_event(event_id, timeout=300)
            time.sleep(1.0)  # keep probing the new version for a moment
            probed = probe.stop()
            if probed.failures:
                raise DemoFailed(
                    f"{probed.failures} of {probed.requests} requests failed during "
                    f"the switch: {probed.failure_kinds}"
                )
            if not probed.versions_seen or probed.versions_seen[-1] != greeting:
                raise DemoFailed(
                    f"the probe did not end on the new version: {probed.versions_seen}"
                )
            d.append(
                f"event {event_id} done ({run}); new version serving {switch} s after the "
                f"push; {probed.requests} requests, 0 failed; now '{greeting}'"
            )
        plan = None
        settings = load_settings()
        if settings.gitlab_url or settings.jenkins_url:
            with demo.step("conveyor plan against the configured GitLab and Jenkins") as d:
                plan = show_plan(spec_path, settings)
                d.append(
                    "skipped: set every CONVEYOR_* setting for plan"
                    if plan is None
                    else f"{plan.get('summary', {})}"
                )
    finally:
        demo.stop_services()
    logs = {
        "receiver": str(root / "logs" / "receiver.log"),
        "registry": str(root / "logs" / "registry.log"),
        "runs": f"conveyor runs list --state {root / 'state'}",
        "events": f"conveyor events list --state {root / 'state'}",
    }
    return DemoResult(
        ok=True,
        url=f"http://127.0.0.1:{SERVICE_PORT}/",
        steps=tuple(demo.steps),
        rendered=tuple(rendered),
        versions=(first.sha[:8], second.sha[:8]),
        switch_seconds=switch,
        probe=probed,
        logs=logs,
        plan=plan,
    )


def tear_down(root: Path) -> list[str]:
    """``conveyor demo --down``: stop the demo's processes, remove its service, volume and images."""
    from conveyor.docker.deploy.docker import remove_deploy

    done = [f"stopped {name}" for name in services.stop_recorded(root)]
    client = connect()
    with docker_errors("removing the demo service"):
        remove_deploy(client, EXAMPLE, volumes=True)
        done.append(f"removed the {EXAMPLE} containers, proxy, network and volume")
        removed = 0
        for image in client.images.list():
            if any(f"/demo/{EXAMPLE}:" in t for t in image.tags):
                client.images.remove(image.id, force=True)
                removed += 1
        if removed:
            done.append(f"removed {removed} demo image(s)")
    if root.exists():
        import shutil

        shutil.rmtree(root)
        done.append(f"removed {root}")
    return done
