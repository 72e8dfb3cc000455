"""plan / apply against the emulators, driven only through python-gitlab and python-jenkins."""

from __future__ import annotations

import re

from conveyor.gitlab.hooks import DesiredHook
from conveyor.jenkins.config_xml import is_managed
from conveyor.sync.apply import apply
from conveyor.sync.planner import build_plan
from conveyor.sync.targets import receiver_url
from tests.sync.conftest import PROJECTS, WEBHOOK_URL, World


def test_first_apply_creates_everything_and_second_makes_zero_writes(world: World) -> None:
    ctx = world.context()
    report = apply(ctx, world.specs())
    assert not report.has_errors, report.render_text()
    for project in PROJECTS:
        assert world.jenkins.has_item(project)
        assert is_managed(world.jenkins.stored_config(project))
        hooks = world.gitlab.hooks(project)
        assert [h["url"] for h in hooks] == [WEBHOOK_URL + "/hooks/gitlab"]
        assert hooks[0]["token"] == world.id_token(project)
        assert hooks[0]["push_events"] is True
        assert hooks[0]["merge_requests_events"] is True
        assert hooks[0]["branch_filter_strategy"] == "wildcard"
        assert hooks[0]["push_events_branch_filter"] == "main"
    for folder in ("demo", "demo/backend", "demo/backend/deep"):
        assert world.jenkins.item(folder).is_folder

    world.clear_logs()
    again = apply(world.context(), world.specs())
    assert world.writes() == 0
    assert not again.has_changes and not again.has_errors
    assert "no changes" in again.render_text()
    assert len(world.gitlab.log) > 0  # it did read GitLab


def test_plan_makes_no_writes_and_lists_creations(world: World) -> None:
    plan = build_plan(world.context(), world.specs())
    assert world.writes() == 0
    assert {p.job.action for p in plan.projects if p.job} == {"create"}
    assert {h.action for p in plan.projects for h in p.hooks} == {"create"}
    assert [f.path for f in plan.folders] == ["demo", "demo/backend", "demo/backend/deep"]
    text = plan.render_text()
    assert "jenkins job demo/app: create" in text


def test_hand_edit_is_drift_detected_by_plan_and_reverted_by_apply(world: World) -> None:
    apply(world.context(), world.specs())
    original = world.jenkins.stored_config("demo/app")
    world.jenkins.hand_edit("demo/app", original.replace("make test", "make test || true"))

    plan = build_plan(world.context(), world.specs())
    change = next(p.job for p in plan.projects if p.project == "demo/app")
    assert change is not None and change.action == "update"
    assert "-" in change.diff and "make test || true" in change.diff
    others = [p.job.action for p in plan.projects if p.job and p.project != "demo/app"]
    assert set(others) == {"unchanged"}

    world.clear_logs()
    apply(world.context(), world.specs())
    assert "|| true" not in world.jenkins.stored_config("demo/app")
    writes = world.jenkins.log.writes()
    assert [(w.method, w.path) for w in writes] == [("POST", "/job/demo/job/app/config.xml")]
    assert world.gitlab.log.count_writes() == 0


def test_changed_spec_updates_hook_fields(world: World) -> None:
    apply(world.context(), world.specs())
    world.write_spec("demo/app", world_spec("demo/app", branches=("main", "release/*")))
    world.clear_logs()
    report = apply(world.context(), world.specs())
    hook = world.gitlab.hooks("demo/app")[0]
    assert hook["branch_filter_strategy"] == "regex"
    regex = hook["push_events_branch_filter"]
    assert regex == r"^(?:main|release\/[^/]*)$"
    # GitLab searches (unanchored): the anchors keep the wildcard semantics
    assert re.search(regex, "release/1.2") and re.search(regex, "main")
    assert not re.search(regex, "release/1/2") and not re.search(regex, "xmain")
    assert hook["token"] == world.id_token("demo/app")  # token sent again on update
    change = next(p for p in report.projects if p.project == "demo/app")
    assert [h.action for h in change.hooks] == ["update"]
    assert "branch_filter_strategy" in change.hooks[0].reason


