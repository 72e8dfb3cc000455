"""Remove what conveyor manages for some specs: their conveyor hooks and their conveyor-managed jobs.

Hooks are conveyor's when their URL is the receiver endpoint or the job's gitlab-plugin endpoint;
jobs when their config.xml carries conveyor's marker. Anything else (someone's own hooks, a job
created by hand at the same path, folders, which may hold other jobs) is never touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.spec.load import LoadedSpec
from conveyor.sync.apply import execute
from conveyor.sync.context import SyncContext
from conveyor.sync.model import SyncPlan
from conveyor.sync.planner import build_destroy_plan


def plan_destroy(ctx: SyncContext, specs: Sequence[LoadedSpec]) -> SyncPlan:
    """What ``destroy`` would delete (reads only)."""
    return build_destroy_plan(ctx, specs)


def destroy(ctx: SyncContext, plan: SyncPlan) -> SyncPlan:
    """Delete what ``plan`` (from :func:`plan_destroy`) lists."""
    return execute(ctx, plan, kind="destroy")
