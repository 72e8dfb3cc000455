"""Jenkins' conditions, for real: every rendered stage's ``sh`` body, run as docker-workflow runs it.

For the shipped specs and both Docker modes: the Jenkinsfile is rendered and read back with Groovy
2.4.21; each stage Jenkins would run gets its own agent container (the agent image built from this
checkout), as uid 1000 with ``HOME=/``, with only the build's variables; the body is executed verbatim
(``docker exec ... sh -c BODY``). The app is built, pushed to the auth registry, deployed blue-green;
it still answers when every agent and stage container is gone. See :mod:`tests.runner.jenkins_agent`.

The shipped specs name a production registry and fixed host ports (8080); to run here next to other
work they are adapted before rendering: ``push.registry`` becomes the test registry, deploy names and
named volumes (the app's and its services') get the test's unique prefix, host ports become free
ports (and URLs in the environment follow them), the agent image is the one built from this checkout.
Nothing else changes. Their base images (node, maven, postgres, nginx...) are the local stand-ins of
``scripts/base-images.sh``; in dind mode each case loads its own into the service's daemon.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from conveyor.docker.deploy.docker import app_containers
from conveyor.docker.deploy.proxy import ensure_proxy_image
from conveyor.jenkins.jenkinsfile import STAGE_STEP
from conveyor.jenkins.render import render
from conveyor.pipeline.context import Trigger
from conveyor.spec.load import load_spec
from conveyor.spec.model import Spec
from tests.docker.dind_support import copy_images
from tests.docker.fixtures import Registry, free_port, remove_prefixed
from tests.groovy.harness import GroovyParser
from tests.runner.jenkins_agent import (
    DindService,
    JenkinsNode,
    RenderedJob,
    checkout_files,
    dind_service,
    read_job,
    run_build,
    wait_http,
)

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def adapt(spec: Spec, registry: str, unique: Callable[[str], str]) -> tuple[Spec, dict[str, int]]:
    """The spec with the test registry, unique deploy names/volumes and free host ports."""
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude={"extends"})
    ports: dict[str, int] = {}

    def named(volumes: list[str]) -> list[str]:
        return [unique(v) if re.match(r"^[A-Za-z0-9][\w.-]*:", v) else v for v in volumes]

    def visit(stages: list[dict[str, Any]]) -> None:
        for stage in stages:
            if stage.get("push"):
                stage["push"]["registry"] = registry
            deploy = stage.get("deploy")
            if deploy:
                deploy["name"] = unique(deploy["name"])
                mapped = []
                for port in deploy.get("ports", []):
                    host, _, container = str(port).rpartition(":")
                    ports[container] = free_port()
                    mapped.append(f"{ports[container]}:{container}" if host else port)
                deploy["ports"] = mapped
                deploy["volumes"] = named(deploy.get("volumes", []))
                for service in deploy.get("services", []):
                    service["volumes"] = named(service.get("volumes", []))
            visit(stage.get("parallel") or [])

    visit(data["stages"])
    # URLs of the deployed service in the environment (a smoke test's) follow its host port
    for key, value in data.get("environment", {}).items():
        for container, host in ports.items():
            old = next(p for p in spec_ports(spec) if p.endswith(f":{container}"))
            data["environment"][key] = value.replace(f":{old.split(':')[0]}", f":{host}")
    return Spec.model_validate(data), ports


def spec_ports(spec: Spec) -> list[str]:
    return [p for s in spec.all_stages() if s.deploy is not None for p in s.deploy.ports]


def rendered(spec: Spec, parser: GroovyParser) -> RenderedJob:
    job = read_job(spec, render(spec, gitlab_url="https://gitlab.example.com").jenkinsfile, parser)
    assert {step.body for step in job.steps.values()} == {STAGE_STEP}
    return job


@pytest.fixture(scope="module")
def proxy_image(docker_client: docker.DockerClient) -> str:
    return ensure_proxy_image(docker_client)


@pytest.fixture
def socket_node(
    docker_client: docker.DockerClient, agent_image: str, unique: Callable[[str], str]
) -> Iterator[Callable[[str], JenkinsNode]]:
    nodes: list[JenkinsNode] = []

    def make(job: str) -> JenkinsNode:
        node = JenkinsNode(
            docker_client, unique(f"jenkins-home-{len(nodes)}"), job, agent_image, "socket"
        )
        nodes.append(node)
        return node

    yield make


@dataclass(frozen=True)
class Case:
    """One shipped spec as a Jenkins build would meet it: its checkout and the build that deploys."""

    spec: str  # the spec, relative to the checkout root of conveyor
    source: str  # the app's files (the repository's checkout)
    dockerfile: str | None = None  # a template Dockerfile, placed as `conveyor init` leaves it
    files: tuple[tuple[str, bytes], ...] = ()  # more files the checkout holds
    trigger: tuple[str, str] = ("branch", "main")  # what the push was: a branch or a tag
    params: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()  # credential variables Jenkins binds, by name
    probe: str = "/healthz"
    images: tuple[str, ...] = ()  # base images of its stages and Dockerfile (for the dind service)

    @property
    def pushed_tag(self) -> str:
        return self.trigger[1] if self.trigger[0] == "tag" else SHA

    def checkout(self) -> dict[str, bytes]:
        files = checkout_files(ROOT / self.source)
        if self.dockerfile is not None:
            files["Dockerfile"] = (ROOT / self.dockerfile).read_bytes()
        files.update(dict(self.files))
        return files

    def build_trigger(self, project: str) -> Trigger:
        kind, ref = self.trigger
        if kind == "tag":
            return Trigger(kind="tag_push", project=project, sha=SHA, tag=ref)
        return Trigger(kind="push", project=project, sha=SHA, branch=ref)


SPRING = "pipelines/templates/spring-boot-service.Dockerfile"
# Every shipped spec; each names the app it builds (examples/) and what its deploy answers.
CASES = {
    "examples/hello-web": Case(
        "examples/hello-web/conveyor.yml", "examples/hello-web", images=("python:3.11-slim",)
    ),
    "examples/java-service": Case(
        "examples/java-service/conveyor.yml",
        "examples/java-service",
        images=("eclipse-temurin:17-jdk", "eclipse-temurin:17-jre"),
    ),
    # a bind mount from the checkout (`./conf:/etc/hello:ro`): inside the agent container that path is
    # on the Jenkins-home volume, which the deploy names by its Mountpoint on the engine's host
    # (conveyor.docker.deploy.placement)
    "pipelines/hello-web": Case(
        "pipelines/hello-web.yml",
        "examples/hello-web",
        files=(("conf/hello.conf", b"greeting = hello\n"),),
        images=("python:3.11-slim",),
    ),
    "pipelines/node-api": Case(
        "pipelines/node-api.yml",
        "examples/node-api",
        dockerfile="pipelines/templates/node-service.Dockerfile",
        secrets=(("API_TOKEN", "node-api-token-value"),),
        probe="/health",
        images=("node:20-slim",),
    ),
    "pipelines/docs-site": Case(
        "pipelines/docs-site.yml",
        "examples/docs-site",
        dockerfile="pipelines/templates/static-site.Dockerfile",
        probe="/getting-started.html",
        images=("node:20-slim", "nginx:1.25-alpine"),
    ),
    "pipelines/java-service": Case(
        "pipelines/java-service.yml",
        "examples/maven-service",
        dockerfile=SPRING,
        trigger=("tag", "v1.4.0"),
        params=(("TARGET", "production"),),
        secrets=(
            ("SONAR_TOKEN", "sonar-token-value"),
            ("DB_PASSWORD", "db-pass-value"),
            ("SPRING_DATASOURCE_PASSWORD", "db-pass-value"),
        ),
        probe="/actuator/health",
        images=("maven:3.9-eclipse-temurin-17", "eclipse-temurin:17-jre", "postgres:16"),
    ),
}


def with_agent(spec: Spec, **update: str) -> Spec:
    """``spec`` with its Jenkins agent changed (``docker`` mode; ``image``: a stage without one runs
    in the agent image, here the one built from this checkout)."""
    agent = spec.jenkins.agent.model_copy(update=update)
    return spec.model_copy(update={"jenkins": spec.jenkins.model_copy(update={"agent": agent})})


def load_into(dind: DindService, host: docker.DockerClient, images: tuple[str, ...]) -> None:
    """The base images a case needs, in the dind service's daemon (it cannot pull here)."""
    present = {tag for image in dind.client.images.list() for tag in image.tags}
    copy_images(host, dind.client, [i for i in images if i not in present])


