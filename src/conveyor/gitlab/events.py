"""GitLab webhook payloads -> one frozen :class:`GitLabEvent`.

Handles the three event kinds conveyor builds from: push (``Push Hook``), tag push
(``Tag Push Hook``) and merge request (``Merge Request Hook``). Parsing is tolerant of
older GitLab versions that omit newer fields (``project.id``, ``event_type``,
``ref_protected``, ``push_options``...): only what identifies the event is required.

:func:`skip_reason` says why an event must not trigger a build regardless of any spec
(deletions, MR edits without new commits, ``[skip ci]`` / ``ci.skip``, MR actions that do
not change code); spec-level filtering (branches, actions) lives in the receiver's router.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ZERO_SHA = "0" * 40

_SKIP_CI = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)


class EventKind(StrEnum):
    """The event kinds conveyor understands."""

    PUSH = "push"
    TAG_PUSH = "tag_push"
    MERGE_REQUEST = "merge_request"


HEADER_KINDS: dict[str, EventKind] = {
    "Push Hook": EventKind.PUSH,
    "Tag Push Hook": EventKind.TAG_PUSH,
    "Merge Request Hook": EventKind.MERGE_REQUEST,
}


class PayloadError(ValueError):
    """The payload lacks a field that identifies the event (it cannot be understood)."""


@dataclass(frozen=True)
class GitLabEvent:
    """One understood GitLab event. Branch/tag fields are ``None`` when not applicable."""

    kind: EventKind
    project_path: str
    project_id: int | None
    ref: str
    sha: str
    before: str | None = None
    branch: str | None = None
    tag: str | None = None
    source_branch: str | None = None
    target_branch: str | None = None
    action: str | None = None
    mr_iid: int | None = None
    mr_title: str | None = None
    mr_state: str | None = None
    oldrev: str | None = None
    source_project_path: str | None = None
    commit_messages: tuple[str, ...] = ()
    push_options: tuple[str, ...] = ()
    head_message: str | None = None
    user_username: str | None = None
    user_name: str | None = None
    project_url: str | None = None
    git_http_url: str | None = None
    deleted: bool = False
    source_project_id: int | None = None  # MR: the project the source branch lives in (a fork)
    ref_protected: bool | None = None  # push/tag push: GitLab's ``ref_protected`` (newer versions)

    @property
    def new_ref(self) -> bool:
        """A push that created the branch or tag (``before`` is all zeros)."""
        return self.before == ZERO_SHA

    @property
    def status_ref(self) -> str:
        """The ref name commit statuses are reported against."""
        if self.kind is EventKind.MERGE_REQUEST:
            return self.source_branch or self.ref
        return self.branch or self.tag or self.ref


def header_kind(event_header: str) -> EventKind | None:
    """The kind named by an ``X-Gitlab-Event`` header, or ``None`` when conveyor ignores it."""
    return HEADER_KINDS.get(event_header.strip())


def project_path_of(payload: Mapping[str, Any]) -> str | None:
    """The ``group/project`` path of any project-level payload (all GitLab event kinds)."""
    project = payload.get("project")
    if isinstance(project, Mapping):
        path = project.get("path_with_namespace")
        if isinstance(path, str) and path:
            return path
    # Old push payloads: only ``repository.homepage`` ends with the path.
    repository = payload.get("repository")
    if isinstance(repository, Mapping):
        homepage = repository.get("homepage")
        if isinstance(homepage, str) and "://" in homepage:
            rest = homepage.split("://", 1)[1]
            parts = rest.split("/", 1)
            if len(parts) == 2 and parts[1].strip("/"):
                return parts[1].strip("/")
    name = payload.get("project_name")  # job/pipeline hooks in some versions
    if isinstance(name, str) and "/" in name and " " not in name:
        return name
    return None


def parse_event(event_header: str, payload: Mapping[str, Any]) -> GitLabEvent:
    """Parse a payload whose header names a handled kind.

    Raises :class:`PayloadError` if the header is not a handled kind or a required field
    is missing or has the wrong type.
    """
    kind = header_kind(event_header)
    if kind is None:
        raise PayloadError(f"unhandled event kind {event_header!r}")
    path = project_path_of(payload)
    if path is None:
        raise PayloadError("payload names no project (project.path_with_namespace)")
    if kind is EventKind.MERGE_REQUEST:
        return _parse_merge_request(payload, path)
    return _parse_push(kind, payload, path)


def _str(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def _int(mapping: Mapping[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int) else None


def _bool(mapping: Mapping[str, Any], key: str) -> bool | None:
    value = mapping.get(key)
    return value if isinstance(value, bool) else None


def _project(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    project = payload.get("project")
    return project if isinstance(project, Mapping) else {}


def _push_options(raw: object) -> tuple[str, ...]:
    """Flatten GitLab's push options (``{"ci": {"skip": true}}``) to ``("ci.skip",)``."""
    found: list[str] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            for inner in value:
                walk(prefix, inner)
        elif value is True or value is None or value == "":
            if prefix:
                found.append(prefix)
        elif isinstance(value, str) and not prefix:
            found.append(value)
        elif value is not False and prefix:
            found.append(f"{prefix}={value}")

    walk("", raw)
    return tuple(found)


