"""The spec's rules across fields: everything the renderer, the runner or a deployer would otherwise
refuse only when it meets the spec, checked once when the spec is validated.

:func:`problems` is pure over a :class:`~conveyor.spec.model.Spec` and returns each broken rule with
the data path it is about (``("stages", 2, "secrets", "TOKEN")``); ``Spec`` runs it as its last
validator, so a spec that exists (loaded, or built in code) keeps every rule, ``conveyor validate``
reports each problem at its file:line:col, and ``render`` / ``run`` / ``deploy`` never refuse a valid
spec for what it says. (What the spec cannot know stays with them: a missing secret variable, an
absent checkout, ``jenkins.definition: scm`` without a known clone URL, a deploy stage with neither
``deploy.image`` nor a build stage, which ``conveyor deploy --image REF`` serves and ``conveyor run``
refuses.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.docker.gitfacts import GitFacts
from conveyor.docker.images import expand_tags, is_reference, parse_ref, placeholder_values
from conveyor.errors import UsageError
from conveyor.jenkins import gitlab_trigger
from conveyor.jenkins.xml import XmlCharError, check

if TYPE_CHECKING:
    from conveyor.spec.model import Spec, Stage

Loc = tuple[str | int, ...]

# conveyor's own first stage in every Jenkinsfile (checkout, ``running`` status)
RESERVED_STAGE = "conveyor: prepare"

# Variables the docker CLI itself reads: a container value for them goes on the command line
# (``-e NAME=VALUE``) so the CLI keeps talking to the engine it was told to. A secret there would be
# visible in the process list, so no secret may have one of these names.
CLI_VARIABLES = frozenset(
    {
        "DOCKER_HOST",
        "DOCKER_CONFIG",
        "DOCKER_CONTEXT",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
        "DOCKER_API_VERSION",
        "HOME",
        "PATH",
    }
)

# What a stage key needs a Docker engine for (``docker: none`` has none).
_NEEDS_ENGINE = {
    "image": "its own image",
    "cache": "cache volumes",
    "build": "an image build",
    "deploy": "a deploy",
}

# ``docker run`` options a nested daemon may be started with instead of --privileged: its privileges
# and mounts. The runner sets name, labels, network and the rest itself; each entry is one argv word.
FALLBACK_OPTIONS = (
    "cap-add",
    "cap-drop",
    "security-opt",
    "device",
    "device-cgroup-rule",
    "cgroupns",
    "volume",
    "mount",
    "tmpfs",
    "env",
    "ulimit",
    "sysctl",
)
_FALLBACK = re.compile(r"^--(" + "|".join(FALLBACK_OPTIONS) + r")=\S.*$")

# Stand-ins for the build's facts: a tag template that is no image reference with these never is one.
_SAMPLE = GitFacts(sha="0" * 40, branch="main", tag="v1", source="")


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (a data path; ``key``: the key rather than its value) and why."""

    loc: Loc
    message: str
    key: bool = False


def problems(spec: Spec) -> list[Problem]:
    """Every rule ``spec`` breaks, in the order of the file."""
    found: list[Problem] = []
    found += _pipeline_variables(spec)
    found += _jenkins(spec)
    for loc, stage in _stages(spec):
        found += _stage(spec, loc, stage)
    return found


def _stages(spec: Spec) -> Iterator[tuple[Loc, Stage]]:
    for i, stage in enumerate(spec.stages):
        yield ("stages", i), stage
        for j, child in enumerate(stage.parallel or []):
            yield ("stages", i, "parallel", j), child


# ------------------------------------------------------------------------------------ variables


def _one_source(
    environment: dict[str, str], secrets: dict[str, str], base: Loc, where: str
) -> Iterator[Problem]:
    for name in environment:
        if name in secrets:
            yield Problem(
                (*base, "environment", name),
                f"{where}: {name} is set both as environment and as a secret; give each variable "
                "one source",
                key=True,
            )


