"""Turn model validation failures into located, human messages (with did-you-mean for unknown keys)."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from conveyor.errors import SpecIssue
from conveyor.spec.model import Spec

Loc = tuple[str | int, ...]


class _Pos(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


PositionOf = Callable[..., _Pos]


def _fmt(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Keep the parts of a pydantic ``loc`` that address real data (drop union/validator tags)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if _addresses(node, part):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not out_of_data(part):
            # a missing or unknown key: keep it as the last element
            out.append(part)
            break
    return tuple(out)


def _addresses(node: Any, part: Any) -> bool:
    """Is ``part`` an existing key of a mapping ``node`` or an index of a list ``node``?"""
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def out_of_data(part: str) -> bool:
    """Pydantic inserts tags like ``str``, ``list[str]``, ``function-after[...]`` for unions."""
    return any(c in part for c in "[]()") or part in {"str", "int", "bool", "float", "none"}


def _unwrap(annotation: Any) -> list[type[BaseModel]]:
    """Models reachable from an annotation (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        found: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    return []


def _known_keys(loc: Loc) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (walks the model classes)."""
    models: list[type[BaseModel]] = [Spec]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for model in models:
            for name, info in model.model_fields.items():
                if part in (name, info.alias):
                    nxt.extend(_unwrap(info.annotation))
        models = nxt
    keys: list[str] = []
    for model in models:
        keys.extend(info.alias or name for name, info in model.model_fields.items())
    return keys


def _message(err: Any, loc: Loc) -> tuple[str, bool]:
    """(message, points at a key?) for one pydantic error."""
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else (f"; allowed keys: {', '.join(known)}" if known else "")
        )
        return f"unknown key {key!r}{hint}", True
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}" if loc else "missing value", False
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "project":
        msg = "must be a GitLab project path like group/name"
    got = err.get("input")
    if (
        kind not in ("model_type", "value_error", "assertion_error")
        and not isinstance(got, dict | list)
        and got is not None
    ):
        msg += f" (got {got!r})"
    return msg, False


def issues_from_validation(
    exc: ValidationError, data: Any, position: PositionOf
) -> list[SpecIssue]:
    """One SpecIssue per distinct failing place; union alternatives are joined with ' or '."""
    grouped: dict[tuple[Loc, bool], list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = _data_loc(tuple(err["loc"]), data)
        message, at_key = _message(err, loc)
        if err["type"] == "spec_rule":  # conveyor.spec.rules: may point at the key
            at_key = bool(err.get("ctx", {}).get("at_key")) and loc == tuple(err["loc"])
        if err["type"] == "missing":
            anchor: Loc = loc[:-1]
            grouped.setdefault(((*anchor, str(loc[-1]) if loc else ""), False), []).append(message)
            continue
        messages = grouped.setdefault((loc, at_key), [])
        if message not in messages:
            messages.append(message)
    issues = []
    for (loc, at_key), messages in grouped.items():
        is_missing = messages[0].startswith("missing required key")
        where = loc[:-1] if is_missing else loc
        p = position(where, key=at_key or is_missing)
        issues.append(SpecIssue(p.file, p.line, p.column, _fmt(loc), " or ".join(messages)))
    return issues


def structural_issues(data: dict[str, Any], position: PositionOf) -> list[SpecIssue]:
    """Checks made on the raw data, so they are reported even when the model fails elsewhere:
    duplicate stage names, undeclared ``when.parameter`` names. (The rules across fields are
    :mod:`conveyor.spec.rules`, run by the model with their data paths.)"""
    issues: list[SpecIssue] = []
    stages = data.get("stages")
    if not isinstance(stages, list):
        return issues
    seen: dict[str, Loc] = {}

    def visit(items: list[Any], base: Loc) -> None:
        for i, stage in enumerate(items):
            if not isinstance(stage, dict):
                continue
            name = stage.get("name")
            loc = (*base, i, "name")
            if isinstance(name, str):
                if name in seen:
                    first = position(seen[name])
                    p = position(loc)
                    issues.append(
                        SpecIssue(
                            p.file,
                            p.line,
                            p.column,
                            _fmt(loc),
                            f"duplicate stage name {name!r} (first at line {first.line})",
                        )
                    )
                else:
                    seen[name] = loc
            if isinstance(stage.get("parallel"), list):
                visit(stage["parallel"], (*base, i, "parallel"))

    visit(stages, ("stages",))

    jenkins = data.get("jenkins")
    params = jenkins.get("parameters") if isinstance(jenkins, dict) else None
    declared = (
        {p.get("name") for p in params if isinstance(p, dict)}
        if isinstance(params, list)
        else set()
    )

    def check_params(items: list[Any], base: Loc) -> None:
        for i, stage in enumerate(items):
            if not isinstance(stage, dict):
                continue
            when = stage.get("when")
            wanted = when.get("parameter") if isinstance(when, dict) else None
            if isinstance(wanted, dict):
                for name in wanted:
                    if name not in declared:
                        loc = (*base, i, "when", "parameter", name)
                        p = position(loc, key=True)
                        issues.append(
                            SpecIssue(
                                p.file,
                                p.line,
                                p.column,
                                _fmt(loc),
                                f"stage {stage.get('name')!r}: when.parameter {name!r} is not declared "
                                "in jenkins.parameters",
                            )
                        )
            if isinstance(stage.get("parallel"), list):
                check_params(stage["parallel"], (*base, i, "parallel"))

    check_params(stages, ("stages",))
    return issues
