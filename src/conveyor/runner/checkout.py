"""Check a commit out into a fresh directory, for runs that do not start from a working tree
(the receiver's local dispatch): ``git init`` + ``fetch --depth 1 URL SHA`` + ``checkout``.

Credentials in the URL (``https://user:token@host/...``) are used by git but never shown: messages
name :func:`conveyor.docker.gitfacts.public_url` of it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conveyor.docker.gitfacts import public_url
from conveyor.errors import RunnerError

GIT_TIMEOUT = 600


def _git(dest: Path, url: str, *args: str) -> None:
    try:
        done = subprocess.run(
            ["git", "-C", str(dest), "-c", "advice.detachedHead=false", *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RunnerError(f"git {args[0]} for {public_url(url)}: {exc}") from None
    if done.returncode != 0:
        detail = done.stderr.replace(url, public_url(url)).strip().splitlines()[-3:]
        raise RunnerError(
            f"git {args[0]} of {public_url(url)} failed: {' / '.join(detail)}",
            hint="check the clone URL, its credentials, and that the commit exists",
        )


def checkout(url: str, sha: str, dest: Path) -> Path:
    """Fetch commit ``sha`` of ``url`` into the empty or new directory ``dest``; return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise RunnerError(f"checkout directory {dest} is not empty")
    _git(dest, url, "init", "-q")
    _git(dest, url, "fetch", "-q", "--depth", "1", url, sha)
    _git(dest, url, "checkout", "-q", "FETCH_HEAD")
    return dest
