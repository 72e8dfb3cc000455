"""The plan / apply / destroy / hooks commands, end to end; secrets never shown anywhere."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner, Result

from conveyor.cli import apply as apply_cli
from conveyor.cli import destroy as destroy_cli
from conveyor.cli import hooks as hooks_cli
from conveyor.cli import plan as plan_cli
from conveyor.errors import ConfigError
from conveyor.tokens import project_token
from tests.sync.conftest import PREVIOUS_SECRET, PROJECTS, SECRET, World


def run(
    world: World,
    command: object,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> Result:
    runner = CliRunner()
    return runner.invoke(
        command,
        [str(a) for a in args],  # type: ignore[arg-type]
        env={**world.env, **(env or {})},
        input=stdin,
    )


def assert_no_secret(world: World, *texts: str) -> None:
    for text in texts:
        for secret in world.secrets:
            assert secret not in text


def test_plan_apply_plan_json_and_no_secret_anywhere(
    world: World, all_logs: pytest.LogCaptureFixture
) -> None:
    world.write_spec(
        "demo/app",
        world.specs_dir.joinpath("demo/app.yml")
        .read_text()
        .replace("target: receiver", "target: jenkins")
        .replace("merge_request: {}", 'merge_request: {target_branches: ["main"]}')
        .replace("skip_ci: true", "skip_ci: false"),
    )
    outputs: list[str] = []
    plan = run(world, plan_cli.command, world.specs_dir, "--json")
    assert plan.exit_code == 0, plan.output
    data = json.loads(plan.output)
    assert data["summary"]["jobs"] == {"create": 4}
    assert world.writes() == 0
    outputs.append(plan.output)

    applied = run(world, apply_cli.command, world.specs_dir, "--concurrency", "3")
    assert applied.exit_code == 0, applied.output
    outputs.append(applied.output)

    # drift with a secret-bearing job: the diff is masked
    stored = world.jenkins.stored_config("demo/app")
    world.jenkins.hand_edit("demo/app", stored.replace("make test", "make lint"))
    rotation = {
        "CONVEYOR_SECRET_PREVIOUS": PREVIOUS_SECRET,
        "CONVEYOR_SECRET_PREVIOUS_UNTIL": "2999-01-01T00:00:00+00:00",
    }
    for args in ([], ["--json"], ["-v"]):
        again = run(world, plan_cli.command, world.specs_dir, *args, env=rotation)
        assert again.exit_code == 0, again.output
        outputs.append(again.output)
    assert "make lint" in outputs[-1] and "token rotation" in outputs[-1]

    # failures carry messages: a 403 project and an unreachable Jenkins
    world.gitlab.set_role("demo/hello-web", "maintainer", "developer")
    failed = run(world, apply_cli.command, world.specs_dir, env=rotation)
    assert failed.exit_code == 1
    assert "demo/hello-web" in failed.output and "403" in failed.output
    outputs.append(failed.output)
    down = run(
        world, plan_cli.command, world.specs_dir, env={"CONVEYOR_JENKINS_URL": "http://127.0.0.1:9"}
    )
    assert down.exit_code != 0
    outputs.append(str(down.exception))

    records = [r.getMessage() for r in all_logs.records]
    assert any("demo/app" in r for r in records)  # our logs were captured
    assert_no_secret(world, *outputs, *records)


def test_apply_twice_makes_zero_writes_through_the_cli(world: World) -> None:
    assert run(world, apply_cli.command, world.specs_dir).exit_code == 0
    world.clear_logs()
    second = run(world, apply_cli.command, world.specs_dir, "--json")
    assert second.exit_code == 0
    assert world.writes() == 0
    assert json.loads(second.output)["summary"]["jobs"] == {"unchanged": 4}


def test_missing_settings_fail_before_any_request(world: World) -> None:
    env = {"CONVEYOR_JENKINS_TOKEN": "", "CONVEYOR_SECRET": "", "CONVEYOR_WEBHOOK_URL": ""}
    for command in (plan_cli.command, apply_cli.command):
        result = run(world, command, world.specs_dir, env=env)
        assert isinstance(result.exception, ConfigError)
        message = str(result.exception)
        for name in ("CONVEYOR_JENKINS_TOKEN", "CONVEYOR_SECRET", "CONVEYOR_WEBHOOK_URL"):
            assert name in message
    assert len(world.gitlab.log) == 0 and len(world.jenkins.log) == 0


def test_destroy_needs_yes_without_a_terminal(world: World) -> None:
    assert run(world, apply_cli.command, world.specs_dir).exit_code == 0
    world.clear_logs()
    refused = run(world, destroy_cli.command, world.specs_dir, stdin="")
    assert refused.exit_code != 0
    assert "--yes" in str(refused.exception)
    assert "delete" in refused.output  # the plan was shown
    assert world.writes() == 0
    done = run(world, destroy_cli.command, world.specs_dir, "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["summary"]["jobs"] == {"delete": 4}
    for project in PROJECTS:
        assert world.gitlab.hooks(project) == []
        assert not world.jenkins.has_item(project)


def test_hooks_token_prints_the_derived_token(world: World) -> None:
    result = run(world, hooks_cli.command, "token", "demo/app")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == world.id_token("demo/app")
    assert result.output.strip() != project_token(SECRET, "demo/app")  # not the path-keyed one
    # the id resolved through GitLab, which ignores case and follows renames
    world.gitlab.rename_project("demo/app", "platform/app")
    renamed = run(world, hooks_cli.command, "token", "Demo/App")
    assert renamed.output.strip() == world.id_token("platform/app")
    offline = run(
        world,
        hooks_cli.command,
        "token",
        "demo/app",
        "--id",
        str(world.gitlab.project("platform/app").id),
        env={"CONVEYOR_GITLAB_URL": "", "CONVEYOR_GITLAB_TOKEN": ""},
    )
    assert offline.exit_code == 0 and offline.output == renamed.output
    no_gitlab = run(
        world, hooks_cli.command, "token", "demo/app", env={"CONVEYOR_GITLAB_TOKEN": ""}
    )
    assert "CONVEYOR_GITLAB_TOKEN" in str(no_gitlab.exception)
    missing = run(world, hooks_cli.command, "token", "demo/app", env={"CONVEYOR_SECRET": ""})
    assert isinstance(missing.exception, ConfigError)
    assert "CONVEYOR_SECRET" in str(missing.exception)


def test_logging_is_captured(all_logs: pytest.LogCaptureFixture) -> None:
    logging.getLogger("conveyor.sync").info("probe")
    assert any(r.getMessage() == "probe" for r in all_logs.records)


def test_wrong_credentials_fail_once_with_the_variable_named(world: World) -> None:
    bad_gitlab = run(
        world,
        plan_cli.command,
        world.specs_dir,
        env={"CONVEYOR_GITLAB_TOKEN": "glpat-wrong-000000000000"},
    )
    assert "401" in str(bad_gitlab.exception)
    bad_jenkins = run(
        world,
        apply_cli.command,
        world.specs_dir,
        env={"CONVEYOR_JENKINS_TOKEN": "wrong-token-0000"},
    )
    assert "CONVEYOR_JENKINS_TOKEN" in str(bad_jenkins.exception)
    assert world.writes() == 0
    assert_no_secret(world, str(bad_gitlab.exception), str(bad_jenkins.exception))
    assert "glpat-wrong" not in str(bad_gitlab.exception)
