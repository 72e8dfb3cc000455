"""Where a pipeline's docker steps run: the mounted socket, or a nested daemon conveyor starts.

``agent.docker: socket`` uses the engine conveyor itself talks to (``DOCKER_HOST`` or
``/var/run/docker.sock``, the "docker outside of docker" pattern). ``agent.docker: dind`` starts a
``docker:dind`` container (:class:`~conveyor.spec.model.DindOptions`), waits until its daemon answers
(a ping poll against a deadline, no fixed sleeps), yields a client for it and removes it afterwards.

How the nested daemon is reached: dockerd listens on a unix socket in a host directory bind-mounted
into the container (``<socket_root>/conveyor-dind-XXXX/docker.sock``). No TCP port is published, no
TLS material is needed, and only users who may read that directory (root, by default) reach it. The
directory must be a path of the host engine's filesystem: when conveyor itself runs in a container
against the mounted socket, mount the same directory at the same path (``-v /tmp/conveyor-dind:
/tmp/conveyor-dind`` with ``socket_root=/tmp/conveyor-dind``).

Starting: ``--privileged`` first when ``options.privileged``; when the runtime refuses it ("unable to
apply caps", as on VMs whose bounding set lacks CAP_SYS_RESOURCE) the container is removed and started
again with ``options.fallback_args`` plus ``-v /sys/fs/cgroup:/sys/fs/cgroup:rw``. Both modes keep
``/var/lib/docker`` on a tmpfs (``exec``) and run ``dockerd --storage-driver=<options.storage_driver>``.
The nested daemon cannot pull from the internet here; :func:`copy_images` moves images in from another
engine (``docker save | docker load``).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from conveyor.docker.engine import connect, docker_errors
from conveyor.errors import ConfigError, DockerError
from conveyor.spec.model import Agent, DindOptions

SOCKET_DIR_IN_CONTAINER = "/run/conveyor-dind"
CGROUP_MOUNT = "/sys/fs/cgroup:/sys/fs/cgroup:rw"
MAX_SOCKET_DIR = 90  # sockaddr_un holds 108 bytes; "/docker.sock" takes 12 more
CAPS_REFUSED = ("unable to apply caps", "operation not permitted")


@dataclass(frozen=True)
class NestedDaemon:
    """A running nested daemon: its container and the ``DOCKER_HOST`` that reaches it."""

    container_id: str
    name: str
    docker_host: str  # unix:///<socket dir>/docker.sock
    mode: Literal["privileged", "fallback"]


@dataclass(frozen=True)
class Engine:
    """The engine a pipeline's docker steps use. ``nested`` is None in socket mode."""

    client: docker.DockerClient
    docker_host: str
    nested: NestedDaemon | None = None


