"""The ordered stage plan of one run: what runs, in which order, and why not (pure).

Stage semantics shared with the Jenkinsfile, as declarative Jenkins defines them:

* Stages run in declaration order; a ``parallel`` stage's children run at the same time and the parent
  waits for all of them (no fail-fast).
* A stage whose ``when`` does not hold is skipped: its body and its ``post`` do not run
  (:func:`conveyor.pipeline.when.should_run` decides, the same function the renderer's Groovy mirrors).
* After the first failing stage the remaining stages do not run ("skipped due to earlier failure").
* ``post`` conditions run in Jenkins' fixed order, whatever order the YAML lists them in:
  ``always``, then ``failure`` or ``success``, then ``cleanup`` (see :data:`POST_ORDER`). A stage's post
  runs right after its body; the pipeline's post after the last stage, whatever happened.
* ``--stage NAME`` (local only) narrows the run to the named stages; the others are ``not selected``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from conveyor.errors import RunnerError
from conveyor.pipeline.when import Condition, Context, branch_of, conditions, should_run, tag_of
from conveyor.spec.model import Post, Spec, Stage

# Jenkins' BuildCondition order (pipeline-model-definition), restricted to the conditions a spec has:
# always, changed, fixed, regression, aborted, failure, success, unstable, unsuccessful, notBuilt, cleanup.
POST_ORDER: tuple[str, ...] = ("always", "failure", "success", "cleanup")


@dataclass(frozen=True)
class PostAction:
    """One post condition's commands."""

    condition: str
    commands: tuple[str, ...]


@dataclass(frozen=True)
class PlannedStage:
    """One stage of the plan. ``run`` False means skipped, with ``reason`` saying why."""

    name: str
    kind: str
    stage: Stage = field(repr=False, compare=False)
    run: bool
    reason: str
    children: tuple[PlannedStage, ...] = ()

    @property
    def post(self) -> Post | None:
        return self.stage.post


@dataclass(frozen=True)
class Plan:
    """Everything a run will do, decided before anything runs."""

    stages: tuple[PlannedStage, ...]
    post: Post | None
    params: Mapping[str, bool | str]

    def flat(self) -> list[PlannedStage]:
        """Every planned stage, parallel children after their parent, in declaration order."""
        out: list[PlannedStage] = []
        for planned in self.stages:
            out.append(planned)
            out.extend(planned.children)
        return out


def post_actions(post: Post | None, *, succeeded: bool) -> list[PostAction]:
    """The post commands that run for this outcome, in Jenkins' order."""
    if post is None:
        return []
    out: list[PostAction] = []
    for condition in POST_ORDER:
        if condition == "failure" and succeeded:
            continue
        if condition == "success" and not succeeded:
            continue
        commands: list[str] = getattr(post, condition)
        if commands:
            out.append(PostAction(condition, tuple(commands)))
    return out


def declared_post_order(post: Post | None) -> list[str]:
    """The post conditions a block declares, in the order Jenkins evaluates them."""
    if post is None:
        return []
    return [c for c in POST_ORDER if getattr(post, c)]


def stage_environment(
    spec: Spec,
    stage: Stage | None,
    build_vars: Mapping[str, str],
    secrets: Mapping[str, str],
    stage_name: str,
) -> dict[str, str]:
    """What a stage's steps see, in Jenkins' precedence (later wins): the build variables,
    ``STAGE_NAME``, the pipeline's ``environment`` and secrets, the stage's ``environment`` and secrets
    (``None``: the pipeline's post, which sees the pipeline level only)."""
    env = dict(build_vars)
    env["STAGE_NAME"] = stage_name
    env.update(spec.environment)
    for var in spec.secrets:
        env[var] = secrets[var]
    if stage is not None:
        env.update(stage.environment)
        for var in stage.secrets:
            env[var] = secrets[var]
        if stage.deploy is not None:
            for var in stage.deploy.secrets:
                env[var] = secrets[var]
    return env


