"""Hooks against GitLab's real behaviour: renames, health and re-enabling, token drift, signing
tokens, lost create answers, local URLs. GitLab's deliveries reach a real receiver over HTTP."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from conveyor.config import Settings
from conveyor.receiver.app import Receiver, ReceiverOptions, create_app
from conveyor.receiver.dispatch import NoneDispatcher
from conveyor.receiver.queue import EventQueue, database_path
from conveyor.receiver.routing import ProjectIds, Router
from conveyor.receiver.worker import WorkerOptions
from conveyor.sync.apply import apply
from conveyor.sync.planner import build_plan
from conveyor.tokens import project_token
from tests.emulators.gitlab import GitLabEmulator
from tests.sync.conftest import SECRET, World, spec_text

SIGNING_KEY = b"k" * 32
SIGNING_TOKEN = "whsec_" + base64.b64encode(SIGNING_KEY).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    url: str
    db: Path
    receiver: Receiver

    def statuses(self) -> list[tuple[str, str]]:
        queue = EventQueue(self.db)
        try:
            return [(e.project or "", e.status.value) for e in queue.list_events(limit=100)]
        finally:
            queue.close()


@pytest.fixture
def start_receiver(world: World, tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """The real receiver (uvicorn, a thread) over the world's specs; CONVEYOR_WEBHOOK_URL points
    at it, so `apply` registers hooks GitLab's emulator really delivers to."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(*, signing_keys: tuple[bytes, ...] = ()) -> Live:
        port = _free_port()
        world.env["CONVEYOR_WEBHOOK_URL"] = f"http://127.0.0.1:{port}"
        state = tmp_path / "receiver-state"
        db = database_path(state)
        router = Router((s.spec for s in world.specs()), ProjectIds(db.parent / "ids.json"))
        receiver = Receiver(
            Settings(secret=SECRET, state_dir=state),
            router,
            db,
            NoneDispatcher(),
            options=ReceiverOptions(signing_keys=signing_keys),
            worker_options=WorkerOptions(workers=1, poll_s=0.1, post_statuses=False),
        )
        config = uvicorn.Config(
            create_app(receiver), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        servers.append((server, thread))
        return Live(f"http://127.0.0.1:{port}", db, receiver)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)


def _delivered(gitlab: GitLabEmulator, project: str) -> list[int]:
    return [d.status for d in gitlab.deliver(project)]


def test_rename_end_to_end(world: World, start_receiver: Callable[..., Live]) -> None:
    live = start_receiver()
    first = apply(world.context(), world.specs())
    assert not first.has_errors, first.render_text()
    assert _delivered(world.gitlab, "demo/app") == [202]

    world.gitlab.rename_project("demo/app", "platform/app-renamed")
    assert _delivered(world.gitlab, "platform/app-renamed") == [202]  # token and route by id
    stored = live.statuses()
    renamed = [status for project, status in stored if project == "platform/app-renamed"]
    assert len(renamed) == 1 and renamed[0] != "ignored", stored  # queued (or already run)

    plan = build_plan(world.context(), world.specs())
    (app,) = [p for p in plan.projects if p.project == "demo/app"]
    assert app.gitlab_path == "platform/app-renamed"
    text = plan.render_text()
    assert "spec says demo/app, GitLab says platform/app-renamed" in text
    world.clear_logs()
    again = apply(world.context(), world.specs())
    assert world.writes() == 0 and not again.has_errors  # the token is keyed on the id: no move
    assert "GitLab says platform/app-renamed" in again.render_text()


def test_spec_in_other_case_is_reported_and_works(
    world: World, start_receiver: Callable[..., Live]
) -> None:
    start_receiver()
    world.write_spec(
        "demo/app",
        world.specs_dir.joinpath("demo/app.yml")
        .read_text()
        .replace("project: demo/app", "project: Demo/App"),
    )
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    assert "spec says Demo/App, GitLab says demo/app" in report.render_text()
    assert _delivered(world.gitlab, "demo/app") == [202]


