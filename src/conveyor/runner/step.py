"""One step of a Jenkins build: ``conveyor run SPEC --jenkins --stage NAME [--post CONDITION]``.

"Jenkins schedules, conveyor executes": the generated Jenkinsfile keeps checkout, the stage structure,
``when``, credentials, commit statuses and ``post``; each stage's body is one ``sh`` step running this,
inside the agent image. The stage then runs through the same :class:`~conveyor.runner.execute.StageExecutor`
as ``conveyor run`` on a laptop (its containers, build, push, deploy, its own ``post``), with what a
Jenkins build gives instead of what a local run derives:

* **Build variables** come from the environment Jenkins set (gitlab-plugin's ``gitlab*`` names,
  ``GIT_COMMIT`` from the checkout, ``BUILD_NUMBER``, ``JOB_NAME``..., the declared parameters):
  :func:`jenkins_variables`. ``BRANCH_NAME``/``TAG_NAME`` (multibranch-only in Jenkins) are derived with
  the same fallbacks ``when`` uses. Nothing else of the agent's environment reaches a stage.
* **``when`` is Jenkins' decision**: the step runs the stage it is named for (the parity test shows the
  rendered Groovy and :func:`conveyor.pipeline.when.should_run` decide alike).
* **The engine is the one the environment names** (no nested daemon is started): the mounted socket
  (``docker: socket``; the Jenkinsfile adds the socket's group) or ``DOCKER_HOST`` with
  ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH`` (``docker: dind``: the docker:dind service of Jenkins'
  own Docker install recipe). Stage containers get the workspace and the certificates through the
  agent container's own mounts (:mod:`conveyor.runner.workspace`) and its network. That engine is
  long-lived (not a stage's daemon), so deploys use it too unless ``CONVEYOR_DEPLOY_HOST`` or the
  spec's ``deploy.engine`` names another (:mod:`conveyor.docker.deploy.engine`).
* **No history, no statuses**: Jenkins keeps the build, gitlab-plugin reports the statuses.
  State (deploy locks) goes to ``$CONVEYOR_STATE``, else ``.conveyor/state`` in the workspace:
  ``HOME`` is ``/`` for Jenkins' uid 1000, where nothing can be written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from conveyor.docker.engine import connect
from conveyor.errors import ConveyorError, RunnerError
from conveyor.masking import Masker
from conveyor.pipeline.context import TRIGGER_PARAMETERS, Trigger, commit_of
from conveyor.pipeline.when import branch_of, tag_of
from conveyor.runner.containers import EngineAccess, Workspace, bind_workspace
from conveyor.runner.execute import RunContext, StageExecutor
from conveyor.runner.log import RunLog
from conveyor.runner.output import OutputSink, PlainOutput
from conveyor.runner.plan import POST_ORDER, PlannedStage
from conveyor.runner.results import RunResult, StageResult
from conveyor.runner.secrets import secret_values
from conveyor.runner.statuses import NoStatuses
from conveyor.runner.workspace import Placement, find_placement
from conveyor.spec.load import LoadedSpec
from conveyor.spec.model import Post, Spec, Stage

#: Jenkins' own build variables a stage sees (core, git plugin), besides gitlab-plugin's
#: (:data:`~conveyor.pipeline.context.TRIGGER_PARAMETERS`) and the spec's parameters.
JENKINS_VARIABLES: tuple[str, ...] = (
    "BUILD_NUMBER",
    "BUILD_ID",
    "BUILD_TAG",
    "BUILD_URL",
    "JOB_NAME",
    "JOB_BASE_NAME",
    "JENKINS_URL",
    "NODE_NAME",
    "EXECUTOR_NUMBER",
    "GIT_COMMIT",
    "GIT_BRANCH",
    "GIT_URL",
    "BRANCH_NAME",
    "TAG_NAME",
    "CONVEYOR_COMMIT_MESSAGE",
    "gitlabMergeRequestLastCommit",
)
STATE_IN_WORKSPACE = Path(".conveyor") / "state"


def jenkins_variables(spec: Spec, environ: Mapping[str, str]) -> dict[str, str]:
    """The build variables of this Jenkins build, as a local run would have them."""
    names = [*JENKINS_VARIABLES, *TRIGGER_PARAMETERS, *(p.name for p in spec.jenkins.parameters)]
    env = {name: environ[name] for name in names if name in environ}
    env["CONVEYOR_PROJECT"] = spec.project
    if not env.get("GIT_COMMIT") and commit_of(env):
        env["GIT_COMMIT"] = commit_of(env)
    if not env.get("TAG_NAME") and tag_of(env):
        env["TAG_NAME"] = tag_of(env)
    if not env.get("BRANCH_NAME") and branch_of(env):
        env["BRANCH_NAME"] = branch_of(env)
    return env


def _trigger(spec: Spec, env: Mapping[str, str]) -> Trigger:
    action = env.get("gitlabActionType", "")
    sha = env.get("GIT_COMMIT", "")
    if action == "TAG_PUSH":
        return Trigger(kind="tag_push", project=spec.project, sha=sha, tag=env.get("TAG_NAME"))
    branch = env.get("BRANCH_NAME")
    if action == "PUSH":
        return Trigger(kind="push", project=spec.project, sha=sha, branch=branch)
    if action == "MERGE":
        return Trigger(kind="merge_request", project=spec.project, sha=sha, branch=branch)
    return Trigger(kind="manual", project=spec.project, sha=sha)


def _build_number(environ: Mapping[str, str]) -> int:
    raw = environ.get("BUILD_NUMBER", "")
    if not raw.isdigit():
        raise RunnerError(
            "--jenkins needs BUILD_NUMBER from the Jenkins build",
            hint="run it as an `sh` step of the generated Jenkinsfile; locally use `conveyor run`",
        )
    return int(raw)


def _owner() -> str | None:
    uid, gid = os.getuid(), os.getgid()
    return None if uid == 0 else f"{uid}:{gid}"


def engine_access(spec: Spec, environ: Mapping[str, str], placement: Placement) -> EngineAccess:
    """How this build's stage containers reach the engine the environment names."""
    mode = spec.jenkins.agent.docker
    if mode != "dind":
        return EngineAccess(mode=mode)
    host = environ.get("DOCKER_HOST", "")
    if not host:
        raise RunnerError(
            "docker: dind in a Jenkins build needs DOCKER_HOST (the docker:dind service)",
            hint="set DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH on the Jenkins agent "
            "(docker-in-docker/compose.dind.yml does)",
        )
    env: list[tuple[str, str]] = []
    mounts: list[str] = []
    certs = environ.get("DOCKER_CERT_PATH", "")
    if environ.get("DOCKER_TLS_VERIFY"):
        env.append(("DOCKER_TLS_VERIFY", environ["DOCKER_TLS_VERIFY"]))
    if certs:
        env.append(("DOCKER_CERT_PATH", certs))
        if placement.container is not None:
            mounts = placement.share(certs, "certificate directory (DOCKER_CERT_PATH)").argv()
        else:
            mounts = ["-v", f"{certs}:{certs}:ro"]
    network = f"container:{placement.container}" if placement.container else None
    return EngineAccess(
        mode="dind", docker_host=host, network=network, env=tuple(env), mounts=tuple(mounts)
    )