def _split(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """``["--cap-add=ALL", "-v", "a:b"]`` -> ``[("--cap-add", "ALL"), ("-v", "a:b")]``."""
    words: list[str] = []
    for arg in args:
        words.extend(shlex.split(arg) if " " in arg else [arg])
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            raise ConfigError(f"dind argument {word!r} is not an option (expected --name[=value])")
        if "=" in word:
            flag, value = word.split("=", 1)
            out.append((flag, value))
        elif word == "--privileged":
            out.append((word, None))
        else:
            if i + 1 >= len(words):
                raise ConfigError(f"dind argument {word} needs a value")
            out.append((word, words[i + 1]))
            i += 1
        i += 1
    return out


def run_kwargs(args: Sequence[str]) -> dict[str, Any]:
    """``docker run`` options as keyword arguments of the SDK's ``api.create_host_config`` (plus
    ``environment``, and ``systempaths_unconfined`` for ``--security-opt systempaths=unconfined``,
    which the CLI -- not the engine -- turns into empty MaskedPaths/ReadonlyPaths).

    Supported: --cap-add, --cap-drop, --security-opt, -v/--volume, --tmpfs, --privileged, --cgroupns,
    --device, -e/--env, --network. Anything else is a ConfigError naming it."""
    kwargs: dict[str, Any] = {}
    for flag, value in _split(args):
        if flag == "--privileged":
            kwargs["privileged"] = value is None or value.lower() == "true"
            continue
        assert value is not None
        if flag == "--security-opt" and value == "systempaths=unconfined":
            kwargs["systempaths_unconfined"] = True
        elif flag in ("--cap-add", "--cap-drop", "--security-opt", "--device"):
            key = {
                "--cap-add": "cap_add",
                "--cap-drop": "cap_drop",
                "--security-opt": "security_opt",
                "--device": "devices",
            }[flag]
            kwargs.setdefault(key, []).append(value)
        elif flag in ("-v", "--volume"):
            parts = value.split(":")
            if len(parts) < 2:
                raise ConfigError(f"dind volume {value!r}: use SOURCE:TARGET[:ro|rw]")
            mode = parts[2] if len(parts) > 2 else "rw"
            kwargs.setdefault("binds", {})[parts[0]] = {"bind": parts[1], "mode": mode}
        elif flag == "--tmpfs":
            path, _, opts = value.partition(":")
            kwargs.setdefault("tmpfs", {})[path] = opts
        elif flag in ("-e", "--env"):
            name, _, val = value.partition("=")
            kwargs.setdefault("environment", {})[name] = val
        elif flag == "--cgroupns":
            kwargs["cgroupns"] = value
        elif flag == "--network":
            kwargs["network_mode"] = value
        else:
            raise ConfigError(
                f"unsupported dind argument {flag}",
                hint="use --cap-add, --cap-drop, --security-opt, -v, --tmpfs, --privileged, "
                "--cgroupns, --device, -e or --network",
            )
    return kwargs


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _container_kwargs(
    options: DindOptions, socket_dir: Path, *, privileged: bool
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "environment": {"DOCKER_TLS_CERTDIR": ""},
        "binds": {str(socket_dir): {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"}},
        "tmpfs": {"/var/lib/docker": "exec"},
    }
    if privileged:
        return _merge(base, {"privileged": True})
    return _merge(base, run_kwargs([*options.fallback_args, "-v", CGROUP_MOUNT]))


def _start(
    host: docker.DockerClient, options: DindOptions, name: str, kwargs: dict[str, Any]
) -> Container:
    """Create and start; on a failed start the created container is removed before raising."""
    kwargs = dict(kwargs)
    environment = kwargs.pop("environment", {})
    unconfined = kwargs.pop("systempaths_unconfined", False)
    with docker_errors(f"create the nested daemon container from {options.image}"):
        host_config = host.api.create_host_config(**kwargs)
        if unconfined:
            host_config["MaskedPaths"] = []
            host_config["ReadonlyPaths"] = []
        created = host.api.create_container(
            options.image,
            command=[
                "dockerd",
                f"--host=unix://{SOCKET_DIR_IN_CONTAINER}/docker.sock",
                f"--storage-driver={options.storage_driver}",
            ],
            name=name,
            detach=True,
            environment=environment,
            labels={"conveyor.dind": "1"},
            host_config=host_config,
        )
        container: Container = host.containers.get(created["Id"])
    try:
        with docker_errors(f"start the nested daemon {name}"):
            container.start()
    except BaseException:
        with docker_errors("remove the nested daemon container"):
            container.remove(force=True, v=True)
        raise
    return container


def _logs(container: Container, lines: int = 20) -> str:
    try:
        raw = container.logs(tail=lines)
    except docker.errors.DockerException:
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def wait_ready(
    base_url: str, container: Container | None = None, *, timeout: float = 90.0
) -> docker.DockerClient:
    """Poll ``base_url`` with ``ping`` until it answers or ``timeout`` passes (then DockerError).

    When ``container`` is given and exits first, fail at once with its last log lines."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            client = docker.DockerClient(base_url=base_url, timeout=30)  # asks for the API version
        except docker.errors.DockerException as exc:
            last = str(exc)
        else:
            try:
                if client.ping():
                    return client
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                last = str(exc)
            client.close()
        if container is not None:
            try:
                container.reload()
                status = container.status
            except docker.errors.DockerException:
                status = "gone"
            if status in ("exited", "dead", "gone"):
                raise DockerError(
                    f"the nested Docker daemon ({container.name}) stopped before it answered:\n"
                    + _logs(container),
                    hint="see the dind options (agent.dind) and docker-in-docker/README.md",
                )
        if time.monotonic() >= deadline:
            raise DockerError(
                f"the Docker daemon at {base_url} did not answer within {timeout:.0f} s ({last})"
                + (f"\n{_logs(container)}" if container is not None else "")
            )
        time.sleep(0.1)


@contextmanager
def nested_daemon(
    options: DindOptions,
    *,
    host: docker.DockerClient,
    socket_root: Path | None = None,
    name: str | None = None,
    timeout: float = 90.0,
) -> Iterator[tuple[NestedDaemon, docker.DockerClient]]:
    """Start a nested daemon on ``host``, yield it and a client connected to it; always tear down."""
    name = name or f"conveyor-dind-{secrets.token_hex(4)}"
    if socket_root is not None:
        socket_root.mkdir(parents=True, exist_ok=True)
    socket_dir = Path(tempfile.mkdtemp(prefix="cvd-", dir=socket_root))
    if len(str(socket_dir)) > MAX_SOCKET_DIR:
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise ConfigError(
            f"socket directory {socket_dir} is too long for a unix socket path",
            hint=f"use a socket_root of at most {MAX_SOCKET_DIR - 12} characters",
        )
    container: Container | None = None
    client: docker.DockerClient | None = None
    mode: Literal["privileged", "fallback"] = "privileged" if options.privileged else "fallback"
    try:
        try:
            container = _start(
                host,
                options,
                name,
                _container_kwargs(options, socket_dir, privileged=options.privileged),
            )
        except DockerError as exc:
            if not options.privileged or not any(w in exc.message for w in CAPS_REFUSED):
                raise
            mode = "fallback"
            container = _start(
                host, options, name, _container_kwargs(options, socket_dir, privileged=False)
            )
        docker_host = f"unix://{socket_dir}/docker.sock"
        client = wait_ready(docker_host, container, timeout=timeout)
        assert container.id is not None
        yield NestedDaemon(container.id, name, docker_host, mode), client
    finally:
        if client is not None:
            client.close()
        if container is not None:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                raise DockerError(f"cannot remove the nested daemon {name}: {exc}") from None
        shutil.rmtree(socket_dir, ignore_errors=True)


@contextmanager
def docker_engine(
    agent: Agent,
    *,
    host: docker.DockerClient | None = None,
    socket_root: Path | None = None,
    images: Iterable[str] = (),
    name: str | None = None,
) -> Iterator[Engine]:
    """The engine for ``agent.docker``: the host's (``socket``) or a nested one (``dind``) into which
    ``images`` are copied from the host first. ``none`` is a DockerError: that agent has no engine."""
    if agent.docker == "none":
        raise DockerError(
            "this pipeline's agent has no Docker engine (agent.docker: none)",
            hint="set jenkins.agent.docker to socket or dind",
        )
    own = host is None
    host_client = host or connect()
    try:
        if agent.docker == "socket":
            yield Engine(host_client, docker_host_of(host_client))
            return
        with nested_daemon(agent.dind, host=host_client, socket_root=socket_root, name=name) as (
            daemon,
            nested,
        ):
            copy_images(host_client, nested, images)
            yield Engine(nested, daemon.docker_host, daemon)
    finally:
        if own:
            host_client.close()


def docker_host_of(client: docker.DockerClient) -> str:
    """The ``DOCKER_HOST`` value that reaches ``client``'s engine (for subprocesses and containers)."""
    base = str(client.api.base_url)
    if base.startswith("http+docker://"):  # the SDK's name for a unix socket / named pipe
        env_host = os.environ.get("DOCKER_HOST", "")
        return env_host if env_host.startswith("unix://") else "unix:///var/run/docker.sock"
    if base.startswith(("http://", "https://")):
        return "tcp://" + base.split("://", 1)[1]
    return base


def copy_images(
    source: docker.DockerClient, target: docker.DockerClient, references: Iterable[str]
) -> None:
    """``docker save REF | docker load`` from ``source``'s engine into ``target``'s, streamed."""
    for ref in references:
        with docker_errors(f"copy image {ref} into the nested daemon"):
            stream = source.api.get_image(ref)
            for chunk in target.api.load_image(stream):
                if isinstance(chunk, dict) and "error" in chunk:
                    raise DockerError(f"load {ref} into the nested daemon: {chunk['error']}")
