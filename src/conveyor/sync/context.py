"""The settings and server clients one sync run uses, validated before any request is sent."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.config import Settings
from conveyor.gitlab.client import GitLabClient
from conveyor.jenkins.client import JenkinsClient
from conveyor.spec.load import LoadedSpec

DEFAULT_CONCURRENCY = 8


def required_settings(specs: Sequence[LoadedSpec], *, need_secret: bool = True) -> list[str]:
    """The settings a sync of ``specs`` needs (the receiver URL only if a spec targets it)."""
    names = ["gitlab_url", "gitlab_token", "jenkins_url", "jenkins_user", "jenkins_token"]
    if need_secret:
        names.append("secret")
    if any(s.spec.webhook.target == "receiver" for s in specs):
        names.append("webhook_url")
    return names


@dataclass
class SyncContext:
    """Clients for one run. GitLab clients are per thread (one HTTP session each)."""

    settings: Settings
    jenkins: JenkinsClient
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 30.0
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @classmethod
    def create(
        cls,
        settings: Settings,
        specs: Sequence[LoadedSpec],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = 30.0,
        need_secret: bool = True,
    ) -> SyncContext:
        """Check every needed setting first (one ConfigError naming them all), then build clients."""
        settings.require(*required_settings(specs, need_secret=need_secret))
        if concurrency < 1:
            from conveyor.errors import UsageError

            raise UsageError(f"--concurrency must be at least 1, got {concurrency}")
        jenkins = JenkinsClient(
            settings.jenkins_url or "",
            settings.jenkins_user or "",
            settings.jenkins_token or "",
            timeout=timeout,
        )
        return cls(settings, jenkins, concurrency, timeout)

    @property
    def gitlab(self) -> GitLabClient:
        """This thread's GitLab client."""
        client: GitLabClient | None = getattr(self._local, "gitlab", None)
        if client is None:
            client = GitLabClient(
                self.settings.gitlab_url or "",
                self.settings.gitlab_token or "",
                timeout=self.timeout,
            )
            self._local.gitlab = client
        return client

    @property
    def rotating(self) -> bool:
        """CONVEYOR_SECRET_PREVIOUS is set: every token is rewritten."""
        return bool(self.settings.previous_secret)