def _workspace(workdir: Path, placement: Placement) -> Workspace:
    if placement.container is None:
        local = bind_workspace(str(workdir))
        return Workspace(local.path, local.argv, _owner())
    shared = placement.share(str(workdir), "workspace")
    return Workspace(str(workdir), tuple(shared.argv()), _owner())


def _only(post: Post | None, condition: str) -> Post:
    commands = list(getattr(post, condition)) if post is not None else []
    return Post.model_validate({condition: commands})


def run_build_step(
    spec: LoadedSpec,
    *,
    stage: str | None,
    post: str | None = None,
    workdir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    sink: OutputSink | None = None,
) -> RunResult:
    """Run one stage (body and its own ``post``) or one ``post`` condition (of a parallel stage, or
    of the pipeline when ``stage`` is None) as a step of the current Jenkins build."""
    model = spec.spec
    environ = os.environ if environ is None else environ
    workdir = (workdir or Path.cwd()).resolve()
    if post is not None and post not in POST_ORDER:
        raise RunnerError(f"--post {post!r}: use one of {', '.join(POST_ORDER)}")
    target: Stage | None = None
    if stage is not None:
        target = next((s for s in model.all_stages() if s.name == stage), None)
        if target is None:
            raise RunnerError(
                f"no stage named {stage!r} in {spec.path}",
                hint="stages: " + ", ".join(s.name for s in model.all_stages()),
            )
        if target.parallel is not None and post is None:
            raise RunnerError(
                f"stage {stage!r} is a parallel stage: its branches run as their own steps"
            )
    elif post is None:
        raise RunnerError("--jenkins needs --stage NAME, --post CONDITION or both")
    number = _build_number(environ)
    env = jenkins_variables(model, environ)
    env.setdefault("JOB_NAME", model.jenkins.job)
    env.setdefault("BUILD_ID", str(number))
    values = secret_values(model, environ, [target] if target is not None else [])
    sink = sink if sink is not None else PlainOutput(summary=False)
    log = RunLog(sink, Masker(values.values()))
    state = Path(environ["CONVEYOR_STATE"]) if environ.get("CONVEYOR_STATE") else None
    client = connect() if model.jenkins.agent.docker != "none" else None
    try:
        placement = find_placement(client) if client is not None else Placement(None)
    finally:
        if client is not None:
            client.close()
    ctx = RunContext(
        number=number,
        trigger=_trigger(model, env),
        spec=model,
        spec_file=str(spec.path),
        workdir=workdir,
        state_dir=state or workdir / STATE_IN_WORKSPACE,
        env=env,
        secrets=values,
        environ=environ,
        statuses=NoStatuses(),
        deadline=None,
        workspace=_workspace(workdir, placement),
        given_engine=engine_access(model, environ, placement),
    )
    started = time.monotonic()
    executor = StageExecutor(ctx, log, sink)
    results: list[StageResult]
    error: str | None = None
    try:
        if post is not None:
            image = (target.image if target else None) or model.jenkins.agent.image
            code = executor.post_step(
                target.name if target else "pipeline",
                _only(target.post if target else model.post, post),
                target,
                image,
                ok=post not in ("failure",),
            )
            results = [StageResult(f"{stage or 'pipeline'} post:{post}", _outcome(code), 0.0, code)]
        else:
            assert target is not None
            planned = PlannedStage(target.name, target.kind, target, True, "Jenkins runs it")
            results = executor.stage(planned)
            code = results[0].exit_code or (0 if results[0].result == "success" else 1)
    except ConveyorError as exc:
        error = str(exc)
        log.line(stage or "pipeline", f"error: {exc}")
        code = 1
        results = []
    failed = next((r for r in results if r.result == "failed"), None)
    return RunResult(
        number=number,
        project=model.project,
        status="success" if code == 0 and error is None else "failed",
        exit_code=code,
        duration=time.monotonic() - started,
        stages=tuple(results),
        failed_stage=failed.name if failed is not None else None,
        log_tail=failed.log_tail if failed is not None else "",
        error=error,
    )


def _outcome(code: int) -> str:
    return "success" if code == 0 else "failed"
