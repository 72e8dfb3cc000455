"""Post commit statuses to GitLab (``POST /projects/:id/statuses/:sha``), and name them.

GitLab rejects ``ref``, ``target_url`` and ``description`` longer than 255 characters with a 400,
so ``description`` and ``target_url`` are truncated here; a ``ref`` that long is refused before
sending (cutting it would name another ref).

**A status is a state machine, not a log** (``Ci::CreateCommitStatusService``): GitLab reuses the
latest ``pending``/``running`` status with the same name, ref, pipeline and user, and moves it only
``pending -> running -> final`` (:func:`legal_move`); a finished one is never reused, the next post
starts another. So two builds that can run on one commit need their own names:
:func:`status_name` gives ``conveyor/push``, ``conveyor/tag_push`` and ``conveyor/merge_request``
(and ``conveyor/<kind>/<stage>`` for a stage), stable across releases. A push to a branch and the
update of an MR from that branch build the same sha on the same ref, and would otherwise share one
status. The receiver's sender names its statuses so; the Jenkinsfile and ``conveyor run`` post the
pipeline's as :data:`PIPELINE_STATUS_NAME` and each stage's under the stage's name. Every commit
state is spelt once, as :class:`CommitState`.

**Where a status goes** (:func:`status_target`): for a merge request, the *source* project
(``object_attributes.source_project_id``, a fork's id for MRs from forks) and the source branch,
since GitLab shows an MR the pipelines of its source project's source branch only (a ``merge``
builds the merge commit on the target branch, so it reports to the target project); for pushes and
tags the project itself (by id when the payload has it: ids survive renames) and the branch or tag.

A 403 names what is really missing: on a protected branch, push or merge rights there
(``Ci::PipelinePolicy`` -> ``can_update_branch?``); on a protected tag, the right to create it;
elsewhere the Developer role. A refused move becomes :class:`GitLabTransitionError` carrying the
state GitLab's status is in, so a caller can tell "already there" from a real mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from conveyor.errors import GitLabError, GitLabForbiddenError, GitLabTransitionError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.events import EventKind, GitLabEvent


class CommitState(StrEnum):
    """A GitLab commit status's state (``Ci::CreateCommitStatusService``'s accepted ``state``).

    The one spelling of these words in conveyor: a ``StrEnum``, so a member is its word wherever a
    string is stored, sent or compared (``CommitState.RUNNING == "running"``).
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"

    @classmethod
    def of(cls, succeeded: bool) -> CommitState:
        """The final state of a build that ``succeeded`` or not."""
        return cls.SUCCESS if succeeded else cls.FAILED


COMMIT_STATES: tuple[str, ...] = tuple(CommitState)
ACTIVE_STATES = frozenset({CommitState.PENDING, CommitState.RUNNING})
FINAL_STATES = frozenset(set(CommitState) - ACTIVE_STATES)
MAX_FIELD_LENGTH = 255
STATUS_PREFIX = "conveyor"
# The pipeline's own status, as the Jenkinsfile and ``conveyor run`` post it; stages post theirs under
# the stage's name (the Jenkinsfile's ``gitlabCommitStatus(name: STAGE)``).
PIPELINE_STATUS_NAME = STATUS_PREFIX
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_TRANSITION = re.compile(r"Cannot transition status via :(\w+) from :(\w+)")

# What GitLab's state machine allows from a *reused* (pending or running) status
# (app/models/commit_status.rb; `running` is `enqueue` then `run!`, which needs `pending`).
_MOVES: dict[str, frozenset[CommitState]] = {
    CommitState.PENDING: frozenset(set(CommitState) - {CommitState.PENDING}),
    CommitState.RUNNING: frozenset({CommitState.SUCCESS, CommitState.FAILED, CommitState.CANCELED}),
}


def status_name(kind: EventKind | str, stage: str | None = None) -> str:
    """The commit-status name for builds started by ``kind`` events (a stage's, given ``stage``).

    ``conveyor/push``, ``conveyor/tag_push``, ``conveyor/merge_request``; a stage adds
    ``/<stage>``. Names are compared exactly by GitLab, so keep them stable.
    """
    value = kind.value if isinstance(kind, EventKind) else str(kind)
    name = f"{STATUS_PREFIX}/{value or 'build'}"
    if stage is not None:
        name = f"{name}/{stage}"
    return name[:MAX_FIELD_LENGTH]


def legal_move(current: str | None, wanted: str) -> bool:
    """Whether posting ``wanted`` onto a status that is ``current`` is accepted by GitLab.

    ``current`` ``None`` or final means GitLab starts a new status (every state is fine then).
    """
    if current is None or current not in _MOVES:
        return True
    return wanted in _MOVES[current]


@dataclass(frozen=True)
class StatusTarget:
    """Which GitLab status a build reports to: project (id or path), ref and name.

    ``protected`` is the payload's ``ref_protected`` (``None`` when GitLab did not say) and
    ``tag`` whether ``ref`` is a tag; both only shape the message of a 403.
    """

    project: str
    ref: str | None
    name: str
    protected: bool | None = None
    tag: bool = False


