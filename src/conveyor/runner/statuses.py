"""Commit statuses for a local run, named as the Jenkinsfile names them.

The pipeline reports ``running`` then ``success``/``failed``/``canceled`` as ``conveyor``
(:data:`conveyor.gitlab.status.PIPELINE_STATUS_NAME`, as the Jenkinsfile does); each leaf stage that runs reports ``running`` then its result under
its own name (the Jenkinsfile's ``gitlabCommitStatus(name: STAGE)``). A status GitLab refuses never
fails the run: it becomes a warning line (the message names the project and never the token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.status import CommitState, CommitStatusClient
from conveyor.pipeline.context import Trigger


class StatusReporter(Protocol):
    def report(
        self, trigger: Trigger, name: str, state: CommitState, description: str = ""
    ) -> None: ...


class NoStatuses:
    """Reports nothing (no GitLab configured, or the caller posts statuses itself)."""

    def report(
        self, trigger: Trigger, name: str, state: CommitState, description: str = ""
    ) -> None:
        return None


def status_ref(trigger: Trigger) -> str | None:
    """The ref GitLab shows the status on: the tag, else the (source) branch."""
    return trigger.tag or trigger.branch or None


class GitLabStatuses:
    """Posts statuses with :class:`conveyor.gitlab.status.CommitStatusClient`."""

    def __init__(self, client: CommitStatusClient, warn: Callable[[str], None]) -> None:
        self._client = client
        self._warn = warn

    def report(
        self, trigger: Trigger, name: str, state: CommitState, description: str = ""
    ) -> None:
        try:
            self._client.post_status(
                trigger.project,
                trigger.sha,
                state,
                name,
                ref=status_ref(trigger),
                description=description or None,
            )
        except (ConveyorError, ValueError) as exc:
            self._warn(f"warning: commit status {name!r} ({state}) not posted: {exc}")


def reporter_from_settings(settings: Settings, warn: Callable[[str], None]) -> StatusReporter:
    """GitLab statuses when ``CONVEYOR_GITLAB_URL`` and ``CONVEYOR_GITLAB_TOKEN`` are set, else none."""
    if not (settings.gitlab_url and settings.gitlab_token):
        return NoStatuses()
    client = GitLabClient(settings.gitlab_url, settings.gitlab_token, max_retries=2)
    return GitLabStatuses(CommitStatusClient(client), warn)
