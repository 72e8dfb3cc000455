"""How the checkout reaches stage containers when the executor itself runs in a container.

On a laptop, ``conveyor run`` bind-mounts the checkout (``-v DIR:/workspace``): the path exists on the
machine running the engine. In a Jenkins build the executor runs *inside* the agent container that
docker-workflow started, and the workspace path (``/var/jenkins_home/workspace/job``) exists only in
the containers' mount namespaces, not on the engine's host: ``-v $WORKSPACE:...`` would name a
directory that does not exist there (docker-workflow itself solves this with ``--volumes-from`` of its
own container, found in ``/proc/self/mountinfo``: ``DockerClient.java:352-375``).

conveyor does the same, more narrowly: it finds its own container id in ``/proc/self/mountinfo``
(:mod:`conveyor.docker.mountinfo`), asks the engine for that
container's mounts, and gives a stage container exactly the mount that holds the workspace (a named
volume or the host path behind a bind), at the same path. ``--volumes-from`` would also hand over the
Docker socket and every other mount of the agent to stages that must not have them.

:func:`mount_for` is pure over its inputs; :func:`find_placement` does the I/O (reads mountinfo,
inspects the container).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import docker.errors
import requests.exceptions

from conveyor.docker.mountinfo import MOUNTINFO, read_own_container_id
from conveyor.errors import RunnerError


@dataclass(frozen=True)
class SharedMount:
    """A mount of the executor's container that another container can get too."""

    kind: str  # volume | bind
    source: str  # volume name, or the path on the engine's host
    destination: str  # where it is mounted (in the executor's container, and in the stage's)
    read_only: bool = False

    def argv(self) -> list[str]:
        """``--mount ...`` for ``docker run`` (no shell, no splitting: one argument)."""
        spec = f"type={self.kind},source={self.source},destination={self.destination}"
        if self.read_only:
            spec += ",readonly"
        return ["--mount", spec]


def mount_for(path: str, mounts: list[dict[str, Any]]) -> SharedMount | None:
    """The mount (from ``docker inspect``'s ``Mounts``) holding ``path``: the deepest one."""
    target = PurePosixPath(path)
    best: dict[str, Any] | None = None
    for mount in mounts:
        destination = PurePosixPath(str(mount.get("Destination", "/")))
        if mount.get("Type") not in ("volume", "bind") or not target.is_relative_to(destination):
            continue
        if best is None or len(destination.parts) > len(PurePosixPath(best["Destination"]).parts):
            best = mount
    if best is None:
        return None
    kind = str(best["Type"])
    source = str(best["Name"] if kind == "volume" else best["Source"])
    return SharedMount(kind, source, str(best["Destination"]), read_only=not best.get("RW", True))


@dataclass(frozen=True)
class Placement:
    """Where the executor runs relative to the engine it drives."""

    container: str | None  # its own container id, when the engine runs it
    mounts: tuple[dict[str, Any], ...] = ()

    def share(self, path: str, what: str) -> SharedMount:
        """The mount that gives another container ``path``; RunnerError when there is none."""
        found = mount_for(path, list(self.mounts))
        if found is None:
            raise RunnerError(
                f"the {what} {path} is inside this container's own filesystem, which stage "
                "containers cannot see",
                hint="put it on a volume or a bind mount (Jenkins' workspace always is)",
            )
        return found


def find_placement(client: Any, mountinfo_path: Path = MOUNTINFO) -> Placement:
    """Is the executor a container of ``client``'s engine? Then its mounts; else ``Placement(None)``.

    A container of *another* engine (e.g. an agent on the host talking to a docker:dind service) is
    treated like a host process: its paths are then not visible to the engine either, which
    :meth:`Placement.share` cannot fix, so the caller bind-mounts as on a laptop.
    """
    cid = read_own_container_id(mountinfo_path)
    if cid is None:
        return Placement(None)
    try:
        attrs = client.api.inspect_container(cid)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return Placement(None)  # not a container of this engine
    return Placement(cid, tuple(attrs.get("Mounts") or ()))
