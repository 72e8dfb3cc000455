"""Run a rendered Jenkinsfile's stage steps the way Jenkins would, on the real engine.

No Jenkins can run here, so this plays the parts of the plugins that run what we generate, from their
source (``/work/shared/reference/jenkins.md``, "How Jenkins runs what we generate"):

* **Jenkins' workspace** lives in the controller's ``jenkins_home`` volume; the checkout is owned by
  the Jenkins user (uid 1000) and ``writeFile`` puts the spec document there (the text the parsed
  Jenkinsfile's ``writeFile`` call holds, folded from its literals).
* **docker-workflow's ``inside``** starts the agent image as ``docker run -t -d -u 1000:1000 <args>
  -w WS --volumes-from <controller> --entrypoint cat IMAGE`` (``DockerClient.java:119-126, 326-375``):
  here the controller's volume is mounted the same way; ``<args>`` are the rendered helper's (socket
  and ``--group-add`` of its gid; or DOCKER_HOST, TLS variables, certificates, ``--add-host``).
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
import requests.exceptions

from conveyor.jenkins.jenkinsfile import DIND_ARGS, PREPARE_STAGE, SOCKET_ARGS
from conveyor.pipeline.context import Trigger, build_variables, trigger_parameters
from conveyor.runner.plan import build_plan, default_params, parameter_variables
from conveyor.spec.model import Spec
from tests.groovy.declarative import find_calls, named_arg
from tests.groovy.harness import GroovyParser
from tests.runner import jenkinsfile_tree as jf

JENKINS_HOME = "/var/jenkins_home"
JENKINS_USER = "1000:1000"


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
            # `-e NAME` takes the value from the docker CLI's environment, which on a Jenkins node is
            # the node's own: here the test's CLI reaches the service another way, so the node's
            # values are written out.
            certs = self.agent_env["DOCKER_CERT_PATH"]
            daemon = self.agent_env["DOCKER_HOST"].removeprefix("tcp://").rsplit(":", 1)[0]
            args = f"{DIND_ARGS} --add-host {daemon}:host-gateway -v {certs}:{certs}:ro {extra}"
            for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
                args = args.replace(f"-e {name} ", f"-e {name}={self.agent_env[name]} ", 1)
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
        return {
            "DOCKER_HOST": self.agent_env["CLI_DOCKER_HOST"],
            "DOCKER_TLS_VERIFY": "1",
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


# ------------------------------------------------------------------------------ docker:dind


@dataclass
class DindService:
    """A docker:dind-like service with TLS, as Jenkins' Docker install guide runs it."""

    client: docker.DockerClient  # the test's TLS client (published port on 127.0.0.1)
    container: str
    ip: str  # on the test network: where published ports of its containers answer
    registry: str  # the auth registry, as the service's daemon reaches it
    node_env: dict[str, str]  # what the Jenkins node has: DOCKER_HOST, DOCKER_TLS_VERIFY...


def _gateway(network: Any) -> str:
    network.reload()
    return str(network.attrs["IPAM"]["Config"][0]["Gateway"])


@contextmanager
def dind_service(
    host: docker.DockerClient,
    unique: Any,
    *,
    images: list[str],
    registry_port: int,
    tmp: Path,
) -> Iterator[DindService]:
    """The local docker:dind stand-in (docker-in-docker/base/dind) with ``DOCKER_TLS_CERTDIR=/certs``:
    listening on tcp://0.0.0.0:2376 with --tlsverify, client certificates in a volume at
    /certs/client, on a network where it is ``docker``. ``images`` are loaded into it (it cannot
    pull here); a forwarder on the network's gateway lets its daemon reach the registry."""
    from conveyor.spec.model import DindOptions
    from tests.docker.dind_support import copy_images, run_kwargs

    network = host.networks.create(unique("jenkins"), driver="bridge")
    gateway = _gateway(network)
    forward_port = free_tcp_port(gateway)
    forwarder = Forwarder((gateway, forward_port), ("127.0.0.1", registry_port))
    registry = f"{gateway}:{forward_port}"
    port = free_tcp_port("127.0.0.1")
    name = unique("docker")
    kwargs = run_kwargs([*DindOptions().fallback_args, "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"])
    unconfined = kwargs.pop("systempaths_unconfined", False)
    binds = kwargs.pop("binds", {})
    binds[unique("dind-certs")] = {"bind": "/certs/client", "mode": "rw"}
    binds[unique("dind-data")] = {"bind": "/var/lib/docker", "mode": "rw"}
    host_config = host.api.create_host_config(
        **kwargs,
        binds=binds,
        port_bindings={2376: ("127.0.0.1", port)},
    )
    if unconfined:
        host_config["MaskedPaths"] = []
        host_config["ReadonlyPaths"] = []
    created = host.api.create_container(
        "docker:dind",
        command=["--storage-driver=overlay2", f"--insecure-registry={registry}"],
        name=name,
        environment={"DOCKER_TLS_CERTDIR": "/certs"},
        host_config=host_config,
        ports=[2376],
        networking_config=host.api.create_networking_config(
            {network.name: host.api.create_endpoint_config(aliases=["docker"])}
        ),
    )
    container = host.containers.get(created["Id"])
    client: docker.DockerClient | None = None
    try:
        container.start()
        certs = tmp / "certs"
        _wait_certs(container, certs)
        tls = docker.tls.TLSConfig(
            client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")),
            ca_cert=str(certs / "ca.pem"),
            verify=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                client = docker.DockerClient(
                    base_url=f"https://127.0.0.1:{port}", tls=tls, version="1.41"
                )
                # requests lets REQUESTS_CA_BUNDLE (set on these machines) override the session's
                # CA, which would verify the service's certificate against the system store
                client.api.trust_env = False
                client.ping()
                break
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                # docker-proxy accepts on the published port before the daemon listens: until
                # then the handshake ends at EOF (SSLError) or the connection is reset
                if client is not None:
                    client.close()
                    client = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        copy_images(host, client, images)
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        yield DindService(
            client,
            name,
            ip,
            registry,
            {
                "DOCKER_HOST": "tcp://docker:2376",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": "/certs/client",
                "CLI_DOCKER_HOST": f"tcp://127.0.0.1:{port}",
                "CLI_CERT_PATH": str(certs),
            },
        )
    finally:
        if client is not None:
            client.close()
        container.remove(force=True, v=True)
        forwarder.close()
        network.remove()


def _wait_certs(container: Any, dest: Path) -> None:
    """Wait for the entrypoint's client certificates and copy them out."""
    deadline = time.monotonic() + 120
    while True:
        # ca.pem is the entrypoint's last write: then the client's cert.pem and key.pem are complete
        code, _ = container.exec_run(["sh", "-c", "test -s /certs/client/ca.pem && sleep 0.2"])
        if code == 0:
            break
        container.reload()
        assert container.status == "running", container.logs(tail=30).decode()
        assert time.monotonic() < deadline, "docker:dind wrote no client certificates"
        time.sleep(0.5)
    # key.pem is left 0644 by the entrypoint (as the official one does) so uid 1000 reads it
    dest.mkdir(parents=True, exist_ok=True)
    stream, _ = container.get_archive("/certs/client/.")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                (dest / Path(member.name).name).write_bytes(extracted.read())


def free_tcp_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
