"""Containers a dead run left behind: found by the run's labels, removed.

A stage container is started by a ``docker run`` client the runner waits on; when the process
running the pipeline dies (``kill -9`` of ``conveyor serve``), the client dies with it but the
container does not: it keeps running its stage (a deploy, a push) with nobody to follow it. The next
attempt at the event marks the run ``crashed`` and removes what still runs under its labels
(:func:`conveyor.runner.containers.run_labels`), nested daemons included.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conveyor.errors import DockerError
from conveyor.runner.containers import HISTORY_LABEL, RUN_LABEL, history_id
from conveyor.runner.engines import docker_cli


def _docker(*args: str) -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise DockerError("the docker CLI is not installed")
    done = docker_cli(docker, *args)
    if done.returncode != 0:
        raise DockerError(f"docker {args[0]}: {done.stderr.strip()[:500]}")
    return done.stdout


def remove_run_containers(state_dir: Path, number: int) -> list[str]:
    """Remove (``rm -f -v``) every container of run ``number`` of the history in ``state_dir``;
    the names of those removed."""
    listed = _docker(
        "ps",
        "-a",
        "--filter",
        f"label={HISTORY_LABEL}={history_id(state_dir)}",
        "--filter",
        f"label={RUN_LABEL}={number}",
        "--format",
        "{{.ID}} {{.Names}}",
    )
    found = [line.split(" ", 1) for line in listed.splitlines() if line.strip()]
    if found:
        _docker("rm", "-f", "-v", *(cid for cid, _ in found))
    return [name for _, name in found]
