"""What a run produced: frozen results shared by the executor, the output, the history and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class StageResult:
    """One stage (or parallel branch) of a run."""

    name: str
    # success: ran and passed | failed: ran and failed | skipped: `when` false or not selected |
    # not_run: an earlier stage failed
    result: str
    duration: float = 0.0
    exit_code: int | None = None
    reason: str = ""
    parent: str | None = None  # the parallel stage a branch belongs to
    log_tail: str = ""


@dataclass(frozen=True)
class RunResult:
    """A finished run. ``status`` is ``success`` or ``failed``."""

    number: int
    project: str
    status: str
    exit_code: int
    duration: float
    stages: tuple[StageResult, ...]
    failed_stage: str | None = None
    log_tail: str = ""
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    @property
    def summary(self) -> str:
        if self.succeeded:
            return f"run #{self.number} succeeded in {self.duration:.1f}s"
        if self.failed_stage:
            return f"run #{self.number} failed at {self.failed_stage!r} (exit {self.exit_code})"
        return f"run #{self.number} failed (exit {self.exit_code}): {self.error or 'post failed'}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        data = asdict(self)
        data["stages"] = [asdict(s) for s in self.stages]
        data["succeeded"] = self.succeeded
        return data
