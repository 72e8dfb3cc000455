"""`conveyor build` against the real engine: .dockerignore, layer reuse, labels, failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from conveyor.cli.build import command as build_command
from conveyor.cli.main import cli
from conveyor.docker.build import BuildEvent, build_image, find_stage, plan_build
from conveyor.docker.gitfacts import git_facts
from conveyor.errors import BuildError, UsageError
from conveyor.spec.load import load_spec
from tests.docker.fixtures import git_commit, run_output

pytestmark = pytest.mark.docker

DOCKERFILE = """\
FROM busybox:latest
WORKDIR /app
COPY deps.txt ./
RUN cp deps.txt installed.txt && echo "installed $(wc -l < deps.txt) deps"
ARG GREETING=hi
COPY src/ ./src/
COPY . /ctx/
RUN echo "$GREETING" > /app/greeting
CMD ["cat", "/app/src/main.txt"]
"""


def write_spec(workdir: Path, repo: str, *, dockerfile: str = "Dockerfile") -> Path:
    spec = workdir / "conveyor.yml"
    spec.write_text(
        f"""\
apiVersion: conveyor/v1
project: demo/app
jenkins:
  job: demo/app
stages:
  - name: image
    build:
      context: app
      dockerfile: {dockerfile}
      tags: ["{repo}:{{short_sha}}", "{repo}:{{branch}}"]
      args: {{GREETING: "hello {{branch}}"}}
      labels: {{com.example.team: "platform"}}
"""
    )
    return spec


def make_app(workdir: Path, repo: str, main: str = "v1") -> str:
    """A checkout with the app and its spec (written by ``write_spec``) committed."""
    write_spec(workdir, repo)
    return git_commit(
        workdir,
        {
            "app/Dockerfile": DOCKERFILE,
            "app/.dockerignore": "secret.env\n*.log\n",
            "app/deps.txt": "requests\nflask\n",
            "app/src/main.txt": main,
            "app/secret.env": "TOKEN=do-not-ship\n",
            "app/debug.log": "noise\n",
        },
    )


def build(workdir: Path, events: list[BuildEvent] | None = None, **flags: str):  # type: ignore[no-untyped-def]
    loaded = load_spec(workdir / "conveyor.yml")
    stage = find_stage(loaded.spec, None)
    request = plan_build(loaded.spec, stage, git_facts(workdir, **flags), workdir)
    client = docker.from_env()
    try:
        return build_image(client, request, events.append if events is not None else None)
    finally:
        client.close()


def run(client: docker.DockerClient, image: str, *cmd: str) -> str:
    return run_output(client, image, list(cmd) or None)


def test_dockerignore_labels_args_and_tags(
    tmp_path: Path, unique: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    repo = unique("app")
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    sha = make_app(workdir, repo)
    result = build(workdir)
    assert result.tags == (f"{repo}:{sha[:8]}", f"{repo}:main")
    listing = run(docker_client, result.tags[1], "ls", "-a", "/ctx")
    assert "deps.txt" in listing and "Dockerfile" in listing
    assert "secret.env" not in listing and "debug.log" not in listing
    assert run(docker_client, result.tags[0], "cat", "/app/greeting").strip() == "hello main"
    image = docker_client.images.get(result.tags[0])
    assert image.id == result.image_id
    labels = image.labels
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.source"] == "https://gitlab.example.com/demo/app.git"
    assert labels["org.opencontainers.image.version"] == f"main-{sha[:8]}"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["com.example.team"] == "platform"
    assert set(docker_client.images.get(result.tags[1]).tags) >= set(result.tags)


def test_source_only_change_reuses_dependency_layers(
    tmp_path: Path, unique: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    repo = unique("cache")
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    make_app(workdir, repo, main="v1")
    first = build(workdir)
    git_commit(workdir, {"app/src/main.txt": "v2"})
    events: list[BuildEvent] = []
    second = build(workdir, events)
    cached = [e for e in events if e.kind == "cached"]
    steps = {e.step: e.text for e in events if e.kind == "step"}
    cached_steps = {steps[e.step] for e in cached}
    # FROM is not a cache step; WORKDIR, COPY deps.txt, RUN install, ARG come from the cache
    assert {"WORKDIR /app", "COPY deps.txt ./", "ARG GREETING=hi"} <= cached_steps
    assert any(text.startswith("RUN cp deps.txt") for text in cached_steps)
    assert not any(text.startswith("COPY src/") for text in cached_steps)
    assert second.steps_cached == len(cached) >= 4
    assert second.image_id != first.image_id
    assert run(docker_client, second.tags[0]).strip() == "v2"


def test_failing_step_raises_with_step_and_log_tail(
    tmp_path: Path, unique: Callable[[str], str]
) -> None:
    repo = unique("broken")
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    make_app(workdir, repo)
    git_commit(
        workdir,
        {
            "app/Dockerfile": "FROM busybox:latest\nRUN echo first-line\n"
            "RUN echo compiling && echo 'error: missing semicolon' && exit 3\nRUN echo never\n"
        },
    )
    with pytest.raises(BuildError) as info:
        build(workdir)
    err = info.value
    assert err.step is not None and err.step.startswith("Step 3/")
    assert "exit 3" in err.step
    assert "error: missing semicolon" in err.log_tail
    assert "first-line" not in err.log_tail  # only the failing step's lines
    assert "returned a non-zero code: 3" in err.message


def test_cli_build_json_and_failure_exit(tmp_path: Path, unique: Callable[[str], str]) -> None:
    repo = unique("cli")
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    make_app(workdir, repo)
    runner = CliRunner()
    ok = runner.invoke(
        build_command,
        [
            str(workdir / "conveyor.yml"),
            "--workdir",
            str(workdir),
            "--sha",
            "a" * 40,
            "--branch",
            "feat/x",
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["tags"] == [f"{repo}:aaaaaaaa", f"{repo}:feat-x"]
    assert data["image_id"].startswith("sha256:")
    git_commit(workdir, {"app/Dockerfile": "FROM busybox:latest\nRUN echo boom-output && false\n"})
    bad = runner.invoke(build_command, [str(workdir / "conveyor.yml"), "--workdir", str(workdir)])
    assert bad.exit_code == 1
    assert "failing step: Step 2/" in bad.stderr
    assert "boom-output" in bad.stderr
    missing = runner.invoke(
        cli, ["build", str(workdir / "conveyor.yml"), "--workdir", str(workdir), "--stage", "nope"]
    )
    assert missing.exit_code == 2  # UsageError
    assert "no stage 'nope'" in missing.stderr


def test_plan_build_expands_everything(tmp_path: Path) -> None:
    spec_path = tmp_path / "conveyor.yml"
    spec_path.write_text(
        """\
