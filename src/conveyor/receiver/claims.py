"""Which projects a raw webhook body claims to be for, found without parsing it.

Ids (``"project_id": N``, ``"target_project_id": N``, and ``"project": {"id": N`` as GitLab writes
the project first by its id) and paths are both collected: tokens are keyed on the id, and on the
path for hooks registered before that.

The token check needs the project, and the project is inside the body. Parsing a large body
on the event loop before the sender is authenticated would let anyone stall intake (5 MB of
JSON is tens of milliseconds of parsing). This scan finds the fields that name the project
(``"path_with_namespace": "..."``, the old ``"homepage": "..."`` and ``"project_name": "..."``,
the same three :func:`conveyor.gitlab.events.project_path_of` reads) with byte searches, so an
unauthenticated body costs one pass of ``bytes.find``, never a parse. (Bodies of up to
``conveyor.receiver.app.PARSE_FIRST_BYTES`` that parse to an object naming its project skip this
scan: for them orjson is the cheaper of the two, 4 against 17 µs for a push, and at worst a
fraction of a millisecond.)

It is a filter, not the check: a token that matches none of the claimed projects is refused at
once; one that matches is checked again against the parsed payload, which is the authority. A
key GitLab would never write (``"path_with\\u005fnamespace"``) is simply not found, so such a body
is refused: it cannot come from GitLab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

MAX_HITS = 16  # per key; GitLab writes path_with_namespace at most a few times (MR: 3)
_STRING_VALUE = re.compile(rb'\s*:\s*"((?:[^"\\]|\\.){0,1024}+)"')
_NUMBER_VALUE = re.compile(rb"\s*:\s*([1-9][0-9]{0,18})\b")
_PROJECT_ID = re.compile(rb'"project"\s*:\s*\{\s*"id"\s*:\s*([1-9][0-9]{0,18})\b')


@dataclass(frozen=True)
class Claims:
    """Project paths a body names, and the fields whose value is not text at all."""

    paths: tuple[str, ...]
    invalid: tuple[str, ...]
    ids: tuple[int, ...] = ()


def _values(body: bytes, key: bytes) -> list[bytes]:
    """Raw (still escaped) JSON string values following ``"key":`` anywhere in ``body``."""
    needle = b'"' + key + b'"'
    found: list[bytes] = []
    pos = body.find(needle)
    while pos >= 0 and len(found) < MAX_HITS:
        match = _STRING_VALUE.match(body, pos + len(needle))
        if match is not None:
            found.append(match.group(1))
        pos = body.find(needle, pos + len(needle))
    return found


def _text(raw: bytes) -> str | None:
    """A JSON string literal's content decoded, or None if it is not valid Unicode text."""
    if b"\\" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        value = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


_KEYS = (
    (b"path_with_namespace", "project.path_with_namespace"),
    (b"homepage", "repository.homepage"),
    (b"project_name", "project_name"),
)


def claimed_projects(body: bytes) -> Claims:
    """Every project path ``body`` could name, in the forms ``project_path_of`` accepts."""
    paths: list[str] = []
    invalid: list[str] = []
    for key, field in _KEYS:
        if paths and key != b"path_with_namespace":
            break  # the old forms count only where path_with_namespace is absent
        for raw in _values(body, key):
            text = _text(raw)
            if text is None:
                invalid.append(field)
                continue
            path = _path_from(key, text)
            if path and path not in paths:
                paths.append(path)
    ids: list[int] = []
    for key in (b"project_id", b"target_project_id"):
        ids.extend(_numbers(body, key))
    ids.extend(int(m.group(1)) for m in _PROJECT_ID.finditer(body, 0) if len(ids) < 3 * MAX_HITS)
    return Claims(
        paths=tuple(paths), invalid=tuple(dict.fromkeys(invalid)), ids=tuple(dict.fromkeys(ids))
    )


def _numbers(body: bytes, key: bytes) -> list[int]:
    needle = b'"' + key + b'"'
    found: list[int] = []
    pos = body.find(needle)
    while pos >= 0 and len(found) < MAX_HITS:
        match = _NUMBER_VALUE.match(body, pos + len(needle))
        if match is not None:
            found.append(int(match.group(1)))
        pos = body.find(needle, pos + len(needle))
    return found


def _path_from(key: bytes, text: str) -> str | None:
    if key == b"path_with_namespace":
        return text or None
    if key == b"homepage":
        if "://" not in text:
            return None
        parts = text.split("://", 1)[1].split("/", 1)
        return parts[1].strip("/") or None if len(parts) == 2 else None
    return text if "/" in text and " " not in text else None
