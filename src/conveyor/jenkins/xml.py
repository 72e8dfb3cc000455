"""The one XML escaper, and a tiny deterministic element writer built on it.

Every string that reaches a ``config.xml`` goes through :func:`text`. XML 1.0 cannot carry NUL, most
C0 control characters, lone surrogates or U+FFFE/U+FFFF, not even as character references, so those are
rejected with :class:`XmlCharError` (the renderer names the spec field). ``\\r`` is written as ``&#13;``
so a parser hands back exactly the input instead of normalising line ends; ``&``, ``<`` and ``>`` become
entities. Everything else, astral characters included, is written as UTF-8.

:class:`Element` is a minimal tree (text-only or children-only elements, as in Jenkins' XStream files);
:func:`serialize` writes it with two-space indentation, attributes in the order given, and no
whitespace added inside text elements, so the same tree always gives the same bytes. Text ``""`` is
written ``<x></x>`` (an empty string), ``None`` as ``<x/>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Characters XML 1.0 forbids outright: C0 controls except tab/newline/CR, surrogates, U+FFFE, U+FFFF.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPECIAL = re.compile("[&<>\r]")
_TEXT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_ATTR_SPECIAL = re.compile('[&<>\r"\n\t]')
_ATTR_ESCAPES = {**_TEXT_ESCAPES, '"': "&quot;", "\n": "&#10;", "\t": "&#9;"}


class XmlCharError(ValueError):
    """A string holds a character XML 1.0 cannot represent."""

    def __init__(self, char: str) -> None:
        super().__init__(
            f"character U+{ord(char):04X} cannot be written to XML 1.0 (config.xml); remove it"
        )
        self.char = char


def check(value: str) -> str:
    """``value`` unchanged, or XmlCharError if XML 1.0 cannot carry one of its characters."""
    bad = _FORBIDDEN.search(value)
    if bad:
        raise XmlCharError(bad.group())
    return value


def text(value: str) -> str:
    """``value`` escaped as XML character data (element text)."""
    check(value)
    if not _SPECIAL.search(value):
        return value
    return _SPECIAL.sub(lambda m: _TEXT_ESCAPES[m.group()], value)


def attribute(value: str) -> str:
    """``value`` escaped for a double-quoted attribute (newlines and tabs kept as references)."""
    check(value)
    return _ATTR_SPECIAL.sub(lambda m: _ATTR_ESCAPES[m.group()], value)


@dataclass
class Element:
    """An XML element: a tag, attributes, and either text or children."""

    tag: str
    text: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)

    def add(self, tag: str, text: str | None = None, **attrs: str) -> Element:
        """Append a child element and return it."""
        child = Element(tag, text, dict(attrs))
        self.children.append(child)
        return child


def _write(element: Element, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    attrs = "".join(f' {k}="{attribute(v)}"' for k, v in element.attrs.items())
    if element.children:
        out.append(f"{pad}<{element.tag}{attrs}>\n")
        for child in element.children:
            _write(child, depth + 1, out)
        out.append(f"{pad}</{element.tag}>\n")
    elif element.text is not None:
        # "" is an empty string, None an absent value: XStream reads <x></x> as "" (never null)
        out.append(f"{pad}<{element.tag}{attrs}>{text(element.text)}</{element.tag}>\n")
    else:
        out.append(f"{pad}<{element.tag}{attrs}/>\n")


def serialize(root: Element, *, declaration: bool = True) -> str:
    """The document as text: an XML 1.0 UTF-8 declaration (optional), then the indented tree."""
    out: list[str] = ["<?xml version='1.0' encoding='UTF-8'?>\n"] if declaration else []
    _write(root, 0, out)
    return "".join(out)