apiVersion: conveyor/v1
project: Demo/App
jenkins: {job: demo/app}
stages:
  - name: image
    build:
      context: web
      dockerfile: docker/Dockerfile.prod
      tags: ["{registry}/{project}:{short_sha}", "{registry}/{project}:{branch}-{build_number}"]
      args: {VERSION: "{tag}", COMMIT: "{sha}"}
      target: runtime
      cache_from: ["{registry}/{project}:deps"]
    push: {registry: "registry.example.com:5000"}
"""
    )
    spec = load_spec(spec_path).spec
    facts = git_facts(tmp_path, sha="c" * 40, branch="feature/x", tag="v2")
    request = plan_build(spec, find_stage(spec, "image"), facts, tmp_path, build_number="12")
    repo = "registry.example.com:5000/demo/app"
    assert request.context == (tmp_path / "web").resolve()
    assert request.dockerfile == "docker/Dockerfile.prod"
    assert request.tags == (f"{repo}:cccccccc", f"{repo}:feature-x-12")
    assert dict(request.args) == {"VERSION": "v2", "COMMIT": "c" * 40}
    assert request.target == "runtime"
    assert request.cache_from == (f"{repo}:deps",)
    assert request.cache_pull == (f"{repo}:feature-x", f"{repo}:latest")
    assert request.registry == "registry.example.com:5000"
    assert request.labels["org.opencontainers.image.version"] == "v2"


def test_cli_plain_progress_off_a_terminal(tmp_path: Path, unique: Callable[[str], str]) -> None:
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    make_app(workdir, unique("plain"))
    result = CliRunner().invoke(
        cli, ["build", str(workdir / "conveyor.yml"), "--workdir", str(workdir)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    # 9 Dockerfile instructions + one LABEL step per label (4 OCI + 1 from the spec)
    assert "Step 1/14 : FROM busybox:latest" in lines
    assert any(line.startswith("Step 14/14 : LABEL ") for line in lines)
    assert "built " in result.stdout and "steps cached)" in result.stdout


@pytest.mark.parametrize(
    ("layout", "context", "dockerfile", "message"),
    [
        ({"web": "../outside"}, "web", "Dockerfile", "context 'web' resolves outside"),
        ({"web/Dockerfile": "../../outside/secret"}, "web", "Dockerfile", "dockerfile"),
    ],
)
def test_a_symlink_out_of_the_checkout_is_not_built(
    tmp_path: Path, layout: dict[str, str], context: str, dockerfile: str, message: str
) -> None:
    """The spec's rules refuse ``..`` and absolute paths; a symlink the checkout carries (the
    repository being built controls it) must not reach the host's files either."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file\n")
    checkout = tmp_path / "checkout"
    (checkout / "web").mkdir(parents=True)
    for name, target in layout.items():
        link = checkout / name
        if link.is_dir():
            link.rmdir()
        link.symlink_to(target)
    spec = tmp_path / "conveyor.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: demo/app\nstages:\n  - name: image\n"
        f'    build: {{context: {context}, dockerfile: {dockerfile}, tags: ["app:1"]}}\n'
    )
    loaded = load_spec(spec).spec
    facts = git_facts(tmp_path, sha="c" * 40, branch="main")
    with pytest.raises(UsageError, match=message):
        plan_build(loaded, find_stage(loaded, "image"), facts, checkout)
