"""GitLab webhook payloads -> one frozen :class:`GitLabEvent`.

Handles the three event kinds conveyor builds from: push (``Push Hook``), tag push
(``Tag Push Hook``) and merge request (``Merge Request Hook``). Parsing is tolerant of
older GitLab versions that omit newer fields (``project.id``, ``event_type``,
``ref_protected``, ``push_options``...): only what identifies the event is required.

Every ref, branch, sha and project path is checked (:mod:`conveyor.gitlab.refs`: git's
``check-ref-format`` rules, full 40/64-hex shas, GitLab's path format) before an event exists,
so nothing stored or routed can become a git option or climb out of a URL. Two answers:

* **Refused** (:class:`PayloadError`, the receiver answers 400 naming the field): a value GitLab
  cannot send. git's receive-pack refuses to store a ref that fails ``check-ref-format``, and
  GitLab's data builders (``lib/gitlab/data_builder/push.rb``) always send the full ref
  (``refs/heads/...``, ``refs/tags/...`` matching the hook), full shas and a valid path. Such a
  delivery is forged or corrupt, so the 4xx never counts against a real hook: GitLab's
  auto-disable counts only the failures of its own deliveries.
* **Stored as ignored** (202, :func:`skip_reason` gives the reason): what GitLab does send but
  cannot be built: a deletion (``after`` is 40 zeros, or 64 in SHA-256 repositories), a tag whose
  ``checkout_sha`` is null (it points at no commit), a merge request whose ``last_commit`` is null
  (no diff head, e.g. the source branch is gone). A 4xx there would count toward disabling the
  hook.

The commit built is always a commit: ``checkout_sha`` for tag pushes (``after`` is the tag
object of an annotated tag), ``merge_commit_sha`` on the target branch for a merge request's
``merge`` (``last_commit`` is the pre-merge head of a source branch that may be gone; a
fast-forward merge has no merge commit, and then that head *is* the target's new head).

Nothing here recurses on the payload's shape: ``push_options`` is flattened with an explicit
stack and refused beyond :data:`MAX_PUSH_OPTION_DEPTH` levels.

:func:`skip_reason` says why an event must not trigger a build regardless of any spec
(deletions, MR edits without new commits, ``[skip ci]`` / ``ci.skip``, MR actions that do
not change code); spec-level filtering (branches, actions) lives in the receiver's router.

:func:`trigger_of` turns an event into the build :class:`~conveyor.pipeline.context.Trigger` that
every dispatcher (Jenkins, the local runner) and ``conveyor run --event`` share.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from conveyor.gitlab.refs import (
    is_zero_sha,
    project_path_problem,
    refname_problem,
    sha_problem,
)
from conveyor.pipeline.context import Trigger

# GitLab's own rule, lib/gitlab/ci/pipeline/chain/skip.rb: SKIP_PATTERN on the pipeline
# commit's message (the head commit), or a present push option ci.skip.
_SKIP_CI = re.compile(r"\[(ci[ _-]skip|skip[ _-]ci)\]", re.IGNORECASE)
MAX_PUSH_OPTION_DEPTH = 16  # GitLab's own push options nest 3 deep (ci.variable.<name>)
HEADS = "refs/heads/"
TAGS = "refs/tags/"


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
    """The payload lacks a field that identifies the event, or holds one GitLab cannot send.

    ``field`` names the payload field at fault (``ref``, ``object_attributes.last_commit.id``...)
    when one is; the message always names it too.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
    git_http_url: str | None = None  # as the payload claims it: compare at most, never fetch
    deleted: bool = False
    source_project_id: int | None = None  # MR: the project the source branch lives in (a fork)
    ref_protected: bool | None = None  # push/tag push: GitLab's ``ref_protected`` (newer versions)
    unbuildable: str | None = None  # why GitLab sent an event that names no commit to build

    @property
    def new_ref(self) -> bool:
        """A push that created the branch or tag (``before`` is all zeros)."""
        return is_zero_sha(self.before)

    @property
    def merged(self) -> bool:
        """A merge request's ``merge``: the build is of the target branch's merge commit."""
        return self.kind is EventKind.MERGE_REQUEST and self.action == "merge"

    @property
    def build_branch(self) -> str | None:
        """The branch whose commit is built: the target after a merge, else the source/branch."""
        if self.kind is EventKind.MERGE_REQUEST:
            return self.target_branch if self.merged else self.source_branch
        return self.branch

    @property
    def status_ref(self) -> str:
        """The ref name commit statuses are reported against."""
        if self.kind is EventKind.MERGE_REQUEST:
            return self.build_branch or self.ref
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


