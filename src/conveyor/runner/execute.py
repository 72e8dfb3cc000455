"""Run a pipeline spec locally in Docker, as the generated Jenkinsfile would run it in Jenkins.

Public entry point (also the ``local`` dispatcher's, :mod:`conveyor.runner.dispatcher`, which calls
``run_pipeline(spec, trigger)``)::

    run_pipeline(
        spec: Spec | LoadedSpec,
        trigger: Trigger,
        *,
        workdir: Path | None = None,        # the checkout; default: the current directory
        state_dir: Path | None = None,      # run history; default: load_settings().state_dir
        sink: OutputSink | None = None,     # live output; default: plain lines on stdout
        params: Mapping[str, bool | str] | None = None,  # build parameters (spec defaults otherwise)
        only: Sequence[str] = (),           # --stage NAME...: run only these stages
        environ: Mapping[str, str] | None = None,  # where secrets come from (default os.environ)
        statuses: StatusReporter | None = None,  # commit statuses (default: none; the CLI passes
                                                 # reporter_from_settings, the receiver posts its own)
    ) -> RunResult                          # see conveyor.runner.results

A failing stage is not an exception: it is a :class:`RunResult` with ``status == "failed"``, the
stage's exit code and its log tail. ``RunnerError``/``DockerError``/``ConfigError`` are raised only
when the run cannot be attempted (bad ``--stage``, missing secret variable, no engine).

What each stage sees (identical to the Jenkins build the receiver would trigger):
the build variables of :func:`conveyor.pipeline.context.build_variables` (``gitlabBranch``,
``gitlabSourceBranch``, ``gitlabTargetBranch``, ``gitlabActionType``, ``GIT_COMMIT``, ``BRANCH_NAME``,
``BUILD_NUMBER`` = the run number...), Jenkins' ``JOB_NAME``, ``BUILD_ID``, ``BUILD_TAG``,
``STAGE_NAME`` and ``WORKSPACE``, then the spec's ``environment``, the stage's ``environment``,
then secrets. **Secrets** (``secrets: {VAR: credentials-id}``) take their value from the runner's
environment variable ``VAR`` (what Jenkins' credentials binding would set); a missing one (for the
pipeline or a stage that will run) stops the run before it starts, naming the variable and the
credentials ID. Registry credentials for ``push`` come from ``environ`` too
(``CONVEYOR_REGISTRY_USER``/``CONVEYOR_REGISTRY_PASSWORD``, ``REGISTRY_USER``/``REGISTRY_PASSWORD``,
else Docker's config: :mod:`conveyor.docker.credentials`); deploy secrets are read by
:mod:`conveyor.docker.deploy` from the process environment. Secret values are masked (``****``) in the
output and the stored log, and never appear on a command line.

``run`` stages: see :mod:`conveyor.runner.containers`. ``build`` (+ ``push``) and ``deploy`` stages
call :mod:`conveyor.docker` (:mod:`conveyor.runner.stages`) on the stage's engine: the host engine, or
with ``docker: dind`` a nested daemon started for the stage and torn down after it, as the Jenkinsfile's
DinD sidecar is (:mod:`conveyor.runner.engines`). Parallel branches run in threads. Statuses and the
pipeline's ``post`` follow :mod:`conveyor.runner.plan`.
"""

from __future__ import annotations

import os
import secrets as _secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.config import load_settings
from conveyor.docker.engine import connect
from conveyor.errors import ConveyorError, RunnerError
from conveyor.gitlab.status import PIPELINE_STATUS_NAME, CommitState
from conveyor.masking import Masker
from conveyor.pipeline.context import Trigger, build_variables
from conveyor.runner import stages as stage_bodies
from conveyor.runner.containers import (
    EngineAccess,
    Workspace,
    agent_args,
    bind_workspace,
    container_name,
    has_own_image,
    run_args,
    run_labels,
    script_of,
    split_namespace,
)
from conveyor.runner.engines import needs_engine, nested_daemon, refuse_none
from conveyor.runner.history import History
from conveyor.runner.live import LiveLog
from conveyor.runner.log import TAIL_LINES, RunLog
from conveyor.runner.output import OutputSink, PlainOutput
from conveyor.runner.plan import (
    PlannedStage,
    build_plan,
    default_params,
    parameter_variables,
    post_actions,
    stage_environment,
)
from conveyor.runner.results import RunResult, StageResult
from conveyor.runner.secrets import secret_values
from conveyor.runner.statuses import NoStatuses, StatusReporter
from conveyor.spec.load import LoadedSpec
from conveyor.spec.model import Post, Spec, Stage, parse_duration

