"""destroy removes conveyor's hooks and managed jobs for the specs, nothing else; prune likewise."""

from __future__ import annotations

from conveyor.sync import apply, build_destroy_plan, build_plan, execute
from tests.sync.conftest import PROJECTS, World


def test_destroy_removes_only_what_conveyor_manages(world: World) -> None:
    apply(world.context(), world.specs())
    world.gitlab.insert_hook("demo/app", "https://ci.example.com/hook", token="theirs")
    world.jenkins.create_item_directly(
        "demo/hand-made", "<flow-definition><description>mine</description></flow-definition>"
    )
    world.clear_logs()
    ctx = world.context()
    plan = build_destroy_plan(ctx, world.specs())
    assert world.writes() == 0
    assert {p.job.action for p in plan.projects if p.job} == {"delete"}
    report = execute(ctx, plan, kind="destroy")
    assert not report.has_errors, report.render_text()
    for project in PROJECTS:
        assert not world.jenkins.has_item(project)
    assert [h["url"] for h in world.gitlab.hooks("demo/app")] == ["https://ci.example.com/hook"]
    for project in ("demo/hello-web", "demo/backend/api"):
        assert world.gitlab.hooks(project) == []
    assert world.jenkins.has_item("demo/hand-made")  # and its folder stays
    # nothing left to do: a second destroy plans nothing
    again = build_destroy_plan(world.context(), world.specs())
    assert not again.has_changes


def test_destroy_leaves_an_unmanaged_job_at_the_spec_path(world: World) -> None:
    world.jenkins.create_item_directly("demo", "<com.cloudbees.hudson.plugins.folder.Folder/>")
    world.jenkins.create_item_directly(
        "demo/app", "<flow-definition><description>by hand</description></flow-definition>"
    )
    plan = build_destroy_plan(world.context(), world.specs())
    change = next(p.job for p in plan.projects if p.project == "demo/app")
    assert change is not None and change.action == "conflict"
    execute(world.context(), plan, kind="destroy")
    assert world.jenkins.has_item("demo/app")


def test_prune_deletes_managed_jobs_no_spec_wants(world: World) -> None:
    apply(world.context(), world.specs())
    (world.specs_dir / "demo" / "app.yml").unlink()
    world.jenkins.create_item_directly(
        "demo/hand-made", "<flow-definition><description>mine</description></flow-definition>"
    )
    plan = build_plan(world.context(), world.specs(), prune=True)
    assert [o.job for o in plan.orphans] == ["demo/app"]
    plain = build_plan(world.context(), world.specs())
    assert plain.orphans == ()
    apply(world.context(), world.specs(), prune=True)
    assert not world.jenkins.has_item("demo/app")
    assert world.jenkins.has_item("demo/hand-made")