def project_ids_named(payload: Mapping[str, Any]) -> tuple[int, ...]:
    """The project ids a payload gives (``project_id``, ``object_attributes.target_project_id``,
    ``project.id``), each once, in that order; they may disagree."""
    attrs = payload.get("object_attributes")
    found = (
        _int(payload, "project_id"),
        _int(attrs, "target_project_id") if isinstance(attrs, Mapping) else None,
        _int(_project(payload), "id"),
    )
    return tuple(dict.fromkeys(value for value in found if value is not None and value > 0))


def project_id_of(payload: Mapping[str, Any]) -> int | None:
    """GitLab's numeric id of the payload's project (:func:`project_ids_named`), or None when
    none is given or the ones given disagree (the id verifies the token and routes the event:
    it must be one id)."""
    found = project_ids_named(payload)
    return found[0] if len(found) == 1 else None


def parse_event(event_header: str, payload: Mapping[str, Any]) -> GitLabEvent:
    """Parse a payload whose header names a handled kind.

    Raises :class:`PayloadError` if the header is not a handled kind, a required field is
    missing or has the wrong type, or a ref, sha or path fails its check.
    """
    kind = header_kind(event_header)
    if kind is None:
        raise PayloadError(f"unhandled event kind {event_header!r}")
    path = project_path_of(payload)
    if path is None:
        raise PayloadError(
            "payload names no project (project.path_with_namespace)",
            field="project.path_with_namespace",
        )
    problem = project_path_problem(path)
    if problem is not None:
        raise PayloadError(f"project path {path!r} {problem}", field="project.path_with_namespace")
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


def _sha(mapping: Mapping[str, Any], key: str, field: str) -> str | None:
    """``mapping[key]`` as a checked full sha; ``None`` when absent or null."""
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{field} is not a string", field=field)
    problem = sha_problem(value)
    if problem is not None:
        raise PayloadError(f"{field} {value[:80]!r} {problem}", field=field)
    return value


def _checked_ref(ref: str, field: str) -> str:
    problem = refname_problem(ref)
    if problem is not None:
        raise PayloadError(
            f"{field} {ref[:200]!r} is not a valid git ref: it {problem}", field=field
        )
    return ref


def _branch(mapping: Mapping[str, Any], key: str, field: str) -> str:
    """A branch name (``source_branch``...), checked as the ref ``refs/heads/<name>``."""
    name = _str(mapping, key)
    if not name:
        raise PayloadError(f"merge request payload has no {field}", field=field)
    _checked_ref(HEADS + name, field)
    return name


def _push_options(raw: object) -> tuple[str, ...]:
    """Flatten GitLab's push options (``{"ci": {"skip": true}}``) to ``("ci.skip",)``.

    A leaf that Rails would not call ``present?`` (null, false, ``""``) names no option, as in
    GitLab's ``push_options.dig(:ci, :skip).present?``; another value ``v`` gives ``key=v``.
    Walked with an explicit stack: deeper than :data:`MAX_PUSH_OPTION_DEPTH` is refused.
    """
    found: list[str] = []
    stack: list[tuple[str, object, int]] = [("", raw, 0)]
    while stack:
        prefix, value, depth = stack.pop()
        if isinstance(value, Mapping | list | tuple):
            if depth >= MAX_PUSH_OPTION_DEPTH:
                raise PayloadError(
                    f"push_options nest deeper than {MAX_PUSH_OPTION_DEPTH} levels",
                    field="push_options",
                )
            if isinstance(value, Mapping):
                inner = [
                    (f"{prefix}.{key}" if prefix else str(key), item, depth + 1)
                    for key, item in value.items()
                ]
            else:
                inner = [(prefix, item, depth + 1) for item in value]
            stack.extend(reversed(inner))  # keep the payload's order
        elif value is True:
            if prefix:
                found.append(prefix)
        elif value is None or value is False or value == "":
            continue
        elif isinstance(value, str) and not prefix:
            found.append(value)  # old GitLab: a list of "key" / "key=value" strings
        elif prefix:
            found.append(f"{prefix}={value}")
    return tuple(found)


