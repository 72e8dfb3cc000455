"""Render a spec as a declarative Jenkinsfile for a plain (not multibranch) pipeline job.

Pure: the same spec gives the same text. Every string from the spec reaches Groovy through
:mod:`conveyor.jenkins.groovy` as a single-quoted literal; no GString is ever emitted, so no spec value
can run as Groovy, and every ``sh`` body is one literal (the shell, not Groovy, expands ``$VARS`` at run
time). Data that is also shell syntax (stage names in ``conveyor`` commands) goes through
:func:`shlex.quote` first, then the Groovy escaper.

Layout of the generated pipeline:

* **Agent.** ``docker: socket`` and ``none``: the whole pipeline runs in the agent image
  (``agent { docker { ... } }``), with ``-v /var/run/docker.sock:/var/run/docker.sock`` for ``socket``.
  ``docker: dind``: the pipeline runs on any node (``agent any``) and each stage that needs Docker runs its
  steps inside the agent image next to its own DinD sidecar (see :data:`DIND_HELPER`).
* **Prepare stage** (:data:`PREPARE_STAGE`): checks the commit out (inline jobs; ``scm`` jobs get
  declarative's own checkout), reports ``running`` to GitLab, and writes the fully resolved spec to
  :data:`SPEC_FILE` with ``writeFile``. The spec travels inside the Jenkinsfile rather than with the
  repository because specs live in conveyor's ``pipelines/`` directory, not in the application
  repository, and because the job then runs exactly the spec it was rendered from.
* **run** stages: each command is one ``sh`` step, in the stage image (``agent { docker { ...;
  reuseNode true } }``, cache volumes as ``-v volume:/path``) or in the agent image.
* **build / push / deploy** stages call conveyor inside the agent image, e.g.
  ``conveyor build --stage NAME .conveyor/pipeline.yml``; conveyor expands the ``{sha}``-style
  placeholders at run time from the build variables. Registry credentials reach it only through
  ``withCredentials([usernamePassword(...)])`` as ``REGISTRY_USER``/``REGISTRY_PASSWORD``.
* Secrets are only ever ``NAME = credentials('id')`` inside ``environment {}``.
* ``when`` becomes ``when { beforeAgent true; expression { return ... } }`` from
  :mod:`conveyor.pipeline.when` (``when { branch }`` only works in multibranch jobs).
* Each leaf stage's steps sit in ``gitlabCommitStatus(name: STAGE)``; the pipeline ``post`` reports the
  overall status as :data:`STATUS_NAME`.
"""

from __future__ import annotations

import json
import re
import shlex

from conveyor.errors import RenderError
from conveyor.jenkins import groovy
from conveyor.pipeline.context import GROOVY_COMMIT, declared_trigger_parameters
from conveyor.pipeline.when import groovy_expression
from conveyor.spec.model import Parameter, Post, Spec, Stage

SPEC_FILE = ".conveyor/pipeline.yml"
PREPARE_STAGE = "conveyor: prepare"
STATUS_NAME = "conveyor"
SOCKET_ARGS = "-v /var/run/docker.sock:/var/run/docker.sock"
REGISTRY_USER = "REGISTRY_USER"
REGISTRY_PASSWORD = "REGISTRY_PASSWORD"
DIND_HOST = "tcp://127.0.0.1:2375"

_UNIT = {"ms": "MILLISECONDS", "s": "SECONDS", "m": "MINUTES", "h": "HOURS"}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
# The spec document is written as one line of YAML flow style (JSON syntax plus YAML escapes): every
# character outside printable ASCII becomes \uXXXX or \UXXXXXXXX, which YAML reads back exactly.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")

