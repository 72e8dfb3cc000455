"""What the Kubernetes apiserver does to an object, without HTTP: server-side apply's field sets and
merge, defaults, validation, metav1.Status bodies. Built from /work/shared/reference/kubernetes.md
(sources below as ``k/`` = kubernetes/kubernetes, ``am/`` = k/staging/src/k8s.io/apimachinery/pkg).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

# -- kinds -----------------------------------------------------------------------------------
# plural -> (group, version, Kind, namespaced name rule)


@dataclass(frozen=True)
class Kind:
    plural: str
    group: str
    version: str
    kind: str
    name_rule: str  # "subdomain" | "rfc1035" | "label"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``deployments.apps`` / ``services``: how messages name the resource
        (``am/api/errors/errors.go`` qualifiedResource)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


KINDS = {
    k.plural: k
    for k in (
        Kind("deployments", "apps", "v1", "Deployment", "subdomain"),
        Kind("replicasets", "apps", "v1", "ReplicaSet", "subdomain"),
        Kind("services", "", "v1", "Service", "rfc1035"),
        Kind("persistentvolumeclaims", "", "v1", "PersistentVolumeClaim", "subdomain"),
        Kind("pods", "", "v1", "Pod", "subdomain"),
    )
}

# -- metav1.Status (am/api/errors/errors.go) ---------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{kind.resource} "{name}" not found',
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def namespace_not_found(namespace: str) -> ApiError:
    # apiserver/pkg/admission/plugin/namespace/lifecycle: a create in a missing namespace
    return ApiError(
        404,
        "NotFound",
        f'namespaces "{namespace}" not found',
        {"name": namespace, "kind": "namespaces"},
    )


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{kind.resource} "{name}" already exists',
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def stale(kind: Kind, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def invalid(kind: Kind, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid: ``causes`` = (field, message); details.kind is the Kind for Invalid."""
    texts = [f"{field}: {message}" for field, message in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{kind.qualified_kind} "{name}" is invalid: {joined}',
        {
            "name": name,
            "group": kind.group,
            "kind": kind.kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": field}
                for field, message in causes
            ],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# -- names and labels (am/util/validation/validation.go) ---------------------------------------
_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
RFC1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def name_problem(kind: Kind, name: str) -> str | None:
    if kind.name_rule == "rfc1035":
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if _RFC1035.match(name) else RFC1035_MSG
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _SUBDOMAIN.match(name) else SUBDOMAIN_MSG


def label_problems(labels: dict[str, Any], field: str) -> list[tuple[str, str]]:
    """labels.md: keys ``[prefix/]name`` (name <=63), values <=63, alphanumeric at both ends."""
    out = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (
            (prefix and not _SUBDOMAIN.match(prefix))
            or len(name) > 63
            or not _LABEL_NAME.match(name)
        ):
            out.append((field, f'Invalid value: "{key}": name part must be a valid label name'))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            out.append(
                (
                    f"{field}",
                    f'Invalid value: "{value}": a valid label must be an empty '
                    "string or consist of alphanumeric characters, '-', '_' or '.', and must "
                    "start and end with an alphanumeric character",
                )
            )
    return out


# -- server-side apply field sets (w/reference/using-api/server-side-apply.md) ------------------
# Lists merged as maps, by x-kubernetes-list-map-keys in the OpenAPI schema; other lists are atomic.
LIST_MAP_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "ports": ("containerPort", "protocol"),  # container ports; Service ports below
    "conditions": ("type",),
}
SERVICE_PORT_KEYS = ("port", "protocol")

Path = tuple[Any, ...]  # str for a field, ("k", ((key, value), ...)) for a list-map item


def _keys_for(field: str, path: Path, kind: str) -> tuple[str, ...] | None:
    if field == "ports" and kind == "Service" and path == ("spec",):
        return SERVICE_PORT_KEYS
    return LIST_MAP_KEYS.get(field)