def _commit_messages(
    payload: Mapping[str, Any], head_sha: str
) -> tuple[tuple[str, ...], str | None]:
    """All commit messages, and the head commit's (matched by id: the commit to build)."""
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
    return tuple(messages), head


def _parse_push(kind: EventKind, payload: Mapping[str, Any], path: str) -> GitLabEvent:
    ref = _str(payload, "ref")
    if not ref:
        raise PayloadError("push payload has no 'ref'", field="ref")
    _checked_ref(ref, "ref")
    prefix = TAGS if kind is EventKind.TAG_PUSH else HEADS
    if not ref.startswith(prefix):
        raise PayloadError(
            f"{kind.value} payload's ref {ref[:200]!r} is not under {prefix} "
            "(GitLab sends the full ref)",
            field="ref",
        )
    name = ref[len(prefix) :]
    after = _sha(payload, "after", "after")
    if after is None:
        raise PayloadError("push payload has no 'after'", field="after")
    before = _sha(payload, "before", "before")
    checkout = _sha(payload, "checkout_sha", "checkout_sha")
    deleted = is_zero_sha(after)
    unbuildable = None
    if deleted:
        sha = after
    elif kind is EventKind.TAG_PUSH:
        # push.rb checkout_sha(): the commit the tag dereferences to (``after`` is the tag
        # object of an annotated tag); null when it points at no commit. Payloads from before
        # checkout_sha existed carry only ``after``.
        if checkout is not None:
            sha = checkout
        elif "checkout_sha" in payload:
            sha, unbuildable = after, "tag points to no commit (checkout_sha is null)"
        else:
            sha = after
    else:
        sha = checkout or after  # push.rb: a branch's checkout_sha is newrev
    messages, head = _commit_messages(payload, sha)
    project = _project(payload)
    return GitLabEvent(
        kind=kind,
        project_path=path,
        project_id=_int(payload, "project_id") or _int(project, "id"),
        ref=ref,
        sha=sha,
        before=before,
        branch=name if kind is EventKind.PUSH else None,
        tag=name if kind is EventKind.TAG_PUSH else None,
        commit_messages=messages,
        head_message=head,
        push_options=_push_options(payload.get("push_options")),
        user_username=_str(payload, "user_username"),
        user_name=_str(payload, "user_name"),
        project_url=_str(project, "web_url"),
        git_http_url=_str(project, "git_http_url"),
        deleted=deleted,
        ref_protected=_bool(payload, "ref_protected"),
        unbuildable=unbuildable,
    )


def _merge_request_commit(
    attrs: Mapping[str, Any], action: str | None
) -> tuple[str, tuple[str, ...], str | None]:
    """The sha to build, the head commit's message(s), and why there is none (if so)."""
    last_commit = attrs.get("last_commit")  # null when the MR has no diff head
    head = last_commit if isinstance(last_commit, Mapping) else {}
    head_sha = _sha(head, "id", "object_attributes.last_commit.id")
    merge_sha = _sha(attrs, "merge_commit_sha", "object_attributes.merge_commit_sha")
    message = _str(head, "message")
    messages = (message,) if message is not None else ()
    if action == "merge":
        # A fast-forward merge has no merge commit: the source head is the target's new head.
        sha = merge_sha or head_sha
        if sha is None:
            return "", (), "merge request merged without merge_commit_sha or last_commit"
        return sha, (messages if sha == head_sha else ()), None
    if head_sha is None:
        return "", (), "merge request has no head commit (last_commit is null)"
    return head_sha, messages, None


