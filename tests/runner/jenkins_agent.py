"""Run a rendered Jenkinsfile's stage steps the way Jenkins would, on the real engine.

No Jenkins can run here, so this plays the parts of the plugins that run what we generate, from their
source (``/work/shared/reference/jenkins.md``, "How Jenkins runs what we generate"):

* **Jenkins' workspace** lives in the controller's ``jenkins_home`` volume; the checkout is owned by
  the Jenkins user (uid 1000) and ``writeFile`` puts the spec document there (the text the parsed
  Jenkinsfile's ``writeFile`` call holds, folded from its literals).
* **docker-workflow's ``inside``** starts the agent image as ``docker run -t -d -u 1000:1000 <args>
  -w WS --volumes-from <controller> --entrypoint cat IMAGE`` (``DockerClient.java:119-126, 326-375``):
  here the controller's volume is mounted the same way; ``<args>`` are the rendered helper's (socket
  and ``--group-add`` of its gid; or DOCKER_HOST, TLS variables, certificates, ``--network host``).
  Each ``sh`` step is a ``docker exec -u 1000:1000 -w WS -e ... sh -c BODY`` with only the build's
  variables: no ``PATH`` and no ``HOME`` from the controller (``WithContainerStep.java:133-139``), so
  the container's ``HOME`` is ``/`` (runc's default for a uid without a passwd entry).
* **The stage's ``when``** is Jenkins' to decide; the parity test shows the runner's plan decides the
  same, so the plan picks the stages here.
* **``withCredentials``/``credentials()``** bind their variables for the steps inside them.

In dind mode the agent container runs on the docker:dind-like service (docker-workflow talks to the
engine ``DOCKER_HOST`` names), the workspace volume lives on that daemon (compose.dind.yml mounts
``jenkins_home`` into the sidecar for this reason), and everything is reached over TLS.
"""

from __future__ import annotations

import io
import os
import shlex
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from conveyor.jenkins.jenkinsfile import PREPARE_STAGE, SOCKET_ARGS
from conveyor.pipeline.context import Trigger, build_variables, trigger_parameters
from conveyor.runner.plan import build_plan, default_params, parameter_variables
from conveyor.spec.model import Spec
from tests.groovy.declarative import find_calls, named_arg
from tests.groovy.harness import GroovyParser
from tests.runner import jenkinsfile_tree as jf

JENKINS_HOME = "/var/jenkins_home"
JENKINS_USER = "1000:1000"
DIND_TLS_ARGS = "-e DOCKER_HOST -e DOCKER_TLS_VERIFY -e DOCKER_CERT_PATH --network host"


@dataclass
class StageStep:
    """One leaf stage of the rendered Jenkinsfile: its name and its ``sh`` body, verbatim."""

    name: str
    body: str
    registry_credentials: bool


@dataclass
class RenderedJob:
    spec: Spec
    jenkinsfile: str
    spec_text: str  # what the prepare stage's writeFile writes
    steps: dict[str, StageStep]
    pipeline_post: dict[str, list[str]]


def read_job(spec: Spec, jenkinsfile: str, parser: GroovyParser) -> RenderedJob:
    """The steps Jenkins would run, read back from the rendered text (Groovy 2.4.21's parse)."""
    parsed = parser.parse_text(jenkinsfile)
    assert parsed.ok, parsed.errors
    (write,) = find_calls(parsed.tree, "writeFile")
    text = named_arg(write, "text")
    assert isinstance(text, str)
    tree = jf.parse(jenkinsfile)
    pipeline = tree.block("pipeline")
    assert pipeline is not None
    stages = pipeline.block("stages")
    assert stages is not None
    steps: dict[str, StageStep] = {}
    for block, _parent in jf.stages(stages):
        name = jf.stage_name(block)
        steps_block = block.block("steps")
        if name is None or name == PREPARE_STAGE or steps_block is None:
            continue
        (body,) = jf.shell_steps(steps_block)
        steps[name] = StageStep(name, body, "withCredentials(" in jenkinsfile_of(steps_block))
    return RenderedJob(spec, jenkinsfile, text, steps, jf.post_conditions(pipeline))


def jenkinsfile_of(block: jf.Block) -> str:
    out: list[str] = []
    for item in block.items:
        out.append(item.header if isinstance(item, jf.Block) else item)
        if isinstance(item, jf.Block):
            out.append(jenkinsfile_of(item))
    return "\n".join(out)


