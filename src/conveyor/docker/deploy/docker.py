"""``target: docker``: one host, containers behind a caddy proxy (see :mod:`.proxy`).

Containers are named ``<name>-blue`` / ``<name>-green`` and alternate colours; each carries labels naming
the spec, project, deploy, stage, colour and version (the image reference). They join ``<name>-net`` and
publish nothing: the proxy ``<name>-proxy`` owns the spec's host ports.

* ``blue-green``: start the new colour beside the live one, wait for the health gate, switch the proxy
  (graceful caddy reload), drain the old upstream, then stop and remove the old container. If the new
  version never becomes healthy it is removed and the old one keeps serving untouched.
* ``recreate`` (for volumes only one container may use): stop the old container, start the new one, health
  gate, switch, remove the old. On failure the new container is removed and the old one started again.

Named volumes (``<name>_<volume>``) are never removed by a deploy or rollback.
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from conveyor.docker.deploy.health import container_ip, network_probe, wait_healthy
from conveyor.docker.deploy.model import (
    LABEL_PREFIX,
    Deployed,
    DeployRequest,
    ImageRef,
    resolve_env,
)
from conveyor.docker.deploy.mounts import (
    MountSpec,
    check_bind_sources,
    parse_ports,
    parse_volumes,
)
from conveyor.docker.deploy.proxy import Proxy, ensure_network, ensure_proxy, network_name
from conveyor.docker.engine import docker_errors

STOP_TIMEOUT = 10


def app_containers(client: docker.DockerClient, deploy_name: str) -> list[Container]:
    with docker_errors(f"list containers of {deploy_name}"):
        return list(
            client.containers.list(
                all=True,
                ignore_removed=True,
                filters={
                    "label": [f"{LABEL_PREFIX}deploy={deploy_name}", f"{LABEL_PREFIX}role=app"]
                },
            )
        )


def ensure_volumes(
    client: docker.DockerClient, request: DeployRequest, mounts: list[MountSpec]
) -> None:
    """Create missing named volumes (labelled); existing ones are used as they are."""
    for mount in mounts:
        if mount.kind != "volume":
            continue
        with docker_errors(f"create volume {mount.source}"):
            try:
                client.volumes.get(mount.source)
            except docker.errors.NotFound:
                client.volumes.create(mount.source, labels=request.labels("volume"))


def _restart_policy(restart: str) -> dict[str, Any] | None:
    if restart == "no":
        return None
    if restart == "on-failure":
        return {"Name": "on-failure", "MaximumRetryCount": 5}
    return {"Name": restart}


def _memory(text: str) -> str:
    return text.lower()


def create_app(
    client: docker.DockerClient,
    request: DeployRequest,
    image: ImageRef,
    color: str,
    env: dict[str, str],
    mounts: list[MountSpec],
) -> Container:
    """Create (not start) the ``color`` container of ``request`` on its network."""
    deploy = request.deploy
    name = f"{request.name}-{color}"
    kwargs: dict[str, Any] = {}
    if deploy.resources is not None:
        if deploy.resources.cpus is not None:
            kwargs["nano_cpus"] = int(deploy.resources.cpus * 1e9)
        if deploy.resources.memory is not None:
            kwargs["mem_limit"] = _memory(deploy.resources.memory)
    policy = _restart_policy(deploy.restart)
    if policy is not None:
        kwargs["restart_policy"] = policy
    with docker_errors(f"create container {name}"):
        for stale in client.containers.list(
            all=True, ignore_removed=True, filters={"name": f"^{name}$"}
        ):
            stale.remove(force=True)
        return client.containers.create(
            image.image_id,
            name=name,
            environment=env,
            labels=request.labels("app", color=color, version=image.ref, image_id=image.image_id),
            network=network_name(request.name),
            mounts=[
                docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only)
                for m in mounts
            ],
            **kwargs,
        )


def published_endpoints(container: Container) -> tuple[str, ...]:
    """``host:port`` addresses the container publishes."""
    with docker_errors(f"inspect {container.name}"):
        container.reload()
    out: list[str] = []
    for bindings in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
        for binding in bindings or []:
            host = binding.get("HostIp") or "0.0.0.0"
            if ":" in host:  # the IPv6 twin of an IPv4 binding
                continue
            out.append(f"{'127.0.0.1' if host == '0.0.0.0' else host}:{binding['HostPort']}")
    return tuple(out)


def remove_deploy(client: docker.DockerClient, deploy_name: str, *, volumes: bool = False) -> None:
    """Remove every container and the network of ``deploy_name`` (and its named volumes if asked)."""
    with docker_errors(f"remove deploy {deploy_name}"):
        for container in client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"{LABEL_PREFIX}deploy={deploy_name}"}
        ):
            container.remove(force=True)
        for network in client.networks.list(names=[network_name(deploy_name)]):
            network.remove()
        if volumes:
            for volume in client.volumes.list(
                filters={"label": f"{LABEL_PREFIX}deploy={deploy_name}"}
            ):
                volume.remove(force=True)


def _stop(container: Container) -> None:
    with docker_errors(f"stop {container.name}"):
        container.stop(timeout=STOP_TIMEOUT)


def _remove(container: Container) -> None:
    with docker_errors(f"remove {container.name}"), contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


class DockerDeployer:
    """Single-host deploys (blue-green or recreate) behind the caddy proxy."""

    target = "docker"

    def deploy(
        self,
        client: docker.DockerClient,
        request: DeployRequest,
        image: ImageRef,
    ) -> Deployed:
        deploy = request.deploy
        ports = parse_ports(deploy.ports)
        mounts = parse_volumes(
            deploy.volumes,
            deploy_name=request.name,
            workdir=request.workdir,
            paths=request.host_paths,
        )
        check_bind_sources(mounts)
        env = resolve_env(deploy)

        network = ensure_network(client, request)
        ensure_volumes(client, request, mounts)
        proxy: Proxy | None = ensure_proxy(client, request, ports) if ports else None

        apps = app_containers(client, request.name)
        upstream = proxy.upstream() if proxy is not None else None
        live = next((c for c in apps if upstream in (c.name, container_ip(c, network))), None)
        if live is None:  # no proxy yet, or it points at an address no container has any more
            live = next((c for c in apps if c.status == "running"), None)
        for leftover in apps:  # not serving: remnants of an interrupted deploy
            if leftover is not live:
                _remove(leftover)
        color = (
            "green"
            if live is not None and live.labels.get(LABEL_PREFIX + "color") == "blue"
            else "blue"
        )

        if deploy.strategy == "recreate" and live is not None:
            _stop(live)
        new = create_app(client, request, image, color, env, mounts)
        try:
            with docker_errors(f"start {new.name}"):
                new.start()
            with network_probe(client, request, network, proxy) as probe:
                health_log = wait_healthy(
                    new,
                    deploy.health,
                    default_port=ports[0].container if ports else None,
                    probe=probe,
                    network=network,
                )
            if proxy is not None:
                # By address, not name: no lookup in Docker's embedded DNS on the request path.
                proxy.switch(ports, container_ip(new, network))
        except BaseException:
            _remove(new)
            if live is not None and deploy.strategy == "recreate":
                with docker_errors(f"restart the previous container {live.name}"):
                    live.start()
            elif live is None:
                # Nothing served before: leave nothing behind but named volumes.
                remove_deploy(client, request.name)
            raise

        drained = True
        if live is not None:
            if proxy is not None and deploy.strategy == "blue-green":
                drained = proxy.drain(upstream or str(live.name), request.drain_timeout)
            _stop(live)
            _remove(live)

        endpoints = published_endpoints(proxy.container) if proxy is not None else ()
        message = f"{new.name} serving {image.ref}"
        if not drained:
            message += f" (old container still had requests after {request.drain_timeout:.0f}s)"
        return Deployed(
            strategy=deploy.strategy,
            endpoints=endpoints,
            message=message,
            details={"container": str(new.name), "color": color, "health_log": health_log},
        )