def _item_key(item: dict[str, Any], keys: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    # container port protocol defaults to TCP when absent (part of the key)
    return tuple((k, item.get(k, "TCP" if k == "protocol" else None)) for k in sorted(keys))


def field_set(obj: Any, kind: str, path: Path = ()) -> set[Path]:
    """Every leaf path of an applied configuration (list-map items addressed by their keys; their key
    fields are owned too, so dropping an item frees it)."""
    out: set[Path] = set()
    if isinstance(obj, dict):
        if not obj and path:
            out.add(path)
        for field, value in obj.items():
            if not path and field in ("apiVersion", "kind"):
                continue
            if path == ("metadata",) and field in ("name", "namespace"):
                continue
            here = (*path, field)
            keys = _keys_for(field, path, kind) if isinstance(value, list) else None
            if keys is not None:
                for item in value:
                    if isinstance(item, dict):
                        out |= field_set(item, kind, (*here, ("k", _item_key(item, keys))))
            else:
                out |= field_set(value, kind, here)
        return out
    out.add(path)
    return out


def path_text(path: Path) -> str:
    """fieldpath.Path.String(): ``.spec.replicas``, ``.spec.template.spec.containers[name="web"]``."""
    text = ""
    for part in path:
        if isinstance(part, tuple):
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in part[1]) + "]"
        else:
            text += "." + part
    return text


def get_path(obj: Any, path: Path, kind: str) -> Any:
    """The value at ``path`` (``_MISSING`` when absent)."""
    node = obj
    parent: Path = ()
    for part in path:
        if isinstance(part, tuple):
            field = parent[-1]
            keys = tuple(k for k, _ in part[1])
            match = [i for i in node if isinstance(i, dict) and _item_key(i, keys) == part[1]]
            if not match:
                return _MISSING
            node = match[0]
            _ = field
        else:
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
        parent = (*parent, part)
    return node


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def remove_path(obj: Any, path: Path) -> None:
    """Delete the value at ``path`` (a field or a list-map item), then the maps it left empty."""
    chain: list[Any] = [obj]
    keys: list[Any] = []
    node = obj
    for part in path:
        if isinstance(part, tuple):
            if not isinstance(node, list):
                return
            names = tuple(k for k, _ in part[1])
            index = next(
                (
                    n
                    for n, i in enumerate(node)
                    if isinstance(i, dict) and _item_key(i, names) == part[1]
                ),
                None,
            )
            if index is None:
                return
            keys.append(index)
            node = node[index]
        else:
            if not isinstance(node, dict) or part not in node:
                return
            keys.append(part)
            node = node[part]
        chain.append(node)
    for depth in range(len(keys) - 1, -1, -1):
        container = chain[depth]
        del container[keys[depth]]
        if container or depth == 0 or isinstance(container, list):
            break


def item_prefixes(path: Path) -> list[Path]:
    """The list-map items ``path`` lies in, innermost first."""
    return [path[: n + 1] for n in range(len(path) - 1, -1, -1) if isinstance(path[n], tuple)]


def key_names(item_path: Path) -> set[str]:
    return {k for k, _ in item_path[-1][1]}