def _parse_merge_request(payload: Mapping[str, Any], path: str) -> GitLabEvent:
    attrs = payload.get("object_attributes")
    if not isinstance(attrs, Mapping):
        raise PayloadError(
            "merge request payload has no 'object_attributes'", field="object_attributes"
        )
    source = _branch(attrs, "source_branch", "object_attributes.source_branch")
    target = _branch(attrs, "target_branch", "object_attributes.target_branch")
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
    sha, messages, unbuildable = _merge_request_commit(attrs, action)
    oldrev = _sha(attrs, "oldrev", "object_attributes.oldrev")
    return GitLabEvent(
        kind=EventKind.MERGE_REQUEST,
        project_path=path,
        project_id=_int(attrs, "target_project_id") or _int(project, "id"),
        ref=HEADS + (target if action == "merge" else source),
        sha=sha,
        source_branch=source,
        target_branch=target,
        action=action,
        mr_iid=_int(attrs, "iid"),
        mr_title=_str(attrs, "title"),
        mr_state=_str(attrs, "state"),
        oldrev=oldrev,
        source_project_path=source_path,
        commit_messages=messages,
        head_message=messages[0] if messages else None,
        user_username=_str(user_map, "username"),
        user_name=_str(user_map, "name"),
        project_url=_str(project, "web_url"),
        git_http_url=_str(project, "git_http_url"),
        source_project_id=_int(attrs, "source_project_id"),
        unbuildable=unbuildable,
    )


def skip_reason(event: GitLabEvent, *, honour_skip_ci: bool = True) -> str | None:
    """Why this event must not build whatever the spec's triggers say, or ``None`` to go on.

    ``honour_skip_ci=False`` (a spec's ``triggers.skip_ci: false``) ignores ``[skip ci]``
    and ``ci.skip``; deletions and MR edits without new commits are always skipped.
    """
    if event.deleted:
        return "tag deleted" if event.kind is EventKind.TAG_PUSH else "branch deleted"
    if event.unbuildable is not None:
        return event.unbuildable
    if event.kind is EventKind.MERGE_REQUEST:
        if event.action is None:
            return "merge request event without an action"
        if event.action == "update" and not event.oldrev:
            return "merge request updated without new commits (no oldrev)"
    if not honour_skip_ci:
        return None
    if any(_names_ci_skip(option) for option in event.push_options):
        return "push option ci.skip"
    head = event.head_message
    if head is not None:
        found = _SKIP_CI.search(head)
        if found is not None:
            return f"{found.group(0)} in the head commit message"
    return None


def _names_ci_skip(option: str) -> bool:
    """``ci.skip`` present (GitLab digs ``[:ci][:skip]``: any present value, or a sub-hash)."""
    return option == "ci.skip" or option.startswith(("ci.skip=", "ci.skip."))


def trigger_of(event: GitLabEvent, *, repo_url: str | None = None) -> Trigger:
    """The build trigger (shared by every dispatcher and the local runner) described by an event.

    ``repo_url`` (``gitlabSourceRepoHttpUrl``) is the configured GitLab's URL of the project
    (:func:`conveyor.gitlab.checkout.gitlab_repo_url`), never the payload's ``git_http_url``: a
    Jenkins checkout would send its credentials there."""
    # A merge builds the target branch's merge commit: BRANCH_NAME is the target, while
    # gitlabSourceBranch still names the merged branch.
    extra: tuple[tuple[str, str], ...] = ()
    if event.merged and event.source_branch:
        extra = (("gitlabSourceBranch", event.source_branch),)
    return Trigger(
        kind=event.kind.value,
        project=event.project_path,
        sha=event.sha,
        branch=event.build_branch,
        tag=event.tag,
        target_branch=event.target_branch,
        before=event.before,
        mr_iid=event.mr_iid,
        mr_action=event.action,
        mr_title=event.mr_title,
        repo_url=repo_url,
        user_name=event.user_name,
        extra=extra,
    )
