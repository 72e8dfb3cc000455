"""The sync plan model (and the report of an apply / destroy): per project, its Jenkins job and its
GitLab hooks, plus the Jenkins folders to create and orphan jobs to prune.

Frozen dataclasses. :meth:`SyncPlan.render_text` and :meth:`SyncPlan.to_json` never contain a secret:
config.xml bodies are kept out of them (only normalised, masked diffs are shown), hook tokens are never
part of a hook change, and URLs are shown with credentials and queries redacted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from conveyor.jenkins.jobs import FolderChange, JobChange
from conveyor.sync.targets import redact_url

HookAction = Literal["create", "update", "delete", "unchanged", "enable"]
ProjectOutcome = Literal[
    "planned", "done", "failed", "skipped"
]  # a project's fate in a plan or report


@dataclass(frozen=True)
class HookChange:
    """One GitLab hook change. ``reason``: e.g. ``token rotation``, ``duplicate``, changed fields."""

    action: HookAction
    url: str
    hook_id: int | None = None
    reason: str = ""
    # the kept hook's GitLab health: "executable", "temporarily disabled by GitLab until T"...
    health: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "hook_id": self.hook_id,
            "url": redact_url(self.url),
            "reason": self.reason,
            "health": self.health or None,
        }


@dataclass(frozen=True)
class ProjectPlan:
    """Everything the sync does for one spec / GitLab project."""

    project: str
    spec_file: str
    job: JobChange | None
    hooks: tuple[HookChange, ...] = ()
    hook_plan: Any = field(
        default=None, repr=False, compare=False
    )  # the gitlab.hooks plan to apply
    error: str | None = None  # set when the project could not be read or written
    outcome: ProjectOutcome = "planned"
    project_id: int | None = None  # GitLab's id (hooks are written by id)
    gitlab_path: str | None = None  # GitLab's canonical path, when it is not the spec's

    @property
    def rename_note(self) -> str | None:
        if self.gitlab_path is None:
            return None
        return (
            f"spec says {self.project}, GitLab says {self.gitlab_path} (renamed, moved or "
            "spelt differently): the hook follows the project id; update `project:` in the spec"
        )

    @property
    def changes(self) -> int:
        n = 0
        if self.job is not None and self.job.action in ("create", "update", "delete"):
            n += 1
        return n + sum(1 for h in self.hooks if h.action != "unchanged")

    def to_json(self) -> dict[str, Any]:
        job = None
        if self.job is not None:
            job = {
                "job": self.job.job,
                "action": self.job.action,
                "reason": self.job.reason,
                "diff": self.job.diff,
            }
        return {
            "project": self.project,
            "project_id": self.project_id,
            "gitlab_path": self.gitlab_path,
            "spec": self.spec_file,
            "outcome": self.outcome,
            "error": self.error,
            "job": job,
            "hooks": [h.to_json() for h in self.hooks],
        }


@dataclass(frozen=True)
class SyncPlan:
    """A plan (``kind`` plan/destroy) or, after apply/destroy, the report of what was done."""

    kind: Literal["plan", "apply", "destroy"]
    folders: tuple[FolderChange, ...] = ()
    projects: tuple[ProjectPlan, ...] = ()
    orphans: tuple[JobChange, ...] = ()
    folder_errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> list[ProjectPlan]:
        return [p for p in self.projects if p.error is not None]

    @property
    def has_errors(self) -> bool:
        return bool(self.failed or self.folder_errors)

    @property
    def exit_code(self) -> int:
        """1 when a project or the folders failed (they are named in the report), else 0."""
        return 1 if self.has_errors else 0

    @property
    def has_changes(self) -> bool:
        return bool(
            [f for f in self.folders if f.action == "create"]
            or self.orphans
            or any(p.changes for p in self.projects)
        )

    def counts(self) -> dict[str, dict[str, int]]:
        jobs: Counter[str] = Counter()
        hooks: Counter[str] = Counter()
        for p in self.projects:
            if p.job is not None:
                jobs[p.job.action] += 1
            for h in p.hooks:
                hooks[h.action] += 1
        for o in self.orphans:
            jobs[o.action] += 1
        folders: Counter[str] = Counter(str(f.action) for f in self.folders)
        health: Counter[str] = Counter(
            h.health.split(" until ")[0]
            for p in self.projects
            for h in p.hooks
            if h.health and h.action != "enable"
        )
        return {
            "folders": dict(folders),
            "jobs": dict(jobs),
            "hooks": dict(hooks),
            "hook_health": dict(health),
            "projects": {"total": len(self.projects), "failed": len(self.failed)},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.counts(),
            "folders": [
                {"path": f.path, "action": f.action, "reason": f.reason} for f in self.folders
            ],
            "folder_errors": list(self.folder_errors),
            "warnings": list(self.warnings),
            "projects": [p.to_json() for p in self.projects],
            "orphans": [
                {"job": o.job, "action": o.action, "reason": o.reason} for o in self.orphans
            ],
        }

    def render_text(self, *, verbose: bool = False) -> str:
        return "\n".join(self.text_lines(verbose=verbose))

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        """Human summary. Unchanged items are listed only with ``verbose``."""
        done = self.kind != "plan"
        verb = {
            "create": "created" if done else "create",
            "update": "updated" if done else "update",
            "delete": "deleted" if done else "delete",
            "unchanged": "unchanged",
            "conflict": "conflict",
            "absent": "absent",
            "enable": "re-enabled" if done else "re-enable",
        }
        lines: list[str] = [f"warning: {w}" for w in self.warnings]
        for f in self.folders:
            lines.append(
                f"jenkins folder {f.path}: {verb[f.action]}"
                + (f" ({f.reason})" if f.reason else "")
            )
        for err in self.folder_errors:
            lines.append(f"jenkins folders: FAILED: {err}")
        for p in self.projects:
            head = f"{p.project} ({p.spec_file})"
            body: list[str] = []
            if p.job is not None and (verbose or p.job.action != "unchanged"):
                text = f"  jenkins job {p.job.job}: {verb[p.job.action]}"
                if p.job.reason:
                    text += f" ({p.job.reason})"
                body.append(text)
                if p.job.diff:
                    body.extend("    " + line for line in p.job.diff.splitlines())
            if p.rename_note is not None:
                body.append(f"  gitlab project: {p.rename_note}")
            for h in p.hooks:
                if h.action == "unchanged" and not verbose:
                    continue
                ident = f" #{h.hook_id}" if h.hook_id is not None else ""
                text = f"  gitlab hook{ident} {redact_url(h.url)}: {verb[h.action]}"
                if h.reason:
                    text += f" ({h.reason})"
                if h.health and h.action != "enable":
                    text += f" [{h.health}]"
                body.append(text)
            if p.error is not None:
                body.append(f"  FAILED: {p.error}")
            if body or verbose:
                lines.append(head)
                lines.extend(body)
        for o in self.orphans:
            lines.append(f"jenkins job {o.job}: {verb[o.action]} ({o.reason})")
        c = self.counts()
        summary = (
            f"{c['projects']['total']} project(s)"
            + (f", {c['projects']['failed']} failed" if c["projects"]["failed"] else "")
            + "; jobs: "
            + _fmt(c["jobs"])
            + "; hooks: "
            + _fmt(c["hooks"])
            + ("; hook health: " + _fmt(c["hook_health"]) if c["hook_health"] else "")
            + ("; folders: " + _fmt(c["folders"]) if c["folders"] else "")
        )
        if not self.has_changes and not self.has_errors:
            lines.append("no changes: Jenkins and GitLab match the specs")
        lines.append(summary)
        return lines


def _fmt(counter: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counter.items())) or "none"
