"""Parity: the local runner does what the rendered Jenkinsfile declares.

* ``when``: every stage's rendered Groovy expression is evaluated by the real Groovy 2.4.21 (Jenkins'
  version), one JVM for all cases, with ``env``/``params`` bound like Jenkins binds them; the runner's
  plan must decide the same for every branch / tag / merge request / manual case.
* the stage order, and the post steps in the order Jenkins runs them;
* the environment entries (pipeline and stage level);
* the docker ``args`` of every agent block (socket and cache volume mounts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.jenkins import groovy
from conveyor.jenkins.jenkinsfile import PREPARE_STAGE, STAGE_STEP, post_step, render_jenkinsfile
from conveyor.pipeline.context import Trigger, build_variables, trigger_parameters
from conveyor.runner.plan import (
    build_plan,
    declared_post_order,
    default_params,
    parameter_variables,
)
from conveyor.runner.step import jenkins_variables
from conveyor.spec.model import Spec
from tests.groovy.harness import GROOVY_JAR, run_script
from tests.runner import jenkinsfile_tree as jf
from tests.runner.specs import make_spec

# Jenkins' own order of post conditions (pipeline-model-definition BuildCondition ordering).
JENKINS_POST_ORDER = [
    "always",
    "changed",
    "fixed",
    "regression",
    "aborted",
    "failure",
    "success",
    "unstable",
    "unsuccessful",
    "notBuilt",
    "cleanup",
]

WHEN_SPEC = make_spec(
    [
        {"name": "always", "run": ["true"]},
        {"name": "main", "run": ["true"], "when": {"branch": "main"}},
        {"name": "releases", "run": ["true"], "when": {"branch": ["release/*", "hotfix/**"]}},
        {"name": "not-features", "run": ["true"], "when": {"not_branch": "feature/**"}},
        {"name": "tags", "run": ["true"], "when": {"tag": "v*"}},
        {"name": "tag-event", "run": ["true"], "when": {"event": "tag_push"}},
        {
            "name": "mr-to-main",
            "run": ["true"],
            "when": {"event": "merge_request", "branch": "feature/*"},
        },
        {"name": "push-or-mr", "run": ["true"], "when": {"event": ["push", "merge_request"]}},
        {"name": "param-bool", "run": ["true"], "when": {"parameter": {"DEPLOY": True}}},
        {
            "name": "param-choice",
            "run": ["true"],
            "when": {"branch": "main", "parameter": {"TARGET": "prod"}},
        },
        {
            "name": "group",
            "parallel": [
                {"name": "g-any", "run": ["true"]},
                {"name": "g-dev", "run": ["true"], "when": {"branch": ["dev*", "main"]}},
            ],
        },
    ],
    jenkins={
        "parameters": [
            {"name": "DEPLOY", "type": "boolean"},
            {"name": "TARGET", "type": "choice", "choices": ["staging", "prod"]},
        ]
    },
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def _cases() -> list[tuple[str, dict[str, str], dict[str, bool | str]]]:
    triggers = {
        "push main": Trigger(kind="push", project="demo/app", sha=SHA, branch="main"),
        "push dev-x": Trigger(kind="push", project="demo/app", sha=SHA, branch="dev-x"),
        "push release/1.2": Trigger(kind="push", project="demo/app", sha=SHA, branch="release/1.2"),
        "push release/1/2": Trigger(kind="push", project="demo/app", sha=SHA, branch="release/1/2"),
        "push hotfix/a/b": Trigger(kind="push", project="demo/app", sha=SHA, branch="hotfix/a/b"),
        "push feature/x": Trigger(kind="push", project="demo/app", sha=SHA, branch="feature/x"),
        "push feature/x/y": Trigger(kind="push", project="demo/app", sha=SHA, branch="feature/x/y"),
        "push hostile": Trigger(
            kind="push", project="demo/app", sha=SHA, branch="$(touch /tmp/x)'; main"
        ),
        "push dotted": Trigger(kind="push", project="demo/app", sha=SHA, branch="mainXfoo.main"),
        "tag v1.0": Trigger(kind="tag_push", project="demo/app", sha=SHA, tag="v1.0"),
        "tag x1": Trigger(kind="tag_push", project="demo/app", sha=SHA, tag="x1"),
        "mr feature/x->main": Trigger(
            kind="merge_request",
            project="demo/app",
            sha=SHA,
            branch="feature/x",
            target_branch="main",
            mr_iid=4,
            mr_action="open",
        ),
        "mr main->release/1": Trigger(
            kind="merge_request",
            project="demo/app",
            sha=SHA,
            branch="main",
            target_branch="release/1",
            mr_iid=5,
            mr_action="update",
        ),
        "manual": Trigger(kind="manual", project="demo/app", sha=SHA),
    }
    params: list[dict[str, bool | str]] = [
        {"DEPLOY": False, "TARGET": "staging"},
        {"DEPLOY": True, "TARGET": "prod"},
    ]
    cases: list[tuple[str, dict[str, str], dict[str, bool | str]]] = []
    for label, trigger in triggers.items():
        for p in params:
            cases.append((f"{label} {p}", build_variables(trigger, 7), p))
    # a build started by Jenkins' own SCM polling: only GIT_BRANCH (origin/...) is known
    for branch in ("origin/main", "origin/feature/x"):
        cases.append((f"scm {branch}", {"GIT_BRANCH": branch, "GIT_COMMIT": SHA}, params[1]))
    cases.append(("tag via TAG_NAME", {"TAG_NAME": "v9", "GIT_COMMIT": SHA}, params[0]))
    return cases


def _groovy_decisions(
    expressions: list[str],
    cases: list[tuple[str, dict[str, str], dict[str, bool | str]]],
    tmp_path: Path,
) -> list[list[bool]]:
    """Evaluate every expression for every case in one Groovy 2.4 JVM; [case][expression]."""
    lines = ["def exprs = ["]
    lines += [f"    {{ env, params -> return ({expr}) }}," for expr in expressions]
    lines.append("]")
    lines.append("def cases = [")
    for _, env, params in cases:
        lines.append(f"    [{groovy.map_literal(env)}, {groovy.map_literal(params)}],")
    lines.append("]")
    lines.append(
        "cases.eachWithIndex { c, i -> println('R ' + i + ' ' + "
        "exprs.collect { f -> f(c[0], c[1]) ? '1' : '0' }.join('')) }"
    )
    script = tmp_path / "when.groovy"
    script.write_text("\n".join(lines) + "\n")
    stdout = run_script(script)
    out: list[list[bool]] = []
    for line in stdout.splitlines():
        if line.startswith("R "):
            _, index, bits = line.split(" ")
            assert int(index) == len(out)
            out.append([b == "1" for b in bits])
    assert len(out) == len(cases)
    return out


@pytest.mark.skipif(
    shutil.which("java") is None or not GROOVY_JAR.is_file(),
    reason="groovy 2.4.21 (apt-get install groovy) not installed",
)
def test_when_decisions_equal_the_rendered_groovy(tmp_path: Path) -> None:
    tree = jf.parse(
        render_jenkinsfile(WHEN_SPEC, clone_url="https://gitlab.example.com/demo/app.git")
    )
    pipeline = tree.block("pipeline")
    assert pipeline is not None
    stage_blocks = jf.stages(_stages_block(pipeline))
    rendered: list[tuple[str, str]] = []
    for block, _parent in stage_blocks:
        expr = jf.when_expression(block)
        name = jf.stage_name(block)
        assert name is not None
        rendered.append((name, expr if expr is not None else "true"))
    cases = _cases()
    groovy_says = _groovy_decisions([e for _, e in rendered], cases, tmp_path)
    mismatches = []
    decided_both_ways = set()
    for (label, env, params), row in zip(cases, groovy_says, strict=True):
        plan = build_plan(WHEN_SPEC, env, params)
        runner = {p.name: p for p in plan.flat()}
        for (name, _), jenkins_runs in zip(rendered, row, strict=True):
            if name == PREPARE_STAGE:
                continue
            planned = runner[name]
            # a parallel child of a skipped parent never runs, in Jenkins too
            runs = planned.run
            if planned.reason == "parent skipped":
                runs = False
                jenkins_runs = False
            if runs != jenkins_runs:
                mismatches.append(f"{label}: {name}: runner {runs}, Jenkins {jenkins_runs}")
            decided_both_ways.add((name, runs))
    assert mismatches == []
    # the cases exercise both outcomes of every conditional stage
    for name, _ in rendered:
        if name not in (PREPARE_STAGE, "always", "group", "g-any"):
            assert {(name, True), (name, False)} <= decided_both_ways, name


def _stages_block(pipeline: jf.Block) -> jf.Block:
    stages = pipeline.block("stages")
    assert stages is not None
    return stages


FULL_SPEC = make_spec(
    [
        {
            "name": "compile",
            "run": ["make"],
            "environment": {"CGO": "0", "QUOTE": "it's $HOME"},
            "cache": [{"volume": "gocache", "path": "/root/.cache/go-build"}],
            "post": {
                "cleanup": ["rm -rf out"],
                "failure": ["echo f"],
                "always": ["echo a"],
                "success": ["echo s"],
            },
        },
        {
            "name": "checks",
            "parallel": [
                {
                    "name": "unit",
                    "run": ["make test"],
                    "image": "golang:1.22",
                    "cache": [{"volume": "gomod", "path": "/go/pkg/mod"}],
                    "post": {"always": ["echo unit done"]},
                },
                {"name": "lint", "run": ["make lint"], "secrets": {"LINT_TOKEN": "lint-token"}},
            ],
            "post": {"success": ["echo checks ok"]},
        },
        {
            "name": "image",
            "build": {"tags": ["{registry}/{project}:{sha}"]},
            "push": {"registry": "registry.example.com", "credentials": "registry-creds"},
        },
        {
            "name": "ship",
            "deploy": {
                "name": "web",
                "ports": ["8080:80"],
                "strategy": "recreate",
                "secrets": {"DB_PASSWORD": "db-pass"},
            },
            "when": {"branch": "main"},
        },
    ],
    agent={"image": "conveyor-agent:1", "docker": "socket", "args": ["--add-host", "db:10.1.2.3"]},
    environment={"APP": "demo", "EMPTY": ""},
    secrets={"SONAR": "sonar-token"},
    post={
        "always": ["echo bye"],
        "failure": ["echo failed"],
        "cleanup": ["docker system prune -f"],
        "success": ["echo yay"],
    },
)


def _full_tree(spec: Spec) -> tuple[jf.Block, list[tuple[jf.Block, str | None]]]:
    tree = jf.parse(render_jenkinsfile(spec, clone_url="https://gitlab.example.com/demo/app.git"))
    pipeline = tree.block("pipeline")
    assert pipeline is not None
    return pipeline, jf.stages(_stages_block(pipeline))


def test_stage_order_equals_the_rendered_order() -> None:
    _, blocks = _full_tree(FULL_SPEC)
    rendered = [(jf.stage_name(b), parent) for b, parent in blocks]
    assert rendered[0] == (PREPARE_STAGE, None)  # conveyor's checkout stage, Jenkins-only
    env = build_variables(Trigger(kind="push", project="demo/app", sha=SHA, branch="main"))
    plan = build_plan(FULL_SPEC, env, default_params(FULL_SPEC))
    ours = []
    for planned in plan.stages:
        ours.append((planned.name, None))
        ours += [(child.name, planned.name) for child in planned.children]
    assert rendered[1:] == ours


def test_every_stage_body_is_the_executor() -> None:
    """Env, caches, docker args and a stage's own post are the executor's (``conveyor run
    --jenkins``, the code ``conveyor run`` uses): the Jenkinsfile declares none of them."""
    pipeline, blocks = _full_tree(FULL_SPEC)
    by_name = {s.name: s for s in FULL_SPEC.all_stages()}
    for block, _ in blocks:
        name = jf.stage_name(block)
        if name == PREPARE_STAGE or name is None:
            continue
        steps = block.block("steps")
        if by_name[name].parallel is None:
            assert steps is not None and jf.shell_steps(steps) == [STAGE_STEP], name
            assert block.block("post") is None, name  # the executor runs the stage's post
        else:
            assert steps is None
        assert block.block("agent") is None, name
        env = jf.environment(block)
        assert all(v.startswith("credentials:") for v in env.values()), name
    assert all(v.startswith("credentials:") for v in jf.environment(pipeline).values())


def test_post_conditions_reach_the_executor() -> None:
    """A parallel stage's and the pipeline's post: Jenkins decides the condition, the executor
    runs that condition's commands (the same :func:`post_actions` order otherwise)."""
    pipeline, blocks = _full_tree(FULL_SPEC)
    checks = next(b for b, _ in blocks if jf.stage_name(b) == "checks")
    assert jf.post_conditions(checks) == {"success": [post_step("success", stage=True)]}
    declared = jf.post_conditions(pipeline)
    for condition in declared_post_order(FULL_SPEC.post):
        assert post_step(condition, stage=False) in declared[condition], condition
    assert declared["unstable"] == [] and declared["aborted"] == []