def _commit_messages(
    payload: Mapping[str, Any], head_sha: str
) -> tuple[tuple[str, ...], str | None]:
    """All commit messages, and the head commit's (matched by id, else the last listed)."""
    commits = payload.get("commits")
    if not isinstance(commits, list):
        return (), None
    messages: list[str] = []
    head: str | None = None
    for commit in commits:
        if isinstance(commit, Mapping):
            message = commit.get("message")
            if isinstance(message, str):
                messages.append(message)
                if commit.get("id") == head_sha:
                    head = message
    if head is None and messages:
        head = messages[-1]
    return tuple(messages), head


def _parse_push(kind: EventKind, payload: Mapping[str, Any], path: str) -> GitLabEvent:
    ref = _str(payload, "ref")
    if not ref:
        raise PayloadError("push payload has no 'ref'")
    after = _str(payload, "after") or ""
    before = _str(payload, "before")
    checkout = _str(payload, "checkout_sha")
    deleted = after == ZERO_SHA or (not after and checkout is None)
    sha = after if after and not deleted else (checkout or after or ZERO_SHA)
    branch = tag = None
    if ref.startswith("refs/heads/"):
        branch = ref[len("refs/heads/") :]
    elif ref.startswith("refs/tags/"):
        tag = ref[len("refs/tags/") :]
    elif kind is EventKind.TAG_PUSH:
        tag = ref
    else:
        branch = ref
    if kind is EventKind.TAG_PUSH and tag is None:
        raise PayloadError(f"tag push with a non-tag ref {ref!r}")
    messages, head = _commit_messages(payload, sha)
    project = _project(payload)
    return GitLabEvent(
        kind=kind,
        project_path=path,
        project_id=_int(payload, "project_id") or _int(project, "id"),
        ref=ref,
        sha=sha,
        before=before,
        branch=branch,
        tag=tag,
        commit_messages=messages,
        head_message=head,
        push_options=_push_options(payload.get("push_options")),
        user_username=_str(payload, "user_username"),
        user_name=_str(payload, "user_name"),
        project_url=_str(project, "web_url"),
        git_http_url=_str(project, "git_http_url"),
        deleted=deleted,
        ref_protected=_bool(payload, "ref_protected"),
    )


def _parse_merge_request(payload: Mapping[str, Any], path: str) -> GitLabEvent:
    attrs = payload.get("object_attributes")
    if not isinstance(attrs, Mapping):
        raise PayloadError("merge request payload has no 'object_attributes'")
    source = _str(attrs, "source_branch")
    target = _str(attrs, "target_branch")
    if not source or not target:
        raise PayloadError("merge request payload lacks source_branch/target_branch")
    last_commit = attrs.get("last_commit")
    sha = _str(last_commit, "id") if isinstance(last_commit, Mapping) else None
    if not sha:
        sha = _str(attrs, "merge_commit_sha") or ""
    if not sha:
        raise PayloadError("merge request payload has no last_commit.id")
    messages: tuple[str, ...] = ()
    if isinstance(last_commit, Mapping):
        message = _str(last_commit, "message")
        messages = (message,) if message is not None else ()
    user = payload.get("user")
    user_map: Mapping[str, Any] = user if isinstance(user, Mapping) else {}
    source_project = attrs.get("source")
    source_path = (
        _str(source_project, "path_with_namespace") if isinstance(source_project, Mapping) else None
    )
    project = _project(payload)
    action = _str(attrs, "action")
    if action is None:
        # Very old payloads carry only ``state``; treat an opened MR as "open".
        action = {"opened": "open", "merged": "merge", "closed": "close"}.get(
            _str(attrs, "state") or ""
        )
    return GitLabEvent(
        kind=EventKind.MERGE_REQUEST,
        project_path=path,
        project_id=_int(attrs, "target_project_id") or _int(project, "id"),
        ref=f"refs/heads/{source}",
        sha=sha,
        source_branch=source,
        target_branch=target,
        action=action,
        mr_iid=_int(attrs, "iid"),
        mr_title=_str(attrs, "title"),
        mr_state=_str(attrs, "state"),
        oldrev=_str(attrs, "oldrev"),
        source_project_path=source_path,
        commit_messages=messages,
        head_message=messages[0] if messages else None,
        user_username=_str(user_map, "username"),
        user_name=_str(user_map, "name"),
        project_url=_str(project, "web_url"),
        git_http_url=_str(project, "git_http_url"),
        source_project_id=_int(attrs, "source_project_id"),
    )


def skip_reason(event: GitLabEvent, *, honour_skip_ci: bool = True) -> str | None:
    """Why this event must not build whatever the spec's triggers say, or ``None`` to go on.

    ``honour_skip_ci=False`` (a spec's ``triggers.skip_ci: false``) ignores ``[skip ci]``
    and ``ci.skip``; deletions and MR edits without new commits are always skipped.
    """
    if event.deleted:
        return "tag deleted" if event.kind is EventKind.TAG_PUSH else "branch deleted"
    if event.kind is EventKind.MERGE_REQUEST:
        if event.action is None:
            return "merge request event without an action"
        if event.action == "update" and not event.oldrev:
            return "merge request updated without new commits (no oldrev)"
    if not honour_skip_ci:
        return None
    if "ci.skip" in event.push_options:
        return "push option ci.skip"
    head = event.head_message
    if head is not None and _SKIP_CI.search(head):
        return "[skip ci] in the head commit message"
    return None