def _cli_clash(secrets: dict[str, str], base: Loc) -> Iterator[Problem]:
    for name in secrets:
        if name in CLI_VARIABLES:
            yield Problem(
                (*base, name),
                f"secret variable {name} clashes with the docker CLI's own setting of that name; "
                "rename the variable",
                key=True,
            )


def _pipeline_variables(spec: Spec) -> list[Problem]:
    found = list(_one_source(spec.environment, spec.secrets, (), "pipeline"))
    found += _cli_clash(spec.secrets, ("secrets",))
    return found


def _stage_secrets(spec: Spec, loc: Loc, stage: Stage) -> list[Problem]:
    """A stage binds its ``secrets`` and its deploy's ``secrets`` together, beside the pipeline's:
    one variable, one credentials ID."""
    found = list(_cli_clash(stage.secrets, (*loc, "secrets")))
    bound = dict(stage.secrets)
    origin = {name: (*loc, "secrets", name) for name in stage.secrets}
    if stage.deploy is not None:
        found += _cli_clash(stage.deploy.secrets, (*loc, "deploy", "secrets"))
        for name, credential in stage.deploy.secrets.items():
            if bound.get(name, credential) != credential:
                found.append(
                    Problem(
                        (*loc, "deploy", "secrets", name),
                        f"stage {stage.name!r}: secret {name} is bound to two credentials IDs "
                        "(secrets and deploy.secrets); use one credentials ID per variable",
                        key=True,
                    )
                )
                continue
            bound[name] = credential
            origin.setdefault(name, (*loc, "deploy", "secrets", name))
    for name, credential in bound.items():
        if spec.secrets.get(name, credential) != credential:
            found.append(
                Problem(
                    origin[name],
                    f"stage {stage.name!r}: {name} is bound to other credentials than the "
                    "pipeline's secrets; give each variable one credentials ID",
                    key=True,
                )
            )
    found += _one_source(stage.environment, bound, loc, f"stage {stage.name!r}")
    return found


# ---------------------------------------------------------------------------------------- stages


def _stage(spec: Spec, loc: Loc, stage: Stage) -> list[Problem]:
    found: list[Problem] = []
    if stage.name == RESERVED_STAGE:
        found.append(
            Problem(
                (*loc, "name"),
                f"stage name {RESERVED_STAGE!r} is reserved for conveyor's own first stage; "
                "rename the stage",
            )
        )
    if spec.jenkins.agent.docker == "none":
        for key, what in _NEEDS_ENGINE.items():
            if getattr(stage, key) not in (None, []):
                found.append(
                    Problem(
                        (*loc, key),
                        f"stage {stage.name!r} needs a Docker engine for {what}, but "
                        "jenkins.agent.docker is 'none' (set it to socket or dind, or drop "
                        f"`{key}`)",
                        key=True,
                    )
                )
    found += _stage_secrets(spec, loc, stage)
    if stage.build is not None:
        found += _build(spec, loc, stage)
    if stage.deploy is not None:
        found += _deploy(spec, loc, stage)
    return found


def _registry_host(registry: str) -> str | None:
    """``registry`` as the push names it (``host[:port]``), or None when it is no registry host."""
    host = registry.rstrip("/")
    try:
        ref = parse_ref(f"{host}/x")
    except UsageError:
        return None
    return host if ref.registry in (host, host.lower()) else None