# DinD sidecar, defined above `pipeline {}` when agent.docker is dind. The nested daemon listens on
# 127.0.0.1:2375 inside its own network namespace and the agent container joins that namespace
# (`--network container:ID`, the "pod" pattern): only that container can reach the daemon, so the port
# needs no TLS and there is no network to name or remove. The daemon starts --privileged when allowed;
# when the host refuses (e.g. a capability bounding set without CAP_SYS_RESOURCE) it is started again with
# the spec's fallback options. `finally` stops and removes it even when the stage fails.
DIND_HELPER = """\
def conveyorDind(String extraArgs, Closure body) {
    def daemonImage = docker.image(%(image)s)
    String daemonCommand = %(command)s
    def daemon = null
%(start)s
    try {
        docker.image(%(agent)s).inside(%(inside)s + daemon.id + ' ' + %(env)s + ' ' + extraArgs) {
            sh %(wait)s
            body()
        }
    } finally {
        daemon.stop()
    }
}
"""

_WAIT_FOR_DAEMON = (
    "i=0; until docker info >/dev/null 2>&1; do i=$((i + 1)); "
    'if [ "$i" -ge 60 ]; then docker info; exit 1; fi; sleep 1; done'
)


def agent_command(verb: str, stage: str) -> str:
    """The shell command a build/push/deploy stage runs inside the agent image."""
    return f"conveyor {verb} --stage {shlex.quote(stage)} {SPEC_FILE}"


def spec_document(spec: Spec) -> str:
    """The resolved spec as written to :data:`SPEC_FILE`: one ASCII line that ``load_spec`` reads back
    to an equal Spec (templates already merged, so ``extends`` is dropped)."""
    data = spec.model_dump(mode="json", by_alias=True, exclude={"extends"}, exclude_none=True)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

    return _NOT_PRINTABLE_ASCII.sub(escape, text) + "\n"


def _timeout(duration: str) -> str:
    match = _DURATION.match(duration)
    if match is None:  # the model validates durations; this guards direct construction
        raise RenderError(f"invalid duration {duration!r}")
    return f"timeout(time: {int(match.group(1))}, unit: {groovy.literal(_UNIT[match.group(2)])})"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def open(self, text: str) -> None:
        self.line(text + " {")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.line("}")


