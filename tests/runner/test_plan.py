"""The stage plan: order, parallel groups, when decisions with reasons, post order, parameters."""

from __future__ import annotations

import pytest

from conveyor.errors import RunnerError
from conveyor.pipeline.context import Trigger, build_variables
from conveyor.runner.plan import (
    POST_ORDER,
    build_plan,
    declared_post_order,
    default_params,
    post_actions,
    stage_environment,
)
from conveyor.spec.model import Post
from tests.runner.specs import make_spec

SPEC = make_spec(
    [
        {"name": "test", "run": ["true"]},
        {
            "name": "checks",
            "parallel": [
                {"name": "lint", "run": ["true"]},
                {"name": "docs", "run": ["true"], "when": {"branch": "main"}},
            ],
        },
        {"name": "release", "run": ["true"], "when": {"tag": "v*"}},
        {
            "name": "deploy",
            "run": ["true"],
            "when": {"branch": ["main"], "parameter": {"GO": True}},
        },
    ],
    jenkins={"parameters": [{"name": "GO", "type": "boolean"}]},
)


def env_for(**kw: object) -> dict[str, str]:
    return build_variables(Trigger(project="demo/app", sha="a" * 40, **kw))  # type: ignore[arg-type]


def test_order_and_parallel_children() -> None:
    plan = build_plan(SPEC, env_for(kind="push", branch="main"), {"GO": False})
    assert [p.name for p in plan.flat()] == ["test", "checks", "lint", "docs", "release", "deploy"]
    assert [c.name for c in plan.stages[1].children] == ["lint", "docs"]


def test_when_decisions_carry_reasons() -> None:
    plan = build_plan(SPEC, env_for(kind="push", branch="feature/x"), {"GO": True})
    by_name = {p.name: p for p in plan.flat()}
    assert by_name["test"].run and by_name["lint"].run
    assert not by_name["docs"].run
    assert by_name["docs"].reason == "when: branch 'feature/x' does not match main"
    assert not by_name["release"].run
    assert "not a tag build" in by_name["release"].reason
    assert not by_name["deploy"].run and "branch 'feature/x'" in by_name["deploy"].reason


def test_tag_build_and_parameter() -> None:
    plan = build_plan(SPEC, env_for(kind="tag_push", tag="v1.2"), {"GO": True})
    by_name = {p.name: p for p in plan.flat()}
    assert by_name["release"].run
    assert not by_name["deploy"].run  # a tag build has no branch
    plan = build_plan(SPEC, env_for(kind="push", branch="main"), {"GO": False})
    deploy = {p.name: p for p in plan.flat()}["deploy"]
    assert not deploy.run and deploy.reason == "when: parameter GO is False, not True"


def test_only_selects_stages_and_rejects_unknown() -> None:
    plan = build_plan(SPEC, env_for(kind="push", branch="main"), {}, only=["lint"])
    by_name = {p.name: p for p in plan.flat()}
    assert by_name["checks"].run and by_name["lint"].run
    assert not by_name["docs"].run and by_name["docs"].reason == "not selected (--stage)"
    assert not by_name["test"].run
    with pytest.raises(RunnerError, match="no stage named 'nope'"):
        build_plan(SPEC, env_for(kind="push", branch="main"), {}, only=["nope"])


def test_skipped_parent_skips_children() -> None:
    spec = make_spec(
        [
            {
                "name": "p",
                "when": {"branch": "main"},
                "parallel": [{"name": "a", "run": ["true"]}, {"name": "b", "run": ["true"]}],
            }
        ]
    )
    plan = build_plan(spec, env_for(kind="push", branch="dev"), {})
    assert [c.reason for c in plan.stages[0].children] == ["parent skipped", "parent skipped"]


def test_post_actions_follow_jenkins_order() -> None:
    post = Post(cleanup=["c"], failure=["f"], success=["s"], always=["a"])
    assert [a.condition for a in post_actions(post, succeeded=True)] == [
        "always",
        "success",
        "cleanup",
    ]
    assert [a.condition for a in post_actions(post, succeeded=False)] == [
        "always",
        "failure",
        "cleanup",
    ]
    assert post_actions(None, succeeded=True) == []
    assert declared_post_order(Post(cleanup=["c"], always=["a"])) == ["always", "cleanup"]
    assert POST_ORDER == ("always", "failure", "success", "cleanup")


def test_default_params_like_jenkins() -> None:
    spec = make_spec(
        [{"name": "t", "run": ["true"]}],
        jenkins={
            "parameters": [
                {"name": "B", "type": "boolean"},
                {"name": "S", "type": "string"},
                {"name": "C", "type": "choice", "choices": ["x", "y"]},
            ]
        },
    )
    assert default_params(spec) == {"B": False, "S": "", "C": "x"}
    assert default_params(spec, {"B": "true", "C": "y"}) == {"B": True, "S": "", "C": "y"}
    with pytest.raises(RunnerError, match="unknown build parameter"):
        default_params(spec, {"X": "1"})
    with pytest.raises(RunnerError, match="must be one of"):
        default_params(spec, {"C": "z"})
    with pytest.raises(RunnerError, match="boolean"):
        default_params(spec, {"B": "maybe"})


def test_stage_environment_precedence() -> None:
    spec = make_spec(
        [
            {
                "name": "t",
                "run": ["true"],
                "environment": {"A": "stage"},
                "secrets": {"TOK": "tok-id"},
            }
        ],
        environment={"A": "pipeline", "B": "pipeline"},
        secrets={"PIPE": "pipe-id"},
    )
    env = stage_environment(
        spec, spec.stages[0], {"GIT_COMMIT": "x", "A": "build"}, {"TOK": "t", "PIPE": "p"}, "t"
    )
    assert env == {
        "GIT_COMMIT": "x",
        "A": "stage",
        "B": "pipeline",
        "STAGE_NAME": "t",
        "TOK": "t",
        "PIPE": "p",
    }
    post_env = stage_environment(spec, None, {}, {"TOK": "t", "PIPE": "p"}, "post")
    assert "TOK" not in post_env and post_env["PIPE"] == "p"