def escapes(path: str) -> bool:
    """Does relative ``path`` leave the directory it is relative to (absolute, or ``..`` past it)?

    The spec comes from the repository being built: a context of ``/`` or ``../..`` would send the
    build host's files to the engine (and into an image that is pushed), and the Docker SDK reads a
    Dockerfile outside the context from the host too (docker/utils/build.py ``process_dockerfile``)."""
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return True
    depth = 0
    for part in re.split(r"[/\\]+", path):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _build(spec: Spec, loc: Loc, stage: Stage) -> list[Problem]:
    """The context inside the checkout and the Dockerfile inside the context; every tag a valid
    image reference; a pushing stage's tags all on its registry, which is a registry host (the push
    refuses anything else)."""
    assert stage.build is not None
    found: list[Problem] = []
    for name, value, inside in (
        (
            "context",
            stage.build.context,
            "the checkout: use a path inside it, relative to its root",
        ),
        ("dockerfile", stage.build.dockerfile, "the build context: use a path inside it"),
    ):
        if escapes(value):
            found.append(Problem((*loc, "build", name), f"build.{name} {value!r} leaves {inside}"))
    host: str | None = None
    if stage.push is not None:
        host = _registry_host(stage.push.registry)
        if host is None:
            found.append(
                Problem(
                    (*loc, "push", "registry"),
                    f"push.registry {stage.push.registry!r} is not a registry host: use "
                    "host[:port], e.g. registry.example.com or localhost:5000",
                )
            )
            return found  # its tags cannot be judged against it
    registry = stage.push.registry if stage.push is not None else spec.registry
    for j, template in enumerate(stage.build.tags):
        where = (*loc, "build", "tags", j)
        ref = _reference(spec, where, template, registry, "image tag", found)
        if (
            ref is not None
            and host is not None
            and parse_ref(ref).registry not in (host, host.lower())
        ):
            found.append(
                Problem(
                    where,
                    f"image tag {template!r} is not on the push registry {host} (pushed tags "
                    "start with {registry}/ or the registry host)",
                )
            )
    return found


def _reference(
    spec: Spec, loc: Loc, template: str, registry: str | None, what: str, found: list[Problem]
) -> str | None:
    """``template`` expanded for a build with every fact known; a Problem in ``found`` (and None)
    when that is no image reference."""
    values = placeholder_values(_SAMPLE, project=spec.project, registry=registry, build_number="1")
    try:
        return expand_tags([template], values)[0]
    except UsageError:
        why = (
            "; {registry} is empty because no stage pushes"
            if "{registry}" in template and not registry
            else ""
        )
        found.append(
            Problem(loc, f"{what} {template!r} never expands to a valid image reference{why}")
        )
        return None


def _deploy(spec: Spec, loc: Loc, stage: Stage) -> list[Problem]:
    deploy = stage.deploy
    assert deploy is not None
    base = (*loc, "deploy")
    found: list[Problem] = []
    # No image and no build is allowed: ``conveyor deploy --image REF`` supplies one (``conveyor run``
    # refuses such a stage when it reaches it: conveyor.docker.deploy.stage.deploy_image).
    if deploy.image is not None and "{" in deploy.image:
        _reference(spec, (*base, "image"), deploy.image, spec.registry, "deploy.image", found)
    elif deploy.image is not None and not is_reference(deploy.image):
        found.append(
            Problem(
                (*base, "image"),
                f"deploy.image {deploy.image!r} is not an image reference: use "
                "[REGISTRY/]NAME[:TAG][@DIGEST]",
            )
        )
    seen: set[tuple[str, str]] = set()
    for j, text in enumerate(deploy.ports):
        body, _, protocol = text.partition("/")
        host, sep, _container = body.rpartition(":")
        protocol = protocol or "tcp"
        if sep and (host, protocol) in seen:
            found.append(
                Problem((*base, "ports", j), f"host port {host}/{protocol} is published twice")
            )
        if sep:
            seen.add((host, protocol))
        if deploy.target == "docker" and protocol != "tcp":
            found.append(
                Problem(
                    (*base, "ports", j),
                    f"target docker publishes through its HTTP proxy, which forwards TCP only, "
                    f"not {text!r}; use target compose or swarm for {protocol}",
                )
            )
    health = deploy.health
    if health is not None and health.http is not None and health.port is None and not deploy.ports:
        found.append(
            Problem(
                (*base, "health", "http"),
                "an HTTP health check needs health.port or a port mapping",
                key=True,
            )
        )
    for j, service in enumerate(deploy.services):
        if service.name == "app":
            found.append(
                Problem(
                    (*base, "services", j, "name"),
                    "compose service name 'app' is reserved for the deployed image",
                )
            )
    return found


# --------------------------------------------------------------------------------------- jenkins