def world_spec(project: str, **kwargs: object) -> str:
    from tests.sync.conftest import spec_text

    return spec_text(project, **kwargs)  # type: ignore[arg-type]


def test_duplicate_hooks_past_the_first_page_collapse_to_one(world: World) -> None:
    url = receiver_url(world.settings())
    for i in range(30):
        world.gitlab.insert_hook("demo/app", f"https://other.example.com/hook/{i}")
    for _ in range(130):  # well past GitLab's 100-per-page maximum
        world.gitlab.insert_hook("demo/app", url, push_events=True)
    report = apply(world.context(), world.specs())
    assert not report.has_errors, report.render_text()
    hooks = world.gitlab.hooks("demo/app")
    ours = [h for h in hooks if h["url"] == url]
    assert len(ours) == 1
    assert ours[0]["token"] == world.id_token("demo/app")
    assert len(hooks) == 31  # the 30 unmanaged hooks survive

    world.clear_logs()
    apply(world.context(), world.specs())
    assert world.writes() == 0


def test_unmanaged_jobs_and_hooks_survive_apply(world: World) -> None:
    world.jenkins.create_item_directly(
        "hand-made", "<flow-definition><description>mine</description></flow-definition>"
    )
    world.gitlab.insert_hook("demo/app", "https://ci.example.com/hook", token="theirs")
    apply(world.context(), world.specs(), prune=True)
    assert world.jenkins.stored_config("hand-made").count("mine") == 1
    urls = [h["url"] for h in world.gitlab.hooks("demo/app")]
    assert "https://ci.example.com/hook" in urls


def test_unmanaged_job_at_a_spec_path_is_a_conflict_left_alone(world: World) -> None:
    world.jenkins.create_item_directly("demo", "<com.cloudbees.hudson.plugins.folder.Folder/>")
    world.jenkins.create_item_directly(
        "demo/app", "<flow-definition><description>by hand</description></flow-definition>"
    )
    before = world.jenkins.stored_config("demo/app")
    report = apply(world.context(), world.specs())
    failed = {p.project: p.error for p in report.failed}
    assert set(failed) == {"demo/app"}
    assert "conveyor did not create" in (failed["demo/app"] or "")
    assert world.jenkins.stored_config("demo/app") == before
    assert world.jenkins.has_item("demo/hello-web")  # the others carried on


def test_project_failures_are_reported_and_others_carry_on(world: World) -> None:
    world.gitlab.set_role("demo/app", "maintainer", "developer")  # 403 on hooks
    world.write_spec("other/secret", world_spec("other/secret"))  # invisible: 404
    report = apply(world.context(), world.specs())
    failed = {p.project: p.error or "" for p in report.failed}
    assert set(failed) == {"demo/app", "other/secret"}
    assert "403" in failed["demo/app"] and "Maintainer" in failed["demo/app"]
    assert "404" in failed["other/secret"]
    assert report.has_errors
    for project in ("demo/hello-web", "demo/backend/api"):
        assert len(world.gitlab.hooks(project)) == 1
    text = report.render_text()
    assert "demo/app" in text and "FAILED" in text


def test_token_rotation_rewrites_every_hook(world: World) -> None:
    old = {"CONVEYOR_SECRET": "the-old-one-1234567"}
    apply(world.context(**old), world.specs())
    rotation = {
        "CONVEYOR_SECRET_PREVIOUS": "the-old-one-1234567",
        "CONVEYOR_SECRET_PREVIOUS_UNTIL": "2999-01-01T00:00:00+00:00",
    }
    plan = build_plan(world.context(**rotation), world.specs())
    reasons = {h.reason for p in plan.projects for h in p.hooks}
    assert reasons == {"token rotation"}
    world.clear_logs()
    apply(world.context(**rotation), world.specs())
    assert world.gitlab.log.count_writes() == len(PROJECTS)
    for project in PROJECTS:
        (hook,) = world.gitlab.hooks(project)
        assert hook["token"] == world.id_token(project)


