"""A spec's deploy stage as a :class:`~conveyor.docker.deploy.model.DeployRequest`: the one answer to
"which image does this deploy stage run, on which engine?" for ``conveyor deploy / rollback / history``
(git facts of the checkout) and the runner's deploy stages (the build's variables and its number).

The image is the one given (``--image``), else the stage's ``deploy.image``, else the first tag the
spec's first build stage builds, its placeholders expanded as that build expands them (the push
registry, tag-safe ``{branch}``/``{tag}``, ``{build_number}``). With none of these it is a UsageError
(a spec may leave the image to ``conveyor deploy --image``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from conveyor.docker.build import build_tags, find_stage
from conveyor.docker.deploy.engine import deploy_engine
from conveyor.docker.deploy.model import DeployRequest
from conveyor.docker.gitfacts import GitFacts, git_facts
from conveyor.docker.images import expand_tags, placeholder_values
from conveyor.errors import UsageError
from conveyor.spec.load import load_spec
from conveyor.spec.model import Spec, Stage


def deploy_image(
    spec: Spec,
    stage: Stage,
    facts: Callable[[], GitFacts],
    *,
    build_number: str = "",
    image: str | None = None,
) -> str:
    """The image reference ``stage`` deploys. ``facts`` is called only when a placeholder needs it
    (a deploy of a fixed reference works outside a checkout)."""
    assert stage.deploy is not None
    template = image or stage.deploy.image
    if template is not None:
        if "{" not in template:
            return template
        values = placeholder_values(
            facts(), project=spec.project, registry=spec.registry, build_number=build_number
        )
        return expand_tags([template], values)[0]
    for candidate in spec.all_stages():
        if candidate.build is not None:
            return build_tags(spec, candidate, facts(), build_number=build_number)[0]
    raise UsageError(
        f"deploy stage {stage.name!r} names no image and the spec builds none",
        hint="set deploy.image in the spec, or pass --image REF to conveyor deploy",
    )


def stage_request(
    spec: Spec,
    stage: Stage,
    *,
    image: str,
    spec_file: str,
    workdir: Path,
    state_dir: Path,
    engine: str | None = None,
    agent_docker: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> DeployRequest:
    """The deploy of ``image`` for the deploy stage ``stage`` (``image`` "" for rollback and history,
    whose image comes from the engine's history). ``agent_docker`` defaults to the spec's agent."""
    assert stage.deploy is not None
    return DeployRequest(
        deploy=stage.deploy,
        image=image,
        project=spec.project,
        spec_file=spec_file,
        workdir=workdir,
        state_dir=state_dir,
        stage=stage.name,
        engine=deploy_engine(
            stage.deploy,
            agent_docker=agent_docker or spec.jenkins.agent.docker,
            environ=environ,
            override=engine,
        ),
    )


def request_from_file(
    spec_path: Path,
    stage_name: str | None,
    *,
    workdir: Path,
    state_dir: Path,
    engine: str | None = None,
    image: str | None = None,
    need_image: bool = True,
) -> DeployRequest:
    """The request for the deploy stage ``stage_name`` (default: the first) of the spec file
    ``spec_path``, its image from git facts of ``workdir`` (``conveyor deploy``). ``need_image=False``
    (rollback, history: the image comes from the engine's history) resolves none."""
    loaded = load_spec(spec_path)
    stage = find_stage(loaded.spec, stage_name, "deploy")
    chosen = (
        deploy_image(loaded.spec, stage, lambda: git_facts(workdir), image=image)
        if need_image
        else ""
    )
    return stage_request(
        loaded.spec,
        stage,
        image=chosen,
        spec_file=str(loaded.path),
        workdir=workdir.resolve(),
        state_dir=state_dir,
        engine=engine,
    )
