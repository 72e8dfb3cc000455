"""The pipeline spec (``apiVersion: conveyor/v1``): one typed, frozen model for every consumer.

The renderer (Jenkinsfile, config.xml), the sync (Jenkins jobs, GitLab hooks), the local runner and the
receiver's router all read this model and nothing else. YAML keys are ``snake_case`` except
``apiVersion``. Unknown keys are errors (with a did-you-mean from :mod:`conveyor.spec.validate`).

Placeholders in image tags, build args and deploy images are expanded at run time, never at render time:
``{registry}`` (the stage's push registry), ``{project}`` (the GitLab project path, lower-case),
``{sha}``, ``{short_sha}``, ``{branch}``, ``{tag}``, ``{build_number}``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from conveyor.pipeline.context import TRIGGER_PARAMETERS
from conveyor.spec import kubernetes as _kubernetes

API_VERSION = "conveyor/v1"

PLACEHOLDERS = ("registry", "project", "sha", "short_sha", "branch", "tag", "build_number")

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_PROJECT = r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$"
# Jenkins refuses these characters (and '.', '..', a trailing dot) in item names.
_JENKINS_BAD = set("?*/\\%!@#$^&|<>[]:;")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

EnvName = Annotated[str, Field(pattern=_ENV_NAME, max_length=128)]
NonEmpty = Annotated[str, Field(min_length=1)]


def parse_duration(text: str) -> float:
    """``"30s"`` -> 30.0 seconds. Accepts ms, s, m, h."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 30s, 5m, 1h")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


Duration = Annotated[str, Field(pattern=_DURATION.pattern, examples=["30s", "10m", "1h"])]


def _check_placeholders(text: str) -> str:
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{name}}} in {text!r}; known: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )
    return text


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------------------------- triggers


class PushTrigger(_Model):
    """Build on pushes to matching branches (wildcards: ``*`` within a segment, ``**`` across ``/``)."""

    branches: list[NonEmpty] = Field(default_factory=lambda: ["**"], min_length=1)
    exclude: list[NonEmpty] = Field(default_factory=list, description="Branches never built.")


class TagPushTrigger(_Model):
    """Build on tag pushes matching ``tags`` (wildcards)."""

    tags: list[NonEmpty] = Field(default_factory=lambda: ["**"], min_length=1)


MergeRequestAction = Literal["open", "reopen", "update", "merge", "close"]


class MergeRequestTrigger(_Model):
    """Build on merge request events. ``update`` only counts when new commits arrived."""

    actions: list[MergeRequestAction] = Field(
        default_factory=lambda: list[MergeRequestAction](["open", "reopen", "update"]),
        min_length=1,
    )
    target_branches: list[NonEmpty] = Field(default_factory=lambda: ["**"], min_length=1)


class Triggers(_Model):
    """Which GitLab events start the pipeline. An absent key means that event is ignored."""

    push: PushTrigger | None = None
    tag_push: TagPushTrigger | None = None
    merge_request: MergeRequestTrigger | None = None
    skip_ci: bool = Field(
        True,
        description="Honour GitLab's skip rule: [ci skip] / [skip ci] (or with - or _, any case) in the head commit message, and the ci.skip push option.",
    )


# ---------------------------------------------------------------------------------------------- jenkins


class DindOptions(_Model):
    """How a nested Docker daemon is started (``agent.docker: dind``)."""

    image: NonEmpty = "docker:dind"
    privileged: bool = Field(
        True,
        description="Start the daemon --privileged; when refused, fall back to `fallback_args`.",
    )
    fallback_args: list[str] = Field(
        default_factory=lambda: [
            "--cap-add=ALL",
            "--cap-drop=SYS_RESOURCE",
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
            "--security-opt=systempaths=unconfined",
        ]
    )
    storage_driver: NonEmpty = "vfs"


