"""Faults (429 Retry-After, 5xx, slow answers, dropped connections) are retried; the run converges."""

from __future__ import annotations

from conveyor.jenkins.client import JenkinsClient
from conveyor.sync.apply import apply
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.emulators.jenkins import JenkinsEmulator
from tests.sync.conftest import PROJECTS, World


def _converged(world: World) -> None:
    for project in PROJECTS:
        assert world.jenkins.has_item(project)
        assert len(world.gitlab.hooks(project)) == 1
    world.clear_logs()
    again = apply(world.context(), world.specs())
    assert not again.has_errors, again.render_text()
    assert world.writes() == 0


def test_gitlab_429_and_5xx_are_retried(world: World) -> None:
    world.gitlab.faults.rate_limit("GET", r"/hooks$", times=2, retry_after=1)
    world.gitlab.faults.error("POST", r"/hooks$", status=500, times=1)
    world.gitlab.faults.error("POST", r"/hooks$", status=502, times=1)
    world.gitlab.faults.error("GET", r"/hooks$", status=503, times=1)
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    assert world.gitlab.faults.pending() == 0
    _converged(world)


def test_jenkins_5xx_and_429_are_retried(world: World) -> None:
    world.jenkins.faults.error("POST", r"createItem", status=503, times=2)
    world.jenkins.faults.error("POST", r"createItem", status=500, times=1)
    world.jenkins.faults.error("GET", r"/api/json", status=502, times=1)
    world.jenkins.faults.rate_limit("POST", r"createItem", times=1, retry_after=1)
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    assert world.jenkins.faults.pending() == 0
    _converged(world)


def test_dropped_connections_are_retried(world: World) -> None:
    world.jenkins.faults.drop("POST", r"createItem", times=2)
    world.gitlab.faults.drop("POST", r"/hooks$", times=2)
    world.gitlab.faults.drop("GET", r"/hooks$", times=1)
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    assert world.jenkins.faults.pending() == 0 and world.gitlab.faults.pending() == 0
    world.jenkins.faults.drop("GET", r"config\.xml", times=2)  # reads of the no-change run
    _converged(world)
    assert world.jenkins.faults.pending() == 0


def test_slow_create_times_out_is_retried_without_duplicates(world: World) -> None:
    # The create is handled after the client gave up: the retry finds the job already there
    # and reconciles it (same config: no rewrite) instead of failing or creating it twice.
    folder = "<com.cloudbees.hudson.plugins.folder.Folder/>"
    for path in ("demo", "demo/backend", "demo/backend/deep"):
        world.jenkins.create_item_directly(path, folder)
    world.jenkins.faults.slow("POST", r"^/job/demo/createItem$", delay=0.8, times=1)
    ctx = world.context(concurrency=1)
    ctx.jenkins.timeout = 0.3
    ctx.jenkins.backoff = 1.0
    report = apply(ctx, world.specs())
    assert not report.has_errors, report.render_text()
    creates = [
        r
        for r in world.jenkins.log.records("POST", r"/createItem$")
        if r.query.get("name") == "app"
    ]
    assert sorted(r.status for r in creates) == [200, 400]  # second attempt: "already exists"
    assert world.jenkins.log.records("POST", r"/job/app/config\.xml$") == []
    assert sorted(world.jenkins.item("demo").children) == ["app", "backend", "hello-web"]
    assert world.jenkins.faults.pending() == 0
    _converged(world)


def test_interrupted_apply_is_finished_by_a_rerun(world: World) -> None:
    # A first run dies half-way: one job and one hook cannot be written.
    world.jenkins.faults.error("POST", r"/job/deep/createItem$", status=500, times=100)
    app_id = world.gitlab.project("demo/app").id  # hooks are written by project id
    world.gitlab.faults.error("POST", rf"projects/{app_id}/hooks$", status=403, times=100)
    ctx = world.context()
    ctx.jenkins.attempts = 2
    first = apply(ctx, world.specs())
    assert {p.project for p in first.failed} == {"demo/backend/deep/worker", "demo/app"}
    assert world.jenkins.has_item("demo/app") and not world.jenkins.has_item(
        "demo/backend/deep/worker"
    )
    assert world.gitlab.hooks("demo/app") == []
    world.jenkins.faults.clear()
    world.gitlab.faults.clear()
    world.clear_logs()
    second = apply(world.context(), world.specs())
    assert not second.has_errors, second.render_text()
    # only what was missing is written
    assert [(r.method, r.path) for r in world.jenkins.log.writes()] == [
        ("POST", "/job/demo/job/backend/job/deep/createItem")
    ]
    assert [r.path for r in world.gitlab.log.writes()] == [f"/api/v4/projects/{app_id}/hooks"]
    _converged(world)


def test_stale_crumb_is_refreshed(make_jenkins_emulator: object) -> None:
    jenkins: JenkinsEmulator = make_jenkins_emulator()  # type: ignore[operator]
    client = JenkinsClient(jenkins.url, JENKINS_USER, JENKINS_API_TOKEN, timeout=5)
    client.create_folder("a")
    with jenkins.lock:
        jenkins._sessions.clear()  # Jenkins restarted: every crumb it issued is void
    client.create_folder("b")
    assert jenkins.item("b").is_folder
    crumbs = jenkins.log.records("GET", r"crumbIssuer")
    assert len(crumbs) == 2
