"""``target: compose``: the app plus its ``services`` (a database, say) as one compose project.

:func:`render_compose` (pure) writes the compose file: the app service ``app`` with the image, ports,
env, volumes, restart policy, resources, labels and a healthcheck; every ``services`` entry beside it;
named volumes declared at the top level. The app ``depends_on`` its extras (``service_healthy`` when they
have a health check). Secrets appear only as ``${VAR}`` references, resolved by compose from the
environment at ``up`` time, so their values never land in the file.

The last applied file is kept on the deploy's engine, in its history volume (``compose.yml``, see
:mod:`conveyor.docker.history`), so a deploy or rollback from any agent finds the previous one; each
run writes a working copy to a temporary directory. The project name is the deploy name (so named volume
``data`` is the engine volume ``<name>_data``, as for the docker target). It is applied with ``docker
compose`` (the plugin) when the CLI has it, else Debian's ``docker-compose`` (1.29, ``apt-get install
docker-compose``), pointed at the deploy's engine (``DOCKER_HOST``/TLS variables of ``request.engine``).
After ``up -d`` conveyor waits for the app container's healthcheck; if it never turns healthy, the
previous file is brought up again, and the deploy fails with the health log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import yaml
from docker.models.containers import Container

from conveyor.docker.deploy.model import (
    LABEL_PREFIX,
    Deployed,
    DeployRequest,
    ImageRef,
    resolve_env,
)
from conveyor.docker.deploy.mounts import check_bind_sources, parse_port, parse_volumes
from conveyor.docker.engine import docker_errors
from conveyor.docker.history import DeployHistory
from conveyor.errors import DeployError, HealthCheckError
from conveyor.spec.model import ComposeService, Health, parse_duration

APP_SERVICE = "app"


def _healthcheck(health: Health, default_port: int | None) -> dict[str, Any]:
    interval = parse_duration(health.interval)
    timeout = parse_duration(health.timeout)
    if health.cmd is not None:
        test: list[str] = ["CMD", *health.cmd]
    else:
        port = health.port or default_port
        if port is None:
            raise DeployError("an HTTP health check needs health.port or a port mapping")
        url = f"http://127.0.0.1:{port}{health.http}"
        # Runs inside the container: wget (busybox, Debian) or curl, whichever the image has.
        test = ["CMD-SHELL", f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"]
    return {
        "test": test,
        "interval": f"{max(interval, 0.5)}s",
        "timeout": f"{max(min(interval * 2, timeout), 1.0)}s",
        "retries": max(1, int(timeout / max(interval, 0.5))),
        "start_period": "0s",
    }


def _service_volumes(lines: list[str], request: DeployRequest, named: set[str]) -> list[str]:
    out: list[str] = []
    for mount in parse_volumes(
        lines, deploy_name=request.name, workdir=request.workdir, paths=request.host_paths
    ):
        source = mount.volume if mount.kind == "volume" else mount.source
        if mount.kind == "volume":
            named.add(mount.volume)
        out.append(f"{source}:{mount.target}" + (":ro" if mount.read_only else ""))
    return out


def _extra(service: ComposeService, request: DeployRequest, named: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": service.image,
        "restart": request.deploy.restart,
        "labels": request.labels("service", service=service.name),
    }
    # literal values, as the app's (compose would interpolate a `$`); a secret is the deploy's
    # variable bound to the same credential, which the compose process's environment holds
    env = {k: v.replace("$", "$$") for k, v in service.env.items()}
    by_credential = {credential: var for var, credential in request.deploy.secrets.items()}
    env.update({var: "${" + by_credential[c] + "}" for var, c in service.secrets.items()})
    if env:
        body["environment"] = env
    if service.volumes:
        body["volumes"] = _service_volumes(service.volumes, request, named)
    if service.health is not None:
        body["healthcheck"] = _healthcheck(service.health, None)
    return body


def render_compose(request: DeployRequest, image: ImageRef) -> dict[str, Any]:
    """The compose document for ``request`` running ``image`` (pure; secrets as ``${VAR}``)."""
    deploy = request.deploy
    named: set[str] = set()
    ports = [parse_port(p) for p in deploy.ports]
    env: dict[str, str] = {k: v.replace("$", "$$") for k, v in deploy.env.items()}
    env.update({var: "${" + var + "}" for var in deploy.secrets})
    app: dict[str, Any] = {
        "image": image.ref,
        "restart": deploy.restart,
        "labels": request.labels("app", version=image.ref, image_id=image.image_id),
    }
    if env:
        app["environment"] = env
    if ports:
        app["ports"] = [
            (f"{p.host}:{p.container}" if p.host else str(p.container)) + f"/{p.protocol}"
            for p in ports
        ]
    if deploy.volumes:
        app["volumes"] = _service_volumes(deploy.volumes, request, named)
    if deploy.health is not None:
        app["healthcheck"] = _healthcheck(deploy.health, ports[0].container if ports else None)
    if deploy.resources is not None:
        if deploy.resources.cpus is not None:
            app["cpus"] = deploy.resources.cpus
        if deploy.resources.memory is not None:
            app["mem_limit"] = deploy.resources.memory.lower()
    services: dict[str, Any] = {}
    for extra in deploy.services:
        if extra.name == APP_SERVICE:
            raise DeployError(f"compose service name {APP_SERVICE!r} is reserved for the app")
        services[extra.name] = _extra(extra, request, named)
    if deploy.services:
        app["depends_on"] = {
            s.name: {"condition": "service_healthy" if s.health else "service_started"}
            for s in deploy.services
        }
    doc: dict[str, Any] = {"version": "2.4", "services": {APP_SERVICE: app, **services}}
    if named:
        doc["volumes"] = {v: {"labels": request.labels("volume")} for v in sorted(named)}
    return doc


def compose_command() -> list[str]:
    """``docker compose`` when the plugin is installed, else ``docker-compose``."""
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run(
            [docker_cli, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker_cli, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise DeployError(
        "neither `docker compose` nor `docker-compose` is installed",
        hint="apt-get install docker-compose (Debian) or install the compose plugin",
    )


COMPOSE_FILE = "compose.yml"  # in the deploy's history volume
HEADER = "# written by conveyor deploy; do not edit (rewritten on every deploy)\n"


@contextmanager
def working_file(text: str) -> Iterator[Path]:
    """``text`` in a temporary ``docker-compose.yml`` for one compose run."""
    with tempfile.TemporaryDirectory(prefix="conveyor-compose-") as tmp:
        path = Path(tmp) / "docker-compose.yml"
        path.write_text(text)
        yield path


def compose_environment(request: DeployRequest, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment, pointed at the deploy's engine, plus ``extra`` (secrets)."""
    env = dict(os.environ)
    for key, value in request.engine.environment().items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env.update(extra)
    return env


