"""Check out the commit an event names, for the local runner, from the configured GitLab only.

Where from: ``<base>/<project path>.git``, the base being ``CONVEYOR_GIT_URL`` when set (a mirror,
or ``file:///srv/git`` for local repositories) else ``CONVEYOR_GITLAB_URL``. The payload's
``project.git_http_url`` is never used: a forged delivery could name any host, and the token
would go with it. The project path is the payload's (GitLab's current canonical path), checked
against GitLab's path format first (:func:`conveyor.gitlab.refs.project_path_problem`).

Credentials: ``CONVEYOR_GITLAB_TOKEN`` travels only to the configured GitLab, i.e. only when the
clone base has the scheme, host and port of ``CONVEYOR_GITLAB_URL``; it goes in an
``Authorization`` header through git's environment (``GIT_CONFIG_*``), never on the command line
or in a URL, so it shows neither in process lists nor in error messages. (curl, under git, does
not send a custom ``Authorization`` header on to another host after a redirect: CVE-2018-1000007.)

What: the ref the event names is fetched shallowly (``refs/heads/<branch>``, ``refs/tags/<tag>``,
``refs/merge-requests/<iid>/head`` for a merge request, which also covers forks, the target
branch for a merge request's ``merge``), then the event's sha is checked out (detached). Every
git invocation ends its options with ``--end-of-options`` before any ref, sha or URL (git
>= 2.24; ``git switch`` rather than ``checkout``, whose ``--`` means "paths follow"), the ref and
sha are checked again here (git's ``check-ref-format``, a full sha), and git may only speak
http(s) and file (``GIT_ALLOW_PROTOCOL``), so no value can turn into ``--upload-pack=...`` or
an ``ext::`` command.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.config import Settings
from conveyor.errors import RunnerError
from conveyor.gitlab.events import EventKind, GitLabEvent
from conveyor.gitlab.refs import project_path_problem, refname_problem, sha_problem

ALLOWED_PROTOCOLS = "http:https:file"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def fetch_ref(event: GitLabEvent) -> str:
    """The ref to fetch for ``event``."""
    if event.kind is EventKind.MERGE_REQUEST and not event.merged and event.mr_iid is not None:
        return f"refs/merge-requests/{event.mr_iid}/head"
    return event.ref


def clone_base(settings: Settings) -> str | None:
    """Where repositories are cloned from: ``CONVEYOR_GIT_URL``, else ``CONVEYOR_GITLAB_URL``."""
    return settings.git_url or settings.gitlab_url


def clone_url(base: str, project_path: str) -> str:
    """``<base>/<project path>.git`` for a path that passed GitLab's path format."""
    problem = project_path_problem(project_path)
    if problem is not None:
        raise RunnerError(f"checkout: project path {project_path!r} {problem}")
    return f"{base.rstrip('/')}/{project_path}.git"


def gitlab_repo_url(gitlab_url: str | None, project_path: str) -> str | None:
    """The project's URL on the configured GitLab (what builds may name as their source)."""
    if not gitlab_url or project_path_problem(project_path) is not None:
        return None
    return clone_url(gitlab_url, project_path)


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port


def sends_token(url: str, gitlab_url: str | None) -> bool:
    """Whether the GitLab token may go with a fetch from ``url``: only to CONVEYOR_GITLAB_URL."""
    if not gitlab_url:
        return False
    origin = _origin(url)
    return origin is not None and origin == _origin(gitlab_url)


def _git_env(token: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ALLOW_PROTOCOL"] = ALLOWED_PROTOCOLS
    if token:
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


def _checked(ref: str, sha: str) -> None:
    """Refuse what parsing should already have refused (an event built some other way)."""
    problem = refname_problem(ref) if ref.startswith("refs/") else "is not under refs/"
    if problem is not None:
        raise RunnerError(f"checkout: refusing ref {ref[:200]!r}: it {problem}")
    problem = sha_problem(sha)
    if problem is not None:
        raise RunnerError(f"checkout: refusing sha {sha[:80]!r}: it {problem}")


def checkout(event: GitLabEvent, into: Path, settings: Settings) -> Path:
    """Fetch and check out ``event.sha`` into the empty directory ``into``; returns it."""
    base = clone_base(settings)
    if not base:
        raise RunnerError(
            f"no repository to check out {event.project_path} from",
            hint="set CONVEYOR_GITLAB_URL (or CONVEYOR_GIT_URL for a mirror or local repositories)",
        )
    url = clone_url(base, event.project_path)
    ref = fetch_ref(event)
    _checked(ref, event.sha)
    into.mkdir(parents=True, exist_ok=True)
    env = _git_env(settings.gitlab_token if sends_token(url, settings.gitlab_url) else None)
    _git(["init", "--quiet"], into, env, "git init")
    _git(["remote", "add", "--end-of-options", "origin", url], into, env, "git remote add")
    _git(
        ["fetch", "--quiet", "--no-tags", "--depth", "50", "--end-of-options", "origin", ref],
        into,
        env,
        f"fetch {ref}",
    )
    switch = ["switch", "--quiet", "--detach", "--end-of-options", event.sha]
    try:
        _git(switch, into, env, f"checkout {event.sha[:12]}")
    except RunnerError:
        # The ref moved on past the fetched depth: ask for the commit itself (never build
        # another commit than the one the statuses are reported for).
        by_sha = ["fetch", "--quiet", "--no-tags", "--depth", "1", "--end-of-options", "origin"]
        _git(
            [*by_sha, event.sha],
            into,
            env,
            f"fetch {event.sha[:12]}",
        )
        _git(switch, into, env, f"checkout {event.sha[:12]}")
    return into