class Agent(_Model):
    """The container every stage's steps run in, and how it reaches a Docker engine."""

    image: NonEmpty = Field(
        "conveyor-agent:1", description="Agent image (docker CLI, git, conveyor)."
    )
    docker: Literal["socket", "dind", "none"] = Field(
        "socket",
        description="`socket`: mount the host's /var/run/docker.sock (fast; root on the host); "
        "`dind`: a separate daemon (in Jenkins the docker:dind service over TLS; `conveyor run`: one "
        "per stage); `none`: no Docker access (no stage image, cache, build or deploy).",
    )
    args: list[str] = Field(default_factory=list, description="Extra `docker run` arguments.")
    dind: DindOptions = Field(default_factory=DindOptions, description="Nested daemon options.")


class Parameter(_Model):
    """A build parameter, declared both in the Jenkinsfile and in config.xml."""

    name: EnvName = Field(description="Parameter name (an environment variable name).")
    type: Literal["boolean", "string", "text", "choice"] = "string"
    default: bool | str | None = Field(None, description="true/false for boolean, else a string.")
    choices: list[str] | None = Field(None, description="The values of a `choice` parameter.")
    description: str = ""

    @model_validator(mode="after")
    def _coherent(self) -> Parameter:
        if self.type == "boolean" and not isinstance(self.default, bool | None):
            raise ValueError("a boolean parameter needs a true/false default")
        if self.type != "boolean" and isinstance(self.default, bool):
            raise ValueError(f"a {self.type} parameter needs a string default, not a boolean")
        if self.type == "choice":
            if not self.choices:
                raise ValueError("a choice parameter needs `choices`")
            if self.default is not None and self.default not in self.choices:
                raise ValueError(f"default {self.default!r} is not one of the choices")
        elif self.choices is not None:
            raise ValueError("`choices` only applies to type: choice")
        return self


class ScmDefinition(_Model):
    """Load the Jenkinsfile from the repository (CpsScmFlowDefinition) instead of inlining it."""

    url: NonEmpty | None = Field(
        None, description="Clone URL; default: the GitLab project's HTTP URL."
    )
    credentials: NonEmpty | None = Field(None, description="Jenkins credentials ID for the clone.")
    branch: NonEmpty = "*/main"
    script_path: NonEmpty = "Jenkinsfile"
    lightweight: bool = True


class JobOptions(_Model):
    """Jenkins job options."""

    timeout: Duration = Field("60m", description="Whole-build timeout (`options { timeout }`).")
    keep_builds: int = Field(20, ge=1, le=10000, description="Builds kept (`buildDiscarder`).")
    concurrent: bool = Field(False, description="Allow concurrent builds of the job.")
    timestamps: bool = Field(True, description="Timestamp console lines.")


class Jenkins(_Model):
    """The Jenkins pipeline job generated for this project."""

    job: NonEmpty = Field(
        description="Folders and job name, e.g. `demo/hello-web`; default: the project path."
    )
    agent: Agent = Field(default_factory=Agent, description="Where stages run.")
    parameters: list[Parameter] = Field(
        default_factory=list, description="Build parameters (Jenkinsfile and config.xml)."
    )
    definition: Literal["inline", "scm"] = Field(
        "inline",
        description="`inline`: the Jenkinsfile is stored in the job; `scm`: read from the repository.",
    )
    scm: ScmDefinition = Field(default_factory=ScmDefinition, description="For `definition: scm`.")
    connection: NonEmpty = Field("gitlab", description="Name of the GitLab connection in Jenkins.")
    options: JobOptions = Field(default_factory=JobOptions, description="Job options.")
    description: str = Field(
        "", description="Job description (a managed-by-conveyor line is added)."
    )

    @field_validator("job")
    @classmethod
    def _job_path(cls, value: str) -> str:
        for part in value.split("/"):
            bad = sorted(set(part) & _JENKINS_BAD)
            if not part:
                raise ValueError(f"empty path segment in job {value!r}")
            if part in (".", "..") or part.endswith("."):
                raise ValueError(f"Jenkins refuses the item name {part!r}")
            if bad:
                raise ValueError(f"Jenkins refuses {''.join(bad)!r} in item name {part!r}")
        return value

    @model_validator(mode="after")
    def _unique_parameters(self) -> Jenkins:
        seen: set[str] = set()
        for p in self.parameters:
            if p.name in seen:
                raise ValueError(f"duplicate parameter {p.name!r}")
            if p.name in TRIGGER_PARAMETERS:
                raise ValueError(
                    f"parameter name {p.name!r} is reserved: conveyor passes it to every build"
                )
            seen.add(p.name)
        return self

    @property
    def folders(self) -> list[str]:
        """Folder paths to create, outermost first: ``a/b/job`` -> ``["a", "a/b"]``."""
        parts = self.job.split("/")[:-1]
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class Webhook(_Model):
    """Where GitLab sends this project's events."""

    target: Literal["receiver", "jenkins"] = Field(
        "receiver",
        description="`receiver`: conveyor's receiver (CONVEYOR_WEBHOOK_URL); "
        "`jenkins`: the gitlab-plugin endpoint JENKINS/project/<job>.",
    )
    enable_ssl_verification: bool = Field(True, description="GitLab verifies the TLS certificate.")


