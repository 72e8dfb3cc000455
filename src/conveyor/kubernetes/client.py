"""The one boundary to the official ``kubernetes`` client: every call goes through
:func:`kube_errors`, which maps ``ApiException`` (a metav1.Status body) and urllib3's failures to
conveyor errors naming the context and the object, once.

Objects travel as plain JSON (``_preload_content=False``): what was applied is what is compared,
and no generated model stands between the apiserver and the plan.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3.exceptions
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from conveyor.errors import KubernetesConflictError, KubernetesError
from conveyor.kubernetes.config import Cluster
from conveyor.kubernetes.manifests import Manifest

FIELD_MANAGER = "conveyor"
APPLY = "application/apply-patch+yaml"

# kind -> (api, method suffix)
_KINDS = {
    "Deployment": ("apps", "deployment"),
    "ReplicaSet": ("apps", "replica_set"),
    "Service": ("core", "service"),
    "PersistentVolumeClaim": ("core", "persistent_volume_claim"),
    "Pod": ("core", "pod"),
}


def _status(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


@contextlib.contextmanager
def kube_errors(cluster: str, what: str) -> Iterator[None]:
    """Map the client's failures while doing ``what`` (``apply Deployment shop/web``) on
    ``cluster`` (``context prod``) to :class:`KubernetesError` / :class:`KubernetesConflictError`."""
    try:
        yield
    except ApiException as exc:
        status = _status(exc)
        message = str(status.get("message") or exc.reason or "no message")
        details = status.get("details") or {}
        causes = details.get("causes") or []
        code = int(exc.status or 0)
        if code == 409 and any(c.get("reason") == "FieldManagerConflict" for c in causes):
            conflicts = [
                (str(c.get("message", "")).removeprefix("conflict with "), str(c.get("field", "")))
                for c in causes
            ]
            listed = "; ".join(f"{field} (owned by {manager})" for manager, field in conflicts)
            raise KubernetesConflictError(
                f"{what} on {cluster}: fields owned by another field manager: {listed}",
                conflicts=conflicts,
                hint="change them back there, or take them with --force",
            ) from None
        hint = {
            401: "the credentials of this context were refused",
            403: "the context's user lacks RBAC rights for this object",
            404: "create the namespace first (kubectl create namespace NAME)"
            if message.startswith("namespaces ")
            else None,
        }.get(code)
        raise KubernetesError(
            f"{what} on {cluster}: {code} {status.get('reason') or exc.reason}: {message}",
            status=code,
            hint=hint,
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesError(
            f"{what} on {cluster}: cannot reach the apiserver: {type(exc).__name__}: {exc}",
            hint="check the context's server address and the network",
        ) from None


class KubeClient:
    """Reads and writes of the kinds conveyor manages, as JSON, errors mapped."""

    def __init__(self, cluster: Cluster, *, timeout: float = 30.0) -> None:
        self.cluster = cluster
        self.apps = AppsV1Api(cluster.api)
        self.core = CoreV1Api(cluster.api)
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.cluster.name

    def close(self) -> None:
        self.cluster.api.close()  # type: ignore[no-untyped-call]

    def _call(self, verb: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        api, suffix = _KINDS[kind]
        target = self.apps if api == "apps" else self.core
        method = getattr(target, f"{verb}_namespaced_{suffix}")
        response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        data = response.data
        return json.loads(data) if data else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        try:
            with kube_errors(self.name, f"read {kind} {namespace}/{name}"):
                result: dict[str, Any] = self._call("read", kind, name, namespace)
                return result
        except KubernetesError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, manifest: Manifest, *, force: bool = False, dry_run: bool = False) -> Any:
        """Server-side apply of ``manifest`` as field manager ``conveyor``."""
        verb = "plan" if dry_run else "apply"
        extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        if force:
            extra["force"] = True
        with kube_errors(self.name, f"{verb} {manifest.ref}"):
            return self._call(
                "patch",
                manifest.kind,
                manifest.name,
                manifest.namespace,
                dict(manifest.body),
                field_manager=FIELD_MANAGER,
                _content_type=APPLY,
                **extra,
            )

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` matching the label ``selector`` (all pages)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        with kube_errors(self.name, f"list {kind}s in {namespace} ({selector})"):
            while True:
                extra: Mapping[str, Any] = {"_continue": token} if token else {}
                page = self._call(
                    "list", kind, namespace, label_selector=selector, limit=500, **extra
                )
                items.extend(page.get("items") or [])
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    return items

    def delete(self, kind: str, namespace: str, name: str) -> None:
        with kube_errors(self.name, f"delete {kind} {namespace}/{name}"):
            self._call("delete", kind, name, namespace)
