"""A GitLab and a Jenkins emulator, settings pointing at them, and spec files to sync."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.config import Settings, load_settings
from conveyor.spec.load import LoadedSpec, load_specs
from conveyor.sync.context import SyncContext
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.emulators.gitlab import GitLabEmulator
from tests.emulators.jenkins import JenkinsEmulator

SECRET = "master-secret-4f1b9c0d7e2a"
PREVIOUS_SECRET = "old-master-secret-99aa77bb"
WEBHOOK_URL = "https://conveyor.example.com"

PROJECTS = ("demo/hello-web", "demo/app", "demo/backend/api", "demo/backend/deep/worker")


def spec_text(
    project: str,
    *,
    job: str | None = None,
    target: str = "receiver",
    branches: tuple[str, ...] = ("main",),
    command: str = "make test",
) -> str:
    branch_list = ", ".join(f'"{b}"' for b in branches)
    # gitlab-plugin (target jenkins) has one branch filter and no [skip ci]: a spec it can express
    merge_request = f"{{target_branches: [{branch_list}]}}" if target == "jenkins" else "{}"
    skip_ci = "false" if target == "jenkins" else "true"
    return textwrap.dedent(f"""\
        apiVersion: conveyor/v1
        project: {project}
        triggers:
          push:
            branches: [{branch_list}]
          merge_request: {merge_request}
          skip_ci: {skip_ci}
        jenkins:
          job: {job or project}
        webhook:
          target: {target}
        stages:
          - name: test
            run: ["{command}"]
        """)


@dataclass
class World:
    gitlab: GitLabEmulator
    jenkins: JenkinsEmulator
    specs_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def settings(self, **extra: str) -> Settings:
        return load_settings({**self.env, **extra})

    def write_spec(self, name: str, text: str) -> Path:
        path = self.specs_dir / f"{name}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def specs(self) -> list[LoadedSpec]:
        return load_specs([self.specs_dir])

    def context(self, *, concurrency: int = 4, **extra: str) -> SyncContext:
        return SyncContext.create(
            self.settings(**extra), self.specs(), concurrency=concurrency, timeout=5.0
        )

    def clear_logs(self) -> None:
        self.gitlab.log.clear()
        self.jenkins.log.clear()

    def id_token(self, project: str) -> str:
        """The hook token of ``project``: keyed on its GitLab id."""
        from conveyor.tokens import project_id_token

        return project_id_token(SECRET, self.gitlab.project(project).id)

    def writes(self) -> int:
        return self.gitlab.log.count_writes() + self.jenkins.log.count_writes()

    @property
    def secrets(self) -> list[str]:
        """Every secret value that must never be shown."""
        from conveyor.tokens import job_trigger_token, project_id_token, project_token

        values = [SECRET, PREVIOUS_SECRET, JENKINS_API_TOKEN, self.env["CONVEYOR_GITLAB_TOKEN"]]
        for project in PROJECTS:
            for secret in (SECRET, PREVIOUS_SECRET):
                values.append(project_token(secret, project))
                values.append(job_trigger_token(secret, project))
                values.append(project_id_token(secret, self.gitlab.project(project).id))
        return values


@pytest.fixture
def world(
    make_gitlab_emulator: Callable[..., GitLabEmulator],
    make_jenkins_emulator: Callable[..., JenkinsEmulator],
    tmp_path: Path,
) -> Iterator[World]:
    # the Jenkins emulator (a `webhook.target: jenkins` hook URL) is on loopback: this instance
    # allows local requests from hooks, as a self-managed GitLab next to its Jenkins would
    gitlab = make_gitlab_emulator(allow_local_requests=True)
    jenkins = make_jenkins_emulator()
    env = {
        "CONVEYOR_GITLAB_URL": gitlab.url,
        "CONVEYOR_GITLAB_TOKEN": gitlab.tokens["maintainer"],
        "CONVEYOR_JENKINS_URL": jenkins.url,
        "CONVEYOR_JENKINS_USER": JENKINS_USER,
        "CONVEYOR_JENKINS_TOKEN": JENKINS_API_TOKEN,
        "CONVEYOR_WEBHOOK_URL": WEBHOOK_URL,
        "CONVEYOR_SECRET": SECRET,
        "CONVEYOR_STATE": str(tmp_path / "state"),
        "CONVEYOR_CONFIG": str(tmp_path / "no-config.toml"),
    }
    (tmp_path / "no-config.toml").write_text("", encoding="utf-8")
    specs_dir = tmp_path / "pipelines"
    specs_dir.mkdir()
    w = World(gitlab, jenkins, specs_dir, env)
    for project in PROJECTS:
        w.write_spec(project, spec_text(project))
    yield w


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log record, DEBUG and up, of every logger (python-jenkins, urllib3, ours)."""
    caplog.set_level(logging.DEBUG)
    return caplog
