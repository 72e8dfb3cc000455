"""Load spec files: YAML with line numbers, ``extends:`` templates, deep merge, then the model.

Every value keeps the file, line and column it came from (a template's values point into the template),
so an error in a merged spec names the exact place to fix. Problems are collected, not raised one by
one: a run reports every problem of every file.

Merge rules: mappings merge key by key (the including file wins), lists and scalars replace.
``extends`` paths are relative to the file that names them; cycles and missing templates are errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from conveyor.errors import SpecError, SpecIssue
from conveyor.spec.model import Spec
from conveyor.spec.validate import issues_from_validation, structural_issues

Loc = tuple[str | int, ...]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    column: int


@dataclass
class Located:
    """Plain data plus where each key and value came from."""

    data: Any
    keys: dict[Loc, Position] = field(default_factory=dict)
    values: dict[Loc, Position] = field(default_factory=dict)

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """The best known position for ``loc``: the exact key/value, else the nearest parent."""
        table = self.keys if key else self.values
        if loc in table:
            return table[loc]
        for end in range(len(loc), -1, -1):
            prefix = loc[:end]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return next(iter(self.values.values()), Position("<unknown>", 1, 1))


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and the file it came from."""

    path: Path
    spec: Spec
    sources: tuple[Path, ...]  # the file, then every template it pulled in


def _pos(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Reader:
    """Turns a YAML node tree into Python data with positions; collects problems."""

    def __init__(self, file: str, issues: list[SpecIssue]) -> None:
        self.file = file
        self.issues = issues
        self.constructor = yaml.constructor.SafeConstructor()

    def read(self, node: yaml.Node, loc: Loc, out: Located) -> Any:
        out.values[loc] = _pos(self.file, node)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._issue(
                        key_node, loc, "YAML merge keys (<<) are not supported; use extends:"
                    )
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self._issue(key_node, loc, "mapping keys must be plain strings")
                    continue
                key = str(key_node.value)
                if key in result:
                    self._issue(key_node, (*loc, key), f"duplicate key {key!r}")
                    continue
                out.keys[(*loc, key)] = _pos(self.file, key_node)
                result[key] = self.read(value_node, (*loc, key), out)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, (*loc, i), out) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self._issue(node, loc, f"invalid value: {exc}")
            return None

    def _issue(self, node: yaml.Node, loc: Loc, message: str) -> None:
        p = _pos(self.file, node)
        self.issues.append(SpecIssue(p.file, p.line, p.column, format_loc(loc), message))


