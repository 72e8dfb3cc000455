"""The one secret masker: every text conveyor shows or stores passes through it when it may hold a
secret value (the local runner's log lines, tails and errors; the sync's config.xml diffs, plans and
server errors).

Every occurrence of every secret value is found in the original text first (overlapping ones
included) and each covered stretch is replaced by one ``****``, so masking one secret can never
reveal part of another, and no secret value (one without ``*`` in it) survives anywhere.

The runner masks its output a line at a time (a stage's output is read line by line), so a secret
value that spans lines, a PEM key for instance, is also masked line by line: each of its lines is a
value of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "****"


def _pieces(value: str) -> list[str]:
    """``value`` and each of its non-empty lines with ``\\r`` trimmed, as the runner trims the
    lines it reads: a value spanning lines, and one ending in ``\\r`` (a token file written with
    CRLF), which the runner would otherwise print trimmed, and unmasked."""
    if not value:
        return []
    lines = [line.strip("\r") for line in value.split("\n")]
    return [value, *(line for line in lines if line and line != value)]


class Masker:
    """Replaces every secret value in a text by ``****``."""

    def __init__(self, values: Iterable[str]) -> None:
        found = {piece for value in values for piece in _pieces(value)}
        self._values = tuple(sorted(found, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._values)

    def __call__(self, text: str) -> str:
        covered: list[tuple[int, int]] = []
        for value in self._values:
            start = text.find(value)
            while start != -1:
                covered.append((start, start + len(value)))
                start = text.find(value, start + 1)
        if not covered:
            return text
        covered.sort()
        out: list[str] = []
        done = 0
        begin, end = covered[0]
        for s, e in covered[1:]:
            if s <= end:  # overlapping or touching: one masked stretch
                end = max(end, e)
                continue
            out += [text[done:begin], MASK]
            done, begin, end = end, s, e
        out += [text[done:begin], MASK, text[end:]]
        return "".join(out)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every value of ``secrets`` replaced by ``****`` (one-off :class:`Masker`)."""
    return Masker(secrets)(text)