def remove_pushed(client: docker.DockerClient, registry: str, project: str) -> None:
    """The images a build tagged for the test registry (their layers stay cached)."""
    for image in client.images.list(name=f"{registry}/{project}"):
        for tag in image.tags:
            with suppress(docker.errors.NotFound):
                client.images.remove(tag, force=True)


@pytest.mark.parametrize("mode", ["socket", "dind"])
@pytest.mark.parametrize("name", list(CASES))
def test_shipped_spec_builds_pushes_and_deploys_under_jenkins_conditions(
    name: str,
    mode: str,
    request: pytest.FixtureRequest,
    groovy_parser: GroovyParser,
    registry: Registry,
    agent_image: str,
    unique: Callable[[str], str],
    proxy_image: str,
    docker_client: docker.DockerClient,
) -> None:
    """Every shipped spec in both modes, each stage Jenkins runs in its own agent container: built,
    pushed to the auth registry, deployed; the deployed service answers its probe once every agent
    and stage container is gone. Socket mode: the host's engine through the mounted socket and its
    group. Dind mode: the docker:dind service Jenkins' DOCKER_HOST names, over TLS (tcp://docker:2376,
    /certs/client); the app lives on that long-lived daemon."""
    case = CASES[name]
    if mode == "socket":
        engine, address, pushed_to = docker_client, "127.0.0.1", registry.host
        env: dict[str, str] = {}
    else:
        dind: DindService = request.getfixturevalue("dind")
        load_into(dind, docker_client, case.images)
        engine, address, pushed_to = dind.client, dind.ip, dind.registry
        env = dind.node_env
    spec = with_agent(load_spec(ROOT / case.spec).spec, docker=mode, image=agent_image)
    spec, ports = adapt(spec, pushed_to, unique)
    job = rendered(spec, groovy_parser)
    node = JenkinsNode(engine, unique("jenkins-home"), spec.jenkins.job, agent_image, mode, env)
    node.prepare(case.checkout(), job.spec_text)
    try:
        results = run_build(
            node,
            job,
            case.build_trigger(spec.project),
            number=7,
            secrets=dict(case.secrets),
            registry=(registry.username, registry.password),
            params=dict(case.params),
            agent_name=unique("agent"),
        )
        for stage, done in results.items():
            assert done.returncode == 0, f"{stage}:\n{done.stdout}\n{done.stderr}"
        assert "deploy" in results
        # pushed to the auth registry under the build's commit (or tag)
        assert registry.manifest_digest(spec.project, case.pushed_tag) is not None
        # every agent container is gone; the app still answers on the published port
        (port,) = ports.values()
        answer = wait_http(f"http://{address}:{port}{case.probe}", timeout=90)
        assert answer.status_code == 200, answer.text
        if name == "pipelines/hello-web":  # the checkout's conf, through the workspace volume
            deployed = next(s.deploy for s in spec.all_stages() if s.deploy is not None)
            (app,) = app_containers(engine, deployed.name)
            read = app.exec_run(["cat", "/etc/hello/hello.conf"])
            assert (read.exit_code, read.output) == (0, b"greeting = hello\n")
    finally:
        if mode == "dind":
            remove_prefixed(engine, unique(""))
        remove_pushed(engine, pushed_to, spec.project)


