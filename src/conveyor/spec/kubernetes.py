"""The ``deploy.kubernetes`` block and the rules of ``deploy: {target: kubernetes}``.

The deploy block's shared keys keep their meaning where Kubernetes has one: ``name`` (the Deployment
and Service), ``image``, ``replicas``, ``ports`` (``SERVICE:CONTAINER`` or ``CONTAINER``), ``env``,
``health`` (the readiness probe; its ``timeout`` bounds the rollout wait), ``volumes`` (named volumes
only, each a PersistentVolumeClaim) and ``strategy`` (``blue-green`` and ``rolling``: RollingUpdate
with ``maxUnavailable: 0``; ``recreate``: Recreate). What only Kubernetes has lives here.

Keys that mean something else on Kubernetes are refused with the key to use instead (``secrets`` are
Jenkins credential IDs, ``placement`` Swarm constraints, ``resources`` Docker units), and so is a bind
mount: a host path does not travel between nodes. Names follow the apiserver's rules
(``apimachinery/pkg/util/validation/validation.go``: DNS-1123 label for a namespace, RFC 1035 label
for a Service, DNS-1123 subdomain for a Secret; label keys and values as in ``labels.md``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:  # model.py imports this module
    from conveyor.spec.model import Deploy

# validation.go: DNS-1123 label (namespace), RFC 1035 label (Service), DNS-1123 subdomain (Secret)
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RFC1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# labels.md: a value is empty or <=63 of [A-Za-z0-9._-] with alphanumerics at both ends
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
LABEL_KEY = rf"^({DNS1123_SUBDOMAIN[1:-1]}/)?{_LABEL_NAME}$"
# resource.Quantity (apimachinery/pkg/api/resource/quantity.go): number + optional suffix
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
# a Secret's data key (validation.go IsConfigMapKey)
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

Quantity = Annotated[str, Field(pattern=QUANTITY, max_length=32, examples=["250m", "128Mi"])]


class _K8sModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SecretRef(_K8sModel):
    """One key of an existing Secret, read into an environment variable (``secretKeyRef``)."""

    secret: Annotated[str, Field(pattern=DNS1123_SUBDOMAIN, max_length=253)] = Field(
        description="Name of a Secret in the deploy's namespace."
    )
    key: Annotated[str, Field(pattern=SECRET_KEY, max_length=253)]


class ResourceList(_K8sModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class KubeResources(_K8sModel):
    """Container requests and limits, in Kubernetes quantities (``cpu: 250m``, ``memory: 128Mi``)."""

    requests: ResourceList | None = None
    limits: ResourceList | None = None


class Claim(_K8sModel):
    """The PersistentVolumeClaim of one named volume."""

    size: Quantity = Field("1Gi", description="resources.requests.storage")
    access_mode: Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"] = (
        "ReadWriteOnce"
    )
    storage_class: Annotated[str, Field(pattern=DNS1123_SUBDOMAIN, max_length=253)] | None = None


class Liveness(_K8sModel):
    """A liveness probe: the kubelet restarts the container after ``failure_threshold`` failures."""

    http: Annotated[str, Field(pattern=r"^/", max_length=2048)] | None = None
    cmd: list[Annotated[str, Field(min_length=1)]] | None = None
    port: int | None = Field(None, ge=1, le=65535, description="Default: the first container port.")
    period_seconds: int = Field(10, ge=1, le=3600)
    initial_delay_seconds: int = Field(0, ge=0, le=3600)
    failure_threshold: int = Field(3, ge=1, le=100)

    @model_validator(mode="after")
    def _one(self) -> Liveness:
        if (self.http is None) == (self.cmd is None):
            raise ValueError("liveness needs exactly one of `http` and `cmd`")
        return self


class Kubernetes(_K8sModel):
    """Where and how a ``target: kubernetes`` deploy runs."""

    namespace: Annotated[str, Field(pattern=DNS1123_LABEL, max_length=63)] = "default"
    context: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        None,
        description="kubeconfig context; CONVEYOR_KUBE_CONTEXT overrides it; default: the "
        "kubeconfig's current context, or the in-cluster service account.",
    )
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    node_ports: dict[int, int] = Field(
        default_factory=dict,
        description="Service port -> node port (30000-32767), with service_type NodePort.",
    )
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], SecretRef] = Field(
        default_factory=dict,
        description="Env var -> {secret, key} of an existing Secret (values never in the spec).",
    )
    resources: KubeResources | None = None
    node_selector: dict[
        Annotated[str, Field(pattern=LABEL_KEY, max_length=317)],
        Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)],
    ] = Field(default_factory=dict, description="Pods run only on nodes with these labels.")
    volumes: dict[str, Claim] = Field(
        default_factory=dict, description="Named volume -> its claim (default 1Gi ReadWriteOnce)."
    )
    liveness: Liveness | None = None
    progress_deadline: int = Field(
        600, ge=1, description="progressDeadlineSeconds: no progress this long fails the rollout."
    )
    revision_history: int = Field(10, ge=1, le=100, description="revisionHistoryLimit.")

    @field_validator("node_ports")
    @classmethod
    def _node_ports(cls, value: dict[int, int]) -> dict[int, int]:
        for port, node_port in value.items():
            # service.md: the default NodePort range
            if not 30000 <= node_port <= 32767:
                raise ValueError(
                    f"node port {node_port} for port {port} is not in the valid range 30000-32767"
                )
        return value


def _bind(volume: str) -> bool:
    source = volume.split(":", 1)[0]
    return source.startswith(("/", ".", "~"))


def check_deploy(deploy: Deploy) -> None:
    """The rules of ``target: kubernetes`` (and that ``kubernetes:`` needs it); ValueError names the
    offending key and what to write instead."""
    if deploy.target != "kubernetes":
        if deploy.kubernetes is not None:
            raise ValueError("`kubernetes` needs target: kubernetes")
        return
    if not RFC1035_LABEL.match(deploy.name) or len(deploy.name) > 63:
        raise ValueError(
            f"name {deploy.name!r} is not a valid Kubernetes Service name: lower-case letters, "
            "digits and '-', starting with a letter (RFC 1035 label); set deploy.name"
        )
    refused = {
        "secrets": "kubernetes.secrets ({VAR: {secret: NAME, key: KEY}} of an existing Secret)",
        "placement": "kubernetes.node_selector",
        "resources": "kubernetes.resources (requests/limits in Kubernetes quantities)",
        "services": "a deploy of its own per service",
        "engine": "kubernetes.context",
    }
    for key, instead in refused.items():
        if getattr(deploy, key):
            raise ValueError(f"`{key}` does not apply to target: kubernetes; use {instead}")
    for index, volume in enumerate(deploy.volumes):
        if _bind(volume):
            raise ValueError(
                f"volumes[{index}] {volume!r} is a bind mount: a host path does not travel between "
                "nodes on Kubernetes; use a named volume (NAME:/path, a PersistentVolumeClaim)"
            )
        name = volume.split(":", 1)[0]
        if not re.match(DNS1123_LABEL, name) or len(name) + len(deploy.name) + 1 > 253:
            raise ValueError(
                f"volumes[{index}]: volume name {name!r} must be lower-case letters, digits and '-'"
            )
    kube = deploy.kubernetes
    probes = [("health", deploy.health), ("kubernetes.liveness", kube.liveness if kube else None)]
    for key, probe in probes:
        if probe is not None and probe.http and probe.port is None and not deploy.ports:
            raise ValueError(f"{key}.http needs `ports` or {key}.port (the port to probe)")
    if kube is None:
        return
    names = {v.split(":", 1)[0] for v in deploy.volumes}
    for name in kube.volumes:
        if name not in names:
            raise ValueError(f"kubernetes.volumes[{name!r}]: no volume of that name in `volumes`")
    clash = sorted(set(kube.secrets) & set(deploy.env))
    if clash:
        raise ValueError(f"kubernetes.secrets and env both set {', '.join(clash)}")
    if kube.node_ports and kube.service_type != "NodePort":
        raise ValueError("kubernetes.node_ports needs service_type: NodePort")
    service_ports = {service_port(p) for p in deploy.ports}
    for port in kube.node_ports:
        if port not in service_ports:
            raise ValueError(f"kubernetes.node_ports: {port} is not a Service port of `ports`")


def service_port(mapping: str) -> int:
    """The Service port of a ``ports`` entry (``SERVICE:CONTAINER[/proto]`` or ``CONTAINER``)."""
    head = mapping.split("/", 1)[0]
    return int(head.split(":", 1)[0])


def container_port(mapping: str) -> int:
    """The container port of a ``ports`` entry."""
    head = mapping.split("/", 1)[0]
    return int(head.rsplit(":", 1)[-1])


def protocol(mapping: str) -> str:
    """``TCP`` or ``UDP``."""
    return "UDP" if mapping.endswith("/udp") else "TCP"