def run_compose(
    request: DeployRequest, text: str, *args: str, env: dict[str, str] | None = None
) -> str:
    """Run compose with the file ``text`` for this deploy's project; DeployError with its output on
    failure."""
    with working_file(text) as file:
        cmd = [*compose_command(), "-p", request.name, "-f", str(file), *args]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            env=compose_environment(request, env or {}),
            cwd=str(request.workdir),
        )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-3000:]
        raise DeployError(f"compose {' '.join(args)} for {request.name} failed:\n{tail}")
    return proc.stdout + proc.stderr


def project_containers(client: docker.DockerClient, project: str, service: str) -> list[Container]:
    with docker_errors(f"list compose containers of {project}"):
        return list(
            client.containers.list(
                all=True,
                ignore_removed=True,
                filters={
                    "label": [
                        f"com.docker.compose.project={project}",
                        f"com.docker.compose.service={service}",
                    ]
                },
            )
        )


def _wait_app(client: docker.DockerClient, request: DeployRequest, image: ImageRef) -> str:
    """Wait for the app container of ``image`` to be healthy (or running, without a healthcheck)."""
    health = request.deploy.health
    timeout = parse_duration(health.timeout) + 15 if health else 10.0
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        containers = [
            c
            for c in project_containers(client, request.name, APP_SERVICE)
            if c.labels.get(LABEL_PREFIX + "image_id") == image.image_id
        ]
        if containers:
            state = containers[0].attrs.get("State", {})
            last = state
            status = (state.get("Health") or {}).get("Status")
            if state.get("Status") in ("exited", "dead"):
                break
            if status == "healthy" or (health is None and state.get("Status") == "running"):
                return f"{containers[0].name} {status or state.get('Status')}"
            if status == "unhealthy":
                break
        time.sleep(0.5)
    entries = (last.get("Health") or {}).get("Log") or []
    log = "\n".join(
        f"{e.get('Start', '')[:19]} exit {e.get('ExitCode')}: {str(e.get('Output', '')).strip()[-300:]}"
        for e in entries
    )
    raise HealthCheckError(
        f"compose app of {request.name} never became healthy (state {last.get('Status', 'absent')})",
        health_log=log,
    )


class ComposeDeployer:
    """Multi-container deploys with compose."""

    target = "compose"

    def deploy(
        self,
        client: docker.DockerClient,
        request: DeployRequest,
        image: ImageRef,
    ) -> Deployed:
        deploy = request.deploy
        mounts = parse_volumes(
            deploy.volumes,
            deploy_name=request.name,
            workdir=request.workdir,
            paths=request.host_paths,
        )
        for extra in deploy.services:
            mounts += parse_volumes(
                extra.volumes,
                deploy_name=request.name,
                workdir=request.workdir,
                paths=request.host_paths,
            )
        check_bind_sources(mounts)
        secrets = {k: v for k, v in resolve_env(deploy).items() if k in deploy.secrets}

        store = DeployHistory(client, request.name, labels=request.labels("history"))
        previous = store.read_file(COMPOSE_FILE)
        text = HEADER + yaml.safe_dump(render_compose(request, image), sort_keys=False)
        try:
            run_compose(request, text, "up", "-d", "--remove-orphans", env=secrets)
            health_log = _wait_app(client, request, image)
        except DeployError:
            if previous is not None:
                run_compose(request, previous.decode(), "up", "-d", "--remove-orphans", env=secrets)
            else:
                run_compose(request, text, "down", "--remove-orphans")
            raise
        store.write_file(COMPOSE_FILE, text.encode())
        app = project_containers(client, request.name, APP_SERVICE)
        return Deployed(
            strategy="recreate",
            endpoints=tuple(
                f"127.0.0.1:{parse_port(p).host}" for p in deploy.ports if parse_port(p).host
            ),
            message=f"compose project {request.name} serving {image.ref}",
            details={
                "compose_file": f"{COMPOSE_FILE} in volume {request.name}-history",
                "container": str(app[0].name) if app else "",
                "health_log": health_log,
            },
        )


def remove_project(
    client: docker.DockerClient, request: DeployRequest, *, volumes: bool = False
) -> None:
    """``compose down`` for the deploy (with ``-v`` when asked), if it was ever applied."""
    text = DeployHistory(client, request.name).read_file(COMPOSE_FILE)
    if text is not None:
        run_compose(
            request, text.decode(), "down", "--remove-orphans", *(["-v"] if volumes else [])
        )
