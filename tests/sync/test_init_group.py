"""``init --group``: one spec per active project of a group (subgroups too), then apply wires them."""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import ConfigError
from conveyor.scaffold_group import scaffold_group
from conveyor.spec.load import load_specs
from conveyor.sync.apply import apply
from conveyor.sync.context import SyncContext
from tests.sync.conftest import World


def test_init_group_then_apply(world: World, tmp_path: Path) -> None:
    # a project another group shares with demo is not demo's own: not listed (with_shared=false)
    world.gitlab.add_project("partner/lib", members={"maintainer": "maintainer"})
    world.gitlab.share_project("partner/lib", "demo")
    out = tmp_path / "group-specs"
    out.mkdir()
    kept = out / "demo" / "app.yml"
    kept.parent.mkdir(parents=True)
    custom = world.specs_dir.joinpath("demo/app.yml").read_text()
    kept.write_text(custom)

    written = scaffold_group(world.settings(), "demo", "python-service", out).written
    specs = sorted(p.relative_to(out).as_posix() for p in written if p.parent.name != "templates")
    assert specs == ["demo/backend/api.yml", "demo/backend/deep/worker.yml", "demo/hello-web.yml"]
    assert kept.read_text() == custom  # existing spec left as it is
    assert not (out / "demo" / "legacy.yml").exists()  # archived: skipped
    assert not (out / "other").exists()  # another group
    assert not (out / "partner").exists()  # shared with demo, not demo's

    again = scaffold_group(world.settings(), "demo", "python-service", out)
    assert again.written == ()  # nothing new

    loaded = load_specs([out])
    assert sorted(s.spec.project for s in loaded) == [
        "demo/app",
        "demo/backend/api",
        "demo/backend/deep/worker",
        "demo/hello-web",
    ]
    report = apply(SyncContext.create(world.settings(), loaded, timeout=5.0), loaded)
    assert not report.has_errors, report.render_text()
    assert world.jenkins.has_item("demo/backend/deep/worker")
    assert len(world.gitlab.hooks("demo/backend/api")) == 1


def test_init_group_needs_gitlab_settings_first(world: World, tmp_path: Path) -> None:
    settings = world.settings(CONVEYOR_GITLAB_TOKEN="", CONVEYOR_GITLAB_URL="")
    try:
        scaffold_group(settings, "demo", "python-service", tmp_path)
    except ConfigError as exc:
        assert "CONVEYOR_GITLAB_URL" in str(exc) and "CONVEYOR_GITLAB_TOKEN" in str(exc)
    else:
        raise AssertionError("expected a ConfigError")
    assert len(world.gitlab.log) == 0
