"""Branch and tag wildcards, compiled to one regex dialect shared by Python, Java (Jenkins) and RE2 (GitLab).

``*`` matches within one path segment, ``**`` across segments, ``?`` one character (not ``/``).
Everything else is literal: ASCII punctuation is backslash-escaped, which all three engines accept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache


def glob_to_regex(pattern: str) -> str:
    """The anchored-by-context regex for one wildcard (use with full-match semantics)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append("(?s:.*)")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif not ch.isascii() or ch.isalnum() or ch == "_":
            out.append(ch)
        elif ch.isprintable() and ch != " ":
            out.append("\\" + ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
        i += 1
    return "".join(out)


def patterns_to_regex(patterns: Sequence[str]) -> str:
    """One regex matching any of ``patterns`` (full match)."""
    parts = [glob_to_regex(p) for p in patterns]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


@lru_cache(maxsize=4096)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(patterns_to_regex(patterns))


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Does ``name`` match any wildcard in ``patterns``? (full match, like Groovy's ``==~``)."""
    return bool(patterns) and _compiled(tuple(patterns)).fullmatch(name) is not None
