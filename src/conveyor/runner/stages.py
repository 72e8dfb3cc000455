"""``build`` (+ ``push``) and ``deploy`` stage bodies: the Docker plugin's library, on the stage's engine.

The same functions ``conveyor build/push/deploy`` (what the Jenkinsfile's stages call) use:
:func:`conveyor.docker.build.plan_build` + :func:`~conveyor.docker.build.build_image`,
:func:`conveyor.docker.push.push_tags`, :func:`conveyor.docker.deploy.deploy`. Placeholders
(``{sha}``, ``{branch}``, ``{build_number}``...) come from the run's build variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conveyor.docker.build import build_image, plan_build
from conveyor.docker.build import progress_line as build_line
from conveyor.docker.credentials import find_auth
from conveyor.docker.deploy import deploy
from conveyor.docker.deploy.stage import deploy_image, stage_request
from conveyor.docker.gitfacts import GitFacts, public_url
from conveyor.docker.images import parse_ref
from conveyor.docker.push import progress_line as push_line
from conveyor.docker.push import push_tags
from conveyor.kubernetes import target as kubernetes_target
from conveyor.spec.model import Spec, Stage

E = TypeVar("E")


@dataclass(frozen=True)
class StageWork:
    """What a build/deploy stage body needs from its run."""

    number: int
    spec: Spec
    spec_file: str
    workdir: Path
    state_dir: Path
    env: Mapping[str, str]
    environ: Mapping[str, str]
    log: Callable[[str], None]
    # a Jenkins build step: the engine the environment names (the socket, or DOCKER_HOST of the
    # docker:dind service) is long-lived, not a stage's nested daemon, so deploys may use it
    environment_engine: bool = False


def facts_of(env: Mapping[str, str]) -> GitFacts:
    """The checkout facts a build uses, from the build variables (not from git)."""
    source = env.get("gitlabSourceRepoHttpUrl", "")
    return GitFacts(
        sha=env.get("GIT_COMMIT", ""),
        branch=env.get("BRANCH_NAME", ""),
        tag=env.get("TAG_NAME", ""),
        source=public_url(source) if source else "",
    )


def _lines(log: Callable[[str], None], line: Callable[[E], str | None]) -> Callable[[E], None]:
    """Progress events as plain lines of the stage log (the library's one rendering of them)."""

    def on_event(event: E) -> None:
        text = line(event)
        if text is not None:
            log(text)

    return on_event


def build_stage(work: StageWork, stage: Stage, client: Any) -> tuple[str, ...]:
    """Build (and push) the stage's image; the tags built."""
    request = plan_build(
        work.spec, stage, facts_of(work.env), work.workdir, build_number=str(work.number)
    )
    work.log(f"building {', '.join(request.tags)}")
    result = build_image(client, request, _lines(work.log, build_line))
    work.log(
        f"built {result.image_id[:19]} ({result.steps_cached}/{result.steps} steps cached) "
        f"in {result.duration:.1f}s"
    )
    if stage.push is not None:
        host = stage.push.registry.rstrip("/")
        lookup = find_auth(parse_ref(f"{host}/x").registry or host, env=work.environ)
        if lookup.note:
            work.log(lookup.note)
        pushed = push_tags(
            client,
            request.tags,
            registry=host,
            auth=lookup.auth,
            on_event=_lines(work.log, push_line),
        )
        for tag in pushed.pushed:
            work.log(f"pushed {tag.reference}@{tag.digest}")
    return request.tags


def deploy_stage(work: StageWork, stage: Stage, client: Any) -> None:
    """Deploy the stage's service and wait until it is healthy."""
    assert stage.deploy is not None
    image = deploy_image(
        work.spec, stage, lambda: facts_of(work.env), build_number=str(work.number)
    )
    work.log(
        f"deploying {image} as {stage.deploy.name} ({stage.deploy.target}, {stage.deploy.strategy})"
    )
    request = stage_request(
        work.spec,
        stage,
        image=image,
        spec_file=work.spec_file,
        workdir=work.workdir,
        state_dir=work.state_dir,
        agent_docker="socket" if work.environment_engine else None,
        environ=work.environ,
    )
    # The deploy's own long-lived engine, never ``client`` (a DinD stage's daemon dies with the stage).
    if stage.deploy.target == "kubernetes":
        progress = kubernetes_target.Progress(say=work.log)
        result = kubernetes_target.deploy(request, progress=progress)
    else:
        result = deploy(request)
    if result.message:
        work.log(result.message)
    for endpoint in result.endpoints:
        work.log(f"serving at {endpoint}")
