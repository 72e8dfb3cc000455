"""GitLab push events as GitLab sends them (headers and payload), for the demo's receiver."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from conveyor.demo.repo import Commit


def push_payload(
    project: str, repo_url: str, commit: Commit, branch: str = "main"
) -> dict[str, object]:
    """A ``Push Hook`` payload (GitLab's documented shape) for one commit on ``branch``."""
    name = project.rsplit("/", 1)[-1]
    now = datetime.now(UTC).isoformat()
    author = {"name": "Demo Developer", "email": "dev@example.com"}
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": commit.before,
        "after": commit.sha,
        "ref": f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": commit.sha,
        "message": None,
        "user_id": 1,
        "user_name": "Demo Developer",
        "user_username": "demo",
        "user_email": "dev@example.com",
        "project_id": 1,
        "project": {
            "id": 1,
            "name": name,
            "path_with_namespace": project,
            "default_branch": "main",
            "git_http_url": repo_url,
            "git_ssh_url": repo_url,
            "web_url": f"http://gitlab.invalid/{project}",
            "visibility_level": 0,
        },
        "commits": [
            {
                "id": commit.sha,
                "message": commit.message + "\n",
                "title": commit.message,
                "timestamp": now,
                "url": f"http://gitlab.invalid/{project}/-/commit/{commit.sha}",
                "author": author,
                "added": [],
                "modified": ["app.py"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
        "push_options": {},
        "repository": {
            "name": name,
            "url": repo_url,
            "homepage": f"http://gitlab.invalid/{project}",
            "git_http_url": repo_url,
            "visibility_level": 0,
        },
    }


def push_headers(token: str) -> dict[str, str]:
    """The headers GitLab sends with a push hook (token verbatim, a fresh idempotency key)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.6.0",
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": token,
        "X-Gitlab-Instance": "http://gitlab.invalid",
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": str(uuid.uuid4()),
    }


def encode(payload: dict[str, object]) -> bytes:
    return json.dumps(payload).encode("utf-8")
