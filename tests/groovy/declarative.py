"""Structural checks of the declarative pipeline rules, on the tree Groovy 2.4.21 parsed.

Works on the ``tree`` from ``parse_server.groovy``: nested calls with their arguments and closure
bodies. Returns human-readable problems; an empty list means the Jenkinsfile follows the rules conveyor
must keep (see shared/reference/jenkins.md):

* one ``pipeline {}`` with an ``agent`` and ``stages``; only known sections;
* each stage has a constant name and exactly one of ``steps``, ``stages``, ``parallel``, ``matrix``;
* ``post`` conditions are among Jenkins' own;
* ``credentials(...)`` appears only as a value inside ``environment {}``;
* every ``sh`` step gets exactly one string constant (no GString anywhere in the file);
* ``when`` holds ``beforeAgent`` and one ``expression { return ... }`` (plain pipeline jobs);
* each leaf stage's steps are wrapped in ``gitlabCommitStatus(name: <stage name>)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PIPELINE_SECTIONS = {
    "agent",
    "options",
    "parameters",
    "environment",
    "stages",
    "post",
    "triggers",
    "tools",
    "libraries",
}
STAGE_SECTIONS = {
    "agent",
    "when",
    "environment",
    "options",
    "input",
    "tools",
    "steps",
    "stages",
    "parallel",
    "matrix",
    "post",
    "failFast",
}
STAGE_BODIES = {"steps", "stages", "parallel", "matrix"}
POST_CONDITIONS = {
    "always",
    "changed",
    "fixed",
    "regression",
    "aborted",
    "failure",
    "success",
    "unstable",
    "unsuccessful",
    "notBuilt",
    "cleanup",
}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INTERNAL_STAGES = {"conveyor: prepare"}


def closure_of(call: dict[str, Any]) -> list[Any] | None:
    """The body of a call's trailing closure argument, or None."""
    args = call.get("args") or []
    if args and isinstance(args[-1], dict) and "closure" in args[-1]:
        body: list[Any] = args[-1]["closure"]
        return body
    return None


def calls(body: list[Any]) -> Iterator[dict[str, Any]]:
    for item in body:
        if isinstance(item, dict) and "call" in item:
            yield item


