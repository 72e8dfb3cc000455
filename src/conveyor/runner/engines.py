"""Which Docker engine a stage uses: the host's (``docker: socket``) or a nested one (``docker: dind``).

As in the generated Jenkinsfile, ``docker: dind`` gives every stage that needs Docker its own nested
daemon next to it, torn down when the stage ends (even when it fails): the daemon container is started
``--privileged`` when the spec allows and the host accepts it, else with ``agent.dind.fallback_args``
(plus the cgroup mount and ``/var/lib/docker`` tmpfs these VMs need). Stage containers join the
daemon's network namespace (``--network container:ID``) and reach it at ``tcp://127.0.0.1:2375``,
exactly like the Jenkinsfile's agent; the runner itself (build, push, deploy stages) talks to it over
the bridge at ``tcp://<daemon IP>:2375``. The port has no TLS: the daemon lives only as long as the stage.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from conveyor.docker.engine import connect
from conveyor.errors import DockerError, RunnerError
from conveyor.runner.containers import EngineAccess
from conveyor.spec.model import DindOptions

DIND_PORT = 2375
DIND_HOST_IN_NAMESPACE = f"tcp://127.0.0.1:{DIND_PORT}"
# Needed on hosts whose capability bounding set refuses --privileged (see docs/docker-here).
HOST_FALLBACK_EXTRA = ("-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/var/lib/docker:exec")
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class NestedDaemon:
    """A running nested daemon: its container, how stage containers and the runner reach it."""

    container: str
    access: EngineAccess
    base_url: str  # for the runner (docker SDK)
    privileged: bool


def docker_cli(docker: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` (the runner's one place for it); a CLI that cannot start is a DockerError."""
    try:
        return subprocess.run(
            [docker, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DockerError(f"docker {args[0]}: {exc}") from None


def _start(
    docker: str,
    name: str,
    options: DindOptions,
    labels: dict[str, str],
    privileged: bool,
    namespace: Sequence[str],
) -> str:
    args = ["run", "-d", "--name", name, "-e", "DOCKER_TLS_CERTDIR=", *namespace]
    for key, value in sorted(labels.items()):
        args += ["--label", f"{key}={value}"]
    if privileged:
        args.append("--privileged")
    else:
        args += [*options.fallback_args, *HOST_FALLBACK_EXTRA]
    # --tls=false says "no TLS" explicitly: dockerd otherwise delays its start by ~15 s as a warning
    args += [options.image, f"--storage-driver={options.storage_driver}", "--tls=false"]
    done = docker_cli(docker, *args)
    if done.returncode != 0:
        docker_cli(docker, "rm", "-f", "-v", name)
        raise DockerError(
            f"cannot start the nested daemon ({options.image}): {done.stderr.strip()}"
        )
    return done.stdout.strip()


def _ip(docker: str, name: str) -> str:
    done = docker_cli(
        docker, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name
    )
    ips = done.stdout.split()
    if done.returncode != 0 or not ips:
        raise DockerError(f"nested daemon {name} has no IP address: {done.stderr.strip()}")
    return ips[0]


def _wait_ready(docker: str, name: str, base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        running = docker_cli(docker, "inspect", "-f", "{{.State.Running}}", name)
        if running.stdout.strip() != "true":
            logs = docker_cli(docker, "logs", "--tail", "20", name)
            raise DockerError(
                "the nested daemon exited while starting:\n" + (logs.stdout + logs.stderr).strip()
            )
        try:
            connect(base_url, timeout=5).close()
            return
        except DockerError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise DockerError(
        f"the nested daemon at {base_url} did not answer in {READY_TIMEOUT:.0f}s: {last}"
    )


@contextmanager
def nested_daemon(
    docker: str,
    options: DindOptions,
    name: str,
    labels: dict[str, str],
    namespace: Sequence[str] = (),
) -> Iterator[NestedDaemon]:
    """Start a nested daemon (privileged first when allowed), yield it, always remove it.

    ``namespace``: the agent's network-namespace options (``--add-host``...,
    :func:`conveyor.runner.containers.split_namespace`): stage containers join this daemon's
    namespace, so it is the one started with them."""
    privileged = options.privileged
    try:
        try:
            _start(docker, name, options, labels, privileged, namespace)
            if privileged:
                # A refused --privileged may also show up as the daemon dying right away.
                time.sleep(0.5)
                state = docker_cli(docker, "inspect", "-f", "{{.State.Running}}", name)
                if state.stdout.strip() != "true":
                    raise DockerError("privileged nested daemon exited at once")
        except DockerError:
            if not privileged:
                raise
            docker_cli(docker, "rm", "-f", "-v", name)
            privileged = False
            _start(docker, name, options, labels, privileged, namespace)
        ip = _ip(docker, name)
        base_url = f"tcp://{ip}:{DIND_PORT}"
        _wait_ready(docker, name, base_url)
        yield NestedDaemon(
            container=name,
            access=EngineAccess(
                mode="dind", docker_host=DIND_HOST_IN_NAMESPACE, network=f"container:{name}"
            ),
            base_url=base_url,
            privileged=privileged,
        )
    finally:
        docker_cli(docker, "rm", "-f", "-v", name)


def needs_engine(kind: str, own_image: bool) -> bool:
    """Does a stage of this kind need Docker access (and so, with dind, its own daemon)?"""
    if kind in ("build", "deploy"):
        return True
    return kind == "run" and not own_image


def refuse_none(stage: str, kind: str) -> None:
    """Build and deploy stages need an engine; ``docker: none`` has none (the renderer refuses too)."""
    raise RunnerError(
        f"stage {stage!r} needs Docker but jenkins.agent.docker is 'none'",
        hint="set jenkins.agent.docker to socket or dind",
    )
