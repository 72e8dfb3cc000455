"""Spec builders shared by the runner tests (plain data -> a validated Spec)."""

from __future__ import annotations

from typing import Any

from conveyor.spec.model import Spec


def make_spec(stages: list[dict[str, Any]], **extra: Any) -> Spec:
    """A spec for project demo/app with the given stages; ``extra`` overrides top-level keys."""
    agent = extra.pop("agent", {"image": "busybox", "docker": "socket"})
    jenkins = {"job": "demo/app", "agent": agent, **extra.pop("jenkins", {})}
    data: dict[str, Any] = {
        "apiVersion": "conveyor/v1",
        "project": extra.pop("project", "demo/app"),
        "jenkins": jenkins,
        "stages": stages,
        **extra,
    }
    return Spec.model_validate(data)
