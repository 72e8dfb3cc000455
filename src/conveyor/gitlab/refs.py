"""What a GitLab payload may name, checked by git's and GitLab's own rules: refs, object ids, paths.

Every ref, sha and project path in a payload is hostile until one of these checks passed; each
answers the reason a value is refused (``None`` when it is fine), so the parser can say which
field was wrong.

* :func:`refname_problem` is git's ``check_refname_format()`` with no flags, as
  ``git check-ref-format <refname>`` runs it (git ``refs.c``: ``refname_disposition[]``,
  ``check_refname_component()``, ``check_or_sanitize_refname()``; the rules are listed in
  ``Documentation/git-check-ref-format.txt``), applied to the UTF-8 bytes like git does:

  1. no component may begin with ``.`` or end with ``.lock``;
  2. at least two components (``refs/...``; conveyor requires the ``refs/`` prefix anyway);
  3. no ``..`` anywhere;
  4. no ASCII control character (< 0x20, DEL 0x7f), space, ``~``, ``^`` or ``:``;
  5. no ``?``, ``*`` or ``[`` (``*`` only with ``--refspec-pattern``, never here);
  6. no leading or trailing ``/`` and no ``//`` (an empty component);
  7. no trailing ``.``;  8. no ``@{``;  9. not the single character ``@``;  10. no ``\\``.

  git's receive-pack refuses to store any other name ("funny refname"), so GitLab cannot send
  one. A name that is not text at all (a lone surrogate from a ``\\ud800`` JSON escape) is refused
  too: git compares bytes, and such a string has no bytes.
* :func:`sha_problem`: a full object id, 40 hex digits (SHA-1) or 64 (SHA-256 repositories),
  never an abbreviation, a rev expression (``HEAD~1``, ``main``) or anything starting with ``-``.
* :func:`project_path_problem`: GitLab's path format (``lib/gitlab/path_regex.rb``:
  ``PATH_REGEX_STR = '[a-zA-Z0-9_\\.][a-zA-Z0-9_\\-\\.]*'`` per segment, ``NO_SUFFIX_REGEX`` forbids
  ``.git``/``.atom`` at the end), plus no ``.``/``..`` segment, so a path can be put into a clone
  URL without escaping and cannot climb out of it.
"""

from __future__ import annotations

import functools
import re

SHA1_ZERO = "0" * 40
SHA256_ZERO = "0" * 64
ZERO_SHAS = frozenset({SHA1_ZERO, SHA256_ZERO})

_SHA = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})")
# refs.c refname_disposition: 4 = "a bad character" (controls, SP, ~ ^ : ? [ \, DEL);
# 5 = "*" (refused unless REFNAME_REFSPEC_PATTERN, which conveyor never passes).
_BAD_BYTE = re.compile(rb"[\x00-\x20\x7f~^:?*\[\\]")
_BAD_BYTES = bytes([*range(0x21), 0x7F, *b"~^:?*[\\"])  # the same set, for bytes.translate
_LOCK_SUFFIX = b".lock"  # refs.c LOCK_SUFFIX
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.\-]*")
# Verdicts kept for the refs deliveries repeat (a branch's every push checks its ref three
# times: the parser, the router, the checkout); longer names are checked each time, never kept.
_CACHED = 1024
_CACHED_NAME = 256


def is_zero_sha(sha: str | None) -> bool:
    """GitLab's "no commit" (``Gitlab::Git.blank_ref?``): 40 zeros, or 64 in SHA-256 repositories."""
    return sha in ZERO_SHAS


def refname_problem(refname: str) -> str | None:
    """Why git's ``check-ref-format`` refuses ``refname``, or ``None`` when git accepts it."""
    if len(refname) <= _CACHED_NAME:
        return _cached_refname_problem(refname)
    return _refname_problem(refname)


@functools.lru_cache(maxsize=_CACHED)
def _cached_refname_problem(refname: str) -> str | None:
    return _refname_problem(refname)


def _refname_problem(refname: str) -> str | None:
    """:func:`refname_problem`, computed.

    refs.c walks each component byte by byte; every one of its rules is a property of the whole
    name (a component starts after ``/``), so the same verdict is reached here with C-speed
    searches: a long name costs no Python loop per byte.
    """
    try:
        raw = refname.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    if raw == b"@":
        return "is the single character '@'"
    bad = _BAD_BYTE.search(raw) if raw.translate(None, _BAD_BYTES) != raw else None
    if bad is not None:
        return f"contains the forbidden character {chr(bad.group()[0])!r}"
    if raw.startswith(b"/") or raw.endswith(b"/") or b"//" in raw or not raw:
        return "has an empty component (a leading, trailing or double '/')"
    if b".." in raw:
        return "contains '..'"
    if b"@{" in raw:
        return "contains '@{'"
    if raw.startswith(b".") or b"/." in raw:
        return "has a component starting with '.'"
    if raw.endswith(_LOCK_SUFFIX) or _LOCK_SUFFIX + b"/" in raw:
        return "has a component ending with '.lock'"
    if raw.endswith(b"."):
        return "ends with '.'"
    if b"/" not in raw:
        return "has only one component"
    return None


def sha_problem(sha: str) -> str | None:
    """Why ``sha`` is not a full object id (40 or 64 lower-case hex digits), or ``None``."""
    if _SHA.fullmatch(sha):
        return None
    return "is not a full commit sha (40 or 64 hex digits)"


def project_path_problem(path: str) -> str | None:
    """Why ``path`` is not a GitLab ``namespace/project`` path, or ``None``."""
    segments = path.split("/")
    if len(segments) < 2:
        return "is not a namespace/project path"
    for segment in segments:
        if not _PATH_SEGMENT.fullmatch(segment) or segment in (".", ".."):
            return "is not a GitLab path (letters, digits, '_', '-', '.' per segment)"
        if segment.endswith((".git", ".atom")):
            return "has a segment ending in '.git' or '.atom'"
    return None