def test_desired_hook_for_jenkins_target(world: World) -> None:
    world.write_spec("demo/app", world_spec("demo/app", target="jenkins", branches=("**",)))
    apply(world.context(), world.specs())
    (hook,) = world.gitlab.hooks("demo/app")
    assert hook["url"] == world.jenkins.url + "/project/demo/app"
    assert hook["branch_filter_strategy"] == "all_branches"
    stored = world.jenkins.stored_config("demo/app")
    assert "<secretToken>{AQAAAB" in stored
    cipher = stored.split("<secretToken>")[1].split("</secretToken>")[0]
    assert world.jenkins.secret_plaintext(cipher) == hook["token"]
    assert isinstance(DesiredHook, type)

    # switching back to the receiver replaces the hook (no stale Jenkins hook left)
    world.write_spec("demo/app", world_spec("demo/app"))
    apply(world.context(), world.specs())
    assert [h["url"] for h in world.gitlab.hooks("demo/app")] == [WEBHOOK_URL + "/hooks/gitlab"]


def test_jenkins_target_hook_waits_for_its_job(world: World) -> None:
    world.write_spec("demo/app", world_spec("demo/app", target="jenkins"))
    world.jenkins.faults.error("POST", r"^/job/demo/createItem$", status=400, times=100)
    for folder in ("demo", "demo/backend", "demo/backend/deep"):
        world.jenkins.create_item_directly(folder, "<com.cloudbees.hudson.plugins.folder.Folder/>")
    report = apply(world.context(), world.specs())
    assert {p.project for p in report.failed} == {"demo/app", "demo/hello-web"}
    assert world.gitlab.hooks("demo/app") == []  # would point at a job that does not exist
    assert len(world.gitlab.hooks("demo/hello-web")) == 1  # receiver hooks do not wait


def test_crumb_modes(make_jenkins_emulator: object) -> None:
    from conveyor.jenkins.client import JenkinsClient
    from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER

    for mode in ("strict", "session", "disabled"):
        emulator = make_jenkins_emulator(crumb_mode=mode)  # type: ignore[operator]
        client = JenkinsClient(emulator.url, JENKINS_USER, JENKINS_API_TOKEN, timeout=5)
        client.create_folder("f")
        client.create_job("f/j", "<flow-definition><description>x</description></flow-definition>")
        assert client.get_config("f/j") is not None
        assert client.get_config("f/missing") is None
        assert {i.full_name for i in client.list_items()} == {"f", "f/j"}
        assert client.delete_job("f/j") is True
        assert client.delete_job("f/j") is False


def test_webhook_url_change_moves_every_hook_in_place(world: World) -> None:
    old_url = "https://old-receiver.example.com"
    apply(world.context(CONVEYOR_WEBHOOK_URL=old_url), world.specs())
    ids = {p: world.gitlab.hooks(p)[0]["id"] for p in PROJECTS}
    # Without CONVEYOR_WEBHOOK_URL_PREVIOUS a hook at another URL is not conveyor's to touch.
    plan = build_plan(world.context(), world.specs())
    assert {h.action for p in plan.projects for h in p.hooks} == {"create"}
    moving = {"CONVEYOR_WEBHOOK_URL_PREVIOUS": old_url}
    plan = build_plan(world.context(**moving), world.specs())
    assert {h.action for p in plan.projects for h in p.hooks} == {"update"}
    assert all("url: " in h.reason for p in plan.projects for h in p.hooks)
    world.clear_logs()
    apply(world.context(**moving), world.specs())
    assert world.gitlab.log.count_writes() == len(PROJECTS)  # one PUT a project, nothing else
    for project in PROJECTS:
        (hook,) = world.gitlab.hooks(project)
        assert hook["id"] == ids[project]
        assert hook["url"] == WEBHOOK_URL + "/hooks/gitlab"
        assert hook["token"] == world.id_token(project)  # resent: the URL change reset it
    world.clear_logs()
    apply(world.context(**moving), world.specs())
    assert world.writes() == 0
