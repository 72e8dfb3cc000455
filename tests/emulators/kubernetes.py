"""A strict Kubernetes API emulator over real HTTP, driven only through the official ``kubernetes``
client, with the Deployment controller simulated and pod readiness decided by the real Docker engine.

Built from /work/shared/reference/kubernetes.md (``k/`` = kubernetes/kubernetes, ``am/`` =
k/staging/src/k8s.io/apimachinery/pkg, ``w/`` = kubernetes/website content/en/docs):

- Paths (``w/concepts/overview/working-with-objects/``): ``/apis/apps/v1/namespaces/NS/deployments``,
  ``.../replicasets``; ``/api/v1/namespaces/NS/{services,persistentvolumeclaims,pods}``;
  ``/api/v1/namespaces/NS``. Bearer token auth (401 Unauthorized Status otherwise).
- Errors are metav1.Status bodies (``am/api/errors/errors.go``): 404 NotFound, 404 on a create in a
  missing namespace (namespace lifecycle admission), 409 AlreadyExists, 409 Conflict on a stale
  ``resourceVersion`` (PUT), 422 Invalid with causes (names: ``am/util/validation/validation.go``).
- Server-side apply (``w/reference/using-api/server-side-apply.md``): PATCH with
  ``application/apply-patch+yaml`` and ``fieldManager`` (422 without; ``force`` on other patches 422;
  ``managedFields`` in the body 400); conflicts with other managers' fields at different values are
  409 ``Apply failed with N conflict(s)`` naming each manager as ``conflict.go:printManager`` does;
  ``force=true`` takes them; fields a manager stops sending are removed unless others own them;
  lists merge by their list-map keys. Other writes are ``Update``s that take the fields they change.
- ``dryRun=All`` on every write: everything runs, nothing is stored (``api-concepts.md``).
- ``resourceVersion`` new on each write; ``generation`` 1 at create, +1 when spec or annotations
  change (``k/pkg/registry/apps/deployment/strategy.go``).
- Defaults (``k/pkg/apis/apps/v1/defaults.go``): replicas 1, RollingUpdate 25%/25%,
  revisionHistoryLimit 10, progressDeadlineSeconds 600.
- The Deployment controller (``k/pkg/controller/deployment/``): a template change makes a new owned
  ReplicaSet ``<name>-<pod-template-hash>`` with revision = highest + 1 (a reused one, on rollback,
  gets a new number; ``util/deployment_util.go``), copied to the Deployment; RollingUpdate scales
  within maxSurge / maxUnavailable counting only Ready pods as available; Recreate removes the old
  pods first; conditions Available (``MinimumReplicasAvailable``/``Unavailable``) and Progressing
  (``ReplicaSetUpdated``, ``NewReplicaSetAvailable``, False ``ProgressDeadlineExceeded`` after
  ``progressDeadlineSeconds`` without progress; ``progress.go``); paused: nothing starts
  (Progressing Unknown ``DeploymentPaused``). Nothing rolls back. Old empty ReplicaSets beyond
  revisionHistoryLimit are deleted.
- Pods become Ready when their image's readiness probe would pass (probes page: httpGet 200-399,
  exec exit 0, no probe: Ready on start): :class:`DockerReadiness` runs the image on the real engine
  and probes it. Only Ready pods get a Service's traffic (``service.md``): :meth:`serve` is the
  model of a request to a Service.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from tests.emulators import kubernetes_model as km
from tests.emulators.server import EmulatorServer, Request, Response

TOKEN = "conveyor-kube-token-0000000000"
Key = tuple[str, str, str]  # plural, namespace, name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Entry:
    """One managedFields entry: a manager and operation and the field paths it owns."""

    paths: set[km.Path]
    api_version: str
    time: str = field(default_factory=_now)


class NoEndpoints(Exception):
    """A request to a Service with no Ready pod behind it."""


Readiness = Callable[[str, dict[str, Any] | None, dict[str, Any]], bool | None]


class KubernetesEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        token: str = TOKEN,
        readiness: Readiness | None = None,
        tick: float = 0.05,
        namespaces: tuple[str, ...] = ("default",),
    ) -> None:
        super().__init__()
        self.token = token
        self.readiness = readiness
        self.tick = tick
        self.namespaces: set[str] = set(namespaces)
        self.objects: dict[Key, dict[str, Any]] = {}
        self.managers: dict[Key, dict[tuple[str, str], Entry]] = {}
        self._rv = itertools.count(1000)
        self._progress: dict[Key, float] = {}
        self._served = itertools.count()
        self._stop = threading.Event()
        self._controller: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> KubernetesEmulator:
        super().start()
        self._stop.clear()
        self._controller = threading.Thread(target=self._run_controllers, daemon=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._controller is not None:
            self._controller.join(timeout=5)
        super().stop()

    # -- inspection ------------------------------------------------------------------------
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, plural: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (p, ns, _), o in sorted(self.objects.items())
                if p == plural
                and ns == namespace
                and km.selector_matches(selector, o["metadata"].get("labels") or {})
            ]

    def managers_of(self, plural: str, namespace: str, name: str) -> list[dict[str, Any]]:
        """The object's managedFields entries as a GET shows them."""
        with self.lock:
            kind = km.KINDS[plural]
            return list(self._out(kind, (plural, namespace, name))["metadata"]["managedFields"])

    def serve(self, namespace: str, service: str) -> str:
        """One request to a Service: answered by a Ready pod its selector matches (the pod's image
        is returned); NoEndpoints when there is none."""
        with self.lock:
            svc = self.objects.get(("services", namespace, service))
            if svc is None:
                raise NoEndpoints(f"no Service {namespace}/{service}")
            selector = svc["spec"].get("selector") or {}
            ready = [
                pod
                for (p, ns, _), pod in sorted(self.objects.items())
                if p == "pods"
                and ns == namespace
                and _pod_ready(pod)
                and all(
                    (pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items()
                )
            ]
            if not ready:
                raise NoEndpoints(f"Service {namespace}/{service} has no ready endpoints")
            pod = ready[next(self._served) % len(ready)]
            return str(pod["spec"]["containers"][0]["image"])

    # -- HTTP ------------------------------------------------------------------------------
    def fault_response(self, status: int, headers: list[tuple[str, str]]) -> Response:
        reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(
            status, "InternalError"
        )
        body = km.ApiError(status, reason, f"injected fault {status}").status()
        return Response.json(status, body, headers)

    def route(self, request: Request) -> Response:
        if request.header("authorization") != f"Bearer {self.token}":
            return Response.json(401, km.ApiError(401, "Unauthorized", "Unauthorized").status())
        try:
            return self._route(request)
        except km.ApiError as exc:
            return Response.json(exc.code, exc.status())

    def _route(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if parts == ["version"]:
            return Response.json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
            if request.method != "GET":
                raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            with self.lock:
                if parts[3] not in self.namespaces:
                    raise km.ApiError(
                        404,
                        "NotFound",
                        f'namespaces "{parts[3]}" not found',
                        {"name": parts[3], "kind": "namespaces"},
                    )
            return Response.json(
                200,
                {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {"name": parts[3]},
                    "status": {"phase": "Active"},
                },
            )
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] == ["apis", "apps", "v1"]:
            rest = parts[3:]
        else:
            raise km.ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(rest) not in (3, 4) or rest[0] != "namespaces" or rest[2] not in km.KINDS:
            raise km.ApiError(404, "NotFound", "the server could not find the requested resource")
        kind = km.KINDS[rest[2]]
        if kind.group != (parts[1] if parts[0] == "apis" else ""):
            raise km.ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace, name = rest[1], (rest[3] if len(rest) == 4 else None)
        dry_run = request.query.get("dryRun")
        if dry_run not in (None, "All"):
            raise km.bad_request(f'Invalid dryRun value "{dry_run}": valid values are: All')
        with self.lock:
            if name is None:
                if request.method == "GET":
                    return self._list(kind, namespace, request)
                if request.method == "POST":
                    return self._create(kind, namespace, request, dry_run == "All")
            elif request.method == "GET":
                obj = self.objects.get((kind.plural, namespace, name))
                if obj is None:
                    raise km.not_found(kind, name)
                return Response.json(200, self._out(kind, (kind.plural, namespace, name)))
            elif request.method == "PUT":
                return self._replace(kind, namespace, name, request, dry_run == "All")
            elif request.method == "PATCH":
                return self._patch(kind, namespace, name, request, dry_run == "All")
            elif request.method == "DELETE":
                return self._delete(kind, namespace, name, dry_run == "All")
        raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    # -- verbs -----------------------------------------------------------------------------
    def _out(
        self,
        kind: km.Kind,
        key: Key,
        obj: dict[str, Any] | None = None,
        managers: dict[tuple[str, str], Entry] | None = None,
    ) -> dict[str, Any]:
        body = copy.deepcopy(obj if obj is not None else self.objects[key])
        body["apiVersion"], body["kind"] = kind.api_version, kind.kind
        entries = managers if managers is not None else self.managers.get(key, {})
        body["metadata"]["managedFields"] = [
            {
                "manager": m,
                "operation": op,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": km.fields_v1(e.paths),
            }
            for (m, op), e in entries.items()
            if e.paths
        ]
        return body

    def _list(self, kind: km.Kind, namespace: str, request: Request) -> Response:
        selector = request.query.get("labelSelector", "")
        keys = [
            k
            for k, o in sorted(self.objects.items())
            if k[0] == kind.plural
            and k[1] == namespace
            and km.selector_matches(selector, o["metadata"].get("labels") or {})
        ]
        limit = int(request.query.get("limit") or 0)
        start = int(request.query.get("continue") or 0)
        page = keys[start : start + limit] if limit else keys[start:]
        more = bool(limit) and start + limit < len(keys)
        items = []
        for key in page:
            item = self._out(kind, key)
            item.pop("apiVersion"), item.pop("kind")
            items.append(item)
        meta: dict[str, Any] = {"resourceVersion": str(next(self._rv))}
        if more:
            meta["continue"] = str(start + limit)
        return Response.json(
            200,
            {
                "kind": kind.kind + "List",
                "apiVersion": kind.api_version,
                "metadata": meta,
                "items": items,
            },
        )

    def _need_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise km.namespace_not_found(namespace)

    @staticmethod
    def _manager(request: Request) -> str:
        # "Other writes ... manager = fieldManager or User-Agent before '/'"
        return (
            request.query.get("fieldManager")
            or (request.header("user-agent") or "unknown").split("/", 1)[0]
        )

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            text = request.body.decode("utf-8") if request.body else "{}"
            try:
                body = json.loads(text)  # JSON is YAML; the client sends JSON
            except ValueError:
                body = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise km.bad_request(f"error decoding the request body: {exc}") from None
        if not isinstance(body, dict):
            raise km.bad_request("the request body is not an object")
        return body

    def _check_force(self, request: Request) -> None:
        if "force" in request.query:
            # am/apis/meta/v1/validation/validation.go
            raise km.ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be '
                "specified for non-apply patch",
            )

    def _store(
        self,
        kind: km.Kind,
        key: Key,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        managers: dict[tuple[str, str], Entry],
        dry_run: bool,
    ) -> dict[str, Any]:
        """Defaults, validation, versions; stores unless ``dry_run``; returns what is answered."""
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.setdefault("metadata", {})
        meta["name"], meta["namespace"] = key[2], key[1]
        meta.pop("managedFields", None)
        km.default(kind, obj)
        km.validate(kind, obj, old)
        if old is None:
            obj["status"] = {}
            meta["uid"] = secrets.token_hex(16)
            meta["creationTimestamp"] = _now()
            if kind.kind in ("Deployment", "ReplicaSet"):
                meta["generation"] = 1
        else:
            for keep in ("uid", "creationTimestamp", "generation", "ownerReferences"):
                if keep in old["metadata"] and keep not in meta:
                    meta[keep] = old["metadata"][keep]
            obj["status"] = copy.deepcopy(old.get("status", {}))
            if kind.kind in ("Deployment", "ReplicaSet") and (
                old.get("spec") != obj.get("spec")
                or (old["metadata"].get("annotations") or {}) != (meta.get("annotations") or {})
            ):
                meta["generation"] = old["metadata"].get("generation", 1) + 1
        managers = {k: e for k, e in managers.items() if e.paths}
        if dry_run:
            # nothing stored; the would-be object keeps the resourceVersion of the live object it
            # was computed from (k/staging/src/k8s.io/apiserver/pkg/registry/generic/registry/
            # dryrun.go, GuaranteedUpdate: Get, then tryUpdate on it, no write); a create's has
            # none (Create: copyInto of the new object)
            if old is not None:
                meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self._out(kind, key, obj, managers)
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        self.managers[key] = managers
        return self._out(kind, key)

    def _take(
        self,
        managers: dict[tuple[str, str], Entry],
        owner: tuple[str, str],
        paths: set[km.Path],
        api_version: str,
    ) -> None:
        """An Update owns ``paths`` from now on, taken from everyone else."""
        for other, entry in managers.items():
            if other != owner:
                entry.paths -= paths
        entry = managers.setdefault(owner, Entry(set(), api_version))
        entry.paths |= paths
        entry.time = _now()

    def _create(self, kind: km.Kind, namespace: str, request: Request, dry_run: bool) -> Response:
        self._check_force(request)
        body = self._body(request)
        name = str((body.get("metadata") or {}).get("name") or "")
        self._need_namespace(namespace)
        if not name:
            raise km.invalid(
                kind, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        key = (kind.plural, namespace, name)
        if key in self.objects:
            raise km.already_exists(kind, name)
        managers: dict[tuple[str, str], Entry] = {}
        obj = copy.deepcopy(body)
        self._take(
            managers,
            (self._manager(request), "Update"),
            km.field_set(obj, kind.kind),
            kind.api_version,
        )
        return Response.json(201, self._store(kind, key, obj, None, managers, dry_run))

    def _replace(
        self, kind: km.Kind, namespace: str, name: str, request: Request, dry_run: bool
    ) -> Response:
        key = (kind.plural, namespace, name)
        old = self.objects.get(key)
        if old is None:
            raise km.not_found(kind, name)
        body = self._body(request)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if not rv:
            raise km.invalid(
                kind,
                name,
                [
                    (
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if rv != old["metadata"]["resourceVersion"]:
            raise km.stale(kind, name)
        managers = copy.deepcopy(self.managers.get(key, {}))
        self._take(
            managers,
            (self._manager(request), "Update"),
            km.changed_paths(old, body, kind.kind),
            kind.api_version,
        )
        return Response.json(
            200, self._store(kind, key, copy.deepcopy(body), old, managers, dry_run)
        )

    def _patch(
        self, kind: km.Kind, namespace: str, name: str, request: Request, dry_run: bool
    ) -> Response:
        ctype = (request.header("content-type") or "").split(";", 1)[0].strip()
        key = (kind.plural, namespace, name)
        old = self.objects.get(key)
        if ctype == "application/apply-patch+yaml":
            return self._apply(kind, key, old, request, dry_run)
        self._check_force(request)
        if old is None:
            raise km.not_found(kind, name)
        if ctype == "application/json-patch+json":
            try:
                ops = json.loads(request.body)
            except ValueError as exc:
                raise km.bad_request(f"error decoding patch: {exc}") from None
            new = _json_patch(old, ops)
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            new = km.merge_patch(old, self._body(request))
        else:
            raise km.ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise km.stale(kind, name)
        managers = copy.deepcopy(self.managers.get(key, {}))
        self._take(
            managers,
            (self._manager(request), "Update"),
            km.changed_paths(old, new, kind.kind),
            kind.api_version,
        )
        return Response.json(200, self._store(kind, key, new, old, managers, dry_run))

    def _apply(
        self, kind: km.Kind, key: Key, old: dict[str, Any] | None, request: Request, dry_run: bool
    ) -> Response:
        manager = request.query.get("fieldManager")
        if not manager:
            raise km.ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                "Required value: is required for apply patch",
            )
        applied = self._body(request)
        meta = applied.get("metadata") or {}
        if "managedFields" in meta:
            raise km.bad_request("metadata.managedFields must be nil")
        if meta.get("name") != key[2]:
            raise km.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({key[2]})"
            )
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise km.bad_request("apiVersion and kind must be set in an apply patch")
        if old is None:
            self._need_namespace(key[1])
        force = request.query.get("force") == "true"
        live = old or {}
        managers = copy.deepcopy(self.managers.get(key, {}))
        me = (manager, "Apply")
        applied_paths = km.field_set(applied, kind.kind)
        conflicts: list[tuple[tuple[str, str], Entry, km.Path]] = []
        for owner, entry in managers.items():
            if owner == me:
                continue
            for path in sorted(applied_paths & entry.paths, key=km.path_text):
                if km.get_path(live, path, kind.kind) != km.get_path(applied, path, kind.kind):
                    conflicts.append((owner, entry, path))
        if conflicts and not force:
            raise _conflict_error(kind, key[2], conflicts)
        for owner, _, path in conflicts:
            managers[owner].paths.discard(path)
        previous = managers[me].paths if me in managers else set()
        others: set[km.Path] = set().union(*(e.paths for o, e in managers.items() if o != me))
        base = copy.deepcopy(live)
        removed = previous - applied_paths - others
        for path in sorted(removed, key=len, reverse=True):
            items = km.item_prefixes(path)
            if items and len(items[0]) == len(path) - 1 and path[-1] in km.key_names(items[0]):
                continue  # an item's key fields go with the item
            km.remove_path(base, path)
        for path in removed:
            for item in km.item_prefixes(path):
                value = km.get_path(base, item, kind.kind)
                still = any(p[: len(item)] == item for p in others | applied_paths)
                if isinstance(value, dict) and set(value) <= km.key_names(item) and not still:
                    km.remove_path(base, item)
        merged = km.merge(base, applied, kind.kind)
        managers[me] = Entry(applied_paths, str(applied.get("apiVersion")))
        answer = self._store(kind, key, merged, old, managers, dry_run)
        return Response.json(201 if old is None else 200, answer)

    def _delete(self, kind: km.Kind, namespace: str, name: str, dry_run: bool) -> Response:
        key = (kind.plural, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            raise km.not_found(kind, name)
        if not dry_run:
            self._remove_tree(key)
        details = {
            "name": name,
            "group": kind.group,
            "kind": kind.plural,
            "uid": obj["metadata"]["uid"],
        }
        return Response.json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )

    def _remove_tree(self, key: Key) -> None:
        """Delete an object and (garbage collection) everything it owns."""
        obj = self.objects.pop(key, None)
        self.managers.pop(key, None)
        self._progress.pop(key, None)
        if obj is None:
            return
        uid = obj["metadata"]["uid"]
        for child, value in list(self.objects.items()):
            if any(r.get("uid") == uid for r in value["metadata"].get("ownerReferences") or []):
                self._remove_tree(child)

    # -- controllers -----------------------------------------------------------------------
    def _run_controllers(self) -> None:
        while not self._stop.wait(self.tick):
            with self.lock:
                for key in [k for k in self.objects if k[0] == "deployments"]:
                    if key in self.objects:
                        self._sync_deployment(key)

    def _write_status(self, key: Key, status: dict[str, Any]) -> None:
        obj = self.objects[key]
        if obj.get("status") != status:
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _owned(self, plural: str, owner: dict[str, Any]) -> list[Key]:
        uid = owner["metadata"]["uid"]
        return [
            k
            for k, o in sorted(self.objects.items())
            if k[0] == plural
            and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    def _new_child(
        self,
        plural: str,
        kind: str,
        owner: dict[str, Any],
        owner_kind: str,
        name: str,
        labels: dict[str, str],
        spec: dict[str, Any],
        annotations: dict[str, str],
    ) -> Key:
        key = (plural, owner["metadata"]["namespace"], name)
        self.objects[key] = {
            "apiVersion": "apps/v1" if plural == "replicasets" else "v1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": key[1],
                "labels": labels,
                "annotations": annotations,
                "uid": secrets.token_hex(16),
                "creationTimestamp": _now(),
                "resourceVersion": str(next(self._rv)),
                "generation": 1,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": owner_kind,
                        "name": owner["metadata"]["name"],
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {},
        }
        self.managers[key] = {}
        return key

    def _sync_deployment(self, key: Key) -> None:
        d = self.objects[key]
        spec = d["spec"]
        replicas = int(spec.get("replicas", 1))
        template = copy.deepcopy(spec["template"])
        template_hash = km.template_hash(template)
        rs_keys = self._owned("replicasets", d)
        revisions = {
            k: int(self.objects[k]["metadata"]["annotations"].get(km.REVISION, "0"))
            for k in rs_keys
        }
        new_key = next(
            (
                k
                for k in rs_keys
                if self.objects[k]["metadata"]["labels"].get(km.HASH_LABEL) == template_hash
            ),
            None,
        )
        now = time.monotonic()
        progressed = False
        paused = bool(spec.get("paused"))
        if not paused:
            highest = max(revisions.values(), default=0)
            if new_key is None:
                labels = {
                    **(template.get("metadata") or {}).get("labels", {}),
                    km.HASH_LABEL: template_hash,
                }
                rs_template = copy.deepcopy(template)
                rs_template.setdefault("metadata", {})["labels"] = labels
                new_key = self._new_child(
                    "replicasets",
                    "ReplicaSet",
                    d,
                    "Deployment",
                    f"{key[2]}-{template_hash}",
                    labels,
                    {
                        "replicas": 0,
                        "selector": {
                            "matchLabels": {
                                **spec["selector"]["matchLabels"],
                                km.HASH_LABEL: template_hash,
                            }
                        },
                        "template": rs_template,
                    },
                    {km.REVISION: str(highest + 1)},
                )
                rs_keys.append(new_key)
                revisions[new_key] = highest + 1
                progressed = True
            elif revisions[new_key] < highest:
                # deployment_util.go: a reused ReplicaSet (rollback) gets the next revision
                self.objects[new_key]["metadata"]["annotations"][km.REVISION] = str(highest + 1)
                revisions[new_key] = highest + 1
                progressed = True
            annotations = d["metadata"].setdefault("annotations", {})
            if annotations.get(km.REVISION) != str(revisions[new_key]):
                annotations[km.REVISION] = str(revisions[new_key])
                d["metadata"]["resourceVersion"] = str(next(self._rv))
        pods = {k: self._owned("pods", self.objects[k]) for k in rs_keys}
        for pod_keys in pods.values():
            for pod_key in pod_keys:
                progressed |= self._sync_pod(pod_key)
        if not paused and new_key is not None:
            progressed |= self._scale(d, new_key, rs_keys, pods, replicas)
            pods = {k: self._owned("pods", self.objects[k]) for k in rs_keys}
        self._prune_history(d, rs_keys, new_key, pods)
        rs_keys = [k for k in rs_keys if k in self.objects]
        all_pods = [p for k in rs_keys for p in pods.get(k, [])]
        new_pods = pods.get(new_key, []) if new_key else []
        ready = sum(1 for p in all_pods if _pod_ready(self.objects[p]))
        updated = len(new_pods)
        new_ready = sum(1 for p in new_pods if _pod_ready(self.objects[p]))
        strategy = spec.get("strategy") or {}
        max_unavailable = 0
        if strategy.get("type") == "RollingUpdate":
            max_unavailable = km.scaled(
                strategy["rollingUpdate"].get("maxUnavailable", "25%"), replicas, round_up=False
            )
        if progressed or key not in self._progress:
            self._progress[key] = now
        old_status = d.get("status") or {}
        old_conditions = {c["type"]: c for c in old_status.get("conditions") or []}
        rs_name = new_key[2] if new_key else ""
        complete = updated == replicas and len(all_pods) == replicas and new_ready == replicas
        if paused:
            progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif (
            old_conditions.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"
            and not progressed
        ) or (now - self._progress[key] > int(spec.get("progressDeadlineSeconds", 600))):
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        available = ready >= replicas - max_unavailable
        conditions = [
            _condition(
                old_conditions.get("Available"),
                "Available",
                ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
                if available
                else (
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                ),
            ),
            _condition(
                old_conditions.get("Progressing"), "Progressing", progressing, touch=progressed
            ),
        ]
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": len(all_pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        if len(all_pods) - ready > 0 or replicas - ready > 0:
            status["unavailableReplicas"] = max(len(all_pods), replicas) - ready
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        self._write_status(key, status)

    def _scale(
        self,
        d: dict[str, Any],
        new_key: Key,
        rs_keys: list[Key],
        pods: dict[Key, list[Key]],
        replicas: int,
    ) -> bool:
        strategy = d["spec"].get("strategy") or {}
        new_pods = pods.get(new_key, [])
        old = [k for k in rs_keys if k != new_key]
        old_pods = [p for k in old for p in pods.get(k, [])]
        changed = False
        if strategy.get("type") == "Recreate":
            for p in old_pods:
                self._remove_tree(p)
                changed = True
            if not old_pods:
                while len(new_pods) < replicas:
                    new_pods.append(self._new_pod(new_key))
                    changed = True
        else:
            surge = km.scaled(
                strategy["rollingUpdate"].get("maxSurge", "25%"), replicas, round_up=True
            )
            max_unavailable = km.scaled(
                strategy["rollingUpdate"].get("maxUnavailable", "25%"), replicas, round_up=False
            )
            total = len(new_pods) + len(old_pods)
            room = replicas + surge - total
            while room > 0 and len(new_pods) < replicas:
                new_pods.append(self._new_pod(new_key))
                room -= 1
                changed = True
            # old pods go only while available (Ready) pods stay >= replicas - maxUnavailable;
            # not-ready old pods first, they count for nothing (sync.go cleanupUnhealthyReplicas)
            ready = sum(1 for p in new_pods + old_pods if _pod_ready(self.objects[p]))
            for p in [p for p in old_pods if not _pod_ready(self.objects[p])]:
                self._remove_tree(p)
                old_pods.remove(p)
                changed = True
            can_remove = ready - (replicas - max_unavailable)
            for p in list(old_pods):
                if can_remove <= 0:
                    break
                self._remove_tree(p)
                old_pods.remove(p)
                can_remove -= 1
                changed = True
            while len(new_pods) > replicas:
                self._remove_tree(new_pods.pop())
                changed = True
        for k in rs_keys:
            count = len(self._owned("pods", self.objects[k]))
            if self.objects[k]["spec"]["replicas"] != count:
                self.objects[k]["spec"]["replicas"] = count
                self.objects[k]["status"] = {"replicas": count}
                self.objects[k]["metadata"]["resourceVersion"] = str(next(self._rv))
        return changed

    def _new_pod(self, rs_key: Key) -> Key:
        rs = self.objects[rs_key]
        template = rs["spec"]["template"]
        name = f"{rs_key[2]}-{secrets.token_hex(3)[:5]}"
        key = self._new_child(
            "pods",
            "Pod",
            rs,
            "ReplicaSet",
            name,
            dict(template["metadata"]["labels"]),
            copy.deepcopy(template["spec"]),
            {},
        )
        self.objects[key]["status"] = {
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False"}],
        }
        return key

    def _sync_pod(self, key: Key) -> bool:
        """Ask the readiness oracle about a not-ready pod; True when it became Ready."""
        pod = self.objects[key]
        if _pod_ready(pod) or pod["status"].get("reason") == "NeverReady" or self.readiness is None:
            return False
        container = pod["spec"]["containers"][0]
        answer = self.readiness(
            str(container.get("image")), container.get("readinessProbe"), container
        )
        if answer is None:
            return False
        name = container["name"]
        if answer:
            pod["status"] = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": name,
                        "ready": True,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"running": {"startedAt": _now()}},
                    }
                ],
            }
        else:
            pod["status"] = {
                "phase": "Running",
                "reason": "NeverReady",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "ContainersNotReady",
                        "message": f"containers with unready status: [{name}]",
                    }
                ],
                "containerStatuses": [
                    {
                        "name": name,
                        "ready": False,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"running": {"startedAt": _now()}},
                    }
                ],
            }
        pod["metadata"]["resourceVersion"] = str(next(self._rv))
        return bool(answer)

    def _prune_history(
        self, d: dict[str, Any], rs_keys: list[Key], new_key: Key | None, pods: dict[Key, list[Key]]
    ) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        old = [k for k in rs_keys if k != new_key and not pods.get(k)]
        old.sort(
            key=lambda k: int(self.objects[k]["metadata"]["annotations"].get(km.REVISION, "0"))
        )
        for k in old[: max(0, len(old) - limit)]:
            self._remove_tree(k)


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _condition(
    old: dict[str, Any] | None, kind: str, value: tuple[str, str, str], *, touch: bool = False
) -> dict[str, Any]:
    status, reason, message = value
    now = _now()
    same = old is not None and old.get("status") == status
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now
        if (touch or not same or old is None or old.get("reason") != reason)
        else old["lastUpdateTime"],
        "lastTransitionTime": old["lastTransitionTime"] if same and old is not None else now,
        "reason": reason,
        "message": message,
    }


