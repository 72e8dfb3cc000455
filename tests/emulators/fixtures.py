"""pytest fixtures for the GitLab and Jenkins emulators (registered from tests/conftest.py).

See the package docstring (tests/emulators/__init__.py) for the seeded world and the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gitlab
import jenkins
import pytest

from tests.emulators.gitlab import GitLabEmulator
from tests.emulators.jenkins import JenkinsEmulator

GITLAB_TOKENS = {
    "maintainer": "glpat-maintainer-0000000000",
    "developer": "glpat-developer-00000000000",
    "outsider": "glpat-outsider-000000000000",
}
JENKINS_USER = "conveyor"
JENKINS_API_TOKEN = "11aa22bb33cc44dd55ee66ff77889900"
JENKINS_PASSWORD = "conveyor-password"


def seed_gitlab(emulator: GitLabEmulator) -> GitLabEmulator:
    """Users, groups and projects every GitLab test can count on."""
    for username, token in GITLAB_TOKENS.items():
        emulator.add_user(username, token)
    team = {"maintainer": "maintainer", "developer": "developer"}
    emulator.add_project("demo/hello-web", members=team)
    emulator.add_project("demo/app", members=team)
    emulator.add_project("demo/backend/api", members=team)
    emulator.add_project("demo/backend/deep/worker", members=team)
    emulator.add_project("demo/legacy", members=team, archived=True)
    emulator.add_project("other/secret", members={"outsider": "maintainer"})
    return emulator


def seed_jenkins(emulator: JenkinsEmulator) -> JenkinsEmulator:
    emulator.add_user(JENKINS_USER, JENKINS_API_TOKEN, password=JENKINS_PASSWORD)
    return emulator


@pytest.fixture
def make_gitlab_emulator() -> Iterator[Callable[..., GitLabEmulator]]:
    """Factory: ``make_gitlab_emulator(seed=True, **GitLabEmulator kwargs)``; all stopped at teardown."""
    started: list[GitLabEmulator] = []

    def make(*, seed: bool = True, **kwargs: Any) -> GitLabEmulator:
        emulator = GitLabEmulator(**kwargs)
        if seed:
            seed_gitlab(emulator)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def gitlab_emulator(make_gitlab_emulator: Callable[..., GitLabEmulator]) -> GitLabEmulator:
    """A started, seeded GitLab emulator (see :func:`seed_gitlab`)."""
    return make_gitlab_emulator()


@pytest.fixture
def gitlab_api(gitlab_emulator: GitLabEmulator) -> gitlab.Gitlab:
    """python-gitlab as the seeded maintainer, retrying transient errors."""
    return gitlab.Gitlab(
        gitlab_emulator.url,
        private_token=gitlab_emulator.tokens["maintainer"],
        retry_transient_errors=True,
        timeout=10,
    )


@pytest.fixture
def make_jenkins_emulator() -> Iterator[Callable[..., JenkinsEmulator]]:
    """Factory: ``make_jenkins_emulator(seed=True, crumb_mode=..., anonymous_read=...,
    queue_delay=..., build_duration=...)``; all stopped at teardown."""
    started: list[JenkinsEmulator] = []

    def make(*, seed: bool = True, **kwargs: Any) -> JenkinsEmulator:
        emulator = JenkinsEmulator(**kwargs)
        if seed:
            seed_jenkins(emulator)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def jenkins_emulator(make_jenkins_emulator: Callable[..., JenkinsEmulator]) -> JenkinsEmulator:
    """A started Jenkins emulator with user ``conveyor`` and strict crumbs."""
    return make_jenkins_emulator()


@pytest.fixture
def jenkins_api(jenkins_emulator: JenkinsEmulator) -> jenkins.Jenkins:
    """python-jenkins authenticated with the ``conveyor`` user's API token."""
    return jenkins.Jenkins(
        jenkins_emulator.url, username=JENKINS_USER, password=JENKINS_API_TOKEN, timeout=10
    )
