"""The docker run arguments of a stage: mounts, engine access, and data never on the command line."""

from __future__ import annotations

import pytest

from conveyor.errors import RunnerError
from conveyor.runner.containers import (
    SOCKET_MOUNT,
    WORKSPACE,
    EngineAccess,
    agent_args,
    bind_workspace,
    container_name,
    run_args,
    split_namespace,
)
from conveyor.spec.model import Spec
from tests.runner.specs import make_spec

SPEC = make_spec(
    [
        {"name": "agent", "run": ["echo hi"]},
        {
            "name": "cached",
            "run": ["true"],
            "cache": [{"volume": "gocache", "path": "/root/.cache"}],
        },
        {
            "name": "own",
            "run": ["true"],
            "image": "busybox",
            "cache": [{"volume": "m2", "path": "/root/.m2"}],
        },
    ],
    agent={"image": "busybox", "docker": "socket", "args": ["--add-host", "db:10.0.0.1"]},
)


def test_agent_args_match_the_declared_agent_blocks() -> None:
    agent = SPEC.jenkins.agent
    assert agent_args(agent, SPEC.stages[0]) == ["-v", SOCKET_MOUNT, "--add-host", "db:10.0.0.1"]
    assert agent_args(agent, SPEC.stages[1]) == [
        "-v",
        SOCKET_MOUNT,
        "-v",
        "gocache:/root/.cache",
        "--add-host",
        "db:10.0.0.1",
    ]
    assert agent_args(agent, SPEC.stages[2]) == ["-v", "m2:/root/.m2"]  # own image: no socket


def test_run_args_keep_values_off_the_command_line() -> None:
    hostile = "$(touch /tmp/pwned)'; rm -rf / #"
    run = run_args(
        name="c1",
        image="busybox",
        commands=['echo "$gitlabBranch"'],
        workspace=bind_workspace("/src"),
        agent=SPEC.jenkins.agent,
        stage=SPEC.stages[0],
        engine=EngineAccess("socket"),
        env={"gitlabBranch": hostile, "TOKEN": "s3cret-value"},
        labels={"conveyor.run": "1"},
    )
    argv = list(run.argv)
    assert not any(hostile in a or "s3cret-value" in a for a in argv)
    assert run.env["gitlabBranch"] == hostile and run.env["TOKEN"] == "s3cret-value"
    assert argv[argv.index("gitlabBranch") - 1 : argv.index("gitlabBranch") + 1] == [
        "-e",
        "gitlabBranch",
    ]
    assert argv[argv.index("-w") + 1] == WORKSPACE
    assert f"/src:{WORKSPACE}" in argv
    assert argv[-4:] == ["busybox", "-e", "-c", 'echo "$gitlabBranch"\n']
    assert argv[argv.index("--entrypoint") + 1] == "sh"


def _dind_argv(spec: Spec, engine: EngineAccess) -> list[str]:
    run = run_args(
        name="c",
        image="docker:cli",
        commands=["docker info"],
        workspace=bind_workspace("/w"),
        agent=spec.jenkins.agent,
        stage=spec.stages[0],
        engine=engine,
        env={},
        labels={},
    )
    return list(run.argv)


def test_dind_sets_docker_host_and_joins_the_daemon_namespace() -> None:
    spec = make_spec(
        [{"name": "b", "run": ["docker info"]}], agent={"image": "docker:cli", "docker": "dind"}
    )
    engine = EngineAccess("dind", docker_host="tcp://127.0.0.1:2375", network="container:d1")
    argv = _dind_argv(spec, engine)
    assert "DOCKER_HOST=tcp://127.0.0.1:2375" in argv  # a CLI variable: literal, not inherited
    assert argv[argv.index("--network") + 1] == "container:d1"
    assert SOCKET_MOUNT not in argv
    with pytest.raises(RunnerError, match="nested daemon"):
        run_args(
            name="c",
            image="x",
            commands=["true"],
            workspace=bind_workspace("/w"),
            agent=spec.jenkins.agent,
            stage=spec.stages[0],
            engine=EngineAccess("dind"),
            env={},
            labels={},
        )


@pytest.mark.parametrize(
    ("args", "own", "namespace"),
    [
        (["--add-host", "a:1.2.3.4"], [], ["--add-host", "a:1.2.3.4"]),
        (["--add-host=a:host-gateway"], [], ["--add-host=a:host-gateway"]),
        (["-p8080:80", "-P", "--expose", "9"], [], ["-p8080:80", "-P", "--expose", "9"]),
        (["-h", "box", "--dns=1.1.1.1"], [], ["-h", "box", "--dns=1.1.1.1"]),
        (["--cap-add", "NET_ADMIN", "-e", "X"], ["--cap-add", "NET_ADMIN", "-e", "X"], []),
        (["--link", "db", "-v", "a:/a"], ["-v", "a:/a"], ["--link", "db"]),
        (["--add-host"], [], ["--add-host"]),  # dangling: the engine says what is wrong
        (["--publish-all=true", "--hostnames"], ["--hostnames"], ["--publish-all=true"]),
    ],
)
def test_split_namespace_sorts_options_by_who_owns_them(
    args: list[str], own: list[str], namespace: list[str]
) -> None:
    assert split_namespace(args) == (own, namespace)


def test_a_container_joining_a_namespace_leaves_its_options_to_the_owner() -> None:
    """moby refuses --add-host, --dns, -p... with ``--network container:`` (validateNetContainerMode);
    the joined container shares the owner's hosts file, which got them."""
    args = ["--add-host=api.internal:host-gateway", "--cap-add", "NET_ADMIN", "-p", "80:80"]
    spec = make_spec(
        [{"name": "b", "run": ["true"]}],
        agent={"image": "docker:cli", "docker": "dind", "args": args},
    )
    joined = _dind_argv(
        spec, EngineAccess("dind", docker_host="tcp://127.0.0.1:2375", network="container:d")
    )
    assert "--cap-add" in joined and "NET_ADMIN" in joined
    assert not {"--add-host=api.internal:host-gateway", "-p", "80:80"} & set(joined)
    # no namespace joined (a conveyor --jenkins step outside a container): the options stay
    alone = _dind_argv(spec, EngineAccess("dind", docker_host="tcp://docker:2376"))
    assert "--add-host=api.internal:host-gateway" in alone and "80:80" in alone


def test_container_names_are_docker_safe() -> None:
    assert container_name(3, "$(touch x) / Build!", "ab12") == "conveyor-run-3-touch-x-build-ab12"
