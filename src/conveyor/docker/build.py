"""Build a stage's image with the docker SDK's low-level API, streaming progress as events.

:func:`plan_build` turns a spec stage and the checkout's facts into a :class:`BuildRequest` (pure);
:func:`build_image` runs it against an engine: ``client.api.build(..., decode=True)`` with the
context directory (its ``.dockerignore`` honoured by the SDK), build args, target, labels (the OCI
ones included) and cache sources, then tags the image with every expanded tag.

Cache sources: the stage's ``cache_from`` (used when present locally, pulled first when on the push
registry), and the last pushed image of this branch -- ``REPO:<branch>`` of the first tag's repository,
then ``REPO:latest`` -- pulled from the push registry (with its credentials) and used only when that
pull succeeds; absence is fine. The classic builder treats ``--cache-from`` as a restriction of the
local cache (a cached layer must belong to one of those images), so nothing is passed when no registry
image exists and the local cache serves as usual.

Failures raise :class:`~conveyor.errors.BuildError` with the failing ``Step n/m`` and the last lines
of its output.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import docker
import requests.exceptions

from conveyor.docker.credentials import find_auth
from conveyor.docker.engine import docker_errors, local_client
from conveyor.docker.gitfacts import GitFacts, git_facts
from conveyor.docker.images import (
    expand,
    expand_tags,
    oci_labels,
    parse_ref,
    placeholder_values,
    tag_safe,
)
from conveyor.errors import BuildError, DockerError, UsageError
from conveyor.spec.load import load_spec
from conveyor.spec.model import Spec, Stage

TAIL_LINES = 40
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")

BuildEventKind = Literal["step", "cached", "output", "note"]


@dataclass(frozen=True)
class BuildEvent:
    """One piece of build progress. ``step``/``total`` are 0 before the first step (e.g. cache pulls).

    kinds: ``step`` (a Dockerfile instruction starts; ``text`` is the instruction), ``cached`` (that
    step was reused from the cache), ``output`` (a line the step printed), ``note`` (conveyor's own
    remark, e.g. a cache image pulled).
    """

    kind: BuildEventKind
    step: int
    total: int
    text: str


BuildCallback = Callable[[BuildEvent], None]


def progress_line(event: BuildEvent) -> str:
    """``event`` as one plain line: what a log, a Jenkins console or a pipe shows (the runner's stage
    log and ``conveyor build`` without a terminal print these)."""
    if event.kind == "step":
        return f"Step {event.step}/{event.total} : {event.text}"
    if event.kind == "cached":
        return "  ---> Using cache"
    if event.kind == "note":
        return f"conveyor: {event.text}"
    return f"  {event.text}"


@dataclass(frozen=True)
class BuildRequest:
    """Everything one build needs, placeholders already expanded."""

    context: Path
    tags: tuple[str, ...]
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    cache_from: tuple[str, ...] = ()  # explicit cache images (the spec's cache_from)
    cache_pull: tuple[
        str, ...
    ] = ()  # the last pushed images: used only when pulled from `registry`
    registry: str | None = None  # pull cache images from here (with its credentials)
    nocache: bool = False


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple[str, ...]
    duration: float  # seconds
    steps: int
    steps_cached: int
    cache_from: tuple[str, ...]  # the cache images that were used as sources

    exit_code = 0  # a failed build raises BuildError

    def to_json(self) -> dict[str, object]:
        return {
            "image_id": self.image_id,
            "tags": list(self.tags),
            "duration": round(self.duration, 3),
            "steps": self.steps,
            "steps_cached": self.steps_cached,
            "cache_from": list(self.cache_from),
        }

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        head = (
            f"built {self.image_id[7:19]} in {self.duration:.1f} s "
            f"({self.steps_cached}/{self.steps} steps cached)"
        )
        return [head, *(f"  {tag}" for tag in self.tags)]


def find_stage(spec: Spec, name: str | None, kind: str = "build") -> Stage:
    """The stage called ``name``, or the only/first stage of ``kind`` when no name is given."""
    stages = [s for s in spec.all_stages() if s.kind == kind]
    if name is not None:
        for stage in spec.all_stages():
            if stage.name == name:
                if stage.kind != kind:
                    raise UsageError(f"stage {name!r} is a {stage.kind} stage, not a {kind} stage")
                return stage
        known = ", ".join(repr(s.name) for s in stages) or "none"
        raise UsageError(f"no stage {name!r} in the spec ({kind} stages: {known})")
    if not stages:
        raise UsageError(f"the spec has no {kind} stage")
    return stages[0]


def _registry(spec: Spec, stage: Stage) -> str | None:
    return stage.push.registry if stage.push else spec.registry


def build_tags(
    spec: Spec, stage: Stage, facts: GitFacts, *, build_number: str = ""
) -> tuple[str, ...]:
    """The image references the build stage ``stage`` tags, placeholders expanded. Pure."""
    if stage.build is None:
        raise UsageError(f"stage {stage.name!r} has no build")
    values = placeholder_values(
        facts, project=spec.project, registry=_registry(spec, stage), build_number=build_number
    )
    return expand_tags(list(stage.build.tags), values)


def plan_build(
    spec: Spec,
    stage: Stage,
    facts: GitFacts,
    workdir: Path,
    *,
    build_number: str = "",
    created: datetime | None = None,
) -> BuildRequest:
    """The build of ``stage`` (a ``build`` stage) for checkout ``workdir`` with ``facts``. Pure."""
    if stage.build is None:
        raise UsageError(f"stage {stage.name!r} has no build")
    build = stage.build
    registry = _registry(spec, stage)
    values = placeholder_values(
        facts, project=spec.project, registry=registry, build_number=build_number
    )
    tags = build_tags(spec, stage, facts, build_number=build_number)
    labels = {**oci_labels(facts, project=spec.project, created=created)}
    labels.update({k: expand(v, values) for k, v in build.labels.items()})
    first = parse_ref(tags[0])
    cache = tuple(dict.fromkeys(expand(c, values) for c in build.cache_from))
    pulls = [
        f"{first.name}:{tag}"
        for tag in (tag_safe(facts.branch) if facts.branch else "", "latest")
        if tag and f"{first.name}:{tag}" not in cache
    ]
    root = workdir.resolve()
    context = (workdir / build.context).resolve()
    dockerfile = (context / build.dockerfile).resolve()
    # the spec's rules refuse `..` and absolute paths; a symlink in the checkout is caught here
    if not context.is_relative_to(root):
        raise UsageError(
            f"stage {stage.name!r}: build context {build.context!r} resolves outside the checkout",
            hint="a symlink in the checkout points out of it; use a directory inside it",
        )
    if not dockerfile.is_relative_to(context):
        raise UsageError(
            f"stage {stage.name!r}: dockerfile {build.dockerfile!r} resolves outside the context",
            hint="a symlink in the checkout points out of it; use a file inside the context",
        )
    return BuildRequest(
        context=context,
        tags=tags,
        dockerfile=build.dockerfile,
        args={k: expand(v, values) for k, v in build.args.items()},
        labels=labels,
        target=build.target,
        cache_from=cache,
        cache_pull=tuple(pulls) if registry else (),
        registry=registry,
    )


def load_build_stage(spec_path: Path, stage_name: str | None) -> tuple[Spec, Stage]:
    """The spec at ``spec_path`` and its build stage ``stage_name`` (default: the first)."""
    spec = load_spec(spec_path).spec
    return spec, find_stage(spec, stage_name, "build")


def plan_checkout_build(
    spec: Spec,
    stage: Stage,
    workdir: Path,
    *,
    sha: str | None = None,
    branch: str | None = None,
    tag: str | None = None,
    build_number: str = "",
) -> BuildRequest:
    """:func:`plan_build` for the git checkout ``workdir``: sha/branch/tag from git unless given,
    ``$BUILD_NUMBER`` unless ``build_number`` is."""
    facts = git_facts(workdir, sha=sha, branch=branch, tag=tag)
    return plan_build(
        spec,
        stage,
        facts,
        workdir.resolve(),
        build_number=build_number or os.environ.get("BUILD_NUMBER", ""),
    )


def build_on_engine(
    request: BuildRequest,
    progress: AbstractContextManager[BuildCallback | None] | None = None,
) -> BuildResult:
    """:func:`build_image` on the local engine (``DOCKER_HOST`` or the socket), reached first;
    ``progress`` is entered for the build only and yields its event callback."""
    with local_client() as client, progress or nullcontext() as on_event:
        return build_image(client, request, on_event)


def _note(on_event: BuildCallback | None, text: str) -> None:
    if on_event is not None:
        on_event(BuildEvent("note", 0, 0, text))


def _pull(
    client: docker.DockerClient, ref_text: str, registry: str | None, on_event: BuildCallback | None
) -> bool:
    """Pull ``ref_text`` when it lives on ``registry``; False when absent or unreadable."""
    ref = parse_ref(ref_text)
    if not registry or ref.registry != parse_ref(f"{registry.rstrip('/')}/x").registry:
        return False
    lookup = find_auth(ref.registry)
    auth = lookup.auth.auth_config() if lookup.auth else None
    try:
        client.api.pull(ref.name, tag=ref.tag, auth_config=auth)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False  # not pushed yet, or not readable: build without it
    _note(on_event, f"cache: pulled {ref_text}")
    return True


def _present(client: docker.DockerClient, ref_text: str) -> bool:
    with docker_errors(f"look up cache image {ref_text}"):
        try:
            client.api.inspect_image(ref_text)
        except docker.errors.ImageNotFound:
            return False
    return True


def prepare_cache(
    client: docker.DockerClient, request: BuildRequest, on_event: BuildCallback | None = None
) -> tuple[str, ...]:
    """Pull the request's cache images (absence ignored); the ones to pass as ``cache_from``."""
    use: list[str] = []
    for ref_text in request.cache_from:
        _pull(client, ref_text, request.registry, on_event)
        if _present(client, ref_text):
            use.append(ref_text)
    for ref_text in request.cache_pull:
        if _pull(client, ref_text, request.registry, on_event) and ref_text not in use:
            use.append(ref_text)
    return tuple(use)


