"""Per-project webhook tokens, derived from the master secret (no token store to lose).

``project_id_token(secret, 42)`` is a keyed hash of GitLab's numeric project id, the one name of a
project that never changes: renames, transfers and a spec written in another letter case keep the
same token. The same secret always gives the same token, so ``apply`` can rewrite a hook's
write-only token and the receiver can check it, with nothing stored. The id is in every payload
(``project_id``, ``object_attributes.target_project_id``, ``project.id``).

Earlier releases keyed the token on the project *path* (:func:`project_token`). The receiver still
accepts that token for a project until it has seen the first delivery carrying the id token for it
(see :class:`conveyor.receiver.routing.ProjectIds`); ``apply`` rewrites every hook once (its
description records the token scheme), so the transition ends per project at its next ``apply``
and the first delivery after it. ``project_token`` stays for the Jenkins trigger secret, which is
keyed on the job path by design.

Rotation: set ``CONVEYOR_SECRET`` to the new secret, keep the old one in
``CONVEYOR_SECRET_PREVIOUS`` with ``CONVEYOR_SECRET_PREVIOUS_UNTIL`` (the end of the overlap), re-run
``conveyor apply``; until that time the receiver accepts tokens from both.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from conveyor.config import Settings

_CONTEXT = b"conveyor/v1/gitlab-hook-token\x00"
_ID_CONTEXT = b"conveyor/v2/gitlab-hook-token/project-id\x00"


_CACHED = 4096  # tokens kept (the receiver checks several a delivery), a bounded number
_CACHED_NAME = 512  # longer paths (a hostile payload's) are hashed each time, never kept


def project_token(secret: str, project_path: str) -> str:
    """The path-keyed token (64 hex chars): old hooks, and Jenkins trigger secrets (job path)."""
    if len(project_path) <= _CACHED_NAME:
        return _project_token(secret, project_path)
    return _project_token.__wrapped__(secret, project_path)


@functools.lru_cache(maxsize=_CACHED)
def _project_token(secret: str, project_path: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), _CONTEXT + project_path.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


def job_trigger_token(secret: str, job: str) -> str:
    """The secret the gitlab-plugin trigger of ``job`` checks (never printed)."""
    return project_token(secret, job)


def project_id_token(secret: str, project_id: int) -> str:
    """The token GitLab must send in ``X-Gitlab-Token`` for project ``project_id`` (64 hex)."""
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id < 1:
        raise ValueError(f"a GitLab project id is a positive integer, got {project_id!r}")
    return _project_id_token(secret, project_id)


@functools.lru_cache(maxsize=_CACHED)
def _project_id_token(secret: str, project_id: int) -> str:
    message = _ID_CONTEXT + str(project_id).encode("ascii")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def token_fingerprint(token: str) -> str:
    """A short, one-way tag of a token (12 hex chars), safe to store where GitLab shows it: it
    tells whether the hook holds the token conveyor would write now without revealing it."""
    return hashlib.sha256(b"conveyor/token-fingerprint\x00" + token.encode("utf-8")).hexdigest()[
        :12
    ]


def _secrets(settings: Settings, now: datetime) -> list[str]:
    found = [settings.secret] if settings.secret else []
    if settings.previous_secret and (
        settings.previous_secret_until is None or now < settings.previous_secret_until
    ):
        found.append(settings.previous_secret)
    return found


def accepted_tokens(
    settings: Settings,
    project_id: int | None,
    legacy_paths: Sequence[str] = (),
    now: datetime | None = None,
) -> list[str]:
    """Tokens the receiver accepts now: the id token (current secret, plus the previous one during
    a rotation overlap) and, while the transition lasts, the path tokens of ``legacy_paths``."""
    secrets = _secrets(settings, now or datetime.now(UTC))
    tokens = [project_id_token(s, project_id) for s in secrets] if project_id else []
    tokens.extend(project_token(s, path) for path in legacy_paths for s in secrets)
    return tokens
