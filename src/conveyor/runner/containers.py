"""How a stage's container is started: the ``docker run`` arguments (pure).

A ``run`` stage's commands become one script run as ``sh -e -c SCRIPT`` (``--entrypoint sh``), in the
stage's image (default: the agent image), with:

* the workspace bind-mounted at :data:`WORKSPACE` (also the working directory and ``$WORKSPACE``);
* the stage's cache volumes (``-v VOLUME:/path``);
* the agent's engine access: ``-v /var/run/docker.sock:/var/run/docker.sock`` (``docker: socket``), or
  ``DOCKER_HOST`` pointing at the run's nested daemon and its network (``docker: dind``), or nothing;
* the agent's extra ``args``, verbatim (they are ``docker run`` arguments in Jenkins too), except
  the network-namespace ones when the container joins another's namespace (:func:`split_namespace`);
* every variable as ``-e NAME`` with the value taken from the docker CLI's environment, so values
  (secrets, branch names, commit messages) are never part of the command line and never shell text.

:func:`agent_args` is the part the Jenkinsfile's ``agent { docker { args '...' } }`` declares; the
renderer and the runner both take it from here, which the parity tests check.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import RunnerError
from conveyor.spec.model import Agent, Stage
from conveyor.spec.rules import (
    CLI_VARIABLES as CLI_VARIABLES,  # passed by value (no secret has one)
)

WORKSPACE = "/workspace"
DOCKER_SOCKET = "/var/run/docker.sock"
SOCKET_MOUNT = f"{DOCKER_SOCKET}:{DOCKER_SOCKET}"


@dataclass(frozen=True)
class EngineAccess:
    """How stage containers reach a Docker engine for this run."""

    mode: str  # socket | dind | none
    docker_host: str | None = None  # dind: tcp://HOST:PORT as seen from the run's network
    network: str | None = None  # dind: the network shared with the nested daemon
    # dind reached over TLS (a Jenkins build's docker:dind service): DOCKER_TLS_VERIFY and
    # DOCKER_CERT_PATH, and the ``docker run`` arguments that give the stage the certificates
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workspace:
    """Where a stage container finds the checkout: its path there and the arguments mounting it."""

    path: str
    argv: tuple[str, ...]
    # the executor runs as this uid:gid (not root): files a root stage leaves in the workspace are
    # handed back to it on exit, so Jenkins (uid 1000) can still clean its workspace
    owner: str | None = None


def bind_workspace(workdir: str) -> Workspace:
    """A checkout on the engine's own machine: bind-mounted at :data:`WORKSPACE`."""
    return Workspace(WORKSPACE, ("-v", f"{workdir}:{WORKSPACE}"))


@dataclass(frozen=True)
class ContainerRun:
    """One ``docker run``: its arguments (after ``docker``) and the environment values it reads."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


#: ``docker run`` options that configure a container's network namespace and its files (hosts,
#: resolv.conf, hostname). A container started ``--network container:ID`` shares that namespace and
#: those very files (moby daemon/container_operations.go ``initializeNetworking``: ``HostsPath =
#: nc.HostsPath``, ``ResolvConfPath``, ``HostnamePath``), and the engine refuses the options with that
#: mode (moby daemon/internal/runconfig/hostconfig.go ``validateNetContainerMode``: hostname, links,
#: dns, "custom host-to-IP mapping", port bindings, publish-all, exposed ports). They belong to the
#: container that owns the namespace: the nested daemon (local dind) or the Jenkins agent container.
NAMESPACE_VALUED = frozenset(
    {
        "--add-host",
        "--dns",
        "--dns-search",
        "--dns-option",
        "--dns-opt",
        "-h",
        "--hostname",
        "--link",
        "-p",
        "--publish",
        "--expose",
        "--mac-address",
    }
)
NAMESPACE_FLAGS = frozenset({"-P", "--publish-all"})


def split_namespace(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``args`` as (the container's own, its network namespace's): ``--add-host a:b``,
    ``--add-host=a:b``, ``-p8080:80`` and ``-P`` forms are all recognised."""
    own: list[str] = []
    namespace: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in NAMESPACE_FLAGS:
            namespace.append(arg)
        elif name in NAMESPACE_VALUED:
            if "=" in arg or i + 1 >= len(args):
                namespace.append(arg)
            else:
                namespace += [arg, args[i + 1]]
                i += 1
        elif not arg.startswith("--") and arg[:2] in ("-p", "-h") and len(arg) > 2:
            namespace.append(arg)  # -p8080:80, -hname
        else:
            own.append(arg)
        i += 1
    return own, namespace


