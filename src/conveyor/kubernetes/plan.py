"""``conveyor plan`` for the Kubernetes deploys of many specs: one client per context, one listing of
conveyor's objects per namespace, the deploys' dry runs ``concurrency`` at a time. Reads only (every
write is ``dryRun=All``)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.docker.deploy.model import DeployRequest
from conveyor.docker.gitfacts import git_facts
from conveyor.docker.images import placeholder_values
from conveyor.kubernetes.client import KubeClient
from conveyor.kubernetes.config import connect
from conveyor.kubernetes.render import kubernetes_stages, needs_values, stage_image
from conveyor.kubernetes.target import KubePlan, Owned, list_owned, plan
from conveyor.spec.load import LoadedSpec


@dataclass(frozen=True)
class StagePlan:
    spec: str
    stage: str
    plan: KubePlan


def requests_of(specs: Sequence[LoadedSpec], workdir: Path) -> list[DeployRequest]:
    """A deploy request per Kubernetes deploy stage (images expanded from git in ``workdir`` only
    when they have placeholders)."""
    out = []
    for loaded in specs:
        spec = loaded.spec
        if not kubernetes_stages(spec):
            continue
        values = (
            placeholder_values(git_facts(workdir), project=spec.project, registry=spec.registry)
            if needs_values(spec)
            else {}
        )
        for stage in kubernetes_stages(spec):
            assert stage.deploy is not None
            out.append(
                DeployRequest(
                    deploy=stage.deploy,
                    image=stage_image(spec, stage, values),
                    project=spec.project,
                    spec_file=str(loaded.path),
                    workdir=workdir,
                    state_dir=workdir,
                    stage=stage.name,
                )
            )
    return out


def plan_requests(requests: Sequence[DeployRequest], *, concurrency: int = 16) -> list[StagePlan]:
    if not requests:
        return []
    clients: dict[str | None, KubeClient] = {}
    for request in requests:
        context = request.deploy.kubernetes.context if request.deploy.kubernetes else None
        if context not in clients:
            clients[context] = KubeClient(connect(context, pool=concurrency))

    def client_of(request: DeployRequest) -> KubeClient:
        kube = request.deploy.kubernetes
        return clients[kube.context if kube else None]

    def namespace_of(request: DeployRequest) -> str:
        kube = request.deploy.kubernetes
        return kube.namespace if kube else "default"

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            places = sorted({(c, namespace_of(r)) for r in requests for c in [_ctx(r)]}, key=str)
            listings = dict(
                zip(
                    places,
                    pool.map(lambda p: list_owned(clients[p[0]], p[1]), places),
                    strict=True,
                )
            )

            def one(request: DeployRequest) -> StagePlan:
                owned: Owned = listings[(_ctx(request), namespace_of(request))]
                return StagePlan(
                    request.spec_file, request.stage, plan(request, client_of(request), owned=owned)
                )

            return list(pool.map(one, requests))
    finally:
        for client in clients.values():
            client.close()


def _ctx(request: DeployRequest) -> str | None:
    return request.deploy.kubernetes.context if request.deploy.kubernetes else None


def to_json(plans: Sequence[StagePlan]) -> list[dict[str, Any]]:
    return [
        {
            "spec": p.spec,
            "stage": p.stage,
            "cluster": p.plan.cluster,
            "changes": [
                {"action": c.action, "object": c.ref, "diff": c.diff} for c in p.plan.changes
            ],
        }
        for p in plans
    ]


def render_text(plans: Sequence[StagePlan], *, verbose: bool = False) -> str:
    if not plans:
        return ""
    lines = ["Kubernetes (server-side apply dry run, field manager conveyor):"]
    writes = 0
    for p in plans:
        for change in p.plan.changes:
            if change.action == "unchanged" and not verbose:
                continue
            writes += change.action != "unchanged"
            lines.append(
                f"  {change.action:9} {change.ref}  ({p.plan.cluster}; {p.spec} stage {p.stage})"
            )
            lines.extend("      " + line for line in change.diff.splitlines())
    lines.append(f"  {writes} Kubernetes change(s)")
    return "\n".join(lines)


@dataclass(frozen=True)
class WithKubernetes:
    """A sync plan and the Kubernetes deploys' plans as one report (``conveyor plan``): the JSON
    gains a ``kubernetes`` list, the text a Kubernetes section; the exit code is the sync plan's."""

    sync: Any  # conveyor.sync's plan (a cli.output.Reportable)
    kubernetes: tuple[StagePlan, ...]

    @property
    def exit_code(self) -> int:
        return int(self.sync.exit_code)

    def to_json(self) -> Any:
        data = self.sync.to_json()
        if self.kubernetes:
            data = {**data, "kubernetes": to_json(self.kubernetes)}
        return data

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        lines: list[str] = list(self.sync.text_lines(verbose=verbose))
        if self.kubernetes:
            lines.extend(render_text(self.kubernetes, verbose=verbose).splitlines())
        return lines
