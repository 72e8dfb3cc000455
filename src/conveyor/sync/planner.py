"""Read Jenkins and GitLab now and build the :class:`~conveyor.sync.model.SyncPlan` (no writes).

One listing of every Jenkins item (folders and jobs), then per project, on two thread pools at once
(one per server, ``--concurrency`` threads each): on the Jenkins side the job is rendered and compared
with the config.xml Jenkins returns (read only when the job exists); on the GitLab side the project is
read (its numeric id keys the hook token; GitLab follows renames and ignores case, and its canonical
path is reported when it is not the spec's), then every page of its hooks, with their health. A project that cannot be read or rendered (404, 403 for lack
of Maintainer, a conflicting job) gets its ``error`` set; the others are planned as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from conveyor.errors import ConveyorError
from conveyor.gitlab.client import ProjectInfo
from conveyor.gitlab.hooks import (
    CreateHook,
    DeleteHook,
    DesiredHook,
    EnableHook,
    FieldChange,
    HookPlan,
    UpdateHook,
    describe_health,
    plan_hooks,
)
from conveyor.jenkins.jobs import (
    JobChange,
    desired_job,
    existing_jobs,
    plan_destroy_job,
    plan_folders,
    plan_orphans,
    read_job,
)
from conveyor.masking import mask
from conveyor.spec.load import LoadedSpec
from conveyor.sync.context import SyncContext
from conveyor.sync.model import HookChange, ProjectPlan, SyncPlan
from conveyor.sync.targets import (
    desired_hook,
    managed_urls,
    previous_receiver_urls,
    redact_url,
    webhook_url_warning,
)
from conveyor.tokens import job_trigger_token, project_id_token, project_token

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True)
class Wanted:
    """One spec. Its hook (which holds a token: never printed) is built on the GitLab thread once
    the project id is read; the job is rendered on the Jenkins thread that compares it."""

    loaded: LoadedSpec

    @property
    def project(self) -> str:
        return self.loaded.spec.project

    @property
    def job_path(self) -> str:
        return self.loaded.spec.jenkins.job


def run_parallel(ctx: SyncContext, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``fn`` over ``items`` on ``ctx.concurrency`` threads, results in order."""
    if len(items) <= 1 or ctx.concurrency == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(
        max_workers=min(ctx.concurrency, len(items)), thread_name_prefix="conveyor-sync"
    ) as pool:
        return list(pool.map(fn, items))


def run_both(
    ctx: SyncContext,
    jenkins_fn: Callable[[T], R],
    gitlab_fn: Callable[[T], S],
    items: Sequence[T],
) -> list[tuple[R, S]]:
    """``jenkins_fn`` and ``gitlab_fn`` over ``items`` at the same time, each on its own pool of
    ``ctx.concurrency`` threads (so each server sees at most that many requests at once)."""
    if not items:
        return []
    workers = min(ctx.concurrency, len(items))
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="conveyor-jenkins") as jenkins_pool,
        ThreadPoolExecutor(workers, thread_name_prefix="conveyor-gitlab") as gitlab_pool,
    ):
        jenkins_results = [jenkins_pool.submit(jenkins_fn, i) for i in items]
        gitlab_results = [gitlab_pool.submit(gitlab_fn, i) for i in items]
        return [
            (j.result(), g.result()) for j, g in zip(jenkins_results, gitlab_results, strict=True)
        ]


def secrets_of(
    ctx: SyncContext,
    targets: Iterable[tuple[str, str | None]] = (),
    project_ids: Iterable[int] = (),
) -> list[str]:
    """Every secret value this run knows, to mask in any text it shows: the settings' secrets and
    every token derived for ``targets`` (``(project, job path)`` pairs) and ``project_ids``."""
    s = ctx.settings
    signing = [t.strip() for t in (s.webhook_signing_token or "").split(",")]
    found = [
        v for v in (s.secret, s.previous_secret, s.gitlab_token, s.jenkins_token, *signing) if v
    ]
    ids = list(project_ids)
    for secret in [v for v in (s.secret, s.previous_secret) if v]:
        for project, job in targets:
            found.append(project_token(secret, project))
            if job:
                found.append(job_trigger_token(secret, job))
        found.extend(project_id_token(secret, i) for i in ids)
    return found


def _reason(change: FieldChange) -> str:
    if change.field == "url":
        return f"url: {redact_url(str(change.old))} -> {redact_url(str(change.new))}"
    if change.field == "description":
        return "token: not the one conveyor derives now (older path-keyed token, another secret or signing token)"
    if change.field == "token_present":
        return "token: missing (GitLab reports none)"
    return f"{change.field}: {change.old!r} -> {change.new!r}"


