"""``target: swarm``: a Swarm service (``docker service create/update`` through the SDK).

The service is named after the deploy and declares everything each time (image, env, mounts, labels,
replicas, placement constraints, resources, restart policy, healthcheck), so an update converges to the
spec. Updates are rolling, one task at a time, **start-first** (the new task must be running and healthy
before an old one stops) with ``failure_action: rollback``: a new version whose healthcheck never passes
makes Swarm restore the previous spec by itself, and the deploy fails with the tasks' errors.

Ports: ``CONTAINER`` alone is published in **host mode** without a fixed host port (Swarm picks one per
task, so start-first never collides on a single node; the addresses are reported as endpoints);
``HOST:CONTAINER`` is published through the ingress routing mesh, the usual multi-node setup. (The mesh
needs IPVS; where the kernel lacks it — as on conveyor's CI machines — use container-only ports or a
proxy.)

The HTTP health check runs inside the task's container (``wget`` or ``curl`` from the image), as Swarm
healthchecks do. Secrets are passed as task environment resolved at deploy time (Swarm stores service
specs, including env, in its raft log; use Swarm secrets for stricter needs).
"""

from __future__ import annotations

import math
import time
from typing import Any

import docker
import docker.errors
import docker.types
from docker.models.services import Service

from conveyor.docker.deploy.model import Deployed, DeployRequest, ImageRef, resolve_env
from conveyor.docker.deploy.mounts import check_bind_sources, parse_ports, parse_volumes
from conveyor.docker.engine import docker_errors
from conveyor.errors import DeployError, HealthCheckError
from conveyor.spec.model import Deploy, Health, parse_duration

_NS = 1_000_000_000
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(text: str) -> int:
    """``"256m"`` -> 268435456."""
    unit = text[-1].lower() if text[-1].isalpha() else ""
    return int(text[:-1] if unit else text) * _UNITS[unit]


def healthcheck(health: Health, default_port: int | None) -> docker.types.Healthcheck:
    interval = max(parse_duration(health.interval), 0.5)
    timeout = parse_duration(health.timeout)
    if health.cmd is not None:
        test: list[str] = ["CMD", *health.cmd]
    else:
        port = health.port or default_port
        if port is None:
            raise DeployError("an HTTP health check needs health.port or a port mapping")
        url = f"http://127.0.0.1:{port}{health.http}"
        test = ["CMD-SHELL", f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"]
    return docker.types.Healthcheck(
        test=test,
        interval=int(interval * _NS),
        timeout=int(max(1.0, min(interval * 2, timeout)) * _NS),
        retries=max(1, math.ceil(timeout / interval)),
        start_period=0,
    )


def _restart(restart: str) -> docker.types.RestartPolicy:
    condition = {"no": "none", "on-failure": "on-failure"}.get(restart, "any")
    return docker.types.RestartPolicy(condition=condition, delay=int(1 * _NS), max_attempts=0)


def service_kwargs(request: DeployRequest, image: ImageRef, env: dict[str, str]) -> dict[str, Any]:
    """The full service definition for ``request`` (create and update take the same)."""
    deploy: Deploy = request.deploy
    ports = parse_ports(deploy.ports)
    mounts = parse_volumes(
        deploy.volumes, deploy_name=request.name, workdir=request.workdir, paths=request.host_paths
    )
    check_bind_sources(mounts)
    health_timeout = parse_duration(deploy.health.timeout) if deploy.health else 10.0
    monitor = int((health_timeout + 5) * _NS)
    kwargs: dict[str, Any] = {
        "image": image.ref,
        "name": request.name,
        "env": [f"{k}={v}" for k, v in env.items()],
        "labels": request.labels("service", version=image.ref),
        "container_labels": request.labels("app", version=image.ref, image_id=image.image_id),
        "mode": docker.types.ServiceMode("replicated", replicas=deploy.replicas),
        "mounts": [
            docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only)
            for m in mounts
        ],
        "restart_policy": _restart(deploy.restart),
        "update_config": docker.types.UpdateConfig(
            parallelism=1,
            delay=0,
            failure_action="rollback",
            monitor=monitor,
            max_failure_ratio=0,
            order="start-first",
        ),
        "rollback_config": docker.types.RollbackConfig(
            parallelism=1, delay=0, failure_action="pause", monitor=monitor, order="start-first"
        ),
        "endpoint_spec": docker.types.EndpointSpec(
            mode="vip",
            ports=[
                {"Protocol": p.protocol, "TargetPort": p.container, "PublishMode": "host"}
                if p.host is None
                else {
                    "Protocol": p.protocol,
                    "TargetPort": p.container,
                    "PublishedPort": p.host,
                    "PublishMode": "ingress",
                }
                for p in ports
            ],
        ),
    }
    if deploy.placement:
        kwargs["constraints"] = list(deploy.placement)
    if deploy.health is not None:
        kwargs["healthcheck"] = healthcheck(deploy.health, ports[0].container if ports else None)
    if deploy.resources is not None:
        kwargs["resources"] = docker.types.Resources(
            cpu_limit=int(deploy.resources.cpus * _NS) if deploy.resources.cpus else None,
            mem_limit=memory_bytes(deploy.resources.memory) if deploy.resources.memory else None,
        )
    return kwargs


