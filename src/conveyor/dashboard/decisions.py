"""What conveyor decided about an event and why, in words (pure: a stored row in, a line out)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SUPERSEDED = re.compile(r"superseded by event (\d+)")


@dataclass(frozen=True)
class Decision:
    label: str  # the status, as a word
    why: str  # the reason, the error, or what happened
    by_event: int | None = None  # superseded: the event that took its place


def decision_of(event: dict[str, Any]) -> Decision:
    status = str(event["status"])
    reason = event.get("reason") or ""
    error = event.get("last_error") or ""
    attempts = int(event.get("attempts") or 0)
    if status == "ignored":
        return Decision("ignored", reason or "not built")
    if status == "superseded":
        match = _SUPERSEDED.search(reason)
        return Decision("superseded", reason, int(match.group(1)) if match else None)
    if status == "dead":
        return Decision("dead", f"after {attempts} attempt(s): {error or 'no error recorded'}")
    if status == "failed":
        return Decision("failed", error or "the build failed")
    if status == "done":
        return Decision("done", "dispatched and finished")
    if status == "running":
        return Decision("running", f"attempt {attempts}")
    replay = event.get("replay_of")
    if attempts and error:
        return Decision("queued", f"retry after attempt {attempts}: {error}")
    if replay:
        return Decision("queued", f"replay of event {replay}")
    return Decision("queued", "waiting for a worker")
