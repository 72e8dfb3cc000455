"""Validation owns every spec rule (conveyor.spec.rules): each rule's counter-example is refused by
``validate`` at its file:line:col, and no Spec can be built from it, so render, run and deploy (whose
only input is a Spec) never meet it. Where a consumer still checks the same thing at run time, the
counter-example (with the rules switched off) shows that it would have refused the spec too."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import conveyor.spec.rules
from conveyor.docker.build import build_tags, plan_build
from conveyor.docker.deploy.compose import _healthcheck, render_compose
from conveyor.docker.deploy.model import DeployRequest, ImageRef
from conveyor.docker.deploy.mounts import parse_ports
from conveyor.docker.deploy.proxy import caddy_config
from conveyor.docker.gitfacts import GitFacts
from conveyor.docker.images import parse_ref
from conveyor.docker.push import push_tags
from conveyor.errors import ConveyorError, DeployError, RegistryError, RenderError, UsageError
from conveyor.jenkins.render import render
from conveyor.runner.engines import refuse_none
from conveyor.runner.execute import secret_values
from conveyor.spec.load import check_paths
from conveyor.spec.model import Spec, Stage

HEAD = "apiVersion: conveyor/v1\nproject: demo/app\n"
FACTS = GitFacts(sha="a" * 40, branch="main", tag="", source="")


def _first(spec: Spec) -> Stage:
    return spec.stages[0]


def _deploy(spec: Spec) -> Any:
    deploy = _first(spec).deploy
    assert deploy is not None
    return deploy


def _request(spec: Spec) -> DeployRequest:
    return DeployRequest(_deploy(spec), "x:1", spec.project, "spec.yml", Path("."), Path("."))


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    where: tuple[int, int, str, str]  # line, column, field, message prefix
    # what still refuses it at run time, and how (None: only validation, the renderer relies on it)
    refused: tuple[type[ConveyorError], Callable[[Spec], object]] | None = None


CASES = [
    Case(
        "reserved-stage",
        HEAD + 'stages:\n  - name: "conveyor: prepare"\n    run: ["true"]\n',
        (4, 11, "stages[0].name", "stage name 'conveyor: prepare' is reserved"),
    ),
    Case(
        "docker-none-build",
        HEAD + "jenkins:\n  agent: {docker: none}\nstages:\n  - name: image\n"
        '    build: {tags: ["localhost:5000/app:1"]}\n',
        (7, 5, "stages[0].build", "stage 'image' needs a Docker engine for an image build"),
        (ConveyorError, lambda s: refuse_none(_first(s).name, _first(s).kind)),
    ),
    Case(
        "env-secret-pipeline",
        HEAD + "environment: {TOKEN: plain}\nsecrets: {TOKEN: token-id}\n"
        'stages:\n  - {name: test, run: ["true"]}\n',
        (3, 15, "environment.TOKEN", "pipeline: TOKEN is set both as environment and as a secret"),
    ),
    Case(
        "env-secret-stage",
        HEAD + 'stages:\n  - name: test\n    run: ["true"]\n    environment: {TOKEN: plain}\n'
        "    secrets: {TOKEN: token-id}\n",
        (6, 19, "stages[0].environment.TOKEN", "stage 'test': TOKEN is set both as environment"),
    ),
    Case(
        "deploy-secret-two-ids",
        HEAD + "stages:\n  - name: ship\n    secrets: {DB: one}\n    deploy:\n"
        "      image: busybox:latest\n      strategy: recreate\n      secrets: {DB: two}\n",
        (
            9,
            17,
            "stages[0].deploy.secrets.DB",
            "stage 'ship': secret DB is bound to two credentials",
        ),
    ),
    Case(
        "stage-secret-vs-pipeline",
        HEAD + 'secrets: {DB: one}\nstages:\n  - name: test\n    run: ["true"]\n'
        "    secrets: {DB: two}\n",
        (7, 15, "stages[0].secrets.DB", "stage 'test': DB is bound to other credentials than the"),
    ),
    Case(
        "cli-variable-secret",
        HEAD
        + 'stages:\n  - name: test\n    run: ["true"]\n    secrets: {DOCKER_HOST: engine-id}\n',
        (
            6,
            15,
            "stages[0].secrets.DOCKER_HOST",
            "secret variable DOCKER_HOST clashes with the docker",
        ),
        (ConveyorError, lambda s: secret_values(s, {"DOCKER_HOST": "tcp://x:1"})),
    ),
    Case(
        "fallback-args",
        HEAD + "jenkins:\n  agent:\n    docker: dind\n    dind:\n"
        '      fallback_args: ["--cap-add=ALL", "ALL"]\nstages:\n  - {name: test, run: ["true"]}\n',
        (7, 40, "jenkins.agent.dind.fallback_args[1]", "'ALL' is not a nested-daemon option"),
    ),
    Case(
        "tag-needs-registry",
        HEAD + 'stages:\n  - name: image\n    build:\n      tags: ["{registry}/{project}:{sha}"]\n',
        (6, 14, "stages[0].build.tags[0]", "image tag '{registry}/{project}:{sha}' never expands"),
        (UsageError, lambda s: build_tags(s, _first(s), FACTS)),
    ),
    Case(
        "context-leaves-checkout",
        HEAD + 'stages:\n  - name: image\n    build: {context: "web/../..", tags: ["app:1"]}\n',
        (5, 22, "stages[0].build.context", "build.context 'web/../..' leaves the checkout"),
        (UsageError, lambda s: plan_build(s, _first(s), FACTS, Path.cwd() / "checkout")),
    ),
    Case(
        "dockerfile-leaves-context",
        HEAD + 'stages:\n  - name: image\n    build: {dockerfile: /etc/shadow, tags: ["app:1"]}\n',
        (5, 25, "stages[0].build.dockerfile", "build.dockerfile '/etc/shadow' leaves the build"),
        (UsageError, lambda s: plan_build(s, _first(s), FACTS, Path.cwd())),
    ),
    Case(
        "push-registry-not-host",
        HEAD + 'stages:\n  - name: image\n    build: {}\n    push: {registry: "not a host"}\n',
        (6, 22, "stages[0].push.registry", "push.registry 'not a host' is not a registry host"),
        (UsageError, lambda s: parse_ref("not a host/x")),
    ),
    Case(
        "tag-off-push-registry",
        HEAD + "stages:\n  - name: image\n    build:\n"
        '      tags: ["{registry}/app:{sha}", "other.example.com/app:{sha}"]\n'
        "    push: {registry: registry.example.com}\n",
        (6, 38, "stages[0].build.tags[1]", "image tag 'other.example.com/app:{sha}' is not on the"),
        (
            RegistryError,
            lambda s: push_tags(
                None, build_tags(s, _first(s), FACTS), registry="registry.example.com"
            ),
        ),
    ),
    Case(
        "bad-stage-image",
        HEAD + 'stages:\n  - name: test\n    image: "--privileged"\n    run: ["true"]\n',
        (5, 12, "stages[0].image", "'--privileged' is not an image reference"),
    ),
    Case(
        "port-twice",
        HEAD + "stages:\n  - name: ship\n    deploy:\n      image: busybox:latest\n"
        '      ports: ["8080:80", "8080:81"]\n',
        (7, 26, "stages[0].deploy.ports[1]", "host port 8080/tcp is published twice"),
        (DeployError, lambda s: parse_ports(_deploy(s).ports)),
    ),
    Case(
        "udp-behind-proxy",
        HEAD + "stages:\n  - name: ship\n    deploy:\n      image: busybox:latest\n"
        '      strategy: recreate\n      ports: ["5353:53/udp"]\n',
        (8, 15, "stages[0].deploy.ports[0]", "target docker publishes through its HTTP proxy"),
        (DeployError, lambda s: caddy_config(parse_ports(_deploy(s).ports), None)),
    ),
    Case(
        "http-health-no-port",
        HEAD + "stages:\n  - name: ship\n    deploy:\n      image: busybox:latest\n"
        "      target: compose\n      health: {http: /healthz}\n",
        (8, 16, "stages[0].deploy.health.http", "an HTTP health check needs health.port"),
        (DeployError, lambda s: _healthcheck(_deploy(s).health, None)),
    ),
    Case(
        "compose-app-reserved",
        HEAD + "stages:\n  - name: ship\n    deploy:\n      image: busybox:latest\n"
        "      target: compose\n      services:\n        - {name: app, image: postgres:16}\n",
        (9, 18, "stages[0].deploy.services[0].name", "compose service name 'app' is reserved"),
        (DeployError, lambda s: render_compose(_request(s), ImageRef("x:1", "sha256:1", "d"))),
    ),
    Case(
        "lightweight-receiver",
        HEAD + "jenkins:\n  definition: scm\n"
        '  scm: {url: "https://gitlab.example.com/demo/app.git", lightweight: true}\n'
        'stages:\n  - {name: test, run: ["true"]}\n',
        (5, 70, "jenkins.scm.lightweight", "jenkins.scm.lightweight cannot be true with"),
    ),
    Case(
        "plugin-triggers",
        HEAD + "webhook: {target: jenkins}\ntriggers: {push: {branches: [main]}}\n"
        'stages:\n  - {name: test, run: ["true"]}\n',
        (3, 19, "webhook.target", "with webhook.target: jenkins, gitlab-plugin cannot express"),
    ),
    Case(
        "xml-char",
        HEAD + 'description: "bell\\x07"\nstages:\n  - {name: test, run: ["true"]}\n',
        (3, 14, "description", "holds U+0007, which config.xml cannot carry"),
        (RenderError, render),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_rule_is_validations(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"{case.name}.yml"
    path.write_text(case.text)
    loaded, issues = check_paths([path])
    assert loaded == []
    (issue,) = issues
    line, column, field, message = case.where
    assert (Path(issue.file).name, issue.line, issue.column, issue.path) == (
        path.name,
        line,
        column,
        field,
    ), str(issue)
    assert issue.message.startswith(message), str(issue)
    data = yaml.safe_load(case.text)
    with pytest.raises(ValidationError):  # no Spec, so no render / run / deploy of it
        Spec.model_validate(data)
    if case.refused is not None:
        error, consumer = case.refused
        monkeypatch.setattr(conveyor.spec.rules, "problems", lambda _spec: [])
        with pytest.raises(error):
            consumer(Spec.model_validate(data))


def test_a_spec_keeping_every_rule_passes(tmp_path: Path) -> None:
    """The positive twin of the cases: the same features, used coherently."""
    path = tmp_path / "ok.yml"
    path.write_text(
        HEAD
        + "secrets: {DB: db-id}\nenvironment: {MODE: test}\n"
        + "jenkins:\n  agent:\n    docker: dind\n    dind: {fallback_args: ['--cap-add=ALL']}\n"
        + "stages:\n  - name: image\n    build:\n"
        + '      tags: ["{registry}/{project}:{sha}", "registry.example.com/x:{branch}"]\n'
        + "    push: {registry: registry.example.com}\n"
        + "  - name: ship\n    secrets: {DB: db-id}\n    deploy:\n"
        + "      target: compose\n      ports: ['8080:80', '8081:80', '5353:53/udp']\n"
        + "      secrets: {DB: db-id}\n      health: {http: /healthz}\n"
        + "      services: [{name: db, image: 'postgres:16'}]\n"
    )
    loaded, issues = check_paths([path])
    assert issues == [] and len(loaded) == 1


@given(
    st.lists(st.sampled_from(["a", "b", ".", "..", "", "c.d", "..."]), max_size=8),
    st.booleans(),
)
def test_escapes_is_normpath_leaving_the_directory(parts: list[str], absolute: bool) -> None:
    path = ("/" if absolute else "") + "/".join(parts)
    normal = posixpath.normpath(path) if path else "."
    expected = path.startswith("/") or normal == ".." or normal.startswith("../")
    assert conveyor.spec.rules.escapes(path) is expected, (path, normal)