def walk(node: Any) -> Iterator[Any]:
    """Every dict in the tree, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def const_arg(call: dict[str, Any], index: int = 0) -> Any:
    args = call.get("args") or []
    if len(args) > index and isinstance(args[index], dict) and "const" in args[index]:
        return args[index]["const"]
    return None


def folded(node: Any) -> Any:
    """A constant, or a ``'a' + 'b' + ...`` of string constants folded into one string; else None."""
    if isinstance(node, dict) and "const" in node:
        return node["const"]
    if isinstance(node, dict) and "plus" in node:
        left, right = (folded(n) for n in node["plus"])
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    return None


def plus_literals(node: Any) -> list[str]:
    """The string literals of a ``'a' + 'b' + ...`` chain, in order."""
    if isinstance(node, dict) and "plus" in node:
        return [s for n in node["plus"] for s in plus_literals(n)]
    if isinstance(node, dict) and isinstance(node.get("const"), str):
        return [node["const"]]
    return []


def named_node(call: dict[str, Any], name: str) -> Any:
    """The expression of a named argument (``name: ...``), or None."""
    for arg in call.get("args") or []:
        if isinstance(arg, dict) and "map" in arg:
            for key, value in arg["map"]:
                if key.get("const") == name:
                    return value
    return None


def named_arg(call: dict[str, Any], name: str) -> Any:
    """The constant value of a named argument (``name: 'x'``, or a concatenation of literals)."""
    return folded(named_node(call, name))


def check_jenkinsfile(tree: list[Any], methods: list[Any] | None = None) -> list[str]:
    problems: list[str] = []
    pipelines = [c for c in calls(tree) if c["call"] == "pipeline"]
    if len(pipelines) != 1 or len(tree) != 1:
        return [
            f"expected exactly one top-level pipeline {{}} statement, got {len(tree)} statements"
        ]
    body = closure_of(pipelines[0])
    if body is None:
        return ["pipeline has no closure"]
    sections = [c["call"] for c in calls(body)]
    if len(sections) != len(body):
        problems.append("pipeline {} holds something other than sections")
    for name in sections:
        if name not in PIPELINE_SECTIONS:
            problems.append(f"unknown pipeline section {name!r}")
    if sections.count("agent") != 1 or sections.count("stages") != 1:
        problems.append("pipeline needs exactly one agent and one stages section")
    for section in calls(body):
        if section["call"] == "stages":
            problems.extend(_check_stages(closure_of(section) or [], "pipeline"))
        elif section["call"] == "post":
            problems.extend(_check_post(section, "pipeline"))
        elif section["call"] == "environment":
            problems.extend(_check_environment(section, "pipeline"))
    problems.extend(_check_everywhere(tree, methods or []))
    return problems


def _check_stages(body: list[Any], where: str) -> list[str]:
    problems: list[str] = []
    if not body:
        problems.append(f"{where}: empty stages/parallel")
    for item in body:
        if not (isinstance(item, dict) and item.get("call") == "stage"):
            problems.append(f"{where}: only stage() may appear here, found {item!r:.80}")
            continue
        problems.extend(_check_stage(item))
    return problems


def _check_stage(stage: dict[str, Any]) -> list[str]:
    name = const_arg(stage)
    if not isinstance(name, str):
        return ["a stage name is not a string constant"]
    where = f"stage {name!r}"
    body = closure_of(stage)
    if body is None:
        return [f"{where}: no closure"]
    problems: list[str] = []
    sections = [c["call"] for c in calls(body)]
    if len(sections) != len(body):
        problems.append(f"{where}: holds something other than sections")
    for section in sections:
        if section not in STAGE_SECTIONS:
            problems.append(f"{where}: unknown section {section!r}")
    for section in set(sections):
        if sections.count(section) > 1:
            problems.append(f"{where}: section {section!r} appears twice")
    bodies = [s for s in sections if s in STAGE_BODIES]
    if len(bodies) != 1:
        problems.append(f"{where}: needs exactly one of steps/stages/parallel/matrix, has {bodies}")
    for section in calls(body):
        kind = section["call"]
        inner = closure_of(section) or []
        if kind in ("parallel", "stages"):
            problems.extend(_check_stages(inner, where))
        elif kind == "post":
            problems.extend(_check_post(section, where))
        elif kind == "environment":
            problems.extend(_check_environment(section, where))
        elif kind == "when":
            problems.extend(_check_when(inner, where))
        elif kind == "steps":
            if not inner:
                problems.append(f"{where}: empty steps")
            if name not in INTERNAL_STAGES:
                wrapped = [c for c in calls(inner) if c["call"] == "gitlabCommitStatus"]
                if len(inner) != 1 or len(wrapped) != 1 or named_arg(wrapped[0], "name") != name:
                    problems.append(
                        f"{where}: steps are not wrapped in gitlabCommitStatus(name: stage)"
                    )
                shells = [n for n in walk(inner) if n.get("call") == "sh"]
                if len(shells) != 1:
                    problems.append(f"{where}: a stage's body is one sh step, found {len(shells)}")
    return problems


def _check_when(body: list[Any], where: str) -> list[str]:
    names = [c["call"] for c in calls(body)]
    if names not in (["expression"], ["beforeAgent", "expression"]) or len(body) != len(names):
        return [f"{where}: when must hold one expression (after beforeAgent), has {names}"]
    expression = list(calls(body))[-1]
    inner = closure_of(expression) or []
    if len(inner) != 1 or "return" not in inner[0]:
        return [f"{where}: when expression must be a single return"]
    return []


def _check_post(section: dict[str, Any], where: str) -> list[str]:
    problems = []
    body = closure_of(section) or []
    if not body:
        problems.append(f"{where}: empty post")
    for item in body:
        name = item.get("call") if isinstance(item, dict) else None
        if name not in POST_CONDITIONS:
            problems.append(f"{where}: invalid post condition {name!r}")
        elif not closure_of(item):
            problems.append(f"{where}: empty post condition {name!r}")
    return problems


def _check_environment(section: dict[str, Any], where: str) -> list[str]:
    problems = []
    for item in closure_of(section) or []:
        if not (isinstance(item, dict) and "assign" in item):
            problems.append(f"{where}: environment holds a non-assignment")
            continue
        target = item["assign"].get("var")
        if not isinstance(target, str) or not ENV_NAME.match(target):
            problems.append(f"{where}: bad environment name {target!r}")
        value = item["value"]
        if "const" in value and isinstance(value["const"], str):
            continue
        if value.get("call") == "credentials" and isinstance(const_arg(value), str):
            continue
        problems.append(
            f"{where}: environment {target!r} is neither a literal nor credentials('id')"
        )
    return problems


def _check_everywhere(tree: list[Any], methods: list[Any]) -> list[str]:
    problems = []
    env_values: set[int] = set()
    for node in walk(tree):
        if node.get("call") == "environment":
            for item in closure_of(node) or []:
                if isinstance(item, dict) and "value" in item:
                    env_values.add(id(item["value"]))
    for node in walk([tree, methods]):
        if "gstring" in node:
            problems.append(f"GString found: {node['gstring']!r:.80}")
        if node.get("call") == "credentials" and id(node) not in env_values:
            problems.append("credentials() used outside environment {}")
        if node.get("call") == "sh":
            args = node.get("args") or []
            script = named_arg(node, "script") if args and "map" in args[0] else const_arg(node)
            if len(args) != 1 or not isinstance(script, str):
                problems.append(f"sh step without a single string literal: {args!r:.80}")
    return problems


def find_calls(tree: list[Any], name: str) -> list[dict[str, Any]]:
    """Every call named ``name`` anywhere in the tree."""
    return [n for n in walk(tree) if n.get("call") == name]


def find_stage(tree: list[Any], name: str) -> dict[str, Any]:
    for node in find_calls(tree, "stage"):
        if const_arg(node) == name:
            return node
    raise KeyError(name)