def parameter_variables(params: Mapping[str, bool | str]) -> dict[str, str]:
    """Build parameters as the environment variables Jenkins gives every step (booleans as
    ``true``/``false``, ``ParametersAction`` -> ``BooleanParameterValue.buildEnvironment``)."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else value
        for name, value in params.items()
    }


def default_params(
    spec: Spec, given: Mapping[str, bool | str] | None = None
) -> dict[str, bool | str]:
    """Build parameters as Jenkins gives them: declared defaults, overridden by ``given``.

    Jenkins' defaults: boolean -> false, string/text -> "", choice -> the first choice.
    Unknown names and wrongly typed values are errors (Jenkins would ignore or reject them).
    """
    declared = {p.name: p for p in spec.jenkins.parameters}
    out: dict[str, bool | str] = {}
    for p in spec.jenkins.parameters:
        if p.default is not None:
            out[p.name] = p.default
        elif p.type == "boolean":
            out[p.name] = False
        elif p.type == "choice":
            out[p.name] = (p.choices or [""])[0]
        else:
            out[p.name] = ""
    for name, value in (given or {}).items():
        param = declared.get(name)
        if param is None:
            known = ", ".join(sorted(declared)) or "none"
            raise RunnerError(
                f"unknown build parameter {name!r}",
                hint=f"parameters declared in the spec: {known}",
            )
        if param.type == "boolean" and isinstance(value, str):
            lowered = value.lower()
            if lowered not in ("true", "false"):
                raise RunnerError(f"parameter {name!r} is a boolean: use true or false")
            value = lowered == "true"
        if param.type == "choice" and value not in (param.choices or []):
            raise RunnerError(f"parameter {name!r} must be one of {', '.join(param.choices or [])}")
        out[name] = value
    return out


def _describe(cond: Condition, ctx: Context) -> str:
    pats = ", ".join(cond.patterns)
    if cond.kind == "event":
        return f"event {ctx.env.get('gitlabActionType') or 'manual'} is not {pats}"
    if cond.kind == "branch":
        branch = branch_of(ctx.env)
        return (
            f"branch {branch!r} does not match {pats}"
            if branch
            else "no branch (needs " + pats + ")"
        )
    if cond.kind == "not_branch":
        return f"branch {branch_of(ctx.env)!r} matches not_branch {pats}"
    if cond.kind == "tag":
        tag = tag_of(ctx.env)
        return f"tag {tag!r} does not match {pats}" if tag else f"not a tag build (needs {pats})"
    return f"parameter {cond.name} is {ctx.params.get(cond.name)!r}, not {cond.value!r}"


def when_reason(stage: Stage, ctx: Context) -> tuple[bool, str]:
    """Whether the stage's ``when`` holds, and a one-line reason."""
    decided = should_run(stage.when, ctx)
    if stage.when is None:
        return decided, "no when"
    failed = [c for c in conditions(stage.when) if not c.holds(ctx)]
    if decided:
        return True, "when holds"
    return False, "when: " + "; ".join(_describe(c, ctx) for c in failed)


def _selected(stage: Stage, only: set[str]) -> bool:
    if not only:
        return True
    if stage.name in only:
        return True
    return any(child.name in only for child in stage.parallel or [])


def build_plan(
    spec: Spec,
    env: Mapping[str, str],
    params: Mapping[str, bool | str],
    only: Sequence[str] = (),
) -> Plan:
    """The plan for a run with build variables ``env`` and build parameters ``params``."""
    wanted = set(only)
    known = {s.name for s in spec.all_stages()}
    unknown = sorted(wanted - known)
    if unknown:
        raise RunnerError(
            f"no stage named {', '.join(repr(u) for u in unknown)} in the spec",
            hint="stages: " + ", ".join(s.name for s in spec.all_stages()),
        )
    ctx = Context(env=dict(env), params=dict(params))
    planned: list[PlannedStage] = []
    for stage in spec.stages:
        parent_whole = not wanted or stage.name in wanted
        if not _selected(stage, wanted):
            planned.append(
                PlannedStage(stage.name, stage.kind, stage, False, "not selected (--stage)")
            )
            continue
        ok, reason = when_reason(stage, ctx)
        children: list[PlannedStage] = []
        for child in stage.parallel or []:
            if not ok:
                children.append(
                    PlannedStage(child.name, child.kind, child, False, "parent skipped")
                )
            elif not parent_whole and child.name not in wanted:
                children.append(
                    PlannedStage(child.name, child.kind, child, False, "not selected (--stage)")
                )
            else:
                c_ok, c_reason = when_reason(child, ctx)
                children.append(PlannedStage(child.name, child.kind, child, c_ok, c_reason))
        planned.append(PlannedStage(stage.name, stage.kind, stage, ok, reason, tuple(children)))
    return Plan(stages=tuple(planned), post=spec.post, params=dict(params))
