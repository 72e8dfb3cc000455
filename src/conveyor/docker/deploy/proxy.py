"""The reverse proxy in front of a single-host deploy: caddy in a container on the deploy's network.

Layout for deploy ``web``::

    host :8080 ──> container web-proxy (caddy, image conveyor-proxy:caddy)  ─┐ network web-net
                          reverse_proxy <address of web-blue on web-net>:80 ─┤ (app containers publish
                                                               web-green     ─┘  nothing)

* The proxy owns the spec's published host ports; app containers only join ``<name>-net``. The upstream
  is the live container's address on that network, not its name, so no request waits on a lookup in
  Docker's embedded DNS; with a 10 s dial timeout (room for SYN retransmits) this removed the stalled
  dials that turned into 502s in ``bench/deploy`` under load. Each deploy re-reads the live address;
  should an app container restart on a new address, the next ``conveyor deploy`` finds the running
  container and re-points the proxy.
* Switching is a caddy config load: conveyor copies the new JSON config into the container
  (``/etc/caddy/caddy.json``) and runs ``caddy reload`` inside it with ``docker exec``. The admin API
  listens on ``localhost:2019`` *inside* the proxy container and is never published, so nothing on the
  host network can reconfigure the proxy, and it works the same against a remote ``DOCKER_HOST``.
* A reload is graceful: listeners are kept (no refused connections) and in-flight requests finish on
  the old upstream. Conveyor then drains: it polls caddy's ``/reverse_proxy/upstreams`` (in-flight
  request count per upstream) until the old container has none, and only then removes it.
* The image is built on first use ``FROM busybox:latest`` with the host's caddy binary (Debian package
  ``caddy``) and its shared libraries copied in; busybox's ``wget`` in it runs the HTTP health checks
  from inside the network.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from conveyor.docker.deploy.model import LABEL_PREFIX, DeployRequest
from conveyor.docker.deploy.mounts import PortMap
from conveyor.docker.engine import docker_errors
from conveyor.errors import DeployError

PROXY_IMAGE = "conveyor-proxy:caddy"
CONFIG_PATH = "/etc/caddy/caddy.json"
ADMIN = "localhost:2019"

_DOCKERFILE = """\
FROM busybox:latest
COPY rootfs/ /
ENV HOME=/data XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config
ENTRYPOINT ["/usr/bin/caddy"]
CMD ["run", "--config", "/etc/caddy/caddy.json"]
"""


def network_name(deploy_name: str) -> str:
    return f"{deploy_name}-net"


def proxy_name(deploy_name: str) -> str:
    return f"{deploy_name}-proxy"


def ports_label(ports: list[PortMap]) -> str:
    return ",".join(f"{p.host or ''}:{p.container}/{p.protocol}" for p in ports)


# ----------------------------------------------------------------------------------- config (pure)


def caddy_config(ports: list[PortMap], upstream_host: str | None) -> dict[str, Any]:
    """The caddy JSON config: one server per port, proxying to ``upstream_host:<container port>``.

    With no upstream yet (first deploy still starting) every server answers 503.
    """
    servers: dict[str, Any] = {}
    for port in ports:
        if port.protocol != "tcp":
            raise DeployError(
                f"the proxy forwards TCP (HTTP) only, not {port.protocol} port {port.container}"
            )
        if upstream_host is None:
            handler: dict[str, Any] = {
                "handler": "static_response",
                "status_code": 503,
                "body": "no version deployed yet\n",
            }
        else:
            handler = {
                "handler": "reverse_proxy",
                "upstreams": [{"dial": f"{upstream_host}:{port.container}"}],
                # A refused dial (e.g. during a recreate) is retried for a while instead of failing.
                "load_balancing": {"try_duration": "5s", "try_interval": "100ms"},
                # Long enough for the kernel's SYN retransmits (1 s, 3 s) when a small app's accept
                # backlog overflows in a burst; caddy's 3 s default turns those into 502s.
                "transport": {"protocol": "http", "dial_timeout": "10s"},
            }
        servers[f"port{port.container}"] = {
            "listen": [f":{port.container}"],
            "routes": [{"handle": [handler]}],
            "automatic_https": {"disable": True},
        }
    return {
        "admin": {"listen": ADMIN, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": servers}},
    }


def upstream_of(config: dict[str, Any]) -> str | None:
    """The upstream container name a config from :func:`caddy_config` proxies to."""
    for server in config.get("apps", {}).get("http", {}).get("servers", {}).values():
        for route in server.get("routes", []):
            for handler in route.get("handle", []):
                for upstream in handler.get("upstreams", []):
                    return str(upstream["dial"]).rsplit(":", 1)[0]
    return None


# ------------------------------------------------------------------------------------------- image


def _shared_libraries(binary: Path) -> list[Path]:
    try:
        out = subprocess.run(
            ["ldd", str(binary)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return []
    libs: list[Path] = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/") and Path(word).exists():
                libs.append(Path(word))
    return libs


def ensure_proxy_image(client: docker.DockerClient) -> str:
    """Build ``conveyor-proxy:caddy`` unless it exists; returns the tag."""
    with docker_errors("inspect the proxy image"):
        try:
            client.images.get(PROXY_IMAGE)
            return PROXY_IMAGE
        except docker.errors.ImageNotFound:
            pass
    caddy = shutil.which("caddy")
    if caddy is None:
        raise DeployError(
            f"the proxy image {PROXY_IMAGE} does not exist and caddy is not installed here to build it",
            hint="apt-get install caddy (Debian), or load a prebuilt conveyor-proxy:caddy image",
        )
    with docker_errors("check the busybox base image"):
        try:
            client.images.get("busybox:latest")
        except docker.errors.ImageNotFound:
            raise DeployError(
                "the proxy image builds FROM busybox:latest, which is not present",
                hint="run scripts/base-images.sh",
            ) from None
    binary = Path(caddy).resolve()
    with tempfile.TemporaryDirectory(prefix="conveyor-proxy-") as tmp:
        root = Path(tmp) / "rootfs"
        for path in [binary, *_shared_libraries(binary)]:
            dest = root / ("usr/bin/caddy" if path == binary else str(path).lstrip("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
        for folder in ("etc/caddy", "data", "config"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "Dockerfile").write_text(_DOCKERFILE)
        with docker_errors(f"build the proxy image {PROXY_IMAGE}"):
            client.images.build(path=tmp, tag=PROXY_IMAGE, rm=True, forcerm=True)
    return PROXY_IMAGE


# --------------------------------------------------------------------------------------- container


def ensure_network(client: docker.DockerClient, request: DeployRequest) -> str:
    """The deploy's user-defined bridge network (created once, kept between deploys)."""
    name = network_name(request.name)
    with docker_errors(f"create network {name}"):
        if not client.networks.list(names=[name]):
            client.networks.create(name, driver="bridge", labels=request.labels("network"))
    return name


