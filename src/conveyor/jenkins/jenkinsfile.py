"""Render a spec as a declarative Jenkinsfile for a plain (not multibranch) pipeline job.

**Jenkins schedules, conveyor executes.** The Jenkinsfile keeps only what Jenkins alone can do:
checkout, the stage structure and ``when`` (so Jenkins' UI shows what ran and what was skipped),
``withCredentials``/``credentials()``, commit statuses and ``post``. Each leaf stage's body is one ``sh``
step, :data:`STAGE_STEP`, that runs conveyor's own stage executor (:mod:`conveyor.runner.step`, the
code ``conveyor run`` uses on a laptop and that the tests run on a real engine) inside the agent image.
What docker-workflow would otherwise decide per stage (container user, ``HOME``, the socket's group,
the workspace path, nested agents, a per-stage daemon) is then conveyor's, and tested.

Pure: the same spec gives the same text. Every string from the spec reaches Groovy through
:mod:`conveyor.jenkins.groovy` as a single-quoted literal; no GString is ever emitted. Every ``sh`` body
is a constant literal of conveyor's own: the stage reaches it through Jenkins' ``STAGE_NAME``
variable, never as text in the script.

Layout of the generated pipeline:

* ``agent any``: a node with a Docker engine (docker-in-docker/: the controller with the host's socket
  and its group, or ``DOCKER_HOST``/TLS to a ``docker:dind`` service). The helper
  :data:`AGENT_HELPER` (``conveyorAgent { ... }``) runs a step in the agent image with
  ``docker.image(...).inside(...)``: ``docker: socket`` mounts the socket and adds its group (read on
  the node with ``stat``: docker-workflow runs the container as the agent's uid:gid,
  ``DockerClient.java:119-126``, which is not in the socket's group); ``docker: dind`` passes
  ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH`` and the certificates on and maps the
  daemon's name to its host gateway (:data:`DIND_ARGS`), so ``tcp://docker:2376`` reaches and
  verifies the same daemon as on the node.
* **Prepare stage** (:data:`PREPARE_STAGE`): reports ``running`` (first, so a failed checkout is
  reported too: gitlab-plugin finds the commit from the webhook cause without a checkout,
  ``CommitStatusUpdater.retrieveGitlabProjectIds``), checks the commit out (inline jobs; ``scm`` jobs
  get declarative's own checkout) and writes the resolved spec to :data:`SPEC_FILE` with
  ``writeFile``. The spec travels in the Jenkinsfile because specs live in conveyor's ``pipelines/``,
  not in the application's repository, and so the job runs exactly the spec it was rendered from. It
  is written as a concatenation of literals of at most :data:`~conveyor.jenkins.groovy.MAX_LITERAL_BYTES`
  each: one literal over 65,535 bytes breaks class generation.
* Leaf stages: ``when { expression { ... } }`` from :mod:`conveyor.pipeline.when`, ``credentials()``
  for secrets, ``options { timeout }``, then ``gitlabCommitStatus(name: STAGE) { conveyorAgent {
  sh STAGE_STEP } }``; registry credentials through ``withCredentials([usernamePassword(...)])`` as
  ``REGISTRY_USER``/``REGISTRY_PASSWORD``. The spec's ``environment`` and the stage's own ``post`` are
  applied by the executor, exactly as locally.
* ``parallel`` stages: one Jenkins stage per branch; the parent's ``post`` conditions and the
  pipeline's run :func:`post_step` in the agent image. The pipeline ``post`` reports the overall
  status as :data:`~conveyor.gitlab.status.PIPELINE_STATUS_NAME`: ``success``, ``failed`` (failure and unstable), ``canceled``.
"""

from __future__ import annotations

import json
import re
import shlex

from conveyor.errors import RenderError
from conveyor.gitlab.status import PIPELINE_STATUS_NAME, CommitState
from conveyor.jenkins import groovy
from conveyor.pipeline.context import GROOVY_COMMIT, declared_trigger_parameters
from conveyor.pipeline.when import groovy_expression
from conveyor.runner.plan import declared_post_order
from conveyor.spec.model import Parameter, Post, Spec, Stage
from conveyor.spec.rules import RESERVED_STAGE