def test_agent_user_and_environment_are_jenkins(
    socket_node: Callable[[str], JenkinsNode], unique: Callable[[str], str]
) -> None:
    """The harness itself: uid 1000 (not in the socket's group by default), HOME=/, no PATH given."""
    node = socket_node("demo/probe")
    node.prepare({"x": b"1"}, "{}\n")
    with node.agent(unique("probe")) as agent:
        done = agent.sh("id -u; echo HOME=$HOME; docker version --format '{{.Server.Version}}'", {})
    assert done.returncode == 0, done.stderr
    uid, home, version = done.stdout.split()
    assert (uid, home) == ("1000", "HOME=/") and version
    assert shlex.quote(node.workspace) == node.workspace


@pytest.fixture(scope="module")
def dind(
    docker_client: docker.DockerClient,
    agent_image: str,
    registry: Registry,
    proxy_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DindService]:
    names: list[str] = []

    def module_unique(name: str) -> str:
        names.append(f"conveyor-test-{os.getpid()}-jc-{name}")
        return names[-1]

    port = int(registry.host.rsplit(":", 1)[1])
    images = [agent_image, "busybox:latest", proxy_image]  # and each case's own (load_into)
    try:
        with dind_service(
            docker_client,
            module_unique,
            images=images,
            registry_port=port,
            tmp=tmp_path_factory.mktemp("dind"),
        ) as service:
            yield service
    finally:
        remove_prefixed(docker_client, f"conveyor-test-{os.getpid()}-jc-")


