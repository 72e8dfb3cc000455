"""Check out the commit an event names, for the local runner (git over HTTP(S) or a local path).

The ref the event names is fetched shallowly (``refs/heads/<branch>``, ``refs/tags/<tag>``, or
``refs/merge-requests/<iid>/head`` for a merge request, which also covers forks), then the
event's sha is checked out (detached). For an ``http(s)`` URL with ``CONVEYOR_GITLAB_TOKEN``
set, the token travels in an ``Authorization`` header passed through git's environment
(``GIT_CONFIG_*``), never on the command line or in a URL, so it shows neither in process
lists nor in error messages.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from conveyor.errors import RunnerError
from conveyor.gitlab.events import EventKind, GitLabEvent


def fetch_ref(event: GitLabEvent) -> str:
    """The ref to fetch for ``event``."""
    if event.kind is EventKind.MERGE_REQUEST and event.mr_iid is not None:
        return f"refs/merge-requests/{event.mr_iid}/head"
    return event.ref


def _git_env(url: str, token: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    if token and url.startswith(("http://", "https://")):
        basic = base64.b64encode(f"oauth2:{token}".encode()).decode("ascii")
        env["GIT_CONFIG_COUNT"] = "1"
        env["GIT_CONFIG_KEY_0"] = "http.extraHeader"
        env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {basic}"
    return env


def _git(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunnerError(f"checkout: {what}: {exc}") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RunnerError(f"checkout: {what} failed: {' / '.join(tail)}")


def checkout(event: GitLabEvent, into: Path, *, token: str | None = None) -> Path:
    """Fetch and check out ``event.sha`` into the empty directory ``into``; returns it."""
    url = event.git_http_url
    if not url:
        raise RunnerError(
            f"event for {event.project_path} names no clone URL (project.git_http_url)",
            hint="replay it from a GitLab that sends project.git_http_url",
        )
    into.mkdir(parents=True, exist_ok=True)
    env = _git_env(url, token)
    _git(["init", "--quiet"], into, env, "git init")
    _git(["remote", "add", "origin", url], into, env, "git remote add")
    ref = fetch_ref(event)
    _git(["fetch", "--quiet", "--depth", "50", "origin", ref], into, env, f"fetch {ref}")
    try:
        _git(
            ["checkout", "--quiet", "--detach", event.sha], into, env, f"checkout {event.sha[:12]}"
        )
    except RunnerError:
        # The ref moved on past the fetched depth: ask for the commit itself (never build
        # another commit than the one the statuses are reported for).
        _git(
            ["fetch", "--quiet", "--depth", "1", "origin", event.sha],
            into,
            env,
            f"fetch {event.sha[:12]}",
        )
        _git(
            ["checkout", "--quiet", "--detach", event.sha], into, env, f"checkout {event.sha[:12]}"
        )
    return into