def _conflict_error(
    kind: km.Kind, name: str, conflicts: list[tuple[tuple[str, str], Entry, km.Path]]
) -> km.ApiError:
    """conflict.go: NewConflictError / getConflictMessage / printManager."""

    def manager(owner: tuple[str, str], entry: Entry) -> str:
        text = json.dumps(owner[0])
        return f"{text} using {entry.api_version} at {entry.time}" if owner[1] == "Update" else text

    if len(conflicts) == 1:
        owner, entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {manager(owner, entry)}: {km.path_text(path)}"
    else:
        lines = []
        for owner in sorted({c[0] for c in conflicts}):
            entry = next(e for o, e, _ in conflicts if o == owner)
            lines.append(f"conflicts with {manager(owner, entry)}:")
            lines.extend(f"- {km.path_text(p)}" for o, _, p in conflicts if o == owner)
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {manager(o, e)}",
            "field": km.path_text(p),
        }
        for o, e, p in conflicts
    ]
    return km.ApiError(
        409,
        "Conflict",
        message,
        {"name": name, "group": kind.group, "kind": kind.plural, "causes": causes},
    )


def _json_patch(obj: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 add / replace / remove on object paths (what ``kubectl rollout undo`` sends)."""
    out = copy.deepcopy(obj)
    if not isinstance(ops, list):
        raise km.bad_request("a JSON patch is a list of operations")
    for op in ops:
        parts = [
            p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]
        ]
        if not parts:
            raise km.bad_request("a JSON patch path must not be empty")
        node = out
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = parts[-1]
        if op.get("op") in ("add", "replace"):
            node[last] = copy.deepcopy(op.get("value"))
        elif op.get("op") == "remove":
            if last not in node:
                raise km.ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request: remove of missing path {op['path']}",
                )
            del node[last]
        else:
            raise km.bad_request(f"unsupported JSON patch operation {op.get('op')!r}")
    return out


class DockerReadiness:
    """Would this image's readiness probe pass? Asked of the real Docker engine: the image is run
    (unique name, removed afterwards) and probed as the kubelet would (probes page: httpGet 200-399,
    exec exit 0; no probe: Ready once running). A missing image (ErrImagePull) or a container that
    exits is never Ready. One answer per image and probe, worked out on a thread; until it is known
    the pod is not Ready (``None``)."""

    def __init__(self, client: Any, prefix: str, *, window: float = 8.0) -> None:
        self.client = client
        self.prefix = prefix
        self.window = window
        self._answers: dict[str, bool | None] = {}
        self._lock = threading.Lock()
        self._count = itertools.count()
        self.probed: list[str] = []  # images probed, in order (for tests)
        self._threads: list[threading.Thread] = []

    def close(self) -> None:
        """Wait for the probes under way (each removes its own container)."""
        for thread in list(self._threads):
            thread.join(timeout=self.window + 30)

    def __call__(
        self, image: str, probe: dict[str, Any] | None, container: dict[str, Any]
    ) -> bool | None:
        key = json.dumps([image, probe], sort_keys=True)
        with self._lock:
            if key in self._answers:
                return self._answers[key]
            self._answers[key] = None
        thread = threading.Thread(
            target=self._work, args=(key, image, probe, container), daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return None

    def _work(
        self, key: str, image: str, probe: dict[str, Any] | None, container: dict[str, Any]
    ) -> None:
        try:
            answer = self._probe(image, probe, container)
        except Exception:
            answer = False
        with self._lock:
            self._answers[key] = answer
            self.probed.append(image)

    def _probe(self, image: str, probe: dict[str, Any] | None, spec: dict[str, Any]) -> bool:
        import docker.errors

        env = {e["name"]: e.get("value", "") for e in spec.get("env") or [] if "value" in e}
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False  # ErrImagePull: no registry reachable here
        name = f"{self.prefix}-ready-{next(self._count)}"
        container = self.client.containers.run(
            image,
            detach=True,
            name=name,
            environment=env,
            labels={"conveyor.test": "kube-readiness"},
        )
        try:
            deadline = time.monotonic() + self.window
            period = min(float((probe or {}).get("periodSeconds", 10)), 0.5)
            if probe is None:
                time.sleep(1.0)
                container.reload()
                return bool(container.status == "running")
            while time.monotonic() < deadline:
                container.reload()
                if container.status not in ("created", "running"):
                    return False
                if self._passes(container, probe, spec):
                    return True
                time.sleep(period)
            return False
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True)

    @staticmethod
    def _passes(container: Any, probe: dict[str, Any], spec: dict[str, Any]) -> bool:
        if "exec" in probe:
            result = container.exec_run(probe["exec"]["command"])
            return int(result.exit_code) == 0
        http = probe["httpGet"]
        port = http["port"]
        if isinstance(port, str):  # a named container port
            port = next(
                p["containerPort"] for p in spec.get("ports") or [] if p.get("name") == port
            )
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        try:
            with urllib.request.urlopen(
                f"http://{ip}:{port}{http.get('path', '/')}", timeout=1
            ) as r:
                return 200 <= r.status < 400
        except urllib.error.HTTPError as exc:
            return 200 <= exc.code < 400
        except OSError:
            return False