def _tag_all(client: docker.DockerClient, image_id: str, tags: Iterable[str]) -> None:
    for tag in tags:
        ref = parse_ref(tag)
        with docker_errors(f"tag {image_id[:19]} as {tag}"):
            client.api.tag(image_id, ref.name, ref.tag, force=True)


def build_image(
    client: docker.DockerClient,
    request: BuildRequest,
    on_event: BuildCallback | None = None,
    *,
    use_cache_images: bool = True,
) -> BuildResult:
    """Build ``request`` on ``client``'s engine; tag it with every tag. Raises BuildError on failure."""
    if not request.context.is_dir():
        raise UsageError(f"build context {request.context} is not a directory")
    started = time.monotonic()
    cache_from = prepare_cache(client, request, on_event) if use_cache_images else ()
    step, total, current = 0, 0, ""
    steps_cached = 0
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    image_id = ""
    with docker_errors(f"build {request.tags[0]}"):
        stream: Iterable[dict[str, Any]] = client.api.build(
            path=str(request.context),
            dockerfile=request.dockerfile,
            tag=request.tags[0],
            buildargs=dict(request.args) or None,
            labels=dict(request.labels) or None,
            target=request.target,
            cache_from=list(cache_from) or None,
            rm=True,
            forcerm=True,
            pull=False,
            nocache=request.nocache,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail") or {}
                message = str(detail.get("message") or chunk["error"]).strip()
                tail.append(message)
                where = f"step {step}/{total} ({current})" if step else "before the first step"
                raise BuildError(
                    f"build of {request.tags[0]} failed at {where}: {message}",
                    step=f"Step {step}/{total} : {current}" if step else None,
                    log_tail="\n".join(tail),
                )
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]
            text = chunk.get("stream")
            if not isinstance(text, str):
                status = chunk.get("status")
                if isinstance(status, str) and on_event is not None:
                    on_event(BuildEvent("output", step, total, status))
                continue
            for line in text.splitlines():
                match = _STEP.match(line)
                if match:
                    step, total, current = int(match.group(1)), int(match.group(2)), match.group(3)
                    tail.clear()
                    tail.append(line)
                    if on_event is not None:
                        on_event(BuildEvent("step", step, total, current))
                    continue
                if not line.strip():
                    continue
                tail.append(line)
                if line.strip() == "---> Using cache":
                    steps_cached += 1
                    if on_event is not None:
                        on_event(BuildEvent("cached", step, total, current))
                    continue
                if line.startswith("Successfully built ") and not image_id:
                    image_id = line.split()[-1]
                if on_event is not None:
                    on_event(BuildEvent("output", step, total, line))
    if not image_id:
        raise BuildError(
            f"build of {request.tags[0]} ended without an image",
            step=f"Step {step}/{total} : {current}" if step else None,
            log_tail="\n".join(tail),
        )
    with docker_errors(f"inspect built image {image_id[:19]}"):
        image_id = str(client.api.inspect_image(image_id)["Id"])
    _tag_all(client, image_id, request.tags[1:])
    return BuildResult(
        image_id=image_id,
        tags=request.tags,
        duration=time.monotonic() - started,
        steps=total,
        steps_cached=steps_cached,
        cache_from=cache_from,
    )


__all__ = [
    "BuildCallback",
    "BuildEvent",
    "BuildRequest",
    "BuildResult",
    "DockerError",
    "build_image",
    "build_on_engine",
    "find_stage",
    "load_build_stage",
    "plan_build",
    "plan_checkout_build",
    "prepare_cache",
]