def _as_jenkins_sets_it(trigger: Trigger, number: int) -> dict[str, str]:
    """The environment of a Jenkins build started by conveyor's receiver for ``trigger``: the
    trigger parameters, the checkout's GIT_COMMIT, Jenkins' own variables (no BRANCH_NAME/TAG_NAME
    in a plain pipeline job) and a node's noise."""
    env = trigger_parameters(build_variables(trigger))
    env.update(
        {
            "GIT_COMMIT": trigger.sha,
            "BUILD_NUMBER": str(number),
            "JOB_NAME": "demo/app",
            "HOSTNAME": "agent-1",
            "JAVA_HOME": "/opt/java",
            "DEPLOY": "true",
        }
    )
    return env


@pytest.mark.parametrize(
    "trigger",
    [
        Trigger(kind="push", project="demo/app", sha=SHA, branch="main"),
        Trigger(kind="tag_push", project="demo/app", sha=SHA, tag="v1.2"),
        Trigger(
            kind="merge_request",
            project="demo/app",
            sha=SHA,
            branch="feature/x",
            target_branch="main",
            mr_iid=3,
            mr_action="open",
        ),
    ],
)
def test_a_jenkins_step_sees_the_variables_a_local_run_sees(trigger: Trigger) -> None:
    spec = WHEN_SPEC
    local = build_variables(trigger, 7)
    local.update(parameter_variables({"DEPLOY": True}))
    ours = jenkins_variables(spec, _as_jenkins_sets_it(trigger, 7))
    for name in ("GIT_COMMIT", "BUILD_NUMBER", "BRANCH_NAME", "TAG_NAME", "DEPLOY"):
        assert ours.get(name) == local.get(name), name
    for name in local:
        if name.startswith("gitlab"):
            assert ours.get(name) == local[name], name
    assert "HOSTNAME" not in ours and "JAVA_HOME" not in ours  # nothing of the node leaks in
