"""Per-project webhook tokens, derived from the master secret (no token store to lose).

``project_token(secret, "group/app")`` is a keyed hash of the project path: the same secret always gives
the same token, so ``apply`` can rewrite a hook's write-only token and the receiver can check it, with
nothing stored. Rotation: set ``CONVEYOR_SECRET`` to the new secret, keep the old one in
``CONVEYOR_SECRET_PREVIOUS`` with ``CONVEYOR_SECRET_PREVIOUS_UNTIL`` (the end of the overlap), re-run
``conveyor apply``; until that time the receiver accepts tokens from both.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from conveyor.config import Settings

_CONTEXT = b"conveyor/v1/gitlab-hook-token\x00"


def project_token(secret: str, project_path: str) -> str:
    """The token GitLab must send in ``X-Gitlab-Token`` for ``project_path`` (64 hex chars)."""
    mac = hmac.new(secret.encode("utf-8"), _CONTEXT + project_path.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


def accepted_tokens(
    settings: Settings, project_path: str, now: datetime | None = None
) -> list[str]:
    """Tokens the receiver accepts for ``project_path`` now: current, plus previous during overlap."""
    now = now or datetime.now(UTC)
    tokens: list[str] = []
    if settings.secret:
        tokens.append(project_token(settings.secret, project_path))
    if settings.previous_secret and (
        settings.previous_secret_until is None or now < settings.previous_secret_until
    ):
        tokens.append(project_token(settings.previous_secret, project_path))
    return tokens
