"""Post commit statuses to GitLab (``POST /projects/:id/statuses/:sha``).

GitLab rejects ``ref``, ``target_url`` and ``description`` longer than 255 characters with a 400,
so ``description`` and ``target_url`` are truncated here; a ``ref`` that long is refused before
sending (cutting it would name another ref).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conveyor.gitlab.client import GitLabClient

COMMIT_STATES: tuple[str, ...] = ("pending", "running", "success", "failed", "canceled", "skipped")
MAX_FIELD_LENGTH = 255
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


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
    ) -> PostedStatus:
        if not _SHA.fullmatch(sha):
            raise ValueError(f"not a commit sha: {sha!r}")
        data = status_payload(state, name, ref, target_url, description)
        answer = self._client.create_commit_status(project, sha, data)
        return PostedStatus(
            id=int(answer.get("id", 0)),
            sha=str(answer.get("sha", sha)),
            state=str(answer.get("status", state)),
            name=str(answer.get("name", name)),
            ref=answer.get("ref"),
            target_url=answer.get("target_url"),
            description=answer.get("description"),
        )
