"""Parse the spec's ``ports`` and ``volumes`` strings into what the engine needs (pure functions).

Named volumes are scoped to the deploy like compose scopes them to a project: ``data:/var/lib/x`` in
deploy ``web`` is the engine volume ``web_data`` for every target (docker, compose, swarm), so data
survives every deploy and rollback, and switching targets keeps it. Bind mounts with a relative source
(``./conf:/etc/app``) are resolved against the checkout (``--workdir``).

When conveyor itself runs in a container (a Jenkins agent), a bind source is a path in *that*
container, while the engine resolves bind sources on its own host. :class:`HostPaths` (found by
:func:`conveyor.docker.deploy.placement.host_paths`) says where this container's mounts come from on the
deploy engine's host, and :func:`engine_source` translates a source under one of them (a bind: its host
source + the rest; a named volume: its ``Mountpoint`` + the rest; Docker API 1.41 has no volume
subpath). When the deploy engine is another engine (a DinD service, a remote host), a bind from the
workspace cannot reach it: :func:`engine_source` fails before anything is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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
    local: str = (
        ""  # binds: the source as this process sees it, when the engine's host path differs
    )


@dataclass(frozen=True)
class HostPaths:
    """How this process's paths map to the deploy engine's host (None: they are the same paths).

    ``roots``: (destination in conveyor's container, source on the engine's host), for each bind or
    volume mount of that container, when the deploy engine runs it. ``foreign``: paths the deploy engine
    cannot see at all (conveyor runs in a container of another engine): the checkout.
    """

    roots: tuple[tuple[str, str], ...] = ()
    foreign: tuple[str, ...] = ()
    engine: str = ""


def engine_source(path: str, paths: HostPaths | None, entry: str = "") -> str:
    """``path`` (a bind source here) as the deploy engine's host names it; DeployError when it cannot
    reach that engine. Paths under no mount are left as they are (the engine's host path)."""
    if paths is None:
        return path
    target = PurePosixPath(path)
    for workspace in paths.foreign:
        if target.is_relative_to(PurePosixPath(workspace)):
            raise DeployError(
                f"volume {entry or path!r}: the bind source {path} is in this container's workspace, "
                f"which the deploy engine ({paths.engine or 'another engine'}) cannot see",
                hint="copy the files into the image (COPY in the Dockerfile), or use a named volume",
            )
    best: tuple[PurePosixPath, str] | None = None
    for destination, source in paths.roots:
        root = PurePosixPath(destination)
        if target.is_relative_to(root) and (best is None or len(root.parts) > len(best[0].parts)):
            best = (root, source)
    if best is None:
        return path
    rest = target.relative_to(best[0])
    return str(PurePosixPath(best[1]) / rest) if rest.parts else best[1]


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


def parse_volume(
    text: str, *, deploy_name: str, workdir: Path, paths: HostPaths | None = None
) -> MountSpec:
    """One ``volumes`` entry. Sources starting with ``.``, ``/`` or ``~`` are bind mounts, their source
    translated to the deploy engine's host by :func:`engine_source`."""
    parts = text.split(":")
    source, target = parts[0], parts[1]
    read_only = len(parts) == 3 and parts[2] == "ro"
    if source.startswith(("/", ".", "~")):
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = workdir / path
        local = str(path.resolve())
        source = engine_source(local, paths, text)
        return MountSpec("bind", source, target, read_only, local="" if source == local else local)
    return MountSpec("volume", volume_name(deploy_name, source), target, read_only, source)


def parse_volumes(
    volumes: list[str], *, deploy_name: str, workdir: Path, paths: HostPaths | None = None
) -> list[MountSpec]:
    return [parse_volume(v, deploy_name=deploy_name, workdir=workdir, paths=paths) for v in volumes]


def check_bind_sources(mounts: list[MountSpec]) -> None:
    """Bind sources must exist: the engine would otherwise create an empty root-owned directory."""
    missing = [
        m.local or m.source
        for m in mounts
        if m.kind == "bind" and not Path(m.local or m.source).exists()
    ]
    if missing:
        raise DeployError(
            "bind mount source(s) do not exist: " + ", ".join(missing),
            hint="relative sources are resolved against --workdir (the checkout)",
        )