def _tar(files: Mapping[str, bytes], root: str, uid: int = 1000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = f"{root}/{name}".split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d and d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, uid
                    tar.addfile(info)
            data = files[name]
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid, uid
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def checkout_files(source: Path) -> dict[str, bytes]:
    """The files of an example app, as its repository's checkout."""
    return {
        str(p.relative_to(source)): p.read_bytes()
        for p in sorted(source.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@dataclass
class JenkinsNode:
    """A Jenkins node (controller) with a workspace volume, on ``engine``."""

    engine: docker.DockerClient
    workspace_volume: str
    job: str
    agent_image: str
    mode: str  # socket | dind
    agent_env: dict[str, str] = field(default_factory=dict)  # the node's DOCKER_* (dind)
    containers: list[str] = field(default_factory=list)

    @property
    def workspace(self) -> str:
        return f"{JENKINS_HOME}/workspace/{self.job.replace('/', '_')}"

    def prepare(self, files: Mapping[str, bytes], spec_text: str) -> None:
        """Checkout + writeFile, as uid 1000 would leave them."""
        self.engine.volumes.create(self.workspace_volume)
        everything = dict(files)
        everything[".conveyor/pipeline.yml"] = spec_text.encode("utf-8")
        helper = self.engine.containers.create(
            "busybox:latest",
            ["true"],
            volumes={self.workspace_volume: {"bind": JENKINS_HOME, "mode": "rw"}},
        )
        try:
            root = self.workspace.removeprefix(JENKINS_HOME + "/")
            assert helper.put_archive(JENKINS_HOME, _tar(everything, root))
        finally:
            helper.remove(force=True)

    def inside_args(self, extra: str = "") -> list[str]:
        """The rendered helper's ``inside(args)``, evaluated as on this node."""
        if self.mode == "socket":
            gid = os.stat("/var/run/docker.sock").st_gid
            args = f"{SOCKET_ARGS} --group-add {gid} {extra}"
        else:
            certs = self.agent_env["DOCKER_CERT_PATH"]
            args = f"{DIND_TLS_ARGS} -v {certs}:{certs}:ro {extra}"
        return shlex.split(args)

    @contextmanager
    def agent(self, name: str, extra: str = "") -> Iterator[AgentContainer]:
        """docker-workflow's ``docker.image(AGENT).inside(args) { ... }`` container."""
        argv = [
            "run",
            "-t",
            "-d",
            "-u",
            JENKINS_USER,
            *self.inside_args(extra),
            "-w",
            self.workspace,
            "-v",
            f"{self.workspace_volume}:{JENKINS_HOME}",
            "--name",
            name,
            "--entrypoint",
            "cat",
            self.agent_image,
        ]
        done = self.docker(*argv)
        assert done.returncode == 0, done.stderr
        self.containers.append(name)
        try:
            yield AgentContainer(self, name)
        finally:
            self.docker("stop", "-t", "1", name)
            self.docker("rm", "-f", name)

    def docker(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI docker-workflow uses, against this node's engine."""
        full = {"PATH": os.environ["PATH"], **self.cli_env(), **(env or {})}
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, env=full, timeout=900, check=False
        )

    def cli_env(self) -> dict[str, str]:
        if self.mode == "socket":
            return {}
        return {k: v for k, v in self.agent_env.items() if k.startswith("DOCKER_")} | {
            "DOCKER_HOST": self.agent_env["CLI_DOCKER_HOST"],
            "DOCKER_CERT_PATH": self.agent_env["CLI_CERT_PATH"],
        }


@dataclass
class AgentContainer:
    node: JenkinsNode
    name: str

    def sh(self, body: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """An ``sh`` step: ``docker exec`` with the build's variables only (no PATH, no HOME)."""
        assert "PATH" not in env and "HOME" not in env
        argv = ["exec", "-u", JENKINS_USER, "-w", self.node.workspace]
        for key in sorted(env):
            argv += ["-e", key]  # values from the CLI's environment: never on a command line
        argv += [self.name, "sh", "-c", body]
        return self.node.docker(*argv, env=env)


def build_env(
    spec: Spec, trigger: Trigger, number: int, workspace: str, params: Mapping[str, bool | str]
) -> dict[str, str]:
    """What a build started by conveyor's receiver for ``trigger`` has in its environment."""
    env = trigger_parameters(build_variables(trigger))
    env.update(parameter_variables(default_params(spec, dict(params))))
    env.update(
        {
            "GIT_COMMIT": trigger.sha,  # the prepare stage's checkout sets it
            "BUILD_NUMBER": str(number),
            "BUILD_ID": str(number),
            "JOB_NAME": spec.jenkins.job,
            "BUILD_TAG": f"jenkins-{spec.jenkins.job.replace('/', '-')}-{number}",
            "WORKSPACE": workspace,
            "JENKINS_URL": "http://jenkins.invalid:8080/",
        }
    )
    return env


def stages_jenkins_runs(
    spec: Spec, trigger: Trigger, params: Mapping[str, bool | str]
) -> list[str]:
    """The leaf stages whose ``when`` holds, in order (the parity-tested plan)."""
    plan = build_plan(spec, build_variables(trigger), default_params(spec, dict(params)))
    out: list[str] = []
    for planned in plan.stages:
        if not planned.run:
            continue
        if planned.children:
            out += [c.name for c in planned.children if c.run]
        else:
            out.append(planned.name)
    return out


def run_build(
    node: JenkinsNode,
    job: RenderedJob,
    trigger: Trigger,
    *,
    number: int,
    secrets: Mapping[str, str],
    registry: tuple[str, str] | None,
    params: Mapping[str, bool | str] | None = None,
    agent_name: str,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every stage Jenkins runs, each ``sh`` body in a fresh agent container; results by stage."""
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    base = build_env(job.spec, trigger, number, node.workspace, params or {})
    extra = " ".join(shlex.quote(a) for a in job.spec.jenkins.agent.args)
    for i, name in enumerate(stages_jenkins_runs(job.spec, trigger, params or {})):
        step = job.steps[name]
        env = {**base, "STAGE_NAME": name, **secrets}
        if step.registry_credentials and registry is not None:
            env["REGISTRY_USER"], env["REGISTRY_PASSWORD"] = registry
        with node.agent(f"{agent_name}-{i}", extra) as agent:
            results[name] = done = agent.sh(step.body, env)
        if done.returncode != 0:
            break
    return results


# ------------------------------------------------------------------------------ networking


class Forwarder:
    """A TCP forwarder on ``listen`` to ``target`` (a registry on the host's loopback, for a daemon
    that lives in another network namespace), in threads; close() stops it."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self._server = socket.create_server(listen)
        self._target = target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=2)


def wait_http(url: str, timeout: float = 30.0) -> Any:
    import httpx

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=3)
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer: {last}")


def remove_all(client: docker.DockerClient, names: list[str]) -> None:
    for name in names:
        with suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True, v=True)