def hook_changes(plan: HookPlan, rotated: bool) -> tuple[HookChange, ...]:
    """The plan's actions as secret-free :class:`HookChange` rows."""
    out: list[HookChange] = []
    health = describe_health(plan.status) if plan.status is not None else ""
    for action in plan.actions:
        if isinstance(action, CreateHook):
            out.append(HookChange("create", action.url))
        elif isinstance(action, UpdateHook):
            # a rotation explains the changed token fingerprint (the description)
            shown = [c for c in action.changes if not (rotated and c.field == "description")]
            if shown:
                reason = "; ".join(_reason(c) for c in shown)
                if rotated:
                    reason += "; token rotation"
            else:
                reason = "token rotation" if rotated else "rewrite token"
            out.append(HookChange("update", action.url, action.hook_id, reason, health))
        elif isinstance(action, DeleteHook):
            out.append(HookChange("delete", action.url, action.hook_id, action.reason))
        elif isinstance(action, EnableHook):
            reason = (
                f"{describe_health(action)}; one test delivery ({action.trigger}) re-enables it"
            )
            out.append(HookChange("enable", action.url, action.hook_id, reason, health))
        else:
            out.append(HookChange("unchanged", action.url, action.hook_id, "", health))
    return tuple(out)


def plan_project_hooks(
    existing: Sequence[dict[str, Any]],
    hook: DesiredHook,
    other_urls: frozenset[str],
    rotated: bool,
    moved_from: frozenset[str] = frozenset(),
) -> HookPlan:
    """conveyor's hook for one project: collapse duplicates, update, and delete conveyor hooks that
    point at the other target (the spec switched between receiver and jenkins). A hook at the
    receiver's previous URL (``moved_from``) is conveyor's too: it is moved (updated in place)."""
    previous = next(iter(moved_from), None)
    plan = plan_hooks(existing, hook, rotated, managed_url_prefix=previous)
    stale = tuple(
        DeleteHook(int(h["id"]), str(h["url"]), "webhook target changed")
        for h in existing
        if str(h.get("url")) in other_urls - moved_from and str(h.get("url")) != hook.url
    )
    if not stale:
        return plan
    ids = {d.hook_id for d in stale}
    return HookPlan(
        plan.actions + stale, tuple(i for i in plan.unmanaged if i not in ids), plan.desired
    )


def wanted_state(ctx: SyncContext, specs: Sequence[LoadedSpec]) -> list[Wanted]:
    """Each spec (pure; no request)."""
    del ctx
    return [Wanted(ls) for ls in specs]


def plan_warnings(ctx: SyncContext, specs: Sequence[LoadedSpec]) -> tuple[str, ...]:
    """Settings GitLab will refuse, said before anything is written."""
    if not any(ls.spec.webhook.target == "receiver" for ls in specs):
        return ()
    warning = webhook_url_warning(ctx.settings)
    return (warning,) if warning else ()


BULK_NAMESPACE_MIN = 3  # specs in one namespace from which its project list is read in bulk


def prefetch_projects(ctx: SyncContext, paths: Sequence[str]) -> dict[str, ProjectInfo]:
    """Projects read in bulk: for each namespace holding several spec'd projects, one paged listing
    of its projects instead of one request per project (by lower-cased path). A project not found
    there (renamed, moved, in a user namespace) is read on its own by the caller."""
    counts = Counter(p.rsplit("/", 1)[0].lower() for p in paths if "/" in p)
    namespaces = sorted(ns for ns, n in counts.items() if n >= BULK_NAMESPACE_MIN)

    def read(namespace: str) -> list[dict[str, Any]]:
        try:
            return ctx.gitlab.list_group_projects(namespace, include_subgroups=False, archived=None)
        except ConveyorError:
            return []  # not a group, or not visible: read per project

    found: dict[str, ProjectInfo] = {}
    for rows in run_parallel(ctx, read, namespaces):
        for row in rows:
            info = ProjectInfo.from_api(row)
            found[info.path_with_namespace.lower()] = info
    return found