def exec_in(container: Container, cmd: list[str], action: str) -> tuple[int, str]:
    with docker_errors(action):
        result = container.exec_run(cmd, demux=False)
    output = result.output.decode("utf-8", "replace") if result.output else ""
    return int(result.exit_code if result.exit_code is not None else -1), output


def _config_tar(config: dict[str, Any]) -> bytes:
    data = json.dumps(config, indent=2).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("caddy.json")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Proxy:
    """A running proxy container for one deploy."""

    container: Container

    @property
    def name(self) -> str:
        return str(self.container.name)

    def read_config(self) -> dict[str, Any]:
        code, out = exec_in(self.container, ["cat", CONFIG_PATH], f"read {self.name} config")
        if code != 0:
            raise DeployError(f"cannot read the proxy config in {self.name}: {out.strip()}")
        try:
            data = json.loads(out)
        except json.JSONDecodeError as exc:
            raise DeployError(f"the proxy config in {self.name} is not JSON: {exc}") from None
        return data if isinstance(data, dict) else {}

    def upstream(self) -> str | None:
        return upstream_of(self.read_config())

    def switch(self, ports: list[PortMap], upstream_host: str) -> None:
        """Point every server at ``upstream_host`` with a graceful caddy reload."""
        with docker_errors(f"copy the config into {self.name}"):
            self.container.put_archive(
                "/etc/caddy", _config_tar(caddy_config(ports, upstream_host))
            )
        code, out = exec_in(
            self.container,
            ["caddy", "reload", "--config", CONFIG_PATH, "--address", ADMIN],
            f"reload {self.name}",
        )
        if code != 0:
            raise DeployError(f"caddy in {self.name} refused the new config: {out.strip()[-2000:]}")

    def in_flight(self, upstream_host: str) -> int:
        """Requests caddy is currently proxying to ``upstream_host`` (any port)."""
        code, out = exec_in(
            self.container,
            ["wget", "-q", "-O", "-", f"http://{ADMIN}/reverse_proxy/upstreams"],
            f"ask {self.name} for upstream load",
        )
        if code != 0:
            return 0
        try:
            upstreams = json.loads(out)
        except json.JSONDecodeError:
            return 0
        return sum(
            int(u.get("num_requests", 0))
            for u in upstreams or []
            if str(u.get("address", "")).rsplit(":", 1)[0] == upstream_host
        )

    def drain(self, upstream_host: str, timeout: float) -> bool:
        """Wait until no request to ``upstream_host`` is in flight (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_flight(upstream_host) == 0:
                return True
            time.sleep(0.2)
        return False

    def probe(self, url: str, timeout: float) -> tuple[bool, str]:
        """GET ``url`` from inside the deploy network; (ok, wget's report)."""
        code, out = exec_in(
            self.container,
            # busybox's own `timeout`: static busybox wget crashes with -T
            ["timeout", str(max(1, int(timeout))), "wget", "-q", "-O", "/dev/null", url],
            f"probe {url}",
        )
        if code == 143:
            return False, f"no answer within {max(1, int(timeout))}s"
        return code == 0, out.strip() or ("ok" if code == 0 else f"wget exit {code}")


def find_proxy(client: docker.DockerClient, deploy_name: str) -> Container | None:
    with docker_errors(f"look up {proxy_name(deploy_name)}"):
        found = client.containers.list(
            all=True,
            ignore_removed=True,
            filters={"label": [f"{LABEL_PREFIX}deploy={deploy_name}", f"{LABEL_PREFIX}role=proxy"]},
        )
    return found[0] if found else None


def ensure_proxy(
    client: docker.DockerClient, request: DeployRequest, ports: list[PortMap]
) -> Proxy:
    """The running proxy for ``request``: reused when its ports match the spec, else (re)created.

    A new proxy starts answering 503 until the first version is switched in.
    """
    wanted = ports_label(ports)
    existing = find_proxy(client, request.name)
    if existing is not None:
        if existing.labels.get(LABEL_PREFIX + "ports") == wanted:
            if existing.status != "running":
                with docker_errors(f"start {existing.name}"):
                    existing.start()
            return Proxy(existing)
        with docker_errors(f"replace {existing.name} (ports changed)"):
            existing.remove(force=True)
    image = ensure_proxy_image(client)
    network = ensure_network(client, request)
    name = proxy_name(request.name)
    with docker_errors(f"create the proxy container {name}"):
        container = client.containers.create(
            image,
            name=name,
            labels=request.labels("proxy", ports=wanted),
            network=network,
            ports={f"{p.container}/tcp": p.host for p in ports},
            restart_policy={"Name": "unless-stopped"},
        )
    try:
        with docker_errors(f"start the proxy container {name}"):
            container.put_archive("/etc/caddy", _config_tar(caddy_config(ports, None)))
            container.start()
        proxy = Proxy(container)
        _wait_admin(proxy)
    except BaseException:
        with docker_errors(f"remove {name}"):
            container.remove(force=True)
        raise
    return proxy


def _wait_admin(proxy: Proxy, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        code, last = exec_in(
            proxy.container,
            ["wget", "-q", "-O", "/dev/null", f"http://{ADMIN}/config/"],
            "ping caddy",
        )
        if code == 0:
            return
        time.sleep(0.1)
    with docker_errors(f"read {proxy.name} logs"):
        logs = proxy.container.logs(tail=30).decode("utf-8", "replace")
    raise DeployError(f"caddy in {proxy.name} did not start: {last.strip()}\n{logs}")