# ----------------------------------------------------------------------------------------------- stages


class When(_Model):
    """Conditions for running a stage; every given condition must hold (AND).

    Evaluated identically by the Jenkinsfile (``when { expression {...} }``, plain pipeline jobs) and the
    local runner: see :mod:`conveyor.pipeline.when`.
    """

    branch: list[NonEmpty] | None = Field(
        None, description="Branch wildcards (`main`, `release/*`)."
    )
    tag: list[NonEmpty] | None = Field(
        None, description="Run only for tags matching these wildcards."
    )
    event: list[Literal["push", "tag_push", "merge_request"]] | None = Field(
        None, description="Only for these event kinds."
    )
    parameter: dict[EnvName, bool | str] | None = Field(
        None, description="Build parameters that must have these values."
    )
    not_branch: list[NonEmpty] | None = Field(None, description="Never for these branches.")

    @field_validator("branch", "tag", "not_branch", "event", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Cache(_Model):
    """A named volume mounted into the stage's container, kept between builds."""

    volume: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = Field(
        description="Named volume."
    )
    path: Annotated[str, Field(pattern=r"^/")] = Field(description="Mount path in the container.")


class Build(_Model):
    """Build an image with the Docker engine."""

    context: NonEmpty = Field(".", description="Build context, relative to the checkout.")
    dockerfile: NonEmpty = Field("Dockerfile", description="Relative to the context.")
    tags: list[NonEmpty] = Field(
        default_factory=lambda: ["{registry}/{project}:{sha}"],
        min_length=1,
        description="Image tags; placeholders {registry} {project} {sha} {short_sha} {branch} {tag} "
        "{build_number} are expanded at run time.",
    )
    args: dict[EnvName, str] = Field(
        default_factory=dict, description="Build args (placeholders allowed)."
    )
    target: NonEmpty | None = Field(None, description="Multi-stage build target.")
    labels: dict[NonEmpty, str] = Field(
        default_factory=dict, description="Extra labels (OCI labels are added)."
    )
    cache_from: list[NonEmpty] = Field(
        default_factory=list,
        description="Extra images to reuse layers from (the last pushed tag is added).",
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            _check_placeholders(tag)
        return value

    @field_validator("args")
    @classmethod
    def _args(cls, value: dict[str, str]) -> dict[str, str]:
        for arg in value.values():
            _check_placeholders(arg)
        return value


class Push(_Model):
    """Push the stage's built tags. Credentials are a Jenkins credentials ID, never a password."""

    registry: NonEmpty = Field(description="Registry host[:port], e.g. registry.example.com.")
    credentials: NonEmpty | None = Field(
        None, description="Jenkins username/password credentials ID for the registry."
    )


class Health(_Model):
    """How a deployed version proves it is ready. Exactly one of ``http`` and ``cmd``."""

    http: Annotated[str, Field(pattern=r"^/")] | None = Field(
        None, description="HTTP path; 2xx = healthy."
    )
    cmd: list[NonEmpty] | None = Field(
        None, description="Command run in the container; exit 0 = healthy."
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="Container port; default: first port."
    )
    timeout: Duration = Field("30s", description="Give up (and keep the old version) after this.")
    interval: Duration = Field("1s", description="Time between checks.")

    @model_validator(mode="after")
    def _one(self) -> Health:
        if (self.http is None) == (self.cmd is None):
            raise ValueError("health needs exactly one of `http` and `cmd`")
        return self


class Resources(_Model):
    cpus: float | None = Field(None, gt=0)
    memory: Annotated[str, Field(pattern=r"^\d+[kmgKMG]?$")] | None = None


class ComposeService(_Model):
    """An extra service deployed beside the app (``target: compose``), e.g. its database."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    image: NonEmpty
    env: dict[EnvName, str] = Field(default_factory=dict)
    secrets: dict[EnvName, NonEmpty] = Field(
        default_factory=dict,
        description="Env var -> Jenkins credentials ID, one the deploy's `secrets` also binds "
        "(a database's password, say).",
    )
    volumes: list[NonEmpty] = Field(default_factory=list)
    health: Health | None = None


_PORT = re.compile(r"^(?:(\d{1,5}):)?(\d{1,5})(?:/(tcp|udp))?$")
_HOSTNAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
# A Docker engine address: a socket path, or a host (no credentials, path or query) with a port.
_ENGINE = re.compile(
    r"^(?:unix:///[A-Za-z0-9._/-]+"
    rf"|tcp://{_HOSTNAME}:\d{{1,5}}"
    rf"|ssh://(?:[a-z_][a-z0-9_.-]{{0,31}}@)?{_HOSTNAME}(?::\d{{1,5}})?)$"
)


class Deploy(_Model):
    """Run the built image as a service."""

    target: Literal["docker", "compose", "swarm", "kubernetes"] = "docker"
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=48)] = Field(
        description="Service name; default: the project's name, lower-cased."
    )
    image: NonEmpty | None = Field(
        None, description="Default: the first tag built in this pipeline."
    )
    ports: list[NonEmpty] = Field(
        default_factory=list, description="`HOST:CONTAINER` or `CONTAINER`."
    )
    volumes: list[NonEmpty] = Field(
        default_factory=list,
        description="`volume:/path`, `./host/dir:/path` (bind, relative to the checkout), `:ro` suffix.",
    )
    env: dict[EnvName, str] = Field(default_factory=dict)
    secrets: dict[EnvName, NonEmpty] = Field(
        default_factory=dict,
        description="Env var -> Jenkins credentials ID (value never in the spec).",
    )
    health: Health | None = None
    strategy: Literal["blue-green", "recreate", "rolling"] = "blue-green"
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    replicas: int = Field(1, ge=1, le=100)
    placement: list[NonEmpty] = Field(
        default_factory=list, description="Swarm placement constraints."
    )
    resources: Resources | None = None
    services: list[ComposeService] = Field(default_factory=list)
    proxy: Literal["caddy"] = "caddy"
    engine: str | None = Field(
        None,
        description="Docker engine the service runs on, kept across builds: `unix:///path.sock`, "
        "`tcp://host:port` (TLS from CONVEYOR_DEPLOY_TLS_VERIFY / CONVEYOR_DEPLOY_CERT_PATH) or "
        "`ssh://user@host`. Default: the host's engine (never a DinD stage's nested daemon). "
        "`--engine` and CONVEYOR_DEPLOY_HOST override it.",
    )
    kubernetes: _kubernetes.Kubernetes | None = Field(
        None, description="Namespace, context, Secrets, probes... of `target: kubernetes`."
    )

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str | None) -> str | None:
        if value is not None and not _ENGINE.match(value):
            raise ValueError(
                f"invalid engine {value!r}: use unix:///path/docker.sock, tcp://host:port "
                "or ssh://user@host[:port]"
            )
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        for port in value:
            match = _PORT.match(port)
            if not match or not all(
                1 <= int(p) <= 65535 for p in match.group(1, 2) if p is not None
            ):
                raise ValueError(f"invalid port mapping {port!r}: use HOST:CONTAINER or CONTAINER")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        for vol in value:
            parts = vol.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
                raise ValueError(
                    f"invalid volume {vol!r}: use NAME:/path, ./dir:/path or /abs:/path, optional :ro"
                )
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise ValueError(f"invalid volume mode {parts[2]!r} in {vol!r}: use ro or rw")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Deploy:
        _kubernetes.check_deploy(self)
        if self.strategy == "rolling" and self.target not in ("swarm", "kubernetes"):
            raise ValueError("strategy `rolling` needs target: swarm")
        if self.services and self.target != "compose":
            raise ValueError("`services` needs target: compose")
        bound = set(self.secrets.values())
        for service in self.services:
            for var, credential in service.secrets.items():
                if credential not in bound:
                    raise ValueError(
                        f"services {service.name!r}: secret {var} names credential "
                        f"{credential!r}, which deploy.secrets does not bind"
                    )
        if self.strategy == "blue-green" and self.target == "docker" and not self.ports:
            raise ValueError("blue-green needs at least one port (the proxy publishes it)")
        return self


class Post(_Model):
    """Commands run after the stage (or pipeline), by outcome. Same conditions as Jenkins ``post``."""

    always: list[NonEmpty] = Field(default_factory=list)
    success: list[NonEmpty] = Field(default_factory=list)
    failure: list[NonEmpty] = Field(default_factory=list)
    cleanup: list[NonEmpty] = Field(default_factory=list)


STAGE_BODIES = ("run", "build", "deploy", "parallel")


class Stage(_Model):
    """One stage. Its body is exactly one of ``run``, ``build`` (with optional ``push``), ``deploy``,
    ``parallel``."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    when: When | None = None
    image: NonEmpty | None = Field(
        None, description="Image for `run` commands; default: the agent."
    )
    run: list[NonEmpty] | None = None
    environment: dict[EnvName, str] = Field(default_factory=dict)
    secrets: dict[EnvName, NonEmpty] = Field(
        default_factory=dict, description="Env var -> Jenkins credentials ID, bound for this stage."
    )
    cache: list[Cache] = Field(default_factory=list)
    build: Build | None = None
    push: Push | None = None
    deploy: Deploy | None = None
    parallel: list[Stage] | None = None
    timeout: Duration | None = None
    post: Post | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Stage:
        bodies = [b for b in STAGE_BODIES if getattr(self, b) is not None]
        if not bodies:
            raise ValueError(
                f"stage {self.name!r} has no body: give one of run, build, deploy, parallel"
            )
        if len(bodies) > 1:
            raise ValueError(
                f"stage {self.name!r} has {' and '.join(bodies)}: a stage has exactly one body"
            )
        if self.push is not None and self.build is None:
            raise ValueError(f"stage {self.name!r}: `push` needs `build` in the same stage")
        if self.run is not None and not self.run:
            raise ValueError(f"stage {self.name!r}: `run` is empty")
        if self.parallel is not None:
            if len(self.parallel) < 2:
                raise ValueError(f"stage {self.name!r}: `parallel` needs at least two stages")
            for sub in self.parallel:
                if sub.parallel is not None:
                    raise ValueError(f"stage {self.name!r}: parallel stages cannot nest `parallel`")
        if self.image is not None and self.run is None:
            raise ValueError(f"stage {self.name!r}: `image` only applies to `run` stages")
        if self.cache and self.run is None:
            raise ValueError(f"stage {self.name!r}: `cache` only applies to `run` stages")
        return self

    @property
    def kind(self) -> str:
        """The stage body: ``run``, ``build``, ``deploy`` or ``parallel``."""
        return next(b for b in STAGE_BODIES if getattr(self, b) is not None)


class Spec(_Model):
    """A conveyor pipeline spec: one GitLab project, its Jenkins job, its stages."""

    api_version: Literal["conveyor/v1"] = Field(alias="apiVersion")
    extends: str | list[str] | None = Field(
        None, description="Template(s) merged under this file (deep merge, lists replace)."
    )
    project: Annotated[
        str, Field(pattern=_PROJECT, description="GitLab project path (group/name).")
    ]
    description: str = ""
    triggers: Triggers = Field(default_factory=lambda: Triggers(push=PushTrigger()))
    jenkins: Jenkins = Field(
        description="The Jenkins job; optional for specs used only with `conveyor run`, `deploy` "
        "or the receiver's local dispatch (then all defaults, `job` the project path)."
    )
    webhook: Webhook = Field(default_factory=Webhook)
    environment: dict[EnvName, str] = Field(default_factory=dict)
    secrets: dict[EnvName, NonEmpty] = Field(
        default_factory=dict,
        description="Env var -> Jenkins credentials ID for the whole pipeline.",
    )
    stages: list[Stage] = Field(min_length=1)
    post: Post | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_project(cls, data: Any) -> Any:
        """``jenkins.job`` defaults to the project path (a spec for ``conveyor run`` or ``deploy`` needs
        no ``jenkins`` section) and ``deploy.name`` to the project's last path segment, so templates
        need neither."""
        if not isinstance(data, dict):
            return data
        project = data.get("project")
        data = {**data, "jenkins": _default_job(data.get("jenkins"), project)}
        if not isinstance(project, str):
            return data
        default = re.sub(r"[^a-z0-9_-]+", "-", project.rsplit("/", 1)[-1].lower())
        default = default.strip("-_")[:48] or "app"

        def fill(stages: Any) -> Any:
            if not isinstance(stages, list):
                return stages
            out = []
            for stage in stages:
                if isinstance(stage, dict):
                    stage = dict(stage)
                    if isinstance(stage.get("deploy"), dict) and "name" not in stage["deploy"]:
                        stage["deploy"] = {**stage["deploy"], "name": default}
                    if "parallel" in stage:
                        stage["parallel"] = fill(stage["parallel"])
                out.append(stage)
            return out

        if "stages" not in data:
            return data
        return {**data, "stages": fill(data["stages"])}

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Spec:
        seen: set[str] = set()
        for stage in self.all_stages():
            if stage.name in seen:
                raise ValueError(f"duplicate stage name {stage.name!r}")
            seen.add(stage.name)
        declared = {p.name: p for p in self.jenkins.parameters}
        for stage in self.all_stages():
            for name, wanted in ((stage.when.parameter or {}) if stage.when else {}).items():
                param = declared.get(name)
                if param is None:
                    raise ValueError(
                        f"stage {stage.name!r}: when.parameter {name!r} is not declared in "
                        "jenkins.parameters"
                    )
                if (param.type == "boolean") != isinstance(wanted, bool):
                    raise ValueError(
                        f"stage {stage.name!r}: when.parameter {name!r} compares a {param.type} "
                        f"parameter with {wanted!r}"
                    )
        return self

    @model_validator(mode="after")
    def _rules(self) -> Spec:
        """The rules across fields (:mod:`conveyor.spec.rules`), each located at its data path."""
        from conveyor.spec.rules import problems

        found = problems(self)
        if found:
            raise ValidationError.from_exception_data(
                "Spec",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "spec_rule", "{message}", {"message": p.message, "at_key": p.key}
                        ),
                        loc=p.loc,
                        input=None,
                    )
                    for p in found
                ],
            )
        return self

    def all_stages(self) -> list[Stage]:
        """Every stage, parallel children included, in declaration order."""
        out: list[Stage] = []
        for stage in self.stages:
            out.append(stage)
            out.extend(stage.parallel or [])
        return out

    @property
    def registry(self) -> str | None:
        """The registry of the first stage that pushes, used for ``{registry}``."""
        for stage in self.all_stages():
            if stage.push is not None:
                return stage.push.registry
        return None


def _default_job(jenkins: Any, project: Any) -> Any:
    """The ``jenkins`` section with ``job`` filled in from ``project`` when absent. Without a usable
    project the spec fails on ``project`` alone; the stand-in job only keeps that the one error."""
    if jenkins is None:
        jenkins = {}
    if not isinstance(jenkins, dict) or "job" in jenkins:
        return jenkins
    return {**jenkins, "job": project if isinstance(project, str) else "project"}


Stage.model_rebuild()
