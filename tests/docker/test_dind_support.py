"""The test support that starts the docker:dind stand-in: ``docker run`` options as SDK arguments."""

from __future__ import annotations

import pytest

from conveyor.errors import ConfigError
from conveyor.spec.model import DindOptions
from tests.docker.dind_support import run_kwargs


def test_run_kwargs_from_fallback_args() -> None:
    kwargs = run_kwargs(
        [
            *DindOptions().fallback_args,
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs /var/lib/docker:exec",
            "-e=A=1",
        ]
    )
    assert kwargs == {
        "cap_add": ["ALL"],
        "cap_drop": ["SYS_RESOURCE"],
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "systempaths_unconfined": True,
        "binds": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
        "tmpfs": {"/var/lib/docker": "exec"},
        "environment": {"A": "1"},
    }
    assert run_kwargs(["--privileged"]) == {"privileged": True}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pid=host"], "unsupported dind argument --pid"),
        (["--cap-add"], "needs a value"),
        (["ALL"], "not an option"),
    ],
)
def test_run_kwargs_rejects(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_kwargs(args)