def merge(live: Any, applied: Any, kind: str, path: Path = ()) -> Any:
    """The applied configuration merged into the live object: maps by key, list-maps by their keys,
    atomic lists and scalars replaced."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = copy.deepcopy(live)
        for field, value in applied.items():
            keys = _keys_for(field, path, kind) if isinstance(value, list) else None
            if keys is not None and isinstance(out.get(field), list):
                items = list(out[field])
                for item in value:
                    key = _item_key(item, keys)
                    index = next(
                        (
                            n
                            for n, i in enumerate(items)
                            if isinstance(i, dict) and _item_key(i, keys) == key
                        ),
                        None,
                    )
                    if index is None:
                        items.append(copy.deepcopy(item))
                    else:
                        items[index] = merge(items[index], item, kind, (*path, field, "item"))
                out[field] = items
            elif field in out:
                out[field] = merge(out[field], value, kind, (*path, field))
            else:
                out[field] = copy.deepcopy(value)
        return out
    return copy.deepcopy(applied)


def merge_patch(live: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(live) if isinstance(live, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def changed_paths(before: Any, after: Any, kind: str) -> set[Path]:
    """Leaf paths whose value differs (what an Update takes ownership of)."""
    old, new = field_set(before, kind), field_set(after, kind)
    return {p for p in new if p not in old or get_path(before, p, kind) != get_path(after, p, kind)}


# -- defaults (k/pkg/apis/apps/v1/defaults.go, k/pkg/apis/core/v1/defaults.go) ------------------


def _default_probe(probe: dict[str, Any]) -> None:
    # configure-liveness-readiness-startup-probes.md: 0, 10, 1, 1, 3
    probe.setdefault("initialDelaySeconds", 0)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        last = image.rsplit("/", 1)[-1]
        tagged = ":" in last or "@" in image
        latest = not tagged or last.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        for key in ("readinessProbe", "livenessProbe"):
            if key in container:
                _default_probe(container[key])


def default(kind: Kind, obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if kind.kind == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
        default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
    elif kind.kind == "Service":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif kind.kind == "PersistentVolumeClaim":
        spec.setdefault("volumeMode", "Filesystem")


# -- validation (k/pkg/apis/apps/validation/validation.go, core/validation) ----------------------


def scaled(value: Any, replicas: int, *, round_up: bool) -> int:
    """An IntOrString against ``replicas`` (``intstr.GetScaledValueFromIntOrPercent``)."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        number = int(text[:-1]) * replicas
        return -(-number // 100) if round_up else number // 100
    return int(text)


def validate(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    causes: list[tuple[str, str]] = []
    problem = (
        name_problem(kind, name) if name else "Required value: name or generateName is required"
    )
    if problem:
        causes.append(("metadata.name", f'Invalid value: "{name}": {problem}' if name else problem))
    causes += label_problems(meta.get("labels") or {}, "metadata.labels")
    spec = obj.get("spec") or {}
    if kind.kind == "Deployment":
        causes += _validate_deployment(spec, old)
    elif kind.kind == "Service":
        causes += _validate_service(spec)
    if causes:
        raise invalid(kind, name, causes)


def _validate_deployment(spec: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(
            ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
        replicas = 0
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    elif any(labels.get(k) != v for k, v in selector.items()):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
            )
        )
    if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
        causes.append(
            (
                "spec.selector",
                f"Invalid value: {json.dumps(spec.get('selector'))}: field is immutable",
            )
        )
    causes += label_problems(labels, "spec.template.metadata.labels")
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        causes.append(("spec.template.spec.containers", "Required value"))
    for n, container in enumerate(containers):
        where = f"spec.template.spec.containers[{n}]"
        cname = str(container.get("name", ""))
        if not re.match(rf"^{_DNS1123_LABEL}$", cname) or len(cname) > 63:
            causes.append(
                (
                    f"{where}.name",
                    f"Invalid value: \"{cname}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                )
            )
        if not container.get("image"):
            causes.append((f"{where}.image", "Required value"))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate")
    if rolling is not None:
        surge = scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            causes.append(
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0",
                )
            )
    return causes


def _validate_service(spec: dict[str, Any]) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    ports = spec.get("ports") or []
    if not ports and spec.get("type", "ClusterIP") != "ExternalName":
        causes.append(("spec.ports", "Required value"))
    for n, port in enumerate(ports):
        if len(ports) > 1 and not port.get("name"):
            causes.append((f"spec.ports[{n}].name", "Required value"))
        node_port = port.get("nodePort")
        if node_port is not None and not 30000 <= int(node_port) <= 32767:
            # service.md: the default NodePort range
            causes.append(
                (
                    f"spec.ports[{n}].nodePort",
                    f"Invalid value: {node_port}: provided port is not in the valid range. "
                    "The range of valid ports is 30000-32767",
                )
            )
    return causes


# -- Deployment controller helpers (k/pkg/controller/deployment/util/deployment_util.go) -------
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


def template_hash(template: dict[str, Any]) -> str:
    """ComputeHash's role: a stable short hash of the pod template (not its exact algorithm)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # SafeEncodeString's alphabet
    return "".join(alphabet[int(digest[i : i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: ``a=b,c!=d,e`` (``labels.md``)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def fields_v1(paths: set[Path]) -> dict[str, Any]:
    """managedFields' FieldsV1: ``f:field`` maps, ``k:{json}`` for list-map items."""
    root: dict[str, Any] = {}
    for path in sorted(paths, key=path_text):
        node = root
        for part in path:
            key = (
                "k:" + json.dumps(dict(part[1]), separators=(",", ":"), sort_keys=True)
                if isinstance(part, tuple)
                else "f:" + part
            )
            node = node.setdefault(key, {})
    return root