SPEC_FILE = ".conveyor/pipeline.yml"
PREPARE_STAGE = RESERVED_STAGE  # a spec cannot name a stage so (conveyor.spec.rules)
DOCKER_SOCKET = "/var/run/docker.sock"
SOCKET_ARGS = f"-v {DOCKER_SOCKET}:{DOCKER_SOCKET}"
REGISTRY_USER = "REGISTRY_USER"
REGISTRY_PASSWORD = "REGISTRY_PASSWORD"
#: ``docker: dind``: the agent container gets the node's engine settings; it runs on the daemon
#: DOCKER_HOST names (docker-workflow talks to it), so that daemon's host-gateway *is* the daemon:
#: ``--add-host NAME:host-gateway`` makes ``tcp://NAME:2376`` reach it and verify (the certificate
#: names it) without depending on DNS inside the daemon's network.
DIND_ARGS = "-e DOCKER_HOST -e DOCKER_TLS_VERIFY -e DOCKER_CERT_PATH"
#: The one ``sh`` body of every leaf stage: conveyor's executor for the stage Jenkins is running.
STAGE_STEP = f'conveyor run --jenkins --stage "$STAGE_NAME" {SPEC_FILE}'

_UNIT = {"ms": "MILLISECONDS", "s": "SECONDS", "m": "MINUTES", "h": "HOURS"}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
# The spec document is written as one line of YAML flow style (JSON syntax plus YAML escapes): every
# character outside printable ASCII becomes \uXXXX or \UXXXXXXXX, which YAML reads back exactly.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")

# Runs `body` in the agent image on this node's engine. Values read on the node (the socket's gid,
# the certificate path) are checked against a strict pattern before they become `docker run` options.
AGENT_HELPER = """\
def conveyorAgent(Closure body) {
    String args = %(extra)s
%(engine)s
    docker.image(%(image)s).inside(args) {
        body()
    }
}
"""

_SOCKET_ENGINE = """\
    String gid = sh(script: %(stat)s, returnStdout: true).trim()
    if (!(gid ==~ /[0-9]+/)) {
        error(%(no_gid)s)
    }
    args = %(socket)s + gid + ' ' + args"""

_DIND_ENGINE = """\
    if (!env.DOCKER_HOST) {
        error(%(no_host)s)
    }
    String daemon = env.DOCKER_HOST.replaceFirst('^tcp://', '').replaceFirst(':[0-9]+$', '')
    if (!(daemon ==~ /[A-Za-z0-9.-]+/)) {
        error(%(bad_host)s)
    }
    String certs = env.DOCKER_CERT_PATH ?: ''
    if (certs && !(certs ==~ /[A-Za-z0-9._\\/-]+/)) {
        error(%(bad_certs)s)
    }
    args = %(dind)s + daemon + ':host-gateway' + (certs ? ' -v ' + certs + ':' + certs + ':ro ' : ' ') + args"""


def post_step(condition: str, *, stage: bool) -> str:
    """The ``sh`` body running one ``post`` condition of a parallel stage or of the pipeline."""
    where = '--stage "$STAGE_NAME" ' if stage else ""
    return f"conveyor run --jenkins {where}--post {condition} {SPEC_FILE}"


def spec_document(spec: Spec) -> str:
    """The resolved spec as written to :data:`SPEC_FILE`: one ASCII line that ``load_spec`` reads back
    to an equal Spec (templates already merged, so ``extends`` is dropped)."""
    data = spec.model_dump(mode="json", by_alias=True, exclude={"extends"}, exclude_none=True)
    if spec.jenkins.definition == "scm" and spec.webhook.target == "receiver":
        # not chosen there (config.xml says false); written, it would read back as an explicit
        # ``true``, which validation refuses for these jobs (conveyor.spec.rules)
        data["jenkins"]["scm"].pop("lightweight", None)
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


