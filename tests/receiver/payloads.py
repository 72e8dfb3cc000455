"""GitLab webhook payloads and headers shaped like GitLab's documentation (webhook_events.md).

Shapes follow GitLab's builders: ``lib/gitlab/data_builder/push.rb`` (push and tag push:
``checkout_sha`` is null for a deletion and, for a tag, the commit the tag dereferences to, while
``after`` is the tag object of an annotated tag; ``Git::TagHooksService#limited_commits`` sends the
tag's commit as the only commit) and ``lib/gitlab/hook_data/merge_request_builder.rb``
(``last_commit: merge_request.diff_head_commit&.hook_attrs`` is null without a diff head;
``merge_commit_sha`` is set once merged with a merge commit). SHA-256 repositories send 64-hex
ids and 64 zeros for "no commit".
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from conveyor.receiver.queue import NewEvent, Status
from conveyor.tokens import project_token

ZERO = "0" * 40
ZERO256 = "0" * 64
SHA256_A = "6b8cbd3a6e2e5e8d4ab3c3f5d1f5a7c9e0b1d2c3f4a5b6c7d8e9f0a1b2c3d4e5"
SHA256_B = "f00d5eed1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6"
TAG_OBJECT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # an annotated tag's own object id
MERGE_SHA = "e9f3c1d2b4a5968778695a4b3c2d1e0f9a8b7c6d"
SECRET = "test-master-secret-not-real"
SHA_A = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
SHA_B = "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327"
SHA_C = "95790bf891e76fee5e1747ab589903a6a1f80f22"


def _project(path: str) -> dict[str, Any]:
    return {
        "id": 15,
        "name": path.rsplit("/", 1)[-1],
        "web_url": f"http://gitlab.example.com/{path}",
        "git_http_url": f"http://gitlab.example.com/{path}.git",
        "git_ssh_url": f"git@gitlab.example.com:{path}.git",
        "namespace": path.rsplit("/", 1)[0],
        "path_with_namespace": path,
        "default_branch": "main",
    }


def push(
    path: str = "demo/app",
    *,
    branch: str = "main",
    before: str = SHA_A,
    after: str = SHA_B,
    message: str = "Update Catalan translation to e38cb41.",
    push_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    commits = (
        []
        if after in (ZERO, ZERO256)
        else [
            {
                "id": SHA_A,
                "message": "Update README",
                "title": "Update README",
                "timestamp": "2011-12-12T14:27:31+02:00",
                "url": f"http://gitlab.example.com/{path}/commit/{SHA_A}",
                "author": {"name": "Jordi Mallach", "email": "jordi@softcatala.org"},
                "added": ["CHANGELOG"],
                "modified": ["app/controller/application.rb"],
                "removed": [],
            },
            {
                "id": after,
                "message": message,
                "title": message.splitlines()[0] if message else "",
                "timestamp": "2012-01-03T23:36:29+02:00",
                "url": f"http://gitlab.example.com/{path}/commit/{after}",
                "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"},
                "added": [],
                "modified": [],
                "removed": [],
            },
        ]
    )
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": after,
        "ref": f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": None if after in (ZERO, ZERO256) else after,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "user_email": "john@example.com",
        "project_id": 15,
        "project": _project(path),
        "repository": {
            "name": path.rsplit("/", 1)[-1],
            "url": f"git@gitlab.example.com:{path}.git",
            "homepage": f"http://gitlab.example.com/{path}",
        },
        "commits": commits,
        "total_commits_count": len(commits),
        "push_options": push_options or {},
    }


def tag_push(
    path: str = "demo/app",
    *,
    tag: str = "v1.0.0",
    after: str = SHA_C,
    tag_object: str | None = None,
    message: str = "Release v1.0.0",
) -> dict[str, Any]:
    """A tag push of ``after`` (the commit); ``tag_object`` makes it an annotated tag."""
    data = push(path, before=ZERO, after=after)
    deleted = after in (ZERO, ZERO256)
    commits = [] if deleted else [dict(data["commits"][-1], message=message, title=message)]
    data.update(
        object_kind="tag_push",
        event_name="tag_push",
        ref=f"refs/tags/{tag}",
        after=tag_object if tag_object is not None and not deleted else after,
        checkout_sha=None if deleted else after,
        commits=commits,
        message="annotation of " + tag if tag_object is not None else None,
    )
    data["total_commits_count"] = len(commits)
    return data


def merge_request(
    path: str = "demo/app",
    *,
    action: str = "open",
    source: str = "feature/login",
    target: str = "main",
    iid: int = 7,
    sha: str = SHA_C,
    oldrev: str | None = None,
    merge_commit_sha: str | None = None,
    last_commit: bool = True,
) -> dict[str, Any]:
    """``last_commit=False`` sends ``last_commit: null`` (no diff head, as GitLab does)."""
    attrs: dict[str, Any] = {
        "id": 99,
        "iid": iid,
        "target_branch": target,
        "source_branch": source,
        "source_project_id": 15,
        "target_project_id": 15,
        "title": "Add login",
        "state": {"merge": "merged", "close": "closed"}.get(action, "opened"),
        "merge_status": "unchecked",
        "url": f"http://gitlab.example.com/{path}/-/merge_requests/{iid}",
        "source": _project(path),
        "target": _project(path),
        "merge_commit_sha": merge_commit_sha,
        "last_commit": {
            "id": sha,
            "message": "fixed readme",
            "title": "fixed readme",
            "timestamp": "2012-01-03T23:36:29+02:00",
            "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"},
        }
        if last_commit
        else None,
        "action": action,
    }
    if oldrev is not None:
        attrs["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project": _project(path),
        "object_attributes": attrs,
        "labels": [],
        "changes": {},
        "repository": {
            "name": path.rsplit("/", 1)[-1],
            "homepage": f"http://gitlab.example.com/{path}",
        },
    }


def for_project(
    payload: dict[str, Any], project_id: int, *, source_project_id: int | None = None
) -> dict[str, Any]:
    """``payload`` naming the project by ``project_id`` (an emulator's id) everywhere GitLab does;
    ``source_project_id``: an MR from a fork with that id."""
    payload["project"]["id"] = project_id
    if "project_id" in payload:
        payload["project_id"] = project_id
    attrs = payload.get("object_attributes")
    if isinstance(attrs, dict):
        attrs["target_project_id"] = project_id
        attrs["target"]["id"] = project_id
        attrs["source_project_id"] = source_project_id or project_id
        attrs["source"]["id"] = source_project_id or project_id
    return payload


# lib/gitlab/data_builder/push.rb SAMPLE_DATA: what a hook test sends for an empty project.
GITLAB_SAMPLE_PUSH: dict[str, Any] = {
    "object_kind": "push",
    "event_name": "push",
    "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
    "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "ref": "refs/heads/master",
    "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "message": "Hello World",
    "user_id": 4,
    "user_name": "John Smith",
    "user_email": "john@example.com",
    "user_avatar": "https://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=80",
    "project_id": 15,
    "project": {
        "id": 15,
        "name": "gitlab",
        "description": "",
        "web_url": "http://test.example.com/gitlab/gitlab",
        "avatar_url": "https://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=80",
        "git_ssh_url": "git@test.example.com:gitlab/gitlab.git",
        "git_http_url": "http://test.example.com/gitlab/gitlab.git",
        "namespace": "gitlab",
        "visibility_level": 0,
        "path_with_namespace": "gitlab/gitlab",
        "default_branch": "master",
    },
    "commits": [
        {
            "id": "c5feabde2d8cd023215af4d2ceeb7a64839fc428",
            "message": "Add simple search to projects in public area\n\ncommit message body",
            "title": "Add simple search to projects in public area",
            "timestamp": "2013-05-13T18:18:08+00:00",
            "url": "https://test.example.com/gitlab/gitlab/-/commit/c5feabde2d8cd023215af4d2ceeb7a64839fc428",
            "author": {"name": "Test User", "email": "test@example.com"},
        }
    ],
    "total_commits_count": 1,
    "push_options": {"ci": {"skip": True}},
}


EVENT_HEADERS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
}


def headers(
    payload: dict[str, Any],
    *,
    token: str | None = None,
    key: str | None = None,
    event: str | None = None,
    secret: str = SECRET,
) -> dict[str, str]:
    """The headers GitLab sends with ``payload`` (token derived for its project)."""
    path = payload["project"]["path_with_namespace"]
    out = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.5.0",
        "X-Gitlab-Event": event or EVENT_HEADERS[payload["object_kind"]],
        "X-Gitlab-Token": token if token is not None else project_token(secret, path),
        "X-Gitlab-Instance": "http://gitlab.example.com",
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": key if key is not None else str(uuid.uuid4()),
    }
    return out


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def stored(key: str | None, **fields: Any) -> NewEvent:
    """A queued push as the receiver hands it to the intake writer (``fields`` override)."""
    event: dict[str, Any] = {
        "event_header": "Push Hook",
        "body": b"{}",
        "status": Status.QUEUED,
        "received_at": time.time(),
        "idempotency_key": key,
        "project": "demo/app",
        "ref": "refs/heads/main",
    }
    return NewEvent(**(event | fields))
