"""A ``target: kubernetes`` deploy block as Kubernetes objects: pure, byte-stable, one YAML per object.

:func:`render_manifests` turns the spec's block, its project and the image to run into a Deployment,
a Service (when the deploy has ports) and one PersistentVolumeClaim per named volume. The same input
gives the same bytes (:func:`to_yaml`), so ``conveyor render`` output can be committed for Argo CD or
Flux, and ``conveyor deploy`` server-side applies exactly these objects.

Every object carries the recommended labels (``common-labels.md``): ``app.kubernetes.io/name`` and
``instance`` (the deploy name), ``version`` (the image's tag, made a legal label value) and
``managed-by: conveyor``; pruning (:mod:`conveyor.kubernetes.prune`) only ever looks at objects
with ``managed-by=conveyor`` and this instance. Secrets are ``secretKeyRef`` references by name and
key, never values. Zero downtime by default: RollingUpdate with ``maxUnavailable: 0`` and
``maxSurge: 1``, new pods gated by the readiness probe built from ``health``.

Spec strings reach the text only through :func:`to_yaml` (the one YAML escaper: a string is plain
only when YAML resolves it back to that same string, else double-quoted with every non-printable
character and line break escaped), so a hostile value is read back exactly as the data it was.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from conveyor.spec.kubernetes import Kubernetes, Liveness, container_port, protocol, service_port
from conveyor.spec.model import Deploy, Health, parse_duration

MANAGED_BY = "conveyor"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
VERSION = "app.kubernetes.io/version"
MANAGED = "app.kubernetes.io/managed-by"
PROJECT_ANNOTATION = "conveyor.dev/project"

_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]")

# YAML 1.1's printable set (what may stand unescaped in a double-quoted scalar) minus the line
# breaks a double-quoted scalar would fold (NEL, LS, PS); '"' and '\\' need a backslash.
_ESCAPED = re.compile(
    '[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|["\\\\]'
)
_SHORT = {
    "\0": "0",
    "\a": "a",
    "\b": "b",
    "\t": "t",
    "\n": "n",
    "\v": "v",
    "\f": "f",
    "\r": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\u2028": "L",
    "\u2029": "P",
}
# a plain scalar that cannot start an indicator or contain ': ' / ' #'; resolved as a string below
_PLAIN = re.compile(r"[A-Za-z0-9/_.][-A-Za-z0-9_./:@+]*")
_RESOLVER = yaml.resolver.Resolver()


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _SHORT:
        return "\\" + _SHORT[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@functools.lru_cache(maxsize=65536)
def _string(text: str) -> str:
    """``text`` as a YAML scalar: plain when YAML reads it back as this same string, else
    double-quoted with every non-printable character and line break escaped."""
    if (
        _PLAIN.fullmatch(text)
        and not text.endswith(":")
        and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"  # type: ignore[no-untyped-call]
    ):
        return text
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    raise TypeError(f"no YAML for {type(value).__name__}")


def _emit(node: Mapping[str, Any], pad: str, out: list[str]) -> None:
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out.append(f"{pad}{_string(key)}:\n")
            _emit(value, pad + "  ", out)
        elif isinstance(value, list) and value:
            out.append(f"{pad}{_string(key)}:\n")
            _emit_list(value, pad, out)  # block sequences indentless, as PyYAML writes them
        else:
            out.append(f"{pad}{_string(key)}: {_scalar(value)}\n")


def _emit_list(items: list[Any], pad: str, out: list[str]) -> None:
    for item in items:
        if isinstance(item, dict) and item:
            start = len(out)
            _emit(item, pad + "  ", out)
            out[start] = pad + "- " + out[start][len(pad) + 2 :]
        elif isinstance(item, list) and item:
            out.append(f"{pad}-\n")
            _emit_list(item, pad + "  ", out)
        else:
            out.append(f"{pad}- {_scalar(item)}\n")


@dataclass(frozen=True)
class Manifest:
    """One object: its kind, namespace, name, API path pieces and body."""

    api_version: str
    kind: str
    namespace: str
    name: str
    body: Mapping[str, Any]

    @property
    def filename(self) -> str:
        return f"{self.kind.lower()}-{self.name}.yaml"

    @property
    def ref(self) -> str:
        """``Kind namespace/name``, how messages name the object."""
        return f"{self.kind} {self.namespace}/{self.name}"

    def yaml(self) -> str:
        return to_yaml(self.body)


def to_yaml(body: Mapping[str, Any]) -> str:
    """Block-style YAML, keys in the renderer's order: the one YAML writer of conveyor's manifests
    (:func:`_string` decides plain or double-quoted; the property tests read every output back
    with PyYAML and get the data exactly)."""
    out: list[str] = []
    _emit(body, "", out)
    return "".join(out)


def version_label(image: str) -> str:
    """The image's tag (or digest) as a label value: ``[A-Za-z0-9._-]``, at most 63, alphanumeric at
    both ends (``labels.md``); empty when nothing is left."""
    ref = image
    if "@" in ref:
        version = ref.rsplit("@", 1)[1].split(":", 1)[-1][:12]
    else:
        last = ref.rsplit("/", 1)[-1]
        version = last.rsplit(":", 1)[1] if ":" in last else "latest"
    version = _LABEL_BAD.sub("-", version)[:63]
    return version.strip("-_.")


def labels(deploy: Deploy, image: str) -> dict[str, str]:
    """The recommended labels of every object of ``deploy``."""
    out = {NAME: deploy.name, INSTANCE: deploy.name}
    version = version_label(image)
    if version:
        out[VERSION] = version
    out[MANAGED] = MANAGED_BY
    return out


def selector(deploy: Deploy) -> dict[str, str]:
    """The Deployment's (immutable) selector and the Service's: name and instance, never version."""
    return {NAME: deploy.name, INSTANCE: deploy.name}


def ownership_selector(name: str) -> str:
    """The label selector of everything conveyor made for deploy ``name`` (pruning lists by it)."""
    return f"{MANAGED}={MANAGED_BY},{INSTANCE}={name}"


def _metadata(deploy: Deploy, name: str, image: str, project: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": _kube(deploy).namespace,
        "labels": labels(deploy, image),
        "annotations": {PROJECT_ANNOTATION: project},
    }


def _kube(deploy: Deploy) -> Kubernetes:
    return deploy.kubernetes or Kubernetes()


def _seconds(duration: str) -> int:
    return max(1, math.ceil(parse_duration(duration)))


def _probe_action(
    http: str | None, cmd: list[str] | None, port: int | None, deploy: Deploy
) -> dict[str, Any]:
    if cmd is not None:
        return {"exec": {"command": list(cmd)}}
    probe_port = port or container_port(deploy.ports[0])
    return {"httpGet": {"path": http, "port": probe_port}}


def readiness_probe(health: Health, deploy: Deploy) -> dict[str, Any]:
    """``health`` as a readinessProbe: checked every ``interval``; the rollout's wait is bounded by
    ``timeout`` (:mod:`conveyor.kubernetes.rollout`), not the probe."""
    probe = _probe_action(health.http, health.cmd, health.port, deploy)
    probe["periodSeconds"] = _seconds(health.interval)
    return probe


def liveness_probe(live: Liveness, deploy: Deploy) -> dict[str, Any]:
    probe = _probe_action(live.http, live.cmd, live.port, deploy)
    probe["initialDelaySeconds"] = live.initial_delay_seconds
    probe["periodSeconds"] = live.period_seconds
    probe["failureThreshold"] = live.failure_threshold
    return probe


def claim_name(deploy: Deploy, volume: str) -> str:
    return f"{deploy.name}-{volume}"


def _volumes(deploy: Deploy) -> list[tuple[str, str, bool]]:
    """(volume name, mount path, read-only) of each ``volumes`` entry."""
    out = []
    for entry in deploy.volumes:
        parts = entry.split(":")
        out.append((parts[0], parts[1], len(parts) == 3 and parts[2] == "ro"))
    return out


def _container(deploy: Deploy, image: str) -> dict[str, Any]:
    kube = _kube(deploy)
    container: dict[str, Any] = {"name": deploy.name, "image": image}
    if deploy.ports:
        container["ports"] = [
            {"name": port_name(p), "containerPort": container_port(p), "protocol": protocol(p)}
            for p in _unique_container_ports(deploy.ports)
        ]
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in deploy.env.items()]
    env.extend(
        {"name": var, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
        for var, ref in kube.secrets.items()
    )
    if env:
        container["env"] = env
    if kube.resources is not None:
        resources = kube.resources.model_dump(exclude_none=True)
        if resources:
            container["resources"] = resources
    if deploy.health is not None:
        container["readinessProbe"] = readiness_probe(deploy.health, deploy)
    if kube.liveness is not None:
        container["livenessProbe"] = liveness_probe(kube.liveness, deploy)
    mounts = [
        {"name": name, "mountPath": path, **({"readOnly": True} if ro else {})}
        for name, path, ro in _volumes(deploy)
    ]
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _unique_container_ports(ports: list[str]) -> list[str]:
    """One entry per (containerPort, protocol): the list-map key of container ports."""
    seen: set[tuple[int, str]] = set()
    out = []
    for p in ports:
        key = (container_port(p), protocol(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def port_name(mapping: str) -> str:
    """A container port's name: an IANA service name (<=15, a letter, ``[a-z0-9-]``)."""
    return f"{protocol(mapping).lower()}-{container_port(mapping)}"


