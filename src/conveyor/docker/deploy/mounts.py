"""Parse the spec's ``ports`` and ``volumes`` strings into what the engine needs (pure functions).

Named volumes are scoped to the deploy like compose scopes them to a project: ``data:/var/lib/x`` in
deploy ``web`` is the engine volume ``web_data`` for every target (docker, compose, swarm), so data
survives every deploy and rollback, and switching targets keeps it. Bind mounts with a relative source
(``./conf:/etc/app``) are resolved against the checkout (``--workdir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conveyor.errors import DeployError


@dataclass(frozen=True)
class PortMap:
    """``HOST:CONTAINER`` (``host`` None when only the container port is given)."""

    host: int | None
    container: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class MountSpec:
    """One volume line: a named volume (``source`` is the engine volume name) or a bind mount."""

    kind: Literal["volume", "bind"]
    source: str
    target: str
    read_only: bool
    volume: str = ""  # named volumes: the name as written in the spec (compose's top-level key)


def parse_port(text: str) -> PortMap:
    """``"8080:80"`` -> PortMap(8080, 80); ``"80"`` -> PortMap(None, 80); ``/udp`` suffix kept."""
    body, _, proto = text.partition("/")
    host, sep, container = body.rpartition(":")
    return PortMap(int(host) if sep else None, int(container), proto or "tcp")


def parse_ports(ports: list[str]) -> list[PortMap]:
    parsed = [parse_port(p) for p in ports]
    seen: set[tuple[int, str]] = set()
    for port in parsed:
        if port.host is not None:
            key = (port.host, port.protocol)
            if key in seen:
                raise DeployError(f"host port {port.host}/{port.protocol} is published twice")
            seen.add(key)
    return parsed


def volume_name(deploy_name: str, volume: str) -> str:
    """The engine name of the spec's named volume ``volume`` in deploy ``deploy_name``."""
    return f"{deploy_name}_{volume}"


def parse_volume(text: str, *, deploy_name: str, workdir: Path) -> MountSpec:
    """One ``volumes`` entry. Sources starting with ``.``, ``/`` or ``~`` are bind mounts."""
    parts = text.split(":")
    source, target = parts[0], parts[1]
    read_only = len(parts) == 3 and parts[2] == "ro"
    if source.startswith(("/", ".", "~")):
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = workdir / path
        return MountSpec("bind", str(path.resolve()), target, read_only)
    return MountSpec("volume", volume_name(deploy_name, source), target, read_only, source)


def parse_volumes(volumes: list[str], *, deploy_name: str, workdir: Path) -> list[MountSpec]:
    return [parse_volume(v, deploy_name=deploy_name, workdir=workdir) for v in volumes]


def check_bind_sources(mounts: list[MountSpec]) -> None:
    """Bind sources must exist: the engine would otherwise create an empty root-owned directory."""
    missing = [m.source for m in mounts if m.kind == "bind" and not Path(m.source).exists()]
    if missing:
        raise DeployError(
            "bind mount source(s) do not exist: " + ", ".join(missing),
            hint="relative sources are resolved against --workdir (the checkout)",
        )
