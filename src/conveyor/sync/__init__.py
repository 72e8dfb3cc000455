"""Converge Jenkins jobs and GitLab hooks to the specs: plan (reads only), apply, destroy.

The face of the sync; callers import from here::

    ctx = SyncContext.create(settings, specs)
    plan = build_plan(ctx, specs)                # SyncPlan: what apply would change (no writes)
    report = apply(ctx, specs)                   # SyncPlan of kind "apply", each project's outcome
    gone = execute(ctx, build_destroy_plan(ctx, specs), kind="destroy")

Modules: ``context`` (settings and clients of one run), ``targets`` (where each hook points, pure),
``model`` (the plan/report model), ``planner`` (reads both servers, builds the plan), ``apply``
(performs a plan). The Jenkins and GitLab halves are :mod:`conveyor.jenkins.jobs` and
:mod:`conveyor.gitlab.hooks`.
"""

from conveyor.sync.apply import apply, execute
from conveyor.sync.context import DEFAULT_CONCURRENCY, SyncContext, required_settings
from conveyor.sync.model import HookChange, ProjectOutcome, ProjectPlan, SyncPlan
from conveyor.sync.planner import build_destroy_plan, build_plan

__all__ = [
    "DEFAULT_CONCURRENCY",
    "HookChange",
    "ProjectOutcome",
    "ProjectPlan",
    "SyncContext",
    "SyncPlan",
    "apply",
    "build_destroy_plan",
    "build_plan",
    "execute",
    "required_settings",
]
