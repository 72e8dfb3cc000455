"""What a build knows about its checkout: commit, branch, tag and origin, from flags or from ``git``.

``--workdir`` is the repository checkout for ``build``, ``push`` and ``deploy``. Flags win over git;
git fills what the flags leave out. A remote URL loses any ``user:token@`` part before it is used
(it ends up in an image label).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from conveyor.errors import UsageError
from conveyor.pipeline.when import branch_of, tag_of


@dataclass(frozen=True)
class GitFacts:
    """The checkout's commit (full sha), branch and tag ("" when none) and its origin URL."""

    sha: str
    branch: str = ""
    tag: str = ""
    source: str = ""

    @property
    def short_sha(self) -> str:
        return self.sha[:8]


_SCP_LIKE = re.compile(r"^[^@/:]+@([^:/]+):(.*)$")  # git@host:group/repo.git


def public_url(url: str) -> str:
    """``url`` without credentials: ``https://user:tok@host/x.git`` -> ``https://host/x.git``;
    scp-like ``git@host:g/r.git`` -> ``https://host/g/r.git``; anything else unchanged."""
    url = url.strip()
    scp = _SCP_LIKE.match(url)
    if scp and "://" not in url:
        return f"https://{scp.group(1)}/{scp.group(2)}"
    parts = urlsplit(url)
    if parts.scheme and parts.hostname:
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def _git(workdir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(workdir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_facts(
    workdir: Path,
    *,
    sha: str | None = None,
    branch: str | None = None,
    tag: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> GitFacts:
    """Facts for ``workdir``: flags first, then ``git``, then the build variables in ``environ``
    (default ``os.environ``). A Jenkins build checks the pushed commit out detached, so git knows
    no branch there; the branch and tag then come from ``gitlabBranch`` & co., read exactly as the
    stage ``when`` conditions read them. Raises UsageError when no commit is known."""
    env = os.environ if environ is None else environ
    found_sha = sha or _git(workdir, "rev-parse", "HEAD")
    if not found_sha:
        raise UsageError(
            f"no commit for {workdir}: it is not a git checkout with a commit",
            hint="run inside a checkout, pass --workdir DIR, or give --sha",
        )
    if branch is None:
        head = _git(workdir, "rev-parse", "--abbrev-ref", "HEAD")
        branch = head if head and head != "HEAD" else branch_of(env)
    if tag is None:
        tag = _git(workdir, "describe", "--tags", "--exact-match", "HEAD") or tag_of(env)
    origin = _git(workdir, "remote", "get-url", "origin") or ""
    return GitFacts(
        sha=found_sha, branch=branch, tag=tag, source=public_url(origin) if origin else ""
    )
