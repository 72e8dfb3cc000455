"""The one Groovy escaper. Every spec or event string that reaches a Jenkinsfile goes through here.

Strings become single-quoted Groovy literals: no ``$`` interpolation happens in them, so data can never
turn into Groovy code. Backslash and quote are escaped, control characters and every non-ASCII
character become ``\\uXXXX`` escapes, so the file is pure ASCII and the literal the Groovy parser reads
equals the input exactly (proved by property tests against Groovy 2.4.21's own parser).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_SIMPLE = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TABLE = str.maketrans(_SIMPLE)
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def _escape_char(ch: str) -> str:
    if ch in _SIMPLE:
        return _SIMPLE[ch]
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return ch
    if code > 0xFFFF:  # astral: a UTF-16 surrogate pair, as Java strings hold it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _escaped(value: str) -> str:
    """The body of the literal: the simple escapes first, then every other non-printable char."""
    return _NOT_PRINTABLE.sub(lambda m: _escape_char(m.group()), value.translate(_TABLE))


def literal(value: str) -> str:
    """``value`` as a single-quoted Groovy string literal (no interpolation, ASCII only)."""
    return "'" + _escaped(value) + "'"


def value(item: object) -> str:
    """A Groovy literal for a str, bool, int or None."""
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        return literal(item)
    raise TypeError(f"no Groovy literal for {type(item).__name__}")


def list_literal(items: Iterable[str]) -> str:
    """``['a', 'b']`` with every element escaped."""
    return "[" + ", ".join(literal(i) for i in items) + "]"


def map_literal(items: Mapping[str, object]) -> str:
    """``[k: v, ...]`` with quoted keys (``['k': 'v']``); ``[:]`` when empty."""
    if not items:
        return "[:]"
    return "[" + ", ".join(f"{literal(k)}: {value(v)}" for k, v in items.items()) + "]"


#: Longest literal :func:`concatenation` emits, in bytes. The class file format stores a string
#: constant as one CONSTANT_Utf8 entry of at most 65,535 bytes (JVM spec 4.4.7); a longer literal makes
#: Groovy's class generation fail, so the job would never start.
MAX_LITERAL_BYTES = 60_000


def concatenation(value: str, max_bytes: int = MAX_LITERAL_BYTES) -> str:
    """``value`` as ``'part' + 'part' + ...``: literals of at most ``max_bytes`` each (ASCII, so bytes
    equal characters), split between characters of ``value``, never inside an escape."""
    budget = max_bytes - 2  # the quotes
    parts: list[str] = []
    start = 0
    while True:
        size = budget // 2 or 1  # printable ASCII escapes to at most 2 characters
        while True:
            piece = _escaped(value[start : start + size])
            if len(piece) <= budget or size == 1:
                break
            size //= 2  # non-ASCII in this stretch: escapes up to 12 characters each
        parts.append("'" + piece + "'")
        start += size
        if start >= len(value):
            return " + ".join(parts)
