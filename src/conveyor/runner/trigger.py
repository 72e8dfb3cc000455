"""What started a local run: a recorded GitLab event file, or flags (and git) for a manual run.

An event file is either the raw webhook body (``object_kind`` says the kind) or a recorded delivery
``{"headers": {"X-Gitlab-Event": ...}, "body"|"payload": {...}}``. It is parsed by
:mod:`conveyor.gitlab.events` and turned into a :class:`~conveyor.pipeline.context.Trigger` by
:func:`~conveyor.gitlab.events.trigger_of`, as every receiver dispatch is, so a local run and a
receiver dispatch see the same variables. The head commit message is added as
``CONVEYOR_COMMIT_MESSAGE``: event text (branch names, messages, titles) only ever reaches a stage
as environment data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import UsageError
from conveyor.gitlab.events import GitLabEvent, PayloadError, parse_event, trigger_of
from conveyor.pipeline.context import Trigger

_KIND_HEADERS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
}

COMMIT_MESSAGE_VARIABLE = "CONVEYOR_COMMIT_MESSAGE"


def _header(headers: Mapping[str, Any]) -> str | None:
    for key, value in headers.items():
        if str(key).lower() == "x-gitlab-event" and isinstance(value, str):
            return value
    return None


def read_event(path: Path) -> GitLabEvent:
    """Parse a recorded event file; UsageError naming the file when it cannot be understood."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"event file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"event file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"event file {path} is not a JSON object")
    header: str | None = None
    payload: Any = data
    if isinstance(data.get("headers"), dict) and ("body" in data or "payload" in data):
        header = _header(data["headers"])
        payload = data.get("body", data.get("payload"))
    if not isinstance(payload, dict):
        raise UsageError(f"event file {path}: the payload is not a JSON object")
    if header is None:
        kind = payload.get("object_kind") or payload.get("event_name")
        header = _KIND_HEADERS.get(str(kind))
        if header is None:
            raise UsageError(
                f"event file {path}: object_kind {kind!r} is not push, tag_push or merge_request"
            )
    try:
        return parse_event(header, payload)
    except PayloadError as exc:
        raise UsageError(f"event file {path}: {exc}") from None


def trigger_from_event(event: GitLabEvent) -> Trigger:
    """The trigger the receiver would dispatch for ``event``, plus the head commit message."""
    trigger = trigger_of(event)
    if event.head_message is not None:
        extra = (*trigger.extra, (COMMIT_MESSAGE_VARIABLE, event.head_message))
        trigger = dataclasses.replace(trigger, extra=extra)
    return trigger


def trigger_from_flags(
    *, project: str, sha: str, branch: str | None = None, tag: str | None = None
) -> Trigger:
    """A trigger for a run described by flags: a tag push when ``tag`` is given, a push of ``branch``
    when one is known, else a manual build (no ``gitlabActionType``, like a build started in Jenkins)."""
    if tag:
        return Trigger(kind="tag_push", project=project, sha=sha, tag=tag)
    if branch:
        return Trigger(kind="push", project=project, sha=sha, branch=branch)
    return Trigger(kind="manual", project=project, sha=sha)