def xml_fields(spec: Spec) -> list[tuple[Loc, str]]:
    """The spec's strings that config.xml carries as they are (the Jenkinsfile escapes to ASCII)."""
    jenkins, scm, triggers = spec.jenkins, spec.jenkins.scm, spec.triggers
    fields: list[tuple[Loc, str | None]] = [
        (("description",), spec.description),
        (("jenkins", "description"), jenkins.description),
        (("jenkins", "connection"), jenkins.connection),
        (("jenkins", "scm", "url"), scm.url),
        (("jenkins", "scm", "credentials"), scm.credentials),
        (("jenkins", "scm", "branch"), scm.branch),
        (("jenkins", "scm", "script_path"), scm.script_path),
    ]
    for i, p in enumerate(jenkins.parameters):
        base: Loc = ("jenkins", "parameters", i)
        fields.append(((*base, "description"), p.description))
        if isinstance(p.default, str):
            fields.append(((*base, "default"), p.default))
        fields.extend(((*base, "choices", j), c) for j, c in enumerate(p.choices or []))
    patterns: list[tuple[Loc, list[str]]] = []
    if triggers.push is not None:
        patterns += [
            (("triggers", "push", "branches"), triggers.push.branches),
            (("triggers", "push", "exclude"), triggers.push.exclude),
        ]
    if triggers.tag_push is not None:
        patterns.append((("triggers", "tag_push", "tags"), triggers.tag_push.tags))
    if triggers.merge_request is not None:
        patterns.append(
            (
                ("triggers", "merge_request", "target_branches"),
                triggers.merge_request.target_branches,
            )
        )
    for loc, items in patterns:
        fields.extend(((*loc, j), item) for j, item in enumerate(items))
    return [(loc, value) for loc, value in fields if value is not None]


def _images(spec: Spec) -> Iterator[tuple[Loc, str]]:
    """Images containers are started from as written (no placeholders there)."""
    yield ("jenkins", "agent", "image"), spec.jenkins.agent.image
    yield ("jenkins", "agent", "dind", "image"), spec.jenkins.agent.dind.image
    for loc, stage in _stages(spec):
        if stage.image is not None:
            yield (*loc, "image"), stage.image
        for j, service in enumerate(stage.deploy.services if stage.deploy else []):
            yield (*loc, "deploy", "services", j, "image"), service.image


def _jenkins(spec: Spec) -> list[Problem]:
    found: list[Problem] = [
        Problem(loc, f"{image!r} is not an image reference: use [REGISTRY/]NAME[:TAG][@DIGEST]")
        for loc, image in _images(spec)
        if not is_reference(image)
    ]
    for j, arg in enumerate(spec.jenkins.agent.dind.fallback_args):
        if not _FALLBACK.match(arg):
            found.append(
                Problem(
                    ("jenkins", "agent", "dind", "fallback_args", j),
                    f"{arg!r} is not a nested-daemon option conveyor passes: write each as one "
                    "--name=value word, name one of " + ", ".join(FALLBACK_OPTIONS),
                )
            )
    scm = spec.jenkins.scm
    if (
        spec.jenkins.definition == "scm"
        and spec.webhook.target == "receiver"
        and scm.lightweight
        and "lightweight" in scm.model_fields_set
    ):
        found.append(
            Problem(
                ("jenkins", "scm", "lightweight"),
                "jenkins.scm.lightweight cannot be true with webhook.target: receiver (a "
                "lightweight checkout reads a branch head, not the event's commit); remove it, set "
                "it false, or use webhook.target: jenkins",
            )
        )
    if spec.webhook.target == "jenkins":
        for reason in gitlab_trigger.inexpressible(spec.triggers):
            found.append(
                Problem(
                    ("webhook", "target"),
                    f"with webhook.target: jenkins, gitlab-plugin cannot express {reason} (or use "
                    "webhook.target: receiver, which applies the spec's triggers exactly)",
                )
            )
    for loc, value in xml_fields(spec):
        try:
            check(value)
        except XmlCharError as exc:
            found.append(
                Problem(
                    loc,
                    f"holds U+{ord(exc.char):04X}, which config.xml cannot carry; remove the "
                    "control character",
                )
            )
    return found