def test_rollback_from_another_agent_finds_the_history(
    groovy_parser: GroovyParser,
    registry: Registry,
    socket_node: Callable[[str], JenkinsNode],
    unique: Callable[[str], str],
    proxy_image: str,
) -> None:
    case = CASES["examples/hello-web"]
    spec, ports = adapt(load_spec(ROOT / case.spec).spec, registry.host, unique)
    job = rendered(spec, groovy_parser)
    (port,) = ports.values()
    versions = []
    for number, sha in ((1, "1" * 40), (2, "2" * 40)):
        node = socket_node(spec.jenkins.job)
        node.prepare(case.checkout(), job.spec_text)
        trigger = Trigger(kind="push", project=spec.project, sha=sha, branch="main")
        results = run_build(
            node,
            job,
            trigger,
            number=number,
            secrets={},
            registry=(registry.username, registry.password),
            agent_name=unique(f"agent-{number}"),
        )
        assert all(d.returncode == 0 for d in results.values()), results
        versions.append(wait_http(f"http://127.0.0.1:{port}/version").text.strip())
    assert versions == ["1" * 8, "2" * 8]
    # a third build on a fresh agent and workspace (another node) rolls back
    other = socket_node(spec.jenkins.job)
    other.prepare(case.checkout(), job.spec_text)
    with other.agent(unique("rollback")) as agent:
        env = {"BUILD_NUMBER": "3", "WORKSPACE": other.workspace, "JOB_NAME": spec.jenkins.job}
        done = agent.sh("conveyor rollback .conveyor/pipeline.yml", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wait_http(f"http://127.0.0.1:{port}/version").text.strip() == "1" * 8


SHIPPED = sorted(
    [*ROOT.glob("pipelines/*.yml"), *ROOT.glob("examples/*/conveyor.yml")],
    key=lambda p: str(p.relative_to(ROOT)),
)


@pytest.mark.parametrize("mode", ["socket", "dind"])
def test_every_shipped_spec_reaches_the_executor_under_jenkins_conditions(
    mode: str,
    groovy_parser: GroovyParser,
    socket_node: Callable[[str], JenkinsNode],
    unique: Callable[[str], str],
) -> None:
    """For every shipped spec and mode: each leaf stage is the one executor step, and the spec the
    prepare stage writes loads back, as uid 1000 with HOME=/, in the agent image, to the same spec.
    (The builds, pushes and deploys of the same specs: the matrix above.)"""
    assert len(SHIPPED) == 6
    for path in SHIPPED:
        spec = load_spec(path).spec
        agent = spec.jenkins.agent.model_copy(update={"docker": mode})
        spec = spec.model_copy(update={"jenkins": spec.jenkins.model_copy(update={"agent": agent})})
        job = rendered(spec, groovy_parser)
        assert set(job.steps) == {s.name for s in spec.all_stages() if s.parallel is None}
        node = socket_node(spec.jenkins.job)
        node.prepare({}, job.spec_text)
        with node.agent(unique("validate")) as agent_container:
            done = agent_container.sh("conveyor validate --json .conveyor/pipeline.yml", {})
        assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"


def test_every_shipped_spec_has_a_case_in_the_matrix() -> None:
    assert sorted(case.spec for case in CASES.values()) == [
        str(p.relative_to(ROOT)) for p in SHIPPED
    ]
