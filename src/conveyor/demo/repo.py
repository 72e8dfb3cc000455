"""The demo's stand-in for a GitLab repository: a local git repository of the example app.

The receiver's local dispatcher clones ``<CONVEYOR_GIT_URL>/<project>.git`` exactly as it would
clone from the configured GitLab (never from a payload's ``git_http_url``): the demo sets
``CONVEYOR_GIT_URL`` to :func:`clone_base` and keeps the repository at :func:`location`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.gitlab.refs import SHA1_ZERO

APP_FILES = ("app.py", "test_app.py", "Dockerfile", ".dockerignore")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Demo Developer",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Demo Developer",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


@dataclass(frozen=True)
class Commit:
    sha: str
    before: str
    message: str


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as exc:
        raise ConveyorError(
            f"git {' '.join(args)} failed in {repo}: {exc.stderr.strip()}"
        ) from None
    return out.stdout.strip()


def clone_base(root: Path) -> str:
    """The ``file://`` URL the demo's receiver clones projects from."""
    return (root / "git").resolve().as_uri()


def location(root: Path, project: str) -> Path:
    """Where :func:`clone_base` finds ``project``: ``<root>/git/<project>.git``."""
    return root / "git" / f"{project}.git"


def find_example(name: str) -> Path:
    """``examples/<name>`` from the working directory or conveyor's source tree."""
    candidates = [
        Path.cwd() / "examples" / name,
        Path(__file__).resolve().parents[3] / "examples" / name,
    ]
    for path in candidates:
        if (path / "conveyor.yml").is_file():
            return path
    raise ConveyorError(
        f"example {name!r} not found (looked in {', '.join(str(c) for c in candidates)})",
        hint="run conveyor demo from a conveyor checkout",
    )


def create(example: Path, repo: Path) -> Commit:
    """A fresh repository on branch main holding the example app, with one commit."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    for name in APP_FILES:
        shutil.copy2(example / name, repo / name)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "hello-web: first version")
    return Commit(_git(repo, "rev-parse", "HEAD"), SHA1_ZERO, "hello-web: first version")


def change(repo: Path, greeting: str) -> Commit:
    """A code change: a new greeting in app.py, committed on main."""
    before = _git(repo, "rev-parse", "HEAD")
    app = repo / "app.py"
    text = app.read_text()
    old = 'f"hello from hello-web {VERSION}"'
    if old not in text:
        raise ConveyorError(f"{app}: the greeting line to change was not found")
    app.write_text(text.replace(old, f'f"{greeting} {{VERSION}}"'))
    message = f"hello-web: new greeting ({greeting})"
    _git(repo, "commit", "-q", "-am", message)
    return Commit(_git(repo, "rev-parse", "HEAD"), before, message)
