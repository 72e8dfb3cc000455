"""The runner against the real engine: stages in containers, failures, build/push/deploy, caches,
DinD, hostile event data, secrets, history, commit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import httpx
import pytest

from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.status import CommitStatusClient
from conveyor.runner.execute import run_pipeline
from conveyor.runner.history import History
from conveyor.runner.statuses import GitLabStatuses
from conveyor.runner.trigger import read_event, trigger_from_event
from tests.docker.fixtures import Registry, free_port
from tests.emulators.gitlab import GitLabEmulator
from tests.runner.runs import SHA, push, run
from tests.runner.specs import make_spec

pytestmark = pytest.mark.docker

HTTPD_DOCKERFILE = (
    "FROM busybox\n"
    "ARG GREETING=hello\n"
    'RUN mkdir -p /www && echo "$GREETING" > /www/index.html\n'
    "EXPOSE 80\n"
    'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n'
)


def _leftovers(client: docker.DockerClient, number: int) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"conveyor.run={number}"})
    return [str(c.name) for c in found]


def test_failing_stage_stops_the_run_with_its_exit_code(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    result, out = run(
        [
            {"name": "ok", "run": ["echo first > first.txt"]},
            {
                "name": "test",
                "run": ["echo running tests", "echo boom >&2", "exit 7", "echo never"],
                "post": {"always": ["echo stage-always"], "success": ["echo stage-success"]},
            },
            {"name": "later", "run": ["touch later.txt"]},
        ],
        tmp_path,
        tmp_path / "state",
        post={
            "always": ["echo pipe-always"],
            "failure": ["echo pipe-failure > failed.txt"],
            "success": ["echo pipe-success"],
        },
    )
    assert result.status == "failed" and result.exit_code == 7
    assert result.failed_stage == "test"
    assert [(s.name, s.result) for s in result.stages] == [
        ("ok", "success"),
        ("test", "failed"),
        ("later", "not_run"),
    ]
    assert "boom" in result.log_tail and "running tests" in result.log_tail
    assert "never" not in out
    assert not (tmp_path / "later.txt").exists()
    assert (tmp_path / "first.txt").read_text() == "first\n"  # the workspace is the checkout
    assert (tmp_path / "failed.txt").read_text() == "pipe-failure\n"
    assert "stage-always" in out and "stage-success" not in out
    assert (
        out.index("stage-always")
        < out.index("pipe-always")
        < out.index("<== stage pipeline post:failure")
    )
    assert "pipe-success" not in out
    assert _leftovers(docker_client, result.number) == []
    record = History(tmp_path / "state").get(result.number)
    assert record.status == "failed" and record.exit_code == 7 and "boom" in record.log


def test_cli_exit_code_json_and_history(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: demo/app\n"
        "jenkins: {job: demo/app, agent: {image: busybox, docker: none}}\n"
        "stages:\n"
        "  - {name: greet, run: ['echo \"hi $BRANCH_NAME #$BUILD_NUMBER\"']}\n"
        "  - {name: fail, run: ['exit 4']}\n"
    )
    env = {**os.environ, "CONVEYOR_STATE": str(tmp_path / "state")}
    env.pop("CONVEYOR_GITLAB_URL", None)
    base = [sys.executable, "-m", "conveyor.cli.main"]
    done = subprocess.run(
        [
            *base,
            "run",
            str(spec),
            "--workdir",
            str(tmp_path),
            "--sha",
            SHA,
            "--branch",
            "dev",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "failed" and data["exit_code"] == 4 and data["failed_stage"] == "fail"
    assert "[greet] hi dev #1" in done.stderr  # live log on stderr with --json
    listed = subprocess.run(
        [*base, "runs", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    rows = json.loads(listed.stdout)
    assert [(r["number"], r["status"], r["exit_code"], r["ref"]) for r in rows] == [
        (1, "failed", 4, "dev")
    ]
    shown = subprocess.run(
        [*base, "runs", "show", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert "hi dev #1" in shown.stdout and "fail: failed" in shown.stdout
    missing = subprocess.run(
        [*base, "runs", "show", "9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "no run #9" in missing.stderr


def test_parallel_stages_run_at_the_same_time(tmp_path: Path) -> None:
    # each branch waits for the other's marker: only concurrent branches can both finish
    wait = "i=0; until [ -e {0} ]; do i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.1; done"
    result, _ = run(
        [
            {
                "name": "both",
                "parallel": [
                    {"name": "left", "run": ["touch left.mark", wait.format("right.mark")]},
                    {"name": "right", "run": ["touch right.mark", wait.format("left.mark")]},
                ],
            }
        ],
        tmp_path,
        tmp_path / "state",
    )
    assert result.succeeded, result.log_tail
    assert [(s.name, s.parent) for s in result.stages] == [
        ("both", None),
        ("left", "both"),
        ("right", "both"),
    ]


def test_build_labels_carry_the_sha_and_push_lands_in_the_registry(
    tmp_path: Path,
    registry: Registry,
    unique: Callable[[str], str],
    docker_client: docker.DockerClient,
) -> None:
    (tmp_path / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    project = f"{unique('g')}/app"
    result, out = run(
        [
            {
                "name": "image",
                "build": {
                    "tags": ["{registry}/{project}:{sha}", "{registry}/{project}:b{build_number}"],
                    "args": {"GREETING": "built-{short_sha}"},
                },
                "push": {"registry": registry.host, "credentials": "registry-creds"},
            }
        ],
        tmp_path,
        tmp_path / "state",
        project=project,
        environ={**os.environ, **registry.env()},
    )
    assert result.succeeded, out
    ref = f"{registry.host}/{project}:{SHA}"
    image = docker_client.images.get(ref)
    assert image.labels["org.opencontainers.image.revision"] == SHA
    assert registry.manifest_digest(project, SHA) is not None
    assert registry.manifest_digest(project, f"b{result.number}") is not None
    assert registry.password not in out


def test_deploy_stage_leaves_the_service_answering(
    tmp_path: Path, unique: Callable[[str], str]
) -> None:
    (tmp_path / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    port = free_port()
    name = unique("web")
    result, out = run(
        [
            {
                "name": "image",
                "build": {
                    "tags": [f"{unique('img')}:{{short_sha}}"],
                    "args": {"GREETING": "deployed-{short_sha}"},
                },
            },
            {
                "name": "ship",
                "deploy": {
                    "name": name,
                    "ports": [f"{port}:80"],
                    "strategy": "recreate",
                    "health": {"http": "/", "timeout": "30s"},
                },
            },
        ],
        tmp_path,
        tmp_path / "state",
    )
    assert result.succeeded, out
    answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert answer.status_code == 200 and answer.text.strip() == f"deployed-{SHA[:8]}"


def test_cache_volume_persists_between_runs(
    tmp_path: Path, unique: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    volume = unique("cache")
    stage = {
        "name": "deps",
        "run": [
            "if [ -e /cache/deps ]; then echo cache-hit; else echo cache-miss; echo fetched > /cache/deps; fi"
        ],
        "cache": [{"volume": volume, "path": "/cache"}],
    }
    first, out1 = run([stage], tmp_path, tmp_path / "state")
    second, out2 = run([stage], tmp_path, tmp_path / "state")
    assert first.succeeded and second.succeeded
    assert "cache-miss" in out1 and "cache-hit" in out2
    assert second.number == first.number + 1
    assert docker_client.volumes.get(volume).name == volume


def test_hostile_event_data_reaches_containers_only_as_environment(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # A valid git ref (no spaces: parsing refuses what git would), still shell all over.
    branch = f"$(touch${{IFS}}{marker})`touch${{IFS}}{marker}`"
    message = f'fix\'; rm -rf / ; touch {marker} #\n"$(touch {marker})"'
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "object_kind": "push",
                "ref": f"refs/heads/{branch}",
                "before": "0" * 40,
                "after": SHA,
                "checkout_sha": SHA,
                "user_name": "Mallory $(id)",
                "project": {"path_with_namespace": "demo/app"},
                "commits": [{"id": SHA, "message": message}],
            }
        )
    )
    trigger = trigger_from_event(read_event(event))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result, out = run(
        [
            {
                "name": "echo",
                "run": [
                    'printf "%s" "$gitlabBranch" > branch.txt',
                    'printf "%s" "$CONVEYOR_COMMIT_MESSAGE" > message.txt',
                    'printf "%s" "$gitlabUserName" > user.txt',
                    f"test ! -e {marker}",
                ],
            }
        ],
        workspace,
        tmp_path / "state",
        trigger=trigger,
    )
    assert result.succeeded, out
    assert (workspace / "branch.txt").read_text() == branch
    assert (workspace / "message.txt").read_text() == message
    assert (workspace / "user.txt").read_text() == "Mallory $(id)"
    assert not marker.exists()


def test_secrets_come_from_the_environment_and_are_masked(tmp_path: Path) -> None:
    secret = "s3cr3t-" + os.urandom(6).hex()
    result, out = run(
        [
            {
                "name": "use",
                "run": ['echo "token is $API_TOKEN"', '[ "$API_TOKEN" = "' + secret + '" ]'],
                "secrets": {"API_TOKEN": "api-token"},
            }
        ],
        tmp_path,
        tmp_path / "state",
        environ={**os.environ, "API_TOKEN": secret},
    )
    assert result.succeeded, out
    assert "token is ****" in out and secret not in out
    assert secret not in History(tmp_path / "state").get(result.number).log
    with pytest.raises(Exception, match=r"API_TOKEN \(credentials 'api-token'\)"):
        run(
            [{"name": "use", "run": ["true"], "secrets": {"API_TOKEN": "api-token"}}],
            tmp_path,
            tmp_path / "state",
            environ={},
        )


def test_receiver_style_call_and_commit_statuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gitlab_emulator: GitLabEmulator
) -> None:
    monkeypatch.setenv("CONVEYOR_STATE", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    spec = make_spec(
        [
            {"name": "unit", "run": ['test "$GIT_COMMIT" = ' + SHA]},
            {"name": "skipped", "run": ["true"], "when": {"branch": "main"}},
        ]
    )
    plain = run_pipeline(spec, push(branch="dev"))  # how the receiver's LocalDispatcher calls it
    assert plain.succeeded and plain.number == 1 and "succeeded" in plain.summary
    client = GitLabClient(gitlab_emulator.url, gitlab_emulator.tokens["developer"])
    statuses = GitLabStatuses(CommitStatusClient(client), warn=lambda text: None)
    result, _ = run(
        spec.model_dump(by_alias=True)["stages"],
        tmp_path,
        tmp_path / "state",
        trigger=push(branch="dev"),
        statuses=statuses,
    )
    assert result.succeeded
    posted = [(s.name, s.state, s.ref) for s in gitlab_emulator.statuses("demo/app", SHA)]
    assert posted == [
        ("conveyor", "running", "dev"),
        ("unit", "running", "dev"),
        ("unit", "success", "dev"),
        ("conveyor", "success", "dev"),
    ]


@pytest.mark.slow
def test_dind_builds_inside_a_nested_daemon(
    tmp_path: Path, unique: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    tag = f"{unique('dind')}:{{short_sha}}"
    result, out = run(
        [
            {
                "name": "where",
                "run": [
                    "docker info --format '{{.Name}} {{.Driver}}' > engine.txt",
                    "docker run --help >/dev/null",
                    "grep probe.conveyor.internal /etc/hosts > hosts.txt",
                ],
            },
            {"name": "image", "build": {"tags": [tag]}},
        ],
        tmp_path,
        tmp_path / "state",
        # a namespace option: given to the nested daemon, whose namespace the stage joins (the
        # engine refuses it on a `--network container:` container)
        agent={
            "image": "docker:cli",
            "docker": "dind",
            "args": ["--add-host=probe.conveyor.internal:10.9.8.7"],
        },
    )
    assert result.succeeded, out
    assert (tmp_path / "hosts.txt").read_text().split() == ["10.9.8.7", "probe.conveyor.internal"]
    assert "nested daemon ready" in out
    nested = (tmp_path / "engine.txt").read_text().split()
    assert nested[1] == "vfs"  # the nested daemon's storage driver, not the host's
    assert nested[0] != docker_client.info()["Name"]
    built = tag.replace("{short_sha}", SHA[:8])
    assert "built sha256:" in out
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(built)  # it lives (and died) in the nested daemon
    assert _leftovers(docker_client, result.number) == []


def test_stage_timeout_kills_the_container(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    result, out = run(
        [{"name": "slow", "run": ["echo start", "sleep 60"], "timeout": "2s"}],
        tmp_path,
        tmp_path / "state",
    )
    assert result.exit_code == 124 and result.failed_stage == "slow"
    assert "timed out after 2s" in out
    assert _leftovers(docker_client, result.number) == []
