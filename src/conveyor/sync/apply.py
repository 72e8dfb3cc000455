"""Execute a :class:`~conveyor.sync.model.SyncPlan` on a thread pool and report what was done.

Folders first (outermost first: a job needs its folder), then every project in parallel: its Jenkins
job, then its hooks. A project that fails (404, 403 for lack of Maintainer, Jenkins refusing) is
reported with its name and the reason while the others carry on. Every write is idempotent or made so
(``create`` of something that already exists reconciles), so a run interrupted half-way is finished
by the next one without duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Literal

from conveyor.errors import ConveyorError
from conveyor.gitlab.hooks import HookPlan, apply_hook_plan
from conveyor.jenkins.jobs import JobChange, apply_folder, apply_job
from conveyor.masking import mask
from conveyor.spec.load import LoadedSpec
from conveyor.sync.context import SyncContext
from conveyor.sync.model import ProjectPlan, SyncPlan
from conveyor.sync.planner import build_plan, run_parallel, secrets_of
from conveyor.sync.targets import jenkins_project_url

_WRITES = ("create", "update", "delete")
log = logging.getLogger("conveyor.sync")


def execute(
    ctx: SyncContext, plan: SyncPlan, *, kind: Literal["apply", "destroy"] = "apply"
) -> SyncPlan:
    """Perform ``plan``; the returned plan has each project's ``outcome`` (done/failed/skipped)."""
    secrets = secrets_of(
        ctx,
        [(p.project, p.job.job if p.job else None) for p in plan.projects],
        [p.project_id for p in plan.projects if p.project_id is not None],
    )
    folder_errors: list[str] = []
    failed_folders: list[str] = []
    for folder in plan.folders:
        if folder.action != "create" or any(
            folder.path.startswith(f + "/") for f in failed_folders
        ):
            continue
        try:
            log.info("jenkins folder %s: create", folder.path)
            apply_folder(ctx.jenkins, folder)
        except ConveyorError as exc:
            failed_folders.append(folder.path)
            folder_errors.append(mask(str(exc), secrets))

    def job_side(p: ProjectPlan) -> str | None:
        if p.job is None or p.job.action not in _WRITES:
            return None
        try:
            blocked = [f for f in failed_folders if p.job.job.startswith(f + "/")]
            if blocked:
                raise ConveyorError(f"Jenkins folder {blocked[0]!r} could not be created")
            log.info("%s: jenkins job %s: %s", p.project, p.job.job, p.job.action)
            apply_job(ctx.jenkins, p.job)
        except ConveyorError as exc:
            return mask(str(exc), secrets)
        return None

    def hook_side(p: ProjectPlan, job_done: Future[str | None] | None) -> str | None:
        if not isinstance(p.hook_plan, HookPlan) or not p.hook_plan.writes:
            return None
        if job_done is not None and job_done.result() is not None:
            return None  # the hook would point at a job that could not be written
        try:
            described = mask("; ".join(p.hook_plan.describe()), secrets)
            log.info("%s: gitlab hooks: %s", p.project, described)
            target = p.project_id if p.project_id is not None else p.project
            apply_hook_plan(ctx.gitlab, target, p.hook_plan)
        except ConveyorError as exc:
            return mask(str(exc), secrets)
        return None

    todo = [p for p in plan.projects if p.error is None]
    workers = max(1, min(ctx.concurrency, len(todo)))
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="conveyor-jenkins") as jenkins_pool,
        ThreadPoolExecutor(workers, thread_name_prefix="conveyor-gitlab") as gitlab_pool,
    ):
        job_futures = {p.project: jenkins_pool.submit(job_side, p) for p in todo}
        hook_futures = {
            p.project: gitlab_pool.submit(
                hook_side, p, job_futures[p.project] if _hook_needs_job(ctx, p) else None
            )
            for p in todo
        }
        projects: list[ProjectPlan] = []
        for p in plan.projects:
            if p.error is not None:
                projects.append(replace(p, outcome="skipped"))
                continue
            errors = [
                e for e in (job_futures[p.project].result(), hook_futures[p.project].result()) if e
            ]
            if errors:
                error = "; ".join(errors)
                log.info("%s: failed: %s", p.project, error)
                projects.append(replace(p, outcome="failed", error=error))
            else:
                projects.append(replace(p, outcome="done"))

    def orphan(o: JobChange) -> tuple[JobChange, str | None]:
        try:
            apply_job(ctx.jenkins, o)
        except ConveyorError as exc:
            return o, mask(str(exc), secrets)
        return o, None

    orphan_results = run_parallel(ctx, orphan, list(plan.orphans))
    folder_errors.extend(f"{o.job}: {err}" for o, err in orphan_results if err)
    folders = tuple(f for f in plan.folders if f.path not in failed_folders)
    return SyncPlan(
        kind, folders, tuple(projects), plan.orphans, tuple(folder_errors), plan.warnings
    )


def apply(ctx: SyncContext, specs: Sequence[LoadedSpec], *, prune: bool = False) -> SyncPlan:
    """Read both systems, plan, and converge them to ``specs``."""
    return execute(ctx, build_plan(ctx, specs, prune=prune), kind="apply")


def _hook_needs_job(ctx: SyncContext, p: ProjectPlan) -> bool:
    """A hook pointing at the Jenkins job waits for the job to be written (receiver hooks don't)."""
    if p.job is None or p.job.action not in ("create", "update"):
        return False
    desired = p.hook_plan.desired if isinstance(p.hook_plan, HookPlan) else None
    return desired is not None and desired.url == jenkins_project_url(ctx.settings, p.job.job)
