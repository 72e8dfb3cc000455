"""The health gate: a new container must prove it is ready before it gets traffic.

``health.http`` is a GET of ``http://<container>:<port><path>`` from inside the deploy's network (from
the proxy container, or from a short-lived probe container when there is no proxy), so it checks exactly
the path the proxy will use. ``health.cmd`` is exec'd in the new container; exit 0 means healthy.
Without ``health`` the container only has to keep running for a moment. A container that exits fails the
gate at once. On failure :class:`HealthCheckError` carries the attempts and the container's last log lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import docker
from docker.models.containers import Container

from conveyor.docker.deploy.model import DeployRequest
from conveyor.docker.deploy.proxy import Proxy, ensure_proxy_image, exec_in
from conveyor.docker.engine import docker_errors
from conveyor.errors import HealthCheckError
from conveyor.spec.model import Health, parse_duration

Probe = Callable[[str, float], tuple[bool, str]]

SETTLE_SECONDS = 1.0  # without a health check: how long a new container must stay up


def _state(container: Container) -> str:
    with docker_errors(f"inspect {container.name}"):
        container.reload()
    return str(container.status)


def _logs(container: Container) -> str:
    with docker_errors(f"read {container.name} logs"):
        return str(container.logs(tail=20).decode("utf-8", "replace"))


def container_ip(container: Container, network: str) -> str:
    """The container's address on ``network`` (probes use it: static busybox wget cannot resolve names)."""
    with docker_errors(f"inspect {container.name}"):
        container.reload()
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    address = str((networks.get(network) or {}).get("IPAddress") or "")
    return address or str(container.name)


def wait_healthy(
    container: Container,
    health: Health | None,
    *,
    default_port: int | None,
    probe: Probe | None,
    network: str | None = None,
) -> str:
    """Block until ``container`` is healthy; returns the health log. Raises HealthCheckError."""
    name = str(container.name)
    log: list[str] = []

    def note(text: str) -> None:
        log.append(f"{datetime.now(UTC):%H:%M:%S} {text}")

    def fail(why: str) -> HealthCheckError:
        logs = _logs(container)
        text = "\n".join(log) + ("\n--- container log (last lines) ---\n" + logs if logs else "")
        return HealthCheckError(f"{name} never became healthy: {why}", health_log=text)

    if health is None:
        time.sleep(SETTLE_SECONDS)
        state = _state(container)
        note(f"no health check; container is {state}")
        if state != "running":
            raise fail(f"container is {state}")
        return "\n".join(log)

    timeout = parse_duration(health.timeout)
    interval = parse_duration(health.interval)
    check: Callable[[], tuple[bool, str]]
    if health.http is not None:
        port = health.port or default_port
        if port is None or probe is None:
            raise HealthCheckError(
                f"{name}: an HTTP health check needs a port (health.port or the first of ports)"
            )
        host = container_ip(container, network) if network else name
        url = f"http://{host}:{port}{health.http}"
        what = f"GET {url} ({name})"
        run_probe = probe

        def check() -> tuple[bool, str]:
            return run_probe(url, min(interval * 2 + 1, 5.0))
    else:
        cmd = list(health.cmd or [])
        what = "exec " + " ".join(cmd)

        def check() -> tuple[bool, str]:
            code, out = exec_in(container, cmd, f"run the health command in {name}")
            return code == 0, (out.strip()[-300:] or f"exit {code}")

    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        state = _state(container)
        if state not in ("running", "created"):
            note(f"attempt {attempt}: container is {state}")
            raise fail(f"container is {state}")
        ok, detail = check()
        note(f"attempt {attempt}: {what}: {'healthy' if ok else detail}")
        if ok:
            return "\n".join(log)
        if time.monotonic() + interval > deadline:
            raise fail(f"no healthy answer within {health.timeout} ({attempt} attempts)")
        time.sleep(interval)


@contextmanager
def network_probe(
    client: docker.DockerClient, request: DeployRequest, network: str, proxy: Proxy | None
) -> Iterator[Probe]:
    """A way to GET URLs inside ``network``: the proxy when there is one, else a probe container."""
    if proxy is not None:
        yield proxy.probe
        return
    image = ensure_proxy_image(client)
    name = f"{request.name}-probe"
    with docker_errors(f"start the probe container {name}"):
        for old in client.containers.list(
            all=True, ignore_removed=True, filters={"name": f"^{name}$"}
        ):
            old.remove(force=True)
        container = client.containers.run(
            image,
            entrypoint=["sleep", "3600"],
            command=[],
            name=name,
            network=network,
            labels=request.labels("probe"),
            detach=True,
        )
    try:
        yield Proxy(container).probe
    finally:
        with docker_errors(f"remove {name}"):
            container.remove(force=True)