class _Renderer:
    def __init__(self, spec: Spec, clone_url: str | None) -> None:
        self.spec = spec
        self.clone_url = clone_url
        self.mode = spec.jenkins.agent.docker
        self.out = _Writer()
        self.registry_credentials = next(
            (
                s.push.credentials
                for s in spec.all_stages()
                if s.push is not None and s.push.credentials is not None
            ),
            None,
        )

    # ----------------------------------------------------------------------------- checks

    def check(self) -> None:
        for stage in self.spec.all_stages():
            if stage.name == PREPARE_STAGE:
                raise RenderError(
                    f"stage name {PREPARE_STAGE!r} is reserved for conveyor's own first stage",
                    hint="rename the stage",
                )
            if self.mode == "none" and stage.kind in ("build", "deploy"):
                raise RenderError(
                    f"stage {stage.name!r} needs Docker but jenkins.agent.docker is 'none'",
                    hint="set jenkins.agent.docker to socket or dind",
                )

    # ----------------------------------------------------------------------------- whole file

    def render(self) -> str:
        self.check()
        out = self.out
        out.line("// Generated by conveyor from a pipeline spec. Edit the spec and render again;")
        out.line("// changes made here are overwritten.")
        if self.mode == "dind":
            out.lines.extend(self.dind_helper().splitlines())
        out.open("pipeline")
        self.agent()
        self.options()
        self.parameters()
        self.environment(self.spec.environment, self.spec.secrets, "pipeline")
        out.open("stages")
        self.prepare()
        for stage in self.spec.stages:
            self.stage(stage, nested=False)
        out.close()
        self.post(self.spec.post, pipeline=True)
        out.close()
        return "\n".join(out.lines) + "\n"

    def dind_helper(self) -> str:
        agent = self.spec.jenkins.agent
        dind = agent.dind
        command = f"--host={DIND_HOST} --storage-driver={shlex.quote(dind.storage_driver)}"
        no_tls = "-e DOCKER_TLS_CERTDIR="
        fallback = " ".join([*(shlex.quote(a) for a in dind.fallback_args), no_tls])
        if dind.privileged:
            start = (
                "    try {\n"
                f"        daemon = daemonImage.run({groovy.literal('--privileged ' + no_tls)}, "
                "daemonCommand)\n"
                "    } catch (err) {\n"
                f"        echo {groovy.literal('privileged DinD refused; retrying with fallback options')}\n"
                f"        daemon = daemonImage.run({groovy.literal(fallback)}, daemonCommand)\n"
                "    }"
            )
        else:
            start = f"    daemon = daemonImage.run({groovy.literal(fallback)}, daemonCommand)"
        extra = " ".join(shlex.quote(a) for a in agent.args)
        return DIND_HELPER % {
            "image": groovy.literal(dind.image),
            "command": groovy.literal(command),
            "start": start,
            "agent": groovy.literal(agent.image),
            "inside": groovy.literal("--network container:"),
            "env": groovy.literal(f"-e DOCKER_HOST={DIND_HOST} {extra}".rstrip()),
            "wait": groovy.literal(_WAIT_FOR_DAEMON),
        }

    def agent(self) -> None:
        out = self.out
        agent = self.spec.jenkins.agent
        if self.mode == "dind":
            out.line("agent any")
            return
        args = [SOCKET_ARGS] if self.mode == "socket" else []
        args.extend(shlex.quote(a) for a in agent.args)
        out.open("agent")
        out.open("docker")
        out.line(f"image {groovy.literal(agent.image)}")
        if args:
            out.line(f"args {groovy.literal(' '.join(args))}")
        out.close()
        out.close()

    def options(self) -> None:
        out = self.out
        opts = self.spec.jenkins.options
        out.open("options")
        out.line(_timeout(opts.timeout))
        out.line(
            f"buildDiscarder(logRotator(numToKeepStr: {groovy.literal(str(opts.keep_builds))}))"
        )
        if not opts.concurrent:
            out.line("disableConcurrentBuilds()")
        if opts.timestamps:
            out.line("timestamps()")
        out.line(f"gitLabConnection({groovy.literal(self.spec.jenkins.connection)})")
        out.close()

    def parameters(self) -> None:
        params = job_parameters(self.spec)
        self.out.open("parameters")
        for p in params:
            self.out.line(parameter(p))
        self.out.close()

    def environment(self, values: dict[str, str], secrets: dict[str, str], where: str) -> None:
        if not values and not secrets:
            return
        both = sorted(set(values) & set(secrets))
        if both:
            raise RenderError(
                f"{where}: {', '.join(both)} set both as environment and as a secret",
                hint="give each variable one source",
            )
        out = self.out
        out.open("environment")
        for name, value in values.items():
            out.line(f"{name} = {groovy.literal(value)}")
        for name, credential in secrets.items():
            out.line(f"{name} = credentials({groovy.literal(credential)})")
        out.close()

    # ----------------------------------------------------------------------------- stages

    def prepare(self) -> None:
        out = self.out
        out.open(f"stage({groovy.literal(PREPARE_STAGE)})")
        out.open("steps")
        if self.spec.jenkins.definition == "inline":
            self.checkout()
        out.line(f"updateGitlabCommitStatus(name: {groovy.literal(STATUS_NAME)}, state: 'running')")
        out.line(
            f"writeFile(file: {groovy.literal(SPEC_FILE)}, "
            f"text: {groovy.literal(spec_document(self.spec))}, encoding: 'UTF-8')"
        )
        out.close()
        out.close()

    def checkout(self) -> None:
        out = self.out
        scm = self.spec.jenkins.scm
        url = scm.url or self.clone_url
        out.open("script")
        if url is None:
            out.open("if (!env.gitlabSourceRepoHttpUrl)")
            message = (
                "no clone URL: set jenkins.scm.url in the spec, or start the build from GitLab"
            )
            out.line(f"error({groovy.literal(message)})")
            out.close()
            url_expr = "env.gitlabSourceRepoHttpUrl"
        else:
            url_expr = groovy.literal(url)
        remote = f"url: {url_expr}"
        if scm.credentials is not None:
            remote += f", credentialsId: {groovy.literal(scm.credentials)}"
        out.line(
            "def scmVars = checkout([$class: 'GitSCM', "
            f"branches: [[name: {GROOVY_COMMIT} ?: {groovy.literal(scm.branch)}]], "
            f"userRemoteConfigs: [[{remote}]]])"
        )
        out.line("env.GIT_COMMIT = scmVars.GIT_COMMIT")
        out.close()

    def stage(self, stage: Stage, *, nested: bool) -> None:
        out = self.out
        out.open(f"stage({groovy.literal(stage.name)})")
        self.stage_agent(stage)
        if stage.when is not None:
            out.open("when")
            out.line("beforeAgent true")
            out.line(f"expression {{ return {groovy_expression(stage.when)} }}")
            out.close()
        secrets = dict(stage.secrets)
        if stage.deploy is not None:
            for name, credential in stage.deploy.secrets.items():
                if secrets.get(name, credential) != credential:
                    raise RenderError(
                        f"stage {stage.name!r}: secret {name} is bound to two credentials IDs "
                        "(secrets and deploy.secrets)",
                        hint="use one credentials ID per variable",
                    )
                secrets[name] = credential
        self.environment(stage.environment, secrets, f"stage {stage.name!r}")
        if stage.timeout is not None:
            out.open("options")
            out.line(_timeout(stage.timeout))
            out.close()
        if stage.parallel is not None:
            out.open("parallel")
            for child in stage.parallel:
                self.stage(child, nested=True)
            out.close()
        else:
            out.open("steps")
            out.open(f"gitlabCommitStatus(name: {groovy.literal(stage.name)})")
            self.stage_steps(stage)
            out.close()
            out.close()
        self.post(stage.post, pipeline=False)
        out.close()

    def own_image(self, stage: Stage) -> bool:
        """Does this run stage get its own ``agent { docker {...} }``?"""
        if stage.run is None:
            return False
        if stage.image is not None:
            return True
        return bool(stage.cache) and self.mode != "dind"

    def stage_agent(self, stage: Stage) -> None:
        if not self.own_image(stage):
            return
        out = self.out
        args = _cache_args(stage)
        if stage.image is None:  # the agent image, with caches: keep its Docker access
            args[:0] = [SOCKET_ARGS] if self.mode == "socket" else []
            args.extend(shlex.quote(a) for a in self.spec.jenkins.agent.args)
        out.open("agent")
        out.open("docker")
        out.line(f"image {groovy.literal(stage.image or self.spec.jenkins.agent.image)}")
        if args:
            out.line(f"args {groovy.literal(' '.join(args))}")
        out.line("reuseNode true")
        out.close()
        out.close()

    def stage_steps(self, stage: Stage) -> None:
        needs_daemon = self.mode == "dind" and not self.own_image(stage)
        out = self.out
        if needs_daemon:
            extra = " ".join(_cache_args(stage))
            out.open("script")
            out.open(f"conveyorDind({groovy.literal(extra)})")
        if stage.run is not None:
            for command in stage.run:
                out.line(f"sh {groovy.literal(command)}")
        elif stage.build is not None:
            out.line(f"sh {groovy.literal(agent_command('build', stage.name))}")
            if stage.push is not None:
                self.with_registry(stage.push.credentials, agent_command("push", stage.name))
        elif stage.deploy is not None:
            self.with_registry(self.registry_credentials, agent_command("deploy", stage.name))
        if needs_daemon:
            out.close()
            out.close()

    def with_registry(self, credentials: str | None, command: str) -> None:
        out = self.out
        if credentials is None:
            out.line(f"sh {groovy.literal(command)}")
            return
        out.open(
            "withCredentials([usernamePassword("
            f"credentialsId: {groovy.literal(credentials)}, "
            f"usernameVariable: {groovy.literal(REGISTRY_USER)}, "
            f"passwordVariable: {groovy.literal(REGISTRY_PASSWORD)})])"
        )
        out.line(f"sh {groovy.literal(command)}")
        out.close()

    # ----------------------------------------------------------------------------- post

    def post(self, post: Post | None, *, pipeline: bool) -> None:
        blocks: list[tuple[str, list[str]]] = []
        status = groovy.literal(STATUS_NAME)
        p = post or Post()
        blocks.append(("always", [f"sh {groovy.literal(c)}" for c in p.always]))
        success = [f"sh {groovy.literal(c)}" for c in p.success]
        failure = [f"sh {groovy.literal(c)}" for c in p.failure]
        aborted: list[str] = []
        if pipeline:
            success.insert(0, f"updateGitlabCommitStatus(name: {status}, state: 'success')")
            failure.insert(0, f"updateGitlabCommitStatus(name: {status}, state: 'failed')")
            aborted.append(f"updateGitlabCommitStatus(name: {status}, state: 'canceled')")
        blocks.append(("success", success))
        blocks.append(("failure", failure))
        blocks.append(("aborted", aborted))
        blocks.append(("cleanup", [f"sh {groovy.literal(c)}" for c in p.cleanup]))
        blocks = [(name, steps) for name, steps in blocks if steps]
        if not blocks:
            return
        out = self.out
        out.open("post")
        for name, steps in blocks:
            out.open(name)
            for step in steps:
                out.line(step)
            out.close()
        out.close()