def cache_args(stage: Stage) -> list[str]:
    """``-v VOLUME:/path`` for each of the stage's cache volumes."""
    out: list[str] = []
    for cache in stage.cache:
        out += ["-v", f"{cache.volume}:{cache.path}"]
    return out


def has_own_image(stage: Stage | None) -> bool:
    """A ``run`` stage with its own ``image`` runs without the agent's Docker access (as in Jenkins,
    where such a stage gets its own ``agent { docker { image ...; args <cache volumes> } }``)."""
    return stage is not None and stage.image is not None


def agent_args(agent: Agent, stage: Stage | None = None) -> list[str]:
    """The ``docker run`` arguments the Jenkinsfile declares for ``stage`` (``None``: the pipeline).

    A stage with its own image: its cache volumes only. Otherwise (the agent image): the engine socket
    (``docker: socket``), the stage's cache volumes, then the spec's ``agent.args``. With
    ``docker: dind`` the nested daemon's network and ``DOCKER_HOST`` are added per run, not declared.
    """
    if has_own_image(stage):
        assert stage is not None
        return cache_args(stage)
    out: list[str] = []
    if agent.docker == "socket":
        out += ["-v", SOCKET_MOUNT]
    if stage is not None:
        out += cache_args(stage)
    out += list(agent.args)
    return out


def script_of(commands: Sequence[str], owner: str | None = None) -> str:
    """The stage's commands as one script for ``sh -e`` (spec text only, never event data).

    With ``owner`` (``uid:gid``, digits only) an EXIT trap first hands files owned by root in
    ``$WORKSPACE`` back to that user; the trap keeps the script's exit status.
    """
    body = "\n".join(commands) + "\n"
    if owner is None:
        return body
    if not re.fullmatch(r"\d+:\d+", owner):
        raise RunnerError(f"invalid workspace owner {owner!r}")
    hand_back = (
        f"trap 'find \"$WORKSPACE\" -user 0 -exec chown {owner} {{}} + 2>/dev/null || true' EXIT\n"
    )
    return hand_back + body


#: Labels every container of a run carries: the run's number, and which run history it is in (one
#: per state dir and host: two receivers on one engine both have a run #1).
RUN_LABEL = "conveyor.run"
HISTORY_LABEL = "conveyor.history"


def history_id(state_dir: Path) -> str:
    """The value of :data:`HISTORY_LABEL` for runs recorded under ``state_dir`` on this host."""
    where = f"{socket.gethostname()}:{state_dir.resolve()}"
    return hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def run_labels(number: int, state_dir: Path, **more: str) -> dict[str, str]:
    """The labels of a container of run ``number``: see :data:`RUN_LABEL`."""
    return {RUN_LABEL: str(number), HISTORY_LABEL: history_id(state_dir), **more}


def container_name(run_number: int, stage: str, suffix: str) -> str:
    """A docker-safe container name for a stage of a run."""
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", stage).strip("-.").lower()[:40] or "stage"
    return f"conveyor-run-{run_number}-{slug}-{suffix}"


def run_args(
    *,
    name: str,
    image: str,
    commands: Sequence[str],
    workspace: Workspace,
    agent: Agent,
    stage: Stage | None,
    engine: EngineAccess,
    env: Mapping[str, str],
    labels: Mapping[str, str],
) -> ContainerRun:
    """The ``docker run`` for ``commands`` of ``stage`` (``None``: pipeline post) in ``image``."""
    argv: list[str] = ["run", "--rm", "--name", name, "--entrypoint", "sh"]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    argv += ["-w", workspace.path, *workspace.argv]
    declared = agent_args(agent, stage)
    joins = engine.mode == "dind" and not has_own_image(stage)
    if joins and (engine.network or "").startswith("container:"):
        # the namespace's owner was started with them; this container shares its hosts file
        declared, _ = split_namespace(declared)
    argv += declared
    container_env = dict(env)
    container_env["WORKSPACE"] = workspace.path
    if engine.mode == "dind" and not has_own_image(stage):
        if not engine.docker_host:
            raise RunnerError("docker: dind needs the nested daemon's address (none was started)")
        container_env["DOCKER_HOST"] = engine.docker_host
        container_env.update(dict(engine.env))
        argv += list(engine.mounts)
        if engine.network:
            argv += ["--network", engine.network]
    passed: dict[str, str] = {}
    for key in sorted(container_env):
        if key in CLI_VARIABLES:
            argv += ["-e", f"{key}={container_env[key]}"]
        else:
            argv += ["-e", key]
            passed[key] = container_env[key]
    argv += [image, "-e", "-c", script_of(commands, workspace.owner)]
    return ContainerRun(name=name, argv=tuple(argv), env=passed)
