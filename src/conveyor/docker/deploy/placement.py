"""Where conveyor runs relative to the deploy engine: the I/O behind :class:`~conveyor.docker.deploy.
mounts.HostPaths`.

Outside a container (``conveyor run`` or ``conveyor deploy`` on a host) there is nothing to translate:
:func:`host_paths` returns None. Inside one (a Jenkins agent, docker-workflow style), conveyor's own
container id comes from ``/proc/self/mountinfo`` (:mod:`conveyor.docker.mountinfo`)
and the deploy engine is asked for it: when that engine runs the container, its ``Mounts`` give each
mount's source on the engine's host (``Source`` of a bind; of a named volume its ``Mountpoint``, which
``docker inspect`` reports as ``Source`` too); when it does not (a DinD service, a remote engine), the
checkout is a path that engine can never see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors

from conveyor.docker.deploy.mounts import HostPaths
from conveyor.docker.engine import docker_errors
from conveyor.docker.mountinfo import MOUNTINFO, read_own_container_id


def roots_of(mounts: list[dict[str, Any]], mountpoint: Any = None) -> tuple[tuple[str, str], ...]:
    """(destination, source on the engine's host) for each bind and volume of ``docker inspect``'s
    ``Mounts``; ``mountpoint(name)`` fills a volume's missing ``Source`` (``docker volume inspect``)."""
    roots: list[tuple[str, str]] = []
    for mount in mounts:
        kind, source = mount.get("Type"), str(mount.get("Source") or "")
        if kind == "volume" and not source and mountpoint is not None and mount.get("Name"):
            source = str(mountpoint(str(mount["Name"])))
        if kind in ("bind", "volume") and source and mount.get("Destination"):
            roots.append((str(mount["Destination"]), source))
    return tuple(roots)


def host_paths(
    client: Any, workdir: Path, *, engine: str = "", mountinfo_path: Path = MOUNTINFO
) -> HostPaths | None:
    """How bind sources of this process reach ``client``'s engine (None: outside a container)."""
    cid = read_own_container_id(mountinfo_path)
    if cid is None:
        return None
    with docker_errors(f"inspect conveyor's own container {cid[:12]}"):
        try:
            attrs = client.api.inspect_container(cid)
        except docker.errors.NotFound:
            return HostPaths(foreign=(str(workdir),), engine=engine)

        def mountpoint(name: str) -> str:
            return str(client.api.inspect_volume(name).get("Mountpoint") or "")

        return HostPaths(roots=roots_of(list(attrs.get("Mounts") or ()), mountpoint), engine=engine)
