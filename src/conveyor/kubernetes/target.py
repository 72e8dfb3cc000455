"""The ``kubernetes`` deploy target: plan, deploy, rollback and history of one deploy block, with the
same request and result types as the Docker targets (:mod:`conveyor.docker.deploy.model`).

- :func:`plan`: a server-side apply dry run (``dryRun=All``) of every rendered object against the
  live one, diffed as ``kubectl diff --server-side`` does, plus what pruning would delete.
- :func:`deploy`: server-side apply (field manager ``conveyor``; a conflict names the other manager,
  ``force`` takes the fields), prune, then wait as ``kubectl rollout status`` decides
  (:mod:`.rollout`) within the spec's ``health.timeout``; when the rollout fails (deadline or
  timeout) it rolls back on its own to the previous revision and raises HealthCheckError with the
  pods' state, the old pods still serving (``maxUnavailable: 0``).
- :func:`rollback`: the previous revision's pod template applied again (as ``kubectl rollout undo``
  picks it: the ReplicaSet with the highest revision below the current one, ``rollback.go``).
- :func:`history`: the Deployment's revisions, from its ReplicaSets' revision annotation; no local
  file, so every machine sees the same.

Pruning deletes only objects labelled ``app.kubernetes.io/managed-by=conveyor`` and this deploy's
``app.kubernetes.io/instance`` that the spec no longer renders (Deployment, Service, claims).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from conveyor.docker.deploy.model import DeployRequest, DeployResult
from conveyor.docker.history import DeployRecord
from conveyor.errors import DeployError, HealthCheckError
from conveyor.kubernetes.client import KubeClient
from conveyor.kubernetes.config import connect
from conveyor.kubernetes.manifests import (
    INSTANCE,
    MANAGED,
    MANAGED_BY,
    VERSION,
    Manifest,
    ownership_selector,
    render_manifests,
    to_yaml,
    version_label,
)
from conveyor.kubernetes.rollout import RolloutStatus, rollout_status
from conveyor.spec.model import parse_duration

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
PRUNED_KINDS = ("Deployment", "Service", "PersistentVolumeClaim")
# fields the apiserver owns on every object: not part of a diff (kubectl diff hides managedFields)
_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


@dataclass(frozen=True)
class Change:
    """One object in a plan: ``create``, ``update``, ``unchanged`` or ``delete`` (pruning)."""

    action: str
    ref: str
    diff: str = ""


@dataclass(frozen=True)
class KubePlan:
    cluster: str
    changes: tuple[Change, ...]

    @property
    def writes(self) -> int:
        return sum(1 for c in self.changes if c.action != "unchanged")


@dataclass
class Progress:
    """Where a deploy reports each step (the CLI prints them)."""

    say: Callable[[str], None] = field(default=lambda _line: None)


def client_for(request: DeployRequest) -> KubeClient:
    kube = request.deploy.kubernetes
    return KubeClient(connect(kube.context if kube else None))


def manifests_for(request: DeployRequest, image: str | None = None) -> list[Manifest]:
    return render_manifests(request.deploy, project=request.project, image=image or request.image)


def _comparable(obj: dict[str, Any] | None) -> dict[str, Any]:
    if not obj:
        return {}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_META}
    out = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta}
    out.update({k: v for k, v in obj.items() if k not in ("status", *out)})
    return out


def _diff(ref: str, live: dict[str, Any] | None, would: dict[str, Any]) -> str:
    before = to_yaml(_comparable(live)).splitlines(keepends=True) if live else []
    after = to_yaml(_comparable(would)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, f"live/{ref}", f"merged/{ref}"))


Owned = dict[str, list[dict[str, Any]]]  # kind -> conveyor's objects in one namespace


def list_owned(client: KubeClient, namespace: str, name: str | None = None) -> Owned:
    """Conveyor's objects in ``namespace`` of deploy ``name`` by kind; with no ``name`` every
    object of those kinds (a plan's live objects and prune candidates in one listing)."""
    selector = ownership_selector(name) if name else ""
    owned: Owned = {}
    for kind in PRUNED_KINDS:
        items = client.list(kind, namespace, selector)
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", "apps/v1" if kind == "Deployment" else "v1")
            item.setdefault("kind", kind)
        owned[kind] = items
    return owned


def _prunable(
    client: KubeClient,
    request: DeployRequest,
    rendered: list[Manifest],
    owned: Owned | None = None,
) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of conveyor's objects for this deploy that are no longer rendered."""
    wanted = {(m.kind, m.namespace, m.name) for m in rendered}
    namespace = rendered[0].namespace
    owned = owned if owned is not None else list_owned(client, namespace, request.name)
    out = []
    for kind in PRUNED_KINDS:
        for obj in owned.get(kind, []):
            labels = obj["metadata"].get("labels") or {}
            if labels.get(INSTANCE) != request.name or labels.get(MANAGED) != MANAGED_BY:
                continue
            key = (kind, namespace, obj["metadata"]["name"])
            if key not in wanted:
                out.append(key)
    return out


def plan(request: DeployRequest, client: KubeClient, *, owned: Owned | None = None) -> KubePlan:
    """What :func:`deploy` would change: each object's dry-run diff (``kubectl diff
    --server-side``: the live object against the dry-run apply's answer), and the prunes.
    ``owned`` (every object of the namespace, from :func:`list_owned` without a name) replaces the
    GET of each object and the prune listing when many deploys share a namespace."""
    rendered = manifests_for(request)
    changes = []
    index = {
        (kind, obj["metadata"]["name"]): obj for kind, objs in (owned or {}).items() for obj in objs
    }
    for manifest in rendered:
        live = (
            index.get((manifest.kind, manifest.name))
            if owned is not None
            else client.get(manifest.kind, manifest.namespace, manifest.name)
        )
        live, would = _same_version(client, manifest, live)
        if live is None:
            changes.append(Change("create", manifest.ref, _diff(manifest.ref, None, would)))
            continue
        text = "" if _comparable(live) == _comparable(would) else _diff(manifest.ref, live, would)
        changes.append(Change("update" if text else "unchanged", manifest.ref, text))
    changes += [
        Change("delete", f"{k} {ns}/{n}")
        for k, ns, n in _prunable(client, request, rendered, owned)
    ]
    return KubePlan(client.name, tuple(changes))


# a plan reads each object again when it changed between its GET and its dry run, this many times
PLAN_READS = 3


def _same_version(
    client: KubeClient, manifest: Manifest, live: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The live object and the dry-run apply's answer computed from that same object.

    A dry run answers with the resourceVersion of the object it merged into (the apiserver's
    ``dryrun.go``, GuaranteedUpdate), a create with none. When that is not the version read (a
    controller or another manager wrote in between: the Deployment controller writes the revision
    annotation right after every apply), the object is read again, and dry-run again when it
    changed once more, so another's write is never shown as conveyor's change. After
    :data:`PLAN_READS` reads the last pair is diffed as it is."""
    would: dict[str, Any] = client.apply(manifest, dry_run=True)
    reads = 1
    while _version(live) != _version(would) and reads < PLAN_READS:
        live, reads = client.get(manifest.kind, manifest.namespace, manifest.name), reads + 1
        if _version(live) != _version(would):  # written again since the dry run
            would = client.apply(manifest, dry_run=True)
    return live, would


def _version(obj: dict[str, Any] | None) -> str:
    return str((obj or {}).get("metadata", {}).get("resourceVersion") or "")


def _revisions(client: KubeClient, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The Deployment's ReplicaSets (owned by its uid), newest revision first."""
    selector = ",".join(
        f"{k}={v}" for k, v in deployment["spec"]["selector"].get("matchLabels", {}).items()
    )
    uid = deployment["metadata"]["uid"]
    sets = [
        rs
        for rs in client.list("ReplicaSet", deployment["metadata"]["namespace"], selector)
        if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
    ]
    return sorted(sets, key=_revision, reverse=True)


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _image(template: dict[str, Any]) -> str:
    return str(template["spec"]["containers"][0].get("image", ""))


def _pods_report(client: KubeClient, deployment: dict[str, Any]) -> str:
    """One line per pod of the Deployment: name, image, Ready and why not."""
    selector = ",".join(
        f"{k}={v}" for k, v in deployment["spec"]["selector"].get("matchLabels", {}).items()
    )
    lines = []
    for pod in client.list("Pod", deployment["metadata"]["namespace"], selector):
        conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Ready", {})
        image = _image({"spec": pod["spec"]})
        why = ready.get("message") or ready.get("reason") or ""
        state = "Ready" if ready.get("status") == "True" else f"not Ready {why}".strip()
        lines.append(f"pod {pod['metadata']['name']} ({image}): {state}")
    return "\n".join(lines)


def wait_rollout(
    client: KubeClient,
    namespace: str,
    name: str,
    timeout: float,
    *,
    poll: float = 0.5,
    progress: Progress | None = None,
) -> RolloutStatus:
    """Poll the Deployment until :func:`rollout_status` says done or failed, or ``timeout``."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        live = client.get("Deployment", namespace, name)
        if live is None:
            raise DeployError(f"Deployment {namespace}/{name} vanished during its rollout")
        status = rollout_status(live)
        if progress is not None and status.message != last:
            progress.say(status.message)
            last = status.message
        if status.done or status.failed:
            return status
        if time.monotonic() >= deadline:
            return RolloutStatus(
                f"{status.message.rstrip('.')} (gave up after {timeout:g} s)", False, failed=True
            )
        time.sleep(poll)


def _timeout(request: DeployRequest) -> float:
    health = request.deploy.health
    return parse_duration(health.timeout) if health is not None else 300.0


def _previous_template(
    client: KubeClient, live: dict[str, Any]
) -> tuple[int, dict[str, Any]] | None:
    """(revision, pod template without pod-template-hash) of the revision before the current one."""
    current = _revision(live)
    older = [rs for rs in _revisions(client, live) if _revision(rs) < current]
    if not older:
        return None
    template = dict(older[0]["spec"]["template"])
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    template["metadata"] = meta
    return _revision(older[0]), template


def _with_template(manifest: Manifest, template: dict[str, Any]) -> Manifest:
    body = dict(manifest.body)
    spec = dict(body["spec"])
    spec["template"] = template
    body["spec"] = spec
    metadata = dict(body["metadata"])
    labels = dict(metadata["labels"])
    version = version_label(_image(template))
    labels.pop(VERSION, None)
    if version:
        labels[VERSION] = version
    metadata["labels"] = labels
    body["metadata"] = metadata
    return replace(manifest, body=body)


def _result(
    request: DeployRequest,
    action: str,
    image: str,
    previous: str | None,
    started: datetime,
    revision: int,
    message: str,
) -> DeployResult:
    kube = request.deploy.kubernetes
    namespace = kube.namespace if kube else "default"
    return DeployResult(
        name=request.name,
        target="kubernetes",
        strategy=request.deploy.strategy,
        action="rollback" if action == "rollback" else "deploy",
        image=image,
        image_id="",
        digest=f"revision {revision}",
        previous_image=previous,
        started=started,
        finished=datetime.now(UTC),
        endpoints=(f"{request.name}.{namespace}.svc",) if request.deploy.ports else (),
        message=message,
        details={"namespace": namespace, "revision": str(revision)},
    )


def _apply_all(
    client: KubeClient, manifests: list[Manifest], *, force: bool, progress: Progress
) -> None:
    for manifest in manifests:
        client.apply(manifest, force=force)
        progress.say(f"applied {manifest.ref}")


def _prune(
    client: KubeClient, request: DeployRequest, rendered: list[Manifest], progress: Progress
) -> None:
    for kind, namespace, name in _prunable(client, request, rendered):
        client.delete(kind, namespace, name)
        progress.say(f"pruned {kind} {namespace}/{name}")


def deploy(
    request: DeployRequest,
    *,
    client: KubeClient | None = None,
    force: bool = False,
    poll: float = 0.5,
    progress: Progress | None = None,
) -> DeployResult:
    """Apply, prune, wait; on a failed rollout roll back to the previous revision and raise
    HealthCheckError (see the module docstring)."""
    progress = progress or Progress()
    own = client is None
    client = client or client_for(request)
    started = datetime.now(UTC)
    try:
        rendered = manifests_for(request)
        deployment = next(m for m in rendered if m.kind == "Deployment")
        before = client.get("Deployment", deployment.namespace, deployment.name)
        previous_image = _image(before["spec"]["template"]) if before else None
        _apply_all(client, rendered, force=force, progress=progress)
        _prune(client, request, rendered, progress)
        status = wait_rollout(
            client,
            deployment.namespace,
            deployment.name,
            _timeout(request),
            poll=poll,
            progress=progress,
        )
        live = client.get("Deployment", deployment.namespace, deployment.name) or {}
        if status.done:
            return _result(
                request,
                "deploy",
                request.image,
                previous_image,
                started,
                _revision(live),
                status.message,
            )
        pods = _pods_report(client, live) if live else ""
        back = _previous_template(client, live) if live else None
        if back is None:
            raise HealthCheckError(
                f"rollout of {deployment.ref} on {client.name} failed: {status.message}; "
                "no previous revision to roll back to",
                health_log=pods,
                hint="see the pods' readiness above; fix the image or its readiness probe",
            )
        revision, template = back
        progress.say(f"rollout failed: {status.message}; rolling back to revision {revision}")
        client.apply(_with_template(deployment, template), force=force)
        undone = wait_rollout(
            client,
            deployment.namespace,
            deployment.name,
            _timeout(request),
            poll=poll,
            progress=progress,
        )
        outcome = (
            f"rolled back to revision {revision} ({_image(template)})"
            if undone.done
            else f"the rollback to revision {revision} did not finish either: {undone.message}"
        )
        raise HealthCheckError(
            f"rollout of {deployment.ref} on {client.name} failed: {status.message}; {outcome}",
            health_log=pods,
            hint="the previous version keeps serving; fix the image or its readiness probe",
        )
    finally:
        if own:
            client.close()


def rollback(
    request: DeployRequest,
    *,
    client: KubeClient | None = None,
    force: bool = False,
    poll: float = 0.5,
    progress: Progress | None = None,
) -> DeployResult:
    """Apply the previous revision's pod template again and wait for it."""
    progress = progress or Progress()
    own = client is None
    client = client or client_for(request)
    started = datetime.now(UTC)
    try:
        kube = request.deploy.kubernetes
        namespace = kube.namespace if kube else "default"
        live = client.get("Deployment", namespace, request.name)
        if live is None:
            raise DeployError(
                f"no Deployment {namespace}/{request.name} on {client.name} to roll back"
            )
        back = _previous_template(client, live)
        if back is None:
            raise DeployError(
                f"Deployment {namespace}/{request.name} on {client.name} has no revision before "
                f"revision {_revision(live)}"
            )
        revision, template = back
        current_image = _image(live["spec"]["template"])
        rendered = manifests_for(request, image=_image(template))
        deployment = next(m for m in rendered if m.kind == "Deployment")
        client.apply(_with_template(deployment, template), force=force)
        progress.say(f"applied revision {revision}'s template to {deployment.ref}")
        status = wait_rollout(
            client, namespace, request.name, _timeout(request), poll=poll, progress=progress
        )
        live = client.get("Deployment", namespace, request.name) or {}
        if not status.done:
            raise HealthCheckError(
                f"rollback of {deployment.ref} on {client.name} failed: {status.message}",
                health_log=_pods_report(client, live) if live else "",
            )
        return _result(
            request,
            "rollback",
            _image(template),
            current_image,
            started,
            _revision(live),
            status.message,
        )
    finally:
        if own:
            client.close()


def history(
    request: DeployRequest, *, client: KubeClient | None = None, limit: int = 20
) -> list[DeployRecord]:
    """The Deployment's revisions, newest first, as deploy records (``id`` = revision)."""
    own = client is None
    client = client or client_for(request)
    try:
        kube = request.deploy.kubernetes
        namespace = kube.namespace if kube else "default"
        live = client.get("Deployment", namespace, request.name)
        if live is None:
            return []
        current = _revision(live)
        status = rollout_status(live)
        records = []
        sets = _revisions(client, live)
        for n, rs in enumerate(sets[:limit]):
            revision = _revision(rs)
            if revision == current:
                result = "success" if status.done else ("failure" if status.failed else "running")
            else:
                result = "superseded"
            created = datetime.fromisoformat(
                str(rs["metadata"]["creationTimestamp"]).replace("Z", "+00:00")
            )
            ready = int((rs.get("status") or {}).get("readyReplicas") or 0)
            records.append(
                DeployRecord(
                    id=revision,
                    name=request.name,
                    target="kubernetes",
                    action="deploy",
                    spec=request.spec_file,
                    project=request.project,
                    image=_image(rs["spec"]["template"]),
                    image_id="",
                    digest=f"revision {revision}",
                    previous_image=_image(sets[n + 1]["spec"]["template"])
                    if n + 1 < len(sets)
                    else None,
                    started=created,
                    finished=None,
                    result=result,  # type: ignore[arg-type]
                    message=f"ReplicaSet {rs['metadata']['name']}, {ready} ready"
                    + (f"; {status.message}" if revision == current else ""),
                )
            )
        return records
    finally:
        if own:
            client.close()
