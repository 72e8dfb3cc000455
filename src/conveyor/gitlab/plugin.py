"""The built-in gitlab plugin: checks that a spec's webhook can carry what the spec asks for."""

from __future__ import annotations

from conveyor.plugins.hookspecs import hookimpl
from conveyor.spec.model import Spec


@hookimpl
def conveyor_spec_checks(spec: Spec) -> list[str]:
    problems: list[str] = []
    t = spec.triggers
    if t.push is None and t.tag_push is None and t.merge_request is None:
        problems.append(
            "triggers: no push, tag_push or merge_request trigger, so the GitLab hook `apply` "
            "registers would deliver only events conveyor ignores; add a trigger"
        )
    return problems