def find_service(client: docker.DockerClient, name: str) -> Service | None:
    with docker_errors(f"look up service {name}"):
        try:
            return client.services.get(name)
        except docker.errors.NotFound:
            return None


def _task_report(service: Service) -> str:
    with docker_errors(f"list tasks of {service.name}"):
        tasks = service.tasks()
    lines = []
    for task in sorted(tasks, key=lambda t: str(t.get("CreatedAt", ""))):
        status = task.get("Status", {})
        image = task.get("Spec", {}).get("ContainerSpec", {}).get("Image", "")
        err = status.get("Err") or status.get("Message") or ""
        lines.append(
            f"{str(status.get('Timestamp', ''))[:19]} task {str(task.get('ID', ''))[:12]} {image}: "
            f"{status.get('State')} (desired {task.get('DesiredState')}) {err}".rstrip()
        )
    return "\n".join(lines)


def _converged(service: Service, image: str, replicas: int) -> bool:
    """``replicas`` tasks of ``image`` running (healthy: Swarm only reports a task running once its
    healthcheck passes) and no other task wanted."""
    tasks = service.tasks(filters={"desired-state": "running"})
    running = [
        t
        for t in tasks
        if t.get("Status", {}).get("State") == "running"
        and t.get("Spec", {}).get("ContainerSpec", {}).get("Image") == image
    ]
    return len(running) == replicas and len(tasks) == replicas


def task_endpoints(service: Service) -> tuple[str, ...]:
    """``127.0.0.1:PORT`` for every host-mode port of running tasks, ingress ports of the service."""
    out: list[str] = []
    with docker_errors(f"list tasks of {service.name}"):
        service.reload()
        for task in service.tasks(filters={"desired-state": "running"}):
            for port in task.get("Status", {}).get("PortStatus", {}).get("Ports", []) or []:
                if port.get("PublishedPort"):
                    out.append(f"127.0.0.1:{port['PublishedPort']}")
    for port in service.attrs.get("Endpoint", {}).get("Ports", []) or []:
        if port.get("PublishMode") == "ingress" and port.get("PublishedPort"):
            out.append(f"127.0.0.1:{port['PublishedPort']}")
    return tuple(sorted(set(out)))


def wait_converged(
    client: docker.DockerClient,
    service: Service,
    image: str,
    replicas: int,
    timeout: float,
    before: Any,
) -> None:
    """Wait for a create/update to finish; HealthCheckError when Swarm rolled back or gave up."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while time.monotonic() < deadline:
        with docker_errors(f"inspect service {service.name}"):
            service.reload()
            status = service.attrs.get("UpdateStatus")
            changed = status is not None and status != before
            state = status.get("State") if changed and status else None
            if state in ("rollback_started", "rollback_completed", "rollback_paused", "paused"):
                if state == "rollback_started":
                    time.sleep(0.5)
                    continue
                raise HealthCheckError(
                    f"swarm service {service.name}: update to {image} failed and was "
                    f"{'rolled back' if state == 'rollback_completed' else state}: "
                    f"{status.get('Message', '') if status else ''}",
                    health_log=_task_report(service),
                )
            settled = changed or time.monotonic() - start > 2
            if state in (None, "completed") and settled and _converged(service, image, replicas):
                return
        time.sleep(0.5)
    raise HealthCheckError(
        f"swarm service {service.name} did not converge on {image} within {timeout:.0f}s",
        health_log=_task_report(service),
    )


class SwarmDeployer:
    """Swarm services with start-first rolling updates and automatic rollback."""

    target = "swarm"

    def deploy(
        self,
        client: docker.DockerClient,
        request: DeployRequest,
        image: ImageRef,
    ) -> Deployed:
        deploy = request.deploy
        with docker_errors("check the swarm"):
            swarm_state = client.info().get("Swarm", {}).get("LocalNodeState")
        if swarm_state != "active":
            raise DeployError(
                "target swarm needs this engine to be a swarm manager (it is not in a swarm)",
                hint="docker swarm init --advertise-addr <address>",
            )
        env = resolve_env(deploy)
        kwargs = service_kwargs(request, image, env)
        health_timeout = parse_duration(deploy.health.timeout) if deploy.health else 10.0
        # each replica: start, become healthy within the timeout, then the monitor window
        timeout = deploy.replicas * (2 * health_timeout + 10) + 30
        service = find_service(client, request.name)
        if service is None:
            with docker_errors(f"create service {request.name}"):
                created = client.services.create(**kwargs)
            service = created
            try:
                wait_converged(client, service, image.ref, deploy.replicas, timeout, None)
            except BaseException:
                with docker_errors(f"remove service {request.name}"):
                    service.remove()
                raise
        else:
            before = service.attrs.get("UpdateStatus")
            with docker_errors(f"update service {request.name}"):
                service.update(**kwargs)
            wait_converged(client, service, image.ref, deploy.replicas, timeout, before)
        return Deployed(
            strategy="rolling",
            endpoints=task_endpoints(service),
            message=f"swarm service {request.name}: {deploy.replicas} task(s) running {image.ref}",
            details={"service": request.name, "tasks": _task_report(service)},
        )


def remove_service(client: docker.DockerClient, name: str) -> None:
    """Remove the service ``name`` if it exists."""
    service = find_service(client, name)
    if service is not None:
        with docker_errors(f"remove service {name}"):
            service.remove()