def deployment(deploy: Deploy, *, project: str, image: str) -> Manifest:
    kube = _kube(deploy)
    strategy: dict[str, Any]
    if deploy.strategy == "recreate":
        strategy = {"type": "Recreate"}
    else:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod_labels = labels(deploy, image)
    pod_spec: dict[str, Any] = {"containers": [_container(deploy, image)]}
    if kube.node_selector:
        pod_spec["nodeSelector"] = dict(kube.node_selector)
    volumes = [
        {"name": name, "persistentVolumeClaim": {"claimName": claim_name(deploy, name)}}
        for name in dict.fromkeys(name for name, _, _ in _volumes(deploy))
    ]
    if volumes:
        pod_spec["volumes"] = volumes
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(deploy, deploy.name, image, project),
        "spec": {
            "replicas": deploy.replicas,
            "revisionHistoryLimit": kube.revision_history,
            "progressDeadlineSeconds": kube.progress_deadline,
            "selector": {"matchLabels": selector(deploy)},
            "strategy": strategy,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }
    return Manifest("apps/v1", "Deployment", kube.namespace, deploy.name, body)


def service(deploy: Deploy, *, project: str, image: str) -> Manifest:
    kube = _kube(deploy)
    ports = []
    seen: set[tuple[int, str]] = set()
    for mapping in deploy.ports:
        key = (service_port(mapping), protocol(mapping))
        if key in seen:  # Service ports are a list-map keyed by port and protocol
            continue
        seen.add(key)
        port: dict[str, Any] = {
            "name": f"{protocol(mapping).lower()}-{service_port(mapping)}",
            "port": service_port(mapping),
            "targetPort": container_port(mapping),
            "protocol": protocol(mapping),
        }
        if service_port(mapping) in kube.node_ports:
            port["nodePort"] = kube.node_ports[service_port(mapping)]
        ports.append(port)
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(deploy, deploy.name, image, project),
        "spec": {"type": kube.service_type, "selector": selector(deploy), "ports": ports},
    }
    return Manifest("v1", "Service", kube.namespace, deploy.name, body)


def claims(deploy: Deploy, *, project: str, image: str) -> list[Manifest]:
    kube = _kube(deploy)
    out = []
    for volume in dict.fromkeys(name for name, _, _ in _volumes(deploy)):
        claim = kube.volumes.get(volume)
        size = claim.size if claim else "1Gi"
        spec: dict[str, Any] = {
            "accessModes": [claim.access_mode if claim else "ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        }
        if claim is not None and claim.storage_class is not None:
            spec["storageClassName"] = claim.storage_class
        name = claim_name(deploy, volume)
        # no version label on a claim: its labels would change with every image
        meta = _metadata(deploy, name, image, project)
        meta["labels"] = {k: v for k, v in meta["labels"].items() if k != VERSION}
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta,
            "spec": spec,
        }
        out.append(Manifest("v1", "PersistentVolumeClaim", kube.namespace, name, body))
    return out


def render_manifests(deploy: Deploy, *, project: str, image: str) -> list[Manifest]:
    """Every object of a ``target: kubernetes`` deploy, in apply order (claims, Deployment,
    Service)."""
    out = claims(deploy, project=project, image=image)
    out.append(deployment(deploy, project=project, image=image))
    if deploy.ports:
        out.append(service(deploy, project=project, image=image))
    return out
