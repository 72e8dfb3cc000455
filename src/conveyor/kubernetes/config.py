"""Which cluster, the Kubernetes way: a kubeconfig context, or the in-cluster service account.

The context is ``CONVEYOR_KUBE_CONTEXT``, else the spec's ``deploy.kubernetes.context``, else the
kubeconfig's current context. The kubeconfig is ``$KUBECONFIG`` (a ``:``-separated list is merged, as
kubectl does) or ``~/.kube/config``; with neither, and ``KUBERNETES_SERVICE_HOST`` set, the pod's
service account (``/var/run/secrets/kubernetes.io/serviceaccount``) is used (``kubernetes.config``:
``load_kube_config`` / ``load_incluster_config``). Errors name the context and the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
import kubernetes.config
from kubernetes.config.config_exception import ConfigException

from conveyor.errors import ConfigError

KUBE_CONTEXT = "CONVEYOR_KUBE_CONTEXT"


@dataclass(frozen=True)
class Cluster:
    """A configured client and how messages name the cluster (``context prod`` / ``in-cluster``)."""

    api: kubernetes.client.ApiClient
    name: str


def kubeconfig_paths(environ: Mapping[str, str]) -> str:
    return environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def connect(
    context: str | None = None, *, environ: Mapping[str, str] | None = None, pool: int = 16
) -> Cluster:
    """A client for the cluster (see the module docstring for the order); ``pool`` connections."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(KUBE_CONTEXT) or context
    paths = kubeconfig_paths(environ)
    exists = any(Path(p).expanduser().is_file() for p in paths.split(os.pathsep) if p)
    configuration = kubernetes.client.Configuration()
    if exists:
        try:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=paths, context=wanted, client_configuration=configuration
            )
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"kubeconfig {paths}: cannot use context {wanted or '(current)'}: {exc}",
                hint=f"list contexts with `kubectl config get-contexts`; set {KUBE_CONTEXT} or "
                "deploy.kubernetes.context",
            ) from None
        if wanted is None:
            try:
                _, current = kubernetes.config.list_kube_config_contexts(config_file=paths)  # type: ignore[no-untyped-call]
                wanted = str(current.get("name", "")) or None
            except (ConfigException, OSError, ValueError, TypeError):
                wanted = None
        name = f"context {wanted or '(current)'}"
    elif environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise ConfigError(
                f"in-cluster Kubernetes config: {exc}",
                hint="the pod needs its service account token mounted",
            ) from None
        name = "in-cluster"
    else:
        raise ConfigError(
            f"no Kubernetes configuration: {paths} does not exist and KUBERNETES_SERVICE_HOST is "
            "not set",
            hint="set KUBECONFIG (or write ~/.kube/config), or run in a pod with a service account",
        )
    configuration.connection_pool_maxsize = pool
    configuration.retries = False
    return Cluster(kubernetes.client.ApiClient(configuration), name)