def _update_status(state: CommitState) -> str:
    """The step that moves the pipeline's commit status to ``state``."""
    name = groovy.literal(PIPELINE_STATUS_NAME)
    return f"updateGitlabCommitStatus(name: {name}, state: {groovy.literal(state)})"


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

    # ----------------------------------------------------------------------------- whole file

    def render(self) -> str:
        out = self.out
        out.line("// Generated by conveyor from a pipeline spec. Edit the spec and render again;")
        out.line("// changes made here are overwritten.")
        out.lines.extend(self.agent_helper().splitlines())
        out.open("pipeline")
        out.line("agent any")
        self.options()
        self.parameters()
        self.environment(self.spec.secrets)
        out.open("stages")
        self.prepare()
        for stage in self.spec.stages:
            self.stage(stage)
        out.close()
        self.pipeline_post()
        out.close()
        return "\n".join(out.lines) + "\n"

    def agent_helper(self) -> str:
        agent = self.spec.jenkins.agent
        extra = " ".join(shlex.quote(a) for a in agent.args)
        if self.mode == "socket":
            engine = _SOCKET_ENGINE % {
                "stat": groovy.literal(f"stat -c %g {DOCKER_SOCKET}"),
                "no_gid": groovy.literal(f"cannot read the group of {DOCKER_SOCKET} on this node"),
                "socket": groovy.literal(SOCKET_ARGS + " --group-add "),
            }
        elif self.mode == "dind":
            engine = _DIND_ENGINE % {
                "no_host": groovy.literal(
                    "docker: dind needs DOCKER_HOST on this node (the docker:dind service)"
                ),
                "bad_host": groovy.literal("DOCKER_HOST must be tcp://HOST:PORT for docker: dind"),
                "bad_certs": groovy.literal("DOCKER_CERT_PATH holds characters conveyor refuses"),
                "dind": groovy.literal(DIND_ARGS + " --add-host "),
            }
        else:
            engine = "    // docker: none: no engine for the agent container"
        return AGENT_HELPER % {
            "extra": groovy.literal(extra),
            "engine": engine,
            "image": groovy.literal(agent.image),
        }

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

    def environment(self, secrets: dict[str, str]) -> None:
        """Secrets only: Jenkins alone can bind credentials. The spec's plain ``environment`` is
        applied by conveyor's executor (withEnv would expand ``$VAR`` in it; the executor does not)."""
        if not secrets:
            return
        out = self.out
        out.open("environment")
        for name, credential in secrets.items():
            out.line(f"{name} = credentials({groovy.literal(credential)})")
        out.close()

    # ----------------------------------------------------------------------------- stages

    def prepare(self) -> None:
        out = self.out
        out.open(f"stage({groovy.literal(PREPARE_STAGE)})")
        out.open("steps")
        out.line(_update_status(CommitState.RUNNING))
        if self.spec.jenkins.definition == "inline":
            self.checkout()
        out.line(
            f"writeFile(file: {groovy.literal(SPEC_FILE)}, "
            f"text: {groovy.concatenation(spec_document(self.spec))}, encoding: 'UTF-8')"
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

    def stage(self, stage: Stage) -> None:
        out = self.out
        out.open(f"stage({groovy.literal(stage.name)})")
        if stage.when is not None:
            out.open("when")
            out.line(f"expression {{ return {groovy_expression(stage.when)} }}")
            out.close()
        # one credentials ID per variable across stage, deploy and pipeline (conveyor.spec.rules)
        secrets = {**stage.secrets, **(stage.deploy.secrets if stage.deploy else {})}
        self.environment(secrets)
        if stage.timeout is not None:
            out.open("options")
            out.line(_timeout(stage.timeout))
            out.close()
        if stage.parallel is not None:
            out.open("parallel")
            for child in stage.parallel:
                self.stage(child)
            out.close()
            self.post(stage.post, stage=True)
        else:
            out.open("steps")
            out.open(f"gitlabCommitStatus(name: {groovy.literal(stage.name)})")
            out.open("script")
            out.open("conveyorAgent")
            self.with_registry(self.credentials_for(stage), STAGE_STEP)
            out.close()
            out.close()
            out.close()
            out.close()
        out.close()

    def credentials_for(self, stage: Stage) -> str | None:
        if stage.push is not None:
            return stage.push.credentials
        if stage.deploy is not None:
            return self.registry_credentials
        return None

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

    def conveyor_post(self, condition: str, *, stage: bool) -> list[str]:
        """The steps running one post condition through the executor (the spec file exists only
        once the prepare stage ran: a build that failed before it has nothing to run)."""
        step = f"sh {groovy.literal(post_step(condition, stage=stage))}"
        return [f"if (fileExists({groovy.literal(SPEC_FILE)})) {{ conveyorAgent {{ {step} }} }}"]

    def post(self, post: Post | None, *, stage: bool) -> None:
        """A parallel stage's post: each declared condition runs through the executor."""
        conditions = declared_post_order(post)
        if not conditions:
            return
        out = self.out
        out.open("post")
        for condition in conditions:
            out.open(condition)
            out.open("script")
            for step in self.conveyor_post(condition, stage=stage):
                out.line(step)
            out.close()
            out.close()
        out.close()

    def pipeline_post(self) -> None:
        declared = set(declared_post_order(self.spec.post))
        blocks: list[tuple[str, list[str], bool]] = [
            ("always", [], "always" in declared),
            ("success", [_update_status(CommitState.SUCCESS)], False),
            ("failure", [_update_status(CommitState.FAILED)], False),
            # an unstable build is not green: without this the status would stay "running"
            ("unstable", [_update_status(CommitState.FAILED)], False),
            ("aborted", [_update_status(CommitState.CANCELED)], False),
            ("cleanup", [], "cleanup" in declared),
        ]
        out = self.out
        out.open("post")
        for name, steps, executor in blocks:
            runs = executor or (name in ("success", "failure") and name in declared)
            if not steps and not runs:
                continue
            out.open(name)
            for step in steps:
                out.line(step)
            if runs:
                out.open("script")
                for step in self.conveyor_post(name, stage=False):
                    out.line(step)
                out.close()
            out.close()
        out.close()


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