def format_loc(loc: Iterable[str | int]) -> str:
    """``("stages", 1, "build")`` -> ``stages[1].build``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parse_file(path: Path, issues: list[SpecIssue]) -> Located | None:
    file = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        issues.append(SpecIssue(file, 1, 1, "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(SpecIssue(file, 1, 1, "", f"cannot read file: {exc}"))
        return None
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        issues.append(SpecIssue(file, line, col, "", f"invalid YAML: {problem}"))
        return None
    except yaml.YAMLError as exc:
        issues.append(SpecIssue(file, 1, 1, "", f"invalid YAML: {exc}"))
        return None
    if len(nodes) != 1:
        issues.append(SpecIssue(file, 1, 1, "", "a spec file holds exactly one YAML document"))
        return None
    located = Located(data=None)
    located.data = _Reader(file, issues).read(nodes[0], (), located)
    if not isinstance(located.data, dict):
        issues.append(SpecIssue(file, 1, 1, "", "a spec must be a mapping of keys to values"))
        return None
    return located


def _merge(base: Located, over: Located) -> Located:
    """Deep-merge ``over`` onto ``base`` (mappings merge, lists/scalars replace), keeping positions."""
    out = Located(data=None, keys=dict(base.keys), values=dict(base.values))

    def drop_under(loc: Loc) -> None:
        for table in (out.keys, out.values):
            for k in [k for k in table if k[: len(loc)] == loc and len(k) > len(loc)]:
                del table[k]

    def merge(a: Any, b: Any, loc: Loc) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            merged = dict(a)
            for key, value in b.items():
                merged[key] = merge(a.get(key), value, (*loc, key)) if key in a else value
            return merged
        drop_under(loc)
        return b

    out.data = merge(base.data, over.data, ())
    out.keys.update(over.keys)
    out.values.update(over.values)
    return out


def _resolve(
    path: Path, issues: list[SpecIssue], stack: tuple[Path, ...]
) -> tuple[Located | None, list[Path]]:
    located = _parse_file(path, issues)
    if located is None:
        return None, [path]
    sources = [path]
    extends = located.data.get("extends")
    if extends is None:
        return located, sources
    names = [extends] if isinstance(extends, str) else extends
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        p = located.position(("extends",))
        issues.append(
            SpecIssue(
                p.file,
                p.line,
                p.column,
                "extends",
                "extends must be a template path or a list of them",
            )
        )
        return located, sources
    merged: Located | None = None
    for index, name in enumerate(names):
        loc: Loc = ("extends",) if isinstance(extends, str) else ("extends", index)
        p = located.position(loc)
        target = (path.parent / name).resolve()
        chain = [*stack, path.resolve()]
        if target in chain:
            cycle = " -> ".join(_display(s) for s in [*chain[chain.index(target) :], target])
            issues.append(
                SpecIssue(p.file, p.line, p.column, format_loc(loc), f"extends cycle: {cycle}")
            )
            continue
        if not target.is_file():
            issues.append(
                SpecIssue(
                    p.file,
                    p.line,
                    p.column,
                    format_loc(loc),
                    f"template {name!r} not found (looked for {_display(target)})",
                )
            )
            continue
        template, more = _resolve(target, issues, tuple(chain))
        sources.extend(more)
        if template is not None:
            template.data.pop("extends", None)
            merged = template if merged is None else _merge(merged, template)
    if merged is None:
        return located, sources
    return _merge(merged, located), sources


def load_spec(path: Path) -> LoadedSpec:
    """Load and validate one spec file; raise SpecError with every problem found."""
    issues: list[SpecIssue] = []
    loaded = _load(Path(path), issues)
    if issues or loaded is None:
        raise SpecError(issues)
    return loaded


def _load(path: Path, issues: list[SpecIssue]) -> LoadedSpec | None:
    before = len(issues)
    located, sources = _resolve(path, issues, ())
    if located is None or len(issues) > before:
        return None
    structural = structural_issues(located.data, located.position)
    issues.extend(structural)
    try:
        spec = Spec.model_validate(located.data)
    except ValidationError as exc:
        found = issues_from_validation(exc, located.data, located.position)
        if structural:  # already reported with a precise position
            said = {i.message.split(" (first at")[0] for i in structural}
            found = [i for i in found if i.message not in said]
        issues.extend(found)
        return None
    if len(issues) > before:
        return None
    return LoadedSpec(path=path, spec=spec, sources=tuple(sources))


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories searched for ``*.yml``/``*.yaml``, skipping ``templates/`` dirs."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.suffix in (".yml", ".yaml")
                and f.is_file()
                and "templates" not in f.relative_to(p).parts
            )
            files.extend(found)
        else:
            files.append(p)
    return files


def check_paths(paths: Sequence[Path]) -> tuple[list[LoadedSpec], list[SpecIssue]]:
    """Load every spec under ``paths``; return the valid ones and every problem (never raises)."""
    issues: list[SpecIssue] = []
    loaded: list[LoadedSpec] = []
    files = expand_paths(paths)
    if not files:
        issues.append(
            SpecIssue(
                ", ".join(str(p) for p in paths) or ".", 1, 1, "", "no spec files (*.yml) found"
            )
        )
    for f in files:
        result = _load(f, issues)
        if result is not None:
            loaded.append(result)
    _check_duplicates(loaded, issues)
    return loaded, issues


def _check_duplicates(loaded: list[LoadedSpec], issues: list[SpecIssue]) -> None:
    by_project: dict[str, LoadedSpec] = {}
    by_job: dict[str, LoadedSpec] = {}
    for item in loaded:
        for table, key, what in (
            (by_project, item.spec.project, "project"),
            (by_job, item.spec.jenkins.job, "jenkins.job"),
        ):
            if key in table:
                issues.append(
                    SpecIssue(
                        _display(item.path),
                        1,
                        1,
                        what,
                        f"{what} {key!r} is also used by {_display(table[key].path)}",
                    )
                )
            else:
                table[key] = item


def load_specs(paths: Sequence[Path]) -> list[LoadedSpec]:
    """Load every spec under ``paths``; raise one SpecError listing every problem of every file."""
    loaded, issues = check_paths(paths)
    if issues:
        raise SpecError(issues)
    return loaded
