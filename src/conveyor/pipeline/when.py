"""Stage ``when`` semantics, defined once for both the Jenkinsfile and the local runner.

A ``When`` becomes a list of conditions (all must hold). Each condition has two faces kept side by side
here: ``holds(ctx)`` evaluates it in Python (local runner), ``groovy()`` renders the same test as a Groovy
expression for ``when { expression { ... } }`` (works in a plain pipeline job, unlike ``when { branch }``).
Both read the same build variables (see :mod:`conveyor.pipeline.context`) through the same fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.jenkins import groovy
from conveyor.pipeline.context import (  # the build facts, read from both sources
    ACTION_TYPES,
    GROOVY_BRANCH,
    GROOVY_TAG,
    branch_of,
    tag_of,
)
from conveyor.pipeline.match import matches, patterns_to_regex
from conveyor.spec.model import When

__all__ = [
    "GROOVY_BRANCH",
    "GROOVY_TAG",
    "Condition",
    "Context",
    "branch_of",
    "conditions",
    "groovy_expression",
    "should_run",
    "tag_of",
]


@dataclass(frozen=True)
class Context:
    """What a ``when`` can look at: the build variables and the build parameters."""

    env: Mapping[str, str]
    params: Mapping[str, bool | str]


@dataclass(frozen=True)
class Condition:
    kind: str  # event | branch | not_branch | tag | parameter
    patterns: tuple[str, ...] = ()
    name: str = ""
    value: bool | str = ""

    def holds(self, ctx: Context) -> bool:
        if self.kind == "event":
            return ctx.env.get("gitlabActionType") in {ACTION_TYPES[p] for p in self.patterns}
        if self.kind == "branch":
            branch = branch_of(ctx.env)
            return branch != "" and matches(branch, self.patterns)
        if self.kind == "not_branch":
            return not matches(branch_of(ctx.env), self.patterns)
        if self.kind == "tag":
            tag = tag_of(ctx.env)
            return tag != "" and matches(tag, self.patterns)
        if self.kind == "parameter":
            return ctx.params.get(self.name) == self.value
        raise ValueError(self.kind)

    def groovy(self) -> str:
        if self.kind == "event":
            types = [ACTION_TYPES[p] for p in self.patterns]
            return f"({groovy.list_literal(types)}.contains(env.gitlabActionType))"
        regex = groovy.literal(patterns_to_regex(self.patterns)) if self.patterns else ""
        if self.kind == "branch":
            return f"({GROOVY_BRANCH} ==~ {regex} && {GROOVY_BRANCH} != '')"
        if self.kind == "not_branch":
            return f"!({GROOVY_BRANCH} ==~ {regex})"
        if self.kind == "tag":
            return f"({GROOVY_TAG} ==~ {regex} && {GROOVY_TAG} != '')"
        if self.kind == "parameter":
            return f"(params[{groovy.literal(self.name)}] == {groovy.value(self.value)})"
        raise ValueError(self.kind)


def conditions(when: When | None) -> list[Condition]:
    """The conditions of a ``when`` block, in a fixed order."""
    if when is None:
        return []
    out: list[Condition] = []
    if when.event:
        out.append(Condition("event", tuple(when.event)))
    if when.branch:
        out.append(Condition("branch", tuple(when.branch)))
    if when.not_branch:
        out.append(Condition("not_branch", tuple(when.not_branch)))
    if when.tag:
        out.append(Condition("tag", tuple(when.tag)))
    for name, value in (when.parameter or {}).items():
        out.append(Condition("parameter", name=name, value=value))
    return out


def should_run(when: When | None, ctx: Context) -> bool:
    """The local runner's decision; identical to the rendered Jenkinsfile's."""
    return all(c.holds(ctx) for c in conditions(when))


def groovy_expression(when: When) -> str:
    """The body of ``when { expression { return ... } }`` for this ``when``."""
    conds = conditions(when)
    return " && ".join(c.groovy() for c in conds) if conds else "true"
