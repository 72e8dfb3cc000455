"""A spec's ``target: kubernetes`` deploy stages as manifests, and ``conveyor render``'s k8s files.

The image of a stage is its ``deploy.image``, else the first tag the spec builds (the rule
``conveyor deploy`` follows), with the placeholders expanded from ``values``
(:func:`conveyor.docker.images.placeholder_values`). :func:`render_spec` is pure; only
:func:`write_manifests` writes, to ``DIR/<job path>/k8s/<kind>-<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.docker.gitfacts import git_facts
from conveyor.docker.images import expand, placeholder_values
from conveyor.errors import RenderError, UsageError
from conveyor.kubernetes.manifests import Manifest, render_manifests
from conveyor.spec.model import PLACEHOLDERS, Spec, Stage


@dataclass(frozen=True)
class StageManifests:
    stage: str
    image: str
    manifests: tuple[Manifest, ...]


def kubernetes_stages(spec: Spec) -> list[Stage]:
    """The spec's deploy stages with ``target: kubernetes``, in order."""
    return [
        s for s in spec.all_stages() if s.deploy is not None and s.deploy.target == "kubernetes"
    ]


def needs_values(spec: Spec) -> bool:
    """Does any Kubernetes stage's image have placeholders (so rendering needs git facts)?"""
    return any("{" in image_template(spec, s) for s in kubernetes_stages(spec))


def image_template(spec: Spec, stage: Stage) -> str:
    assert stage.deploy is not None
    if stage.deploy.image is not None:
        return stage.deploy.image
    built = [s.build.tags[0] for s in spec.all_stages() if s.build is not None]
    if not built:
        raise UsageError(
            f"stage {stage.name!r} names no image and the spec builds none",
            hint="give deploy.image in the spec or --image REF",
        )
    return built[0]


def stage_image(spec: Spec, stage: Stage, values: Mapping[str, str]) -> str:
    template = image_template(spec, stage)
    image = expand(template, values)
    empty = [p for p in PLACEHOLDERS if "{" + p + "}" in template and not values.get(p)]
    if empty:
        raise UsageError(
            f"stage {stage.name!r}: image {template!r} needs "
            + ", ".join("{" + p + "}" for p in empty),
            hint="render or deploy inside the checkout (git gives {sha}, {branch}), or give "
            "deploy.image without placeholders",
        )
    return image


def render_spec(spec: Spec, values: Mapping[str, str]) -> list[StageManifests]:
    """Every Kubernetes deploy stage of ``spec`` with its manifests. Two stages rendering the same
    object (kind, namespace, name) is a RenderError."""
    out = []
    seen: dict[str, str] = {}  # file name -> stage
    for stage in kubernetes_stages(spec):
        assert stage.deploy is not None
        image = stage_image(spec, stage, values)
        manifests = tuple(render_manifests(stage.deploy, project=spec.project, image=image))
        for m in manifests:
            if m.filename in seen:
                raise RenderError(
                    f"stages {seen[m.filename]!r} and {stage.name!r} both render "
                    f"{m.kind} {m.name!r}",
                    hint="give each Kubernetes deploy stage its own deploy.name",
                )
            seen[m.filename] = stage.name
        out.append(StageManifests(stage.name, image, manifests))
    return out


def write_manifests(out_dir: Path, job_path: str, rendered: list[StageManifests]) -> list[Path]:
    """Write ``DIR/<job path>/k8s/<kind>-<name>.yaml`` for each manifest; return the paths."""
    if not rendered:
        return []
    target = out_dir.joinpath(*job_path.split("/"), "k8s")
    paths = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for stage in rendered:
            for manifest in stage.manifests:
                path = target / manifest.filename
                path.write_text(manifest.yaml(), encoding="utf-8", newline="\n")
                paths.append(path)
    except OSError as exc:
        raise RenderError(
            f"cannot write the Kubernetes manifests of job {job_path!r} under {out_dir}: "
            f"{exc.strerror}",
            hint="choose a writable -o directory",
        ) from exc
    return paths


def render_checkout(spec: Spec, workdir: Path) -> list[StageManifests]:
    """:func:`render_spec` with the placeholder values of the checkout ``workdir`` (git is asked only
    when an image has placeholders)."""
    if not kubernetes_stages(spec):
        return []
    values: dict[str, str] = {}
    if needs_values(spec):
        values = placeholder_values(
            git_facts(workdir), project=spec.project, registry=spec.registry
        )
    return render_spec(spec, values)