def build_plan(ctx: SyncContext, specs: Sequence[LoadedSpec], *, prune: bool = False) -> SyncPlan:
    """What ``apply`` would do now."""
    wanted = wanted_state(ctx, specs)
    secrets = secrets_of(ctx, [(w.project, w.job_path) for w in wanted])
    ctx.gitlab.current_username()  # a wrong token fails once here, not once per project
    with ThreadPoolExecutor(1, thread_name_prefix="conveyor-gitlab") as pool:
        prefetched = pool.submit(prefetch_projects, ctx, [w.project for w in wanted])
        items = ctx.jenkins.list_items()  # meanwhile
        known = prefetched.result()
    folders, blocked = plan_folders([w.job_path for w in wanted], items)
    jobs_now = existing_jobs(items)

    def jenkins_side(w: Wanted) -> tuple[JobChange | None, str | None]:
        if w.job_path in blocked:
            reason = blocked[w.job_path]
            change = JobChange(job=w.job_path, project=w.project, action="conflict", reason=reason)
            return change, f"Jenkins job {w.job_path!r}: {reason}"
        try:
            desired = desired_job(w.loaded.spec, ctx.settings)
            change = read_job(ctx.jenkins, desired, jobs_now)
        except ConveyorError as exc:
            return None, mask(str(exc), secrets)
        if change.action == "conflict":
            return change, f"Jenkins job {change.job!r}: {change.reason}"
        return change, None

    def gitlab_side(w: Wanted) -> tuple[HookPlan | None, ProjectInfo | None, str | None]:
        info: ProjectInfo | None = None
        try:
            info = known.get(w.project.lower()) or ctx.gitlab.get_project(w.project)
            hook = desired_hook(w.loaded.spec, ctx.settings, info.id)
            existing = ctx.gitlab.list_hooks(info.id)
        except ConveyorError as exc:
            return None, info, mask(str(exc), secrets)
        others = managed_urls(ctx.settings, w.job_path)
        moved = previous_receiver_urls(ctx.settings)
        return plan_project_hooks(existing, hook, others, ctx.rotating, moved), info, None

    projects: list[ProjectPlan] = []
    for w, ((job, job_error), (hook_plan, info, hook_error)) in zip(
        wanted, run_both(ctx, jenkins_side, gitlab_side, wanted), strict=True
    ):
        errors = [e for e in (job_error, hook_error) if e]
        hooks = hook_changes(hook_plan, ctx.rotating) if hook_plan is not None else ()
        canonical = info.path_with_namespace if info is not None else None
        projects.append(
            ProjectPlan(
                w.project,
                str(w.loaded.path),
                job,
                hooks,
                hook_plan,
                "; ".join(errors) if errors else None,
                project_id=info.id if info is not None else None,
                gitlab_path=canonical if canonical not in (None, w.project) else None,
            )
        )
    orphans: list[JobChange] = []
    if prune:
        orphans = plan_orphans(
            ctx.jenkins,
            items,
            {w.job_path for w in wanted},
            lambda fn, jobs: run_parallel(ctx, fn, jobs),
        )
    return SyncPlan(
        "plan", tuple(folders), tuple(projects), tuple(orphans), warnings=plan_warnings(ctx, specs)
    )


def build_destroy_plan(ctx: SyncContext, specs: Sequence[LoadedSpec]) -> SyncPlan:
    """Conveyor's hooks and managed jobs for ``specs``, to delete (``execute(ctx, plan,
    kind="destroy")`` performs it). Hooks are conveyor's when their URL is the receiver endpoint or the
    job's gitlab-plugin endpoint; jobs when their config.xml carries conveyor's marker. Anything else
    (someone's own hooks, a job created by hand at the same path, folders, which may hold other jobs)
    is never touched."""
    secrets = secrets_of(ctx, [(ls.spec.project, ls.spec.jenkins.job) for ls in specs])
    ctx.gitlab.current_username()

    def jenkins_side(loaded: LoadedSpec) -> tuple[JobChange | None, str | None]:
        spec = loaded.spec
        try:
            return plan_destroy_job(ctx.jenkins, spec.jenkins.job, spec.project), None
        except ConveyorError as exc:
            return None, mask(str(exc), secrets)

    def gitlab_side(loaded: LoadedSpec) -> tuple[HookPlan | None, str | None]:
        spec = loaded.spec
        try:
            existing = ctx.gitlab.list_hooks(spec.project)
        except ConveyorError as exc:
            return None, mask(str(exc), secrets)
        ours = managed_urls(ctx.settings, spec.jenkins.job)
        deletes = tuple(
            DeleteHook(int(h["id"]), str(h["url"]), "destroy")
            for h in sorted(existing, key=lambda h: int(h["id"]))
            if str(h.get("url")) in ours
        )
        ids = {d.hook_id for d in deletes}
        unmanaged = tuple(int(h["id"]) for h in existing if int(h["id"]) not in ids)
        return HookPlan(deletes, unmanaged, None), None

    projects: list[ProjectPlan] = []
    for loaded, ((job, job_error), (hook_plan, hook_error)) in zip(
        specs, run_both(ctx, jenkins_side, gitlab_side, list(specs)), strict=True
    ):
        errors = [e for e in (job_error, hook_error) if e]
        hooks = hook_changes(hook_plan, False) if hook_plan is not None else ()
        projects.append(
            ProjectPlan(
                loaded.spec.project,
                str(loaded.path),
                job,
                hooks,
                hook_plan,
                "; ".join(errors) if errors else None,
            )
        )
    return SyncPlan("destroy", (), tuple(projects), ())
