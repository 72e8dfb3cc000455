"""`conveyor push` to a real registry (distribution 2.8) with htpasswd auth."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from conveyor.docker.build import BuildEvent, build_image, find_stage, plan_build
from conveyor.docker.credentials import RegistryAuth
from conveyor.docker.gitfacts import git_facts
from conveyor.docker.images import parse_ref
from conveyor.docker.push import PushEvent, push_tags
from conveyor.errors import RegistryError
from conveyor.spec.load import load_spec
from tests.docker.fixtures import Registry, free_port, git_commit

pytestmark = pytest.mark.docker


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No registry variables from the outer environment; DOCKER_CONFIG is an empty temp dir."""
    for name in (
        "CONVEYOR_REGISTRY_USER",
        "CONVEYOR_REGISTRY_PASSWORD",
        "REGISTRY_USER",
        "REGISTRY_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    yield config


def checkout(tmp_path: Path, registry: str, name: str, registry_field: str | None = None) -> Path:
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / "conveyor.yml").write_text(
        f"""\
apiVersion: conveyor/v1
project: demo/app
jenkins: {{job: demo/app}}
stages:
  - name: image
    build:
      tags: ["{{registry}}/{name}:{{short_sha}}", "{{registry}}/{name}:{{branch}}"]
    push:
      registry: "{registry_field or registry}"
      credentials: registry-creds
"""
    )
    git_commit(
        workdir,
        {
            "Dockerfile": "FROM busybox:latest\nCOPY deps.txt /deps.txt\n"
            "RUN cp /deps.txt /installed\nCOPY main.txt /main.txt\n",
            "deps.txt": "dep\n",
            "main.txt": "v1\n",
        },
    )
    return workdir


def build(workdir: Path, events: list[BuildEvent] | None = None) -> tuple[str, ...]:
    loaded = load_spec(workdir / "conveyor.yml")
    request = plan_build(loaded.spec, find_stage(loaded.spec, None), git_facts(workdir), workdir)
    client = docker.from_env()
    try:
        return build_image(client, request, events.append if events is not None else None).tags
    finally:
        client.close()


def test_push_reports_the_registry_digest(
    tmp_path: Path,
    registry: Registry,
    unique: Callable[[str], str],
    docker_client: docker.DockerClient,
    no_ambient_credentials: Path,
) -> None:
    name = unique("push")
    tags = build(checkout(tmp_path, registry.host, name))
    events: list[PushEvent] = []
    auth = RegistryAuth(registry.host, registry.username, registry.password, "test")
    result = push_tags(docker_client, tags, auth=auth, on_event=events.append)
    assert result.registry == registry.host
    assert [p.reference for p in result.pushed] == list(tags)
    for pushed in result.pushed:
        ref = parse_ref(pushed.reference)
        assert pushed.digest == registry.manifest_digest(ref.repository, ref.tag)
        assert pushed.digest.startswith("sha256:")
    layer_statuses = {e.status for e in events if e.kind == "layer" and e.layer}
    assert "Pushed" in layer_statuses
    assert "Layer already exists" in layer_statuses  # the second tag shares every layer
    assert any(e.kind == "note" and "logged in" in e.status for e in events)


def test_cli_push_with_env_credentials_then_docker_config(
    tmp_path: Path,
    registry: Registry,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    no_ambient_credentials: Path,
) -> None:
    name = unique("clipush")
    workdir = checkout(tmp_path, registry.host, name)
    build(workdir)
    spec = str(workdir / "conveyor.yml")
    runner = CliRunner()
    anonymous = runner.invoke(cli, ["push", spec, "--workdir", str(workdir)])
    assert anonymous.exit_code == 1
    assert f"registry {registry.host} refused" in anonymous.stderr
    assert "anonymously" in anonymous.stderr

    monkeypatch.setenv("REGISTRY_USER", registry.username)  # as the Jenkinsfile binds them
    monkeypatch.setenv("REGISTRY_PASSWORD", registry.password)
    ok = runner.invoke(cli, ["push", spec, "--workdir", str(workdir), "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["credentials"] == "REGISTRY_USER/REGISTRY_PASSWORD"
    first = data["pushed"][0]
    ref = parse_ref(first["reference"])
    assert first["digest"] == registry.manifest_digest(ref.repository, ref.tag)

    monkeypatch.delenv("REGISTRY_USER")
    monkeypatch.delenv("REGISTRY_PASSWORD")
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (no_ambient_credentials / "config.json").write_text(
        json.dumps({"auths": {f"http://{registry.host}": {"auth": token}}})
    )
    again = runner.invoke(cli, ["push", spec, "--workdir", str(workdir)])
    assert again.exit_code == 0, again.output
    assert f"pushed {first['reference']}@{first['digest']}" in again.stdout
    assert registry.password not in again.output + again.stderr


def test_wrong_password_fails_cleanly(
    tmp_path: Path,
    registry: Registry,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    no_ambient_credentials: Path,
) -> None:
    name = unique("badpw")
    workdir = checkout(tmp_path, registry.host, name)
    build(workdir)
    wrong = "Wr0ng-" + registry.password[::-1]
    monkeypatch.setenv("CONVEYOR_REGISTRY_USER", registry.username)
    monkeypatch.setenv("CONVEYOR_REGISTRY_PASSWORD", wrong)
    result = CliRunner().invoke(
        cli, ["push", str(workdir / "conveyor.yml"), "--workdir", str(workdir)]
    )
    assert result.exit_code == 1
    assert f"registry {registry.host} refused the login as 'conveyor'" in result.stderr
    assert "CONVEYOR_REGISTRY_USER/CONVEYOR_REGISTRY_PASSWORD" in result.stderr
    assert wrong not in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert registry.manifest_digest(name, "main") is None


def test_unreachable_registry_names_it(
    tmp_path: Path,
    unique: Callable[[str], str],
    docker_client: docker.DockerClient,
    no_ambient_credentials: Path,
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    tags = build(checkout(tmp_path, dead, unique("dead")))
    with pytest.raises(RegistryError) as info:
        push_tags(docker_client, tags, auth=RegistryAuth(dead, "u", "secret-pw-123", "test"))
    assert f"registry {dead} is unreachable" in str(info.value)
    assert "secret-pw-123" not in str(info.value)
    with pytest.raises(RegistryError, match=f"registry {dead} is unreachable"):
        push_tags(docker_client, tags)  # anonymous: fails at the push itself


def test_rebuild_on_a_clean_engine_uses_the_pushed_image_as_cache(
    tmp_path: Path,
    registry: Registry,
    unique: Callable[[str], str],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
    no_ambient_credentials: Path,
) -> None:
    for key, value in registry.env().items():
        monkeypatch.setenv(key, value)
    name = unique("cachefrom")
    workdir = checkout(tmp_path, registry.host, name)
    tags = build(workdir)
    push_tags(docker_client, tags)
    for tag in tags:  # forget everything this engine built: only the registry has it now
        docker_client.images.remove(tag, force=True)
    git_commit(workdir, {"main.txt": "v2\n"})
    events: list[BuildEvent] = []
    build(workdir, events)
    assert any(e.kind == "note" and f"pulled {registry.host}/{name}:main" in e.text for e in events)
    cached = {e.step for e in events if e.kind == "cached"}
    steps = {e.step: e.text for e in events if e.kind == "step"}
    assert {steps[s] for s in cached} >= {"COPY deps.txt /deps.txt", "RUN cp /deps.txt /installed"}
