"""Helpers for the runner's real-engine tests."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.pipeline.context import Trigger
from conveyor.runner.execute import run_pipeline
from conveyor.runner.output import PlainOutput
from conveyor.runner.results import RunResult
from conveyor.runner.statuses import StatusReporter
from tests.runner.specs import make_spec

SHA = "0123456789abcdef0123456789abcdef01234567"


def push(branch: str = "main", sha: str = SHA, project: str = "demo/app") -> Trigger:
    return Trigger(kind="push", project=project, sha=sha, branch=branch)


def run(
    stages: list[dict[str, Any]],
    workdir: Path,
    state: Path,
    *,
    trigger: Trigger | None = None,
    environ: Mapping[str, str] | None = None,
    statuses: StatusReporter | None = None,
    only: tuple[str, ...] = (),
    **spec_extra: Any,
) -> tuple[RunResult, str]:
    """Run a spec made of ``stages``; the result and the plain output."""
    spec = make_spec(stages, **spec_extra)
    out = io.StringIO()
    result = run_pipeline(
        spec,
        trigger or push(project=spec.project),
        workdir=workdir,
        state_dir=state,
        sink=PlainOutput(out),
        environ=environ if environ is not None else dict(os.environ),
        statuses=statuses,
        only=only,
    )
    return result, out.getvalue()