def status_target(event: GitLabEvent) -> StatusTarget:
    """Where the statuses of a build started by ``event`` go (pure)."""
    # A merge builds the merge commit on the target branch: it lives in the target project.
    if (
        event.kind is EventKind.MERGE_REQUEST
        and event.source_project_id is not None
        and not event.merged
    ):
        project = str(event.source_project_id)
    elif event.project_id is not None:
        project = str(event.project_id)
    else:
        project = event.project_path
    return StatusTarget(
        project=project,
        ref=event.status_ref,
        name=status_name(event.kind),
        protected=event.ref_protected,
        tag=event.kind is EventKind.TAG_PUSH,
    )


@dataclass(frozen=True)
class PostedStatus:
    """A commit status as GitLab stored it."""

    id: int
    sha: str
    state: str
    name: str
    ref: str | None
    target_url: str | None
    description: str | None


def truncate(text: str | None, limit: int = MAX_FIELD_LENGTH) -> str | None:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def status_payload(
    state: str,
    name: str,
    ref: str | None = None,
    target_url: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Validate and build the request body (pure)."""
    if state not in COMMIT_STATES:
        raise ValueError(
            f"commit status state must be one of {', '.join(COMMIT_STATES)}: {state!r}"
        )
    if not name:
        raise ValueError("commit status name must not be empty")
    if ref is not None and len(ref) > MAX_FIELD_LENGTH:
        raise ValueError(f"ref is longer than {MAX_FIELD_LENGTH} characters")
    data: dict[str, Any] = {"state": state, "name": name[:MAX_FIELD_LENGTH]}
    if ref is not None:
        data["ref"] = ref
    if target_url is not None:
        data["target_url"] = target_url[:MAX_FIELD_LENGTH]
    if description is not None:
        data["description"] = truncate(description)
    return data


def forbidden_message(subject: str, ref: str | None, *, protected: bool | None, tag: bool) -> str:
    """What a 403 on a status post means, as precisely as the event tells (pure)."""
    kind = "tag" if tag else "branch"
    if protected and ref is not None:
        need = (
            f"'Allowed to create' on the protected tag {ref!r}"
            if tag
            else f"'Allowed to push and merge' or 'Allowed to merge' on the protected branch {ref!r}"
        )
        return (
            f"{subject}: 403 Forbidden — {ref!r} is a protected {kind}: the token's user needs "
            f"{need} to post a commit status there (the Developer role is not enough)"
        )
    where = f" on {ref!r}" if ref is not None else ""
    maybe = (
        f", and if {ref!r} is a protected {kind}, push or merge rights there"
        if protected is None and ref is not None
        else ""
    )
    return (
        f"{subject}: 403 Forbidden — the token's user needs the Developer role{maybe} "
        f"to post a commit status{where}"
    )


class CommitStatusClient:
    """Posts commit statuses through a :class:`GitLabClient` (errors are conveyor errors)."""

    def __init__(self, client: GitLabClient) -> None:
        self._client = client

    def post_status(
        self,
        project: int | str,
        sha: str,
        state: str,
        name: str,
        ref: str | None = None,
        target_url: str | None = None,
        description: str | None = None,
        *,
        protected: bool | None = False,
        tag: bool = False,
    ) -> PostedStatus:
        """Post one status. ``protected``/``tag`` describe ``ref`` for the message of a 403.

        Raises :class:`GitLabTransitionError` when GitLab refuses the move from its status's
        current state, :class:`GitLabForbiddenError` naming the missing right.
        """
        if not _SHA.fullmatch(sha):
            raise ValueError(f"not a commit sha: {sha!r}")
        data = status_payload(state, name, ref, target_url, description)
        subject = f"{project}@{sha[:12]}"
        try:
            answer = self._client.create_commit_status(project, sha, data)
        except GitLabForbiddenError:
            hint = (
                f"allow the token's user to push or merge to {ref!r} in the protected "
                "branch settings (or create the tag, for a tag)"
                if protected is not False
                else "give the token's user the Developer role on the project"
            )
            raise GitLabForbiddenError(
                forbidden_message(subject, ref, protected=protected, tag=tag),
                status=403,
                hint=hint,
            ) from None
        except GitLabError as exc:
            found = _TRANSITION.search(exc.message) if exc.status == 400 else None
            if found is None:
                raise
            event, current = found.group(1), found.group(2)
            raise GitLabTransitionError(
                f"{subject}: GitLab refused {state!r} for status {name!r} on {ref!r}: its "
                f"status is {current!r} and cannot move via :{event}",
                event=event,
                current=current,
            ) from None
        return _posted(answer, sha, state, name)

    def latest(
        self, project: int | str, sha: str, name: str, ref: str | None
    ) -> PostedStatus | None:
        """The newest status named ``name`` on ``ref`` (to learn whether a post landed)."""
        answer = self._client.latest_commit_status(project, sha, ref=ref, name=name)
        return None if answer is None else _posted(answer, sha, "", name)


def _posted(answer: dict[str, Any], sha: str, state: str, name: str) -> PostedStatus:
    return PostedStatus(
        id=int(answer.get("id", 0)),
        sha=str(answer.get("sha", sha)),
        state=str(answer.get("status", state)),
        name=str(answer.get("name", name)),
        ref=answer.get("ref"),
        target_url=answer.get("target_url"),
        description=answer.get("description"),
    )
