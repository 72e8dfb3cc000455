"""Which container this process runs in, read from ``/proc/self/mountinfo``.

The engine bind-mounts ``.../containers/<id>/hostname`` (and ``hosts``, ``resolv.conf``) into every
container it runs, so the mount table names the container's own id; docker-workflow finds its agent
container the same way (``DockerClient.java:352-375``). Used by the runner (stage containers share the
agent's workspace mount, :mod:`conveyor.runner.workspace`) and by deploys (bind sources translated to the
engine's host, :mod:`conveyor.docker.deploy.placement`).
"""

from __future__ import annotations

import re
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_CONTAINER_FILE = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)\s")


def own_container_id(mountinfo: str) -> str | None:
    """The id of the container whose mount table this is (None outside a container)."""
    match = _CONTAINER_FILE.search(mountinfo)
    return match.group(1) if match else None


def read_own_container_id(mountinfo_path: Path = MOUNTINFO) -> str | None:
    """:func:`own_container_id` of ``mountinfo_path`` (None when it cannot be read: not Linux)."""
    try:
        text = mountinfo_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return own_container_id(text)