KILL_EXIT = 124  # like timeout(1): the stage ran out of time
# The docker CLI's own settings, passed through to every `docker run` it makes.
_CLI_PASSTHROUGH = (
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_API_VERSION",
    "HOME",
    "PATH",
)


def _slash_dash(job: str) -> str:
    return job.replace("/", "-")


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run shares."""

    number: int
    trigger: Trigger
    spec: Spec
    spec_file: str
    workdir: Path
    state_dir: Path
    env: Mapping[str, str]
    secrets: Mapping[str, str]
    environ: Mapping[str, str]
    statuses: StatusReporter
    deadline: float | None
    workspace: Workspace | None = None  # default: the checkout bind-mounted at /workspace
    # a Jenkins build step: the engine the environment names (no nested daemons are started) and,
    # for ``docker: none``, commands run right here in the agent container
    given_engine: EngineAccess | None = None


@dataclass(frozen=True)
class _Engine:
    access: EngineAccess
    base_url: str | None  # None: the host engine (DOCKER_HOST or the socket)


class StageExecutor:
    def __init__(self, ctx: RunContext, log: RunLog, sink: OutputSink) -> None:
        self.ctx = ctx
        self.log = log
        self.sink = sink
        docker = shutil.which("docker")
        if docker is None:
            raise RunnerError(
                "the docker CLI is not installed (the runner starts stage containers with it)",
                hint="install docker.io (or docker-ce-cli)",
            )
        self.docker = docker
        self.cli_env = {k: v for k in _CLI_PASSTHROUGH if (v := os.environ.get(k)) is not None}
        self.host = _Engine(
            ctx.given_engine or EngineAccess(mode=ctx.spec.jenkins.agent.docker), None
        )
        self.workspace = ctx.workspace or bind_workspace(str(ctx.workdir))

    # ------------------------------------------------------------------ engines

    @contextmanager
    def engine(self, stage: Stage) -> Iterator[_Engine]:
        """The engine for one stage: the host's, or a nested daemon living as long as the stage."""
        agent = self.ctx.spec.jenkins.agent
        given = self.ctx.given_engine is not None
        if given or not needs_engine(stage.kind, has_own_image(stage)) or agent.docker != "dind":
            if agent.docker == "none" and stage.kind in ("build", "deploy"):
                refuse_none(stage.name, stage.kind)
            yield self.host
            return
        name = container_name(self.ctx.number, stage.name, "dind-" + _secrets.token_hex(3))
        self.log.line(stage.name, f"starting a nested Docker daemon ({agent.dind.image})")
        labels = run_labels(self.ctx.number, self.ctx.state_dir, **{"conveyor.stage": stage.name})
        _, namespace = split_namespace(agent_args(agent, stage))
        with nested_daemon(self.docker, agent.dind, name, labels, namespace) as daemon:
            mode = "privileged" if daemon.privileged else "fallback options"
            self.log.line(stage.name, f"nested daemon ready at {daemon.base_url} ({mode})")
            yield _Engine(daemon.access, daemon.base_url)

    # ------------------------------------------------------------------ containers

    def _stage_env(self, stage: Stage | None, stage_name: str) -> dict[str, str]:
        return stage_environment(self.ctx.spec, stage, self.ctx.env, self.ctx.secrets, stage_name)

    def _timeout(self, stage: Stage | None) -> float | None:
        limits: list[float] = []
        if stage is not None and stage.timeout:
            limits.append(parse_duration(stage.timeout))
        if self.ctx.deadline is not None:
            limits.append(max(self.ctx.deadline - time.monotonic(), 0.1))
        return min(limits) if limits else None

    def container(
        self,
        label: str,
        stage: Stage | None,
        image: str,
        commands: Sequence[str],
        engine: EngineAccess,
    ) -> int:
        """Run ``commands`` in ``image``; stream lines under ``label``; return the exit code."""
        if self.ctx.given_engine is not None and engine.mode == "none":
            return self._here(label, stage, commands)
        name = container_name(self.ctx.number, label, _secrets.token_hex(3))
        spec = self.ctx.spec
        run = run_args(
            name=name,
            image=image,
            commands=commands,
            workspace=self.workspace,
            agent=spec.jenkins.agent,
            stage=stage,
            engine=engine,
            env=self._stage_env(stage, stage.name if stage else label),
            labels=run_labels(
                self.ctx.number,
                self.ctx.state_dir,
                **{"conveyor.project": spec.project, "conveyor.stage": label},
            ),
        )
        env = {**self.cli_env, **run.env}
        return self._stream(label, stage, [self.docker, *run.argv], env, name)

    def _here(self, label: str, stage: Stage | None, commands: Sequence[str]) -> int:
        """``docker: none`` in a Jenkins build: the agent container is the stage's container."""
        env = {k: v for k in ("PATH", "HOME") if (v := os.environ.get(k)) is not None}
        env.update(self._stage_env(stage, stage.name if stage else label))
        env["WORKSPACE"] = str(self.ctx.workdir)
        argv = ["sh", "-e", "-c", script_of(commands)]
        return self._stream(label, stage, argv, env, None, cwd=self.ctx.workdir)

    def _stream(
        self,
        label: str,
        stage: Stage | None,
        argv: list[str],
        env: Mapping[str, str],
        name: str | None,
        cwd: Path | None = None,
    ) -> int:
        """Run ``argv``, stream its output under ``label``; kill it (and container ``name``) on
        timeout; the exit code."""
        timeout = self._timeout(stage)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
            )
        except OSError as exc:
            raise RunnerError(f"cannot start the commands of stage {label!r}: {exc}") from None
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for raw in stdout:
                self.log.line(label, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if name is not None:
                self._remove(name)
            proc.kill()
            proc.wait()
            reader.join(timeout=10)
            self.log.line(label, f"timed out after {timeout or 0:.0f}s: container removed")
            return KILL_EXIT
        except BaseException:
            if name is not None:
                self._remove(name)
            proc.kill()
            raise
        reader.join(timeout=10)
        return code

    def _remove(self, name: str) -> None:
        subprocess.run(
            [self.docker, "rm", "-f", name],
            env=self.cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    # ------------------------------------------------------------------ stages

    def _post(
        self,
        owner: str,
        post: Post | None,
        stage: Stage | None,
        image: str,
        ok: bool,
        engine: EngineAccess,
    ) -> int:
        """Run post actions in Jenkins' order; the first non-zero exit code (0 if all passed)."""
        worst = 0
        for action in post_actions(post, succeeded=ok):
            label = f"{owner} post:{action.condition}"
            self.sink.stage_started(label)
            started = time.monotonic()
            code = self.container(label, stage, image, action.commands, engine)
            self.sink.stage_finished(
                StageResult(
                    name=label,
                    result="success" if code == 0 else "failed",
                    duration=time.monotonic() - started,
                    exit_code=code,
                )
            )
            if code != 0 and worst == 0:
                worst = code
        return worst

    def _work(self, stage: Stage) -> stage_bodies.StageWork:
        ctx = self.ctx
        return stage_bodies.StageWork(
            number=ctx.number,
            spec=ctx.spec,
            spec_file=ctx.spec_file,
            workdir=ctx.workdir,
            state_dir=ctx.state_dir,
            env=ctx.env,
            environ=ctx.environ,
            log=lambda text: self.log.line(stage.name, text),
            environment_engine=ctx.given_engine is not None,
        )

    def _body(self, stage: Stage, engine: _Engine) -> int:
        agent = self.ctx.spec.jenkins.agent
        if stage.run is not None:
            return self.container(
                stage.name, stage, stage.image or agent.image, stage.run, engine.access
            )
        client: Any = None
        try:
            client = connect(engine.base_url)
            if stage.build is not None:
                stage_bodies.build_stage(self._work(stage), stage, client)
            elif stage.deploy is not None:
                stage_bodies.deploy_stage(self._work(stage), stage, client)
            else:
                raise RunnerError(f"stage {stage.name!r}: nothing to run")
        except ConveyorError as exc:
            for line in str(exc).splitlines():
                self.log.line(stage.name, line)
            for line in exc.log_tail.splitlines()[-TAIL_LINES:]:
                self.log.line(stage.name, line)
            return 1
        finally:
            if client is not None:
                client.close()
        return 0

    def stage(self, planned: PlannedStage, parent: str | None = None) -> list[StageResult]:
        """Run one planned stage (a parallel one with its branches); its results, parent first."""
        if not planned.run:
            self.sink.stage_skipped(planned.name, planned.reason)
            skipped = [StageResult(planned.name, "skipped", reason=planned.reason, parent=parent)]
            for child in planned.children:
                skipped.append(
                    StageResult(child.name, "skipped", reason=child.reason, parent=planned.name)
                )
            return skipped
        stage = planned.stage
        self.sink.stage_started(planned.name)
        started = time.monotonic()
        children: list[StageResult] = []
        statuses = self.ctx.statuses
        trigger = self.ctx.trigger
        if planned.children:
            with ThreadPoolExecutor(max_workers=len(planned.children)) as pool:
                futures = [pool.submit(self.stage, c, planned.name) for c in planned.children]
                for future in futures:
                    children.extend(future.result())
            failed = [c for c in children if c.result == "failed"]
            code = (failed[0].exit_code or 1) if failed else 0
            post_code = self._post(
                planned.name,
                stage.post,
                stage,
                self.ctx.spec.jenkins.agent.image,
                code == 0,
                self.host.access,
            )
        else:
            statuses.report(trigger, stage.name, CommitState.RUNNING)
            with self.engine(stage) as engine:
                code = self._body(stage, engine)
                image = stage.image or self.ctx.spec.jenkins.agent.image
                post_code = self._post(
                    planned.name, stage.post, stage, image, code == 0, engine.access
                )
        if code == 0 and post_code != 0:
            code = post_code
        if not planned.children:
            statuses.report(trigger, stage.name, CommitState.of(code == 0))
        result = StageResult(
            name=planned.name,
            result="success" if code == 0 else "failed",
            duration=time.monotonic() - started,
            exit_code=code,
            reason=planned.reason,
            parent=parent,
            log_tail=self.log.tail(planned.name) if code != 0 else "",
        )
        self.sink.stage_finished(result)
        return [result, *children]

    def post_step(
        self, owner: str, post: Post, stage: Stage | None, image: str, *, ok: bool
    ) -> int:
        """One ``post`` block run on its own (a Jenkins build step), on the run's engine."""
        return self._post(owner, post, stage, image, ok, self.host.access)

    def pipeline_post(self, ok: bool) -> int:
        agent = self.ctx.spec.jenkins.agent
        access = self.host.access if agent.docker != "dind" else EngineAccess(mode="none")
        return self._post("pipeline", self.ctx.spec.post, None, agent.image, ok, access)


def _not_run(planned: PlannedStage, parent: str | None = None) -> list[StageResult]:
    out = [StageResult(planned.name, "not_run", reason="an earlier stage failed", parent=parent)]
    for child in planned.children:
        out += _not_run(child, planned.name)
    return out


def _trigger_record(trigger: Trigger) -> dict[str, Any]:
    record: dict[str, Any] = {k: v for k, v in vars(trigger).items() if k != "extra"}
    record["extra"] = dict(trigger.extra)
    return record


def run_pipeline(
    spec: Spec | LoadedSpec,
    trigger: Trigger,
    *,
    workdir: Path | None = None,
    state_dir: Path | None = None,
    sink: OutputSink | None = None,
    params: Mapping[str, bool | str] | None = None,
    only: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    statuses: StatusReporter | None = None,
) -> RunResult:
    """Run ``spec`` for ``trigger`` in Docker; record it in the history; return its result."""
    spec_file = str(spec.path) if isinstance(spec, LoadedSpec) else ""
    model = spec.spec if isinstance(spec, LoadedSpec) else spec
    environ = os.environ if environ is None else environ
    workdir = (workdir or Path.cwd()).resolve()
    if not workdir.is_dir():
        raise RunnerError(f"workdir {workdir} is not a directory")
    if state_dir is None:
        state_dir = load_settings().state_dir
    statuses = statuses if statuses is not None else NoStatuses()
    sink = sink if sink is not None else PlainOutput()
    all_params = default_params(model, params)
    # decided before the run gets a number: `when` never looks at BUILD_NUMBER
    plan = build_plan(model, build_variables(trigger), all_params, only)
    values = secret_values(model, environ, [p.stage for p in plan.flat() if p.run])

    history = History(state_dir)
    sink = LiveLog(history, sink)  # the dashboard streams the run from the history
    number = history.start(model.project, spec_file, _trigger_record(trigger))
    env = build_variables(trigger, number)
    env.update(parameter_variables(all_params))
    env.update(
        {
            "JOB_NAME": model.jenkins.job,
            "BUILD_ID": str(number),
            "BUILD_TAG": f"jenkins-{_slash_dash(model.jenkins.job)}-{number}",
        }
    )
    log = RunLog(sink, Masker(values.values()))
    started = time.monotonic()
    results: list[StageResult] = []
    failed: StageResult | None = None
    error: str | None = None
    post_code = 0
    sink.run_started(number, model.project)
    statuses.report(trigger, PIPELINE_STATUS_NAME, CommitState.RUNNING)
    ctx = RunContext(
        number=number,
        trigger=trigger,
        spec=model,
        spec_file=spec_file,
        workdir=workdir,
        state_dir=state_dir,
        env=env,
        secrets=values,
        environ=environ,
        statuses=statuses,
        deadline=started + parse_duration(model.jenkins.options.timeout),
    )

    def finish(exit_code: int, *, interrupted: bool = False) -> RunResult:
        """Store the run's result and log, report its final commit status (once, either way)."""
        tail = ""
        if failed is not None:
            tail = failed.log_tail
            branch = next(
                (r for r in results if r.parent == failed.name and r.result == "failed"), None
            )
            if branch is not None:
                tail = branch.log_tail or log.tail(branch.name)
        result = RunResult(
            number=number,
            project=model.project,
            status="success" if exit_code == 0 and error is None else "failed",
            exit_code=exit_code,
            duration=time.monotonic() - started,
            stages=tuple(results),
            failed_stage=failed.name if failed is not None else None,
            log_tail=log.mask(tail),
            error=log.mask(error) if error else None,
        )
        history.finish(result, log.text())
        state = CommitState.CANCELED if interrupted else CommitState.of(result.succeeded)
        statuses.report(trigger, PIPELINE_STATUS_NAME, state)
        return result

    try:
        executor = StageExecutor(ctx, log, sink)
        for planned in plan.stages:
            if failed is not None or error is not None:
                results += _not_run(planned)
                continue
            try:
                stage_results = executor.stage(planned)
            except ConveyorError as exc:
                # the stage could not be attempted (e.g. its nested daemon did not start)
                error = f"stage {planned.name!r}: {exc}"
                log.line(planned.name, f"error: {exc}")
                stage_results = [StageResult(planned.name, "failed", exit_code=1, reason=str(exc))]
            results += stage_results
            if stage_results[0].result == "failed" and failed is None:
                failed = stage_results[0]
        post_code = executor.pipeline_post(failed is None and error is None)
    except ConveyorError as exc:
        error = str(exc)
        log.note(f"error: {exc}")
    except BaseException:
        error = "interrupted"
        finish(130, interrupted=True)
        raise

    if failed is not None:
        exit_code = failed.exit_code or 1
    elif error is not None:
        exit_code = 1
    else:
        exit_code = post_code
    result = finish(exit_code)
    sink.run_finished(result)
    return result