def test_old_path_keyed_hooks_keep_working_until_apply_rewrites_them(
    world: World, start_receiver: Callable[..., Live]
) -> None:
    live = start_receiver()
    url = live.url + "/hooks/gitlab"
    # a hook as the previous release wrote it: path-keyed token, no description
    world.gitlab.insert_hook("demo/app", url, token=project_token(SECRET, "demo/app"))
    assert _delivered(world.gitlab, "demo/app") == [202]
    plan = build_plan(world.context(), world.specs())
    (app,) = [p for p in plan.projects if p.project == "demo/app"]
    assert [h.action for h in app.hooks] == ["update"]
    assert "token: not the one conveyor derives now" in app.hooks[0].reason
    apply(world.context(), world.specs())
    (hook,) = world.gitlab.hooks("demo/app")
    assert hook["token"] == world.id_token("demo/app")
    assert _delivered(world.gitlab, "demo/app") == [202]
    # the id token has been seen: the path token is retired for this project
    world.gitlab.insert_hook("demo/app", url + "?old", token=project_token(SECRET, "demo/app"))
    statuses = [d.status for d in world.gitlab.deliver("demo/app")]
    assert statuses == [202, 401]


def test_disabled_hook_is_shown_and_brought_back_by_one_test(
    world: World, start_receiver: Callable[..., Live]
) -> None:
    start_receiver()
    apply(world.context(), world.specs())
    (hook,) = world.gitlab.hooks("demo/app")
    with world.gitlab.lock:  # four failed deliveries: GitLab backs off
        stored = world.gitlab._hooks[world.gitlab.project("demo/app").id][hook["id"]]
        stored["url"] = "http://127.0.0.1:9/hooks/gitlab"
    for _ in range(4):
        world.gitlab.deliver("demo/app", timeout=2)
    with world.gitlab.lock:
        stored["url"] = hook["url"]
    assert world.gitlab.hook_state("demo/app", hook["id"])["alert_status"] == "temporarily_disabled"

    plan = build_plan(world.context(), world.specs())
    (app,) = [p for p in plan.projects if p.project == "demo/app"]
    assert [h.action for h in app.hooks] == ["unchanged", "enable"]
    text = plan.render_text()
    assert "temporarily disabled by GitLab until" in text and "re-enable" in text
    assert plan.counts()["hook_health"] == {"executable": 3, "temporarily disabled by GitLab": 1}
    assert not [d for d in world.gitlab.deliveries("demo/app") if d.test]  # plan wrote nothing

    world.clear_logs()
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    assert world.gitlab.log.count_writes() == 1  # one test delivery, nothing else
    assert world.gitlab.hook_state("demo/app", hook["id"])["alert_status"] == "executable"
    world.clear_logs()
    apply(world.context(), world.specs())
    assert world.writes() == 0


def test_permanently_disabled_hook_after_settings_fixed_and_rate_limit_said(
    world: World, start_receiver: Callable[..., Live]
) -> None:
    start_receiver()
    apply(world.context(), world.specs())
    (hook,) = world.gitlab.hooks("demo/app")
    with world.gitlab.lock:  # disabled for good, and edited by hand
        stored = world.gitlab._hooks[world.gitlab.project("demo/app").id][hook["id"]]
        stored.update(recent_failures=4, disabled_until=None, merge_requests_events=False)
    plan = build_plan(world.context(), world.specs())
    (app,) = [p for p in plan.projects if p.project == "demo/app"]
    assert [h.action for h in app.hooks] == ["update", "enable"]
    assert app.hooks[0].health == "disabled by GitLab after failed deliveries"

    # GitLab allows 5 tests a minute: use them up, then apply must say so
    maintainer = world.gitlab._user_by_name("maintainer")
    for _ in range(5):
        world.gitlab._check_hook_test_rate(maintainer, world.gitlab.project("demo/app"))
    limited = apply(world.context(), world.specs())
    (app,) = [p for p in limited.projects if p.project == "demo/app"]
    assert app.outcome == "failed"
    assert "rate-limits hook tests" in (app.error or "")
    assert world.gitlab.hooks("demo/app")[0]["merge_requests_events"] is True  # settings first
    world.gitlab.advance(61)
    fixed = apply(world.context(), world.specs())
    assert not fixed.has_errors, fixed.render_text()
    assert world.gitlab.hook_state("demo/app", hook["id"])["alert_status"] == "executable"