def _cache_args(stage: Stage) -> list[str]:
    return [f"-v {shlex.quote(c.volume + ':' + c.path)}" for c in stage.cache]


def job_parameters(spec: Spec) -> list[Parameter]:
    """The spec's parameters, then the trigger variables conveyor's receiver passes to its builds
    (Jenkins drops parameters a job does not declare; see
    :func:`conveyor.pipeline.context.declared_trigger_parameters`)."""
    declared = declared_trigger_parameters(
        spec.webhook.target, spec.jenkins.definition, spec.jenkins.scm.branch
    )
    trigger = [
        Parameter(
            name=name,
            type="string",
            default=default,
            description="Set by conveyor's receiver or gitlab-plugin; leave empty."
            if not default
            else "The commit conveyor's receiver builds; by hand: a branch spec or a SHA-1.",
        )
        for name, default in declared.items()
    ]
    return [*spec.jenkins.parameters, *trigger]


def choices_in_order(param: Parameter) -> list[str]:
    """A choice parameter's choices with the default first (Jenkins' default is the first choice)."""
    choices = list(param.choices or [])
    if isinstance(param.default, str) and param.default in choices:
        choices.remove(param.default)
        choices.insert(0, param.default)
    return choices


def parameter(p: Parameter) -> str:
    """The ``parameters {}`` line for one parameter."""
    name = groovy.literal(p.name)
    description = groovy.literal(p.description)
    if p.type == "boolean":
        return f"booleanParam(name: {name}, defaultValue: {groovy.value(bool(p.default))}, description: {description})"
    if p.type == "choice":
        return f"choice(name: {name}, choices: {groovy.list_literal(choices_in_order(p))}, description: {description})"
    default = groovy.literal(p.default if isinstance(p.default, str) else "")
    if p.type == "text":
        return f"text(name: {name}, defaultValue: {default}, description: {description})"
    return f"string(name: {name}, defaultValue: {default}, description: {description}, trim: false)"


def render_jenkinsfile(spec: Spec, *, clone_url: str | None = None) -> str:
    """The declarative Jenkinsfile for ``spec``. ``clone_url`` is used for the checkout of inline jobs
    when the spec names no ``jenkins.scm.url`` (else the build's ``gitlabSourceRepoHttpUrl``)."""
    return _Renderer(spec, clone_url).render()