def test_token_present_false_is_drift_on_gitlab_19(
    world: World, make_gitlab_emulator: Callable[..., GitLabEmulator]
) -> None:
    world.gitlab = make_gitlab_emulator(version="19.0.0", allow_local_requests=True)
    world.env["CONVEYOR_GITLAB_URL"] = world.gitlab.url
    apply(world.context(), world.specs())
    (hook,) = world.gitlab.hooks("demo/app")
    with world.gitlab.lock:  # the token wiped (a URL edited by hand and back)
        world.gitlab._hooks[world.gitlab.project("demo/app").id][hook["id"]]["token"] = ""
    plan = build_plan(world.context(), world.specs())
    (app,) = [p for p in plan.projects if p.project == "demo/app"]
    assert [(h.action, h.reason) for h in app.hooks] == [
        ("update", "token: missing (GitLab reports none)")
    ]
    apply(world.context(), world.specs())
    assert world.gitlab.hooks("demo/app")[0]["token"] == world.id_token("demo/app")


def test_signing_token_is_registered_and_deliveries_verify(
    world: World,
    make_gitlab_emulator: Callable[..., GitLabEmulator],
    start_receiver: Callable[..., Live],
) -> None:
    world.gitlab = make_gitlab_emulator(version="19.0.0", allow_local_requests=True)
    world.env["CONVEYOR_GITLAB_URL"] = world.gitlab.url
    start_receiver(signing_keys=(SIGNING_KEY,))
    apply(world.context(), world.specs())  # no signing token yet: deliveries unsigned
    assert _delivered(world.gitlab, "demo/app") == [202]  # webhook-id/-timestamp, no signature
    world.env["CONVEYOR_WEBHOOK_SIGNING_TOKEN"] = SIGNING_TOKEN
    plan = build_plan(world.context(), world.specs())
    assert {h.action for p in plan.projects for h in p.hooks} == {"update"}  # fingerprint moved
    assert SIGNING_TOKEN not in plan.render_text() and SIGNING_TOKEN not in str(plan.to_json())
    apply(world.context(), world.specs())
    for project in ("demo/app", "demo/hello-web"):
        assert world.gitlab.hooks(project)[0]["signing_token"] == SIGNING_TOKEN
    (done,) = world.gitlab.deliver("demo/app")
    assert "webhook-signature" in done.headers and done.status == 202
    world.clear_logs()
    apply(world.context(), world.specs())
    assert world.writes() == 0


def test_lost_create_answer_makes_no_duplicate(world: World) -> None:
    world.gitlab.lose_create_answers = 1
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    counts = {p: len(world.gitlab.hooks(p)) for p in ("demo/app", "demo/hello-web")}
    assert counts == {"demo/app": 1, "demo/hello-web": 1}
    assert all(len(world.gitlab.hooks(p.project)) == 1 for p in report.projects)
    for p in report.projects:
        assert world.gitlab.hooks(p.project)[0]["token"] == world.id_token(p.project)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost", "https://10.0.0.5", "http://conveyor:80"]
)
def test_plan_warns_when_the_receiver_url_is_local(world: World, url: str) -> None:
    plan = build_plan(world.context(CONVEYOR_WEBHOOK_URL=url), world.specs())
    assert plan.warnings and "GitLab refuses hook URLs there (422)" in plan.render_text()
    public = build_plan(world.context(), world.specs())
    assert public.warnings == ()


def test_projects_of_a_busy_namespace_are_read_in_one_listing(world: World) -> None:
    world.gitlab.add_project("demo/third", members={"maintainer": "maintainer"})
    world.write_spec("demo/third", spec_text("demo/third"))
    world.gitlab.rename_project("demo/app", "platform/app")  # not in demo's listing any more
    plan = build_plan(world.context(), world.specs())
    assert not plan.has_errors, plan.render_text()
    singles = sorted(
        r.path.removeprefix("/api/v4/projects/")
        for r in world.gitlab.log.records("GET")
        if r.path.startswith("/api/v4/projects/") and "/hooks" not in r.path
    )
    # demo/hello-web and demo/third came with one listing of demo's projects
    assert singles == ["demo/app", "demo/backend/api", "demo/backend/deep/worker"]
    assert len(world.gitlab.log.records("GET", r"^/api/v4/groups/demo/projects$")) == 1
    (app,) = [p for p in plan.projects if p.project == "demo/app"]
    assert app.gitlab_path == "platform/app"


def test_secret_changed_without_previous_is_drift(world: World) -> None:
    apply(world.context(), world.specs())
    world.clear_logs()
    plan = build_plan(world.context(CONVEYOR_SECRET="a-new-secret-0000000"), world.specs())
    reasons = {h.reason for p in plan.projects for h in p.hooks}
    assert reasons == {
        "token: not the one conveyor derives now (older path-keyed token, another secret or "
        "signing token)"
    }
    assert world.writes() == 0
