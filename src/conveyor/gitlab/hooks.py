"""Reconcile a project's webhooks with the one conveyor wants: plan (pure), then apply.

conveyor owns the hooks whose URL is exactly the desired receiver URL, or starts with a
configured *managed URL prefix* (so a moved receiver is recognised as ours). Every other hook
belongs to someone else and is never touched.

GitLab never returns a hook's secret ``token`` (nor its signing token), so conveyor makes their
drift readable: the hook's ``description`` carries a one-way fingerprint of each
(:func:`conveyor.tokens.token_fingerprint`). A hook written with another token (an older, path-keyed
one; a changed ``CONVEYOR_SECRET``; a new signing token) differs there and is rewritten; where
GitLab 19 reports ``token_present: false`` (a URL edited by hand wipes the token) that is drift too.
Rewriting regardless stays an explicit input (``token_rotated``). An update always sends ``url`` and
the tokens (GitLab requires ``url``, and a changed ``url`` resets the token).

Health: GitLab disables a hook after failed deliveries (``alert_status`` ``temporarily_disabled``
until ``disabled_until``, or ``disabled``) and only a successful delivery or *test* brings it back, a
``PUT`` does not. A disabled conveyor hook therefore gets an :class:`EnableHook` after its settings
are right: one test delivery through the API (rate limited by GitLab: 5 a minute).

Creating a hook is never retried blindly: when the answer to a create is lost (a timeout, a 5xx
from a proxy) the hook may exist; the hooks are listed again and an existing one is updated.
Extra hooks with our URL (an unpaginated lookup once left 78 on one project) collapse into one: the
best match is kept, the rest are deleted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from conveyor.errors import GitLabError
from conveyor.gitlab.client import GitLabClient

BranchFilterStrategy = Literal["wildcard", "regex", "all_branches"]
BRANCH_FILTER_STRATEGIES: tuple[str, ...] = ("wildcard", "regex", "all_branches")
_WRITE_ONLY = frozenset({"token", "signing_token"})
HookHealth = Literal["executable", "temporarily_disabled", "disabled"]


@dataclass(frozen=True)
class DesiredHook:
    """The hook conveyor wants on a project. ``token`` is never shown (``repr`` hides it)."""

    url: str
    token: str = field(repr=False)
    push_events: bool = True
    tag_push_events: bool = False
    merge_requests_events: bool = False
    note_events: bool = False
    pipeline_events: bool = False
    job_events: bool = False
    releases_events: bool = False
    deployment_events: bool = False
    push_events_branch_filter: str = ""
    branch_filter_strategy: BranchFilterStrategy = "wildcard"
    enable_ssl_verification: bool = True
    name: str | None = None  # None: not managed (older callers); GitLab 17.1+ returns it
    description: str | None = None
    signing_token: str = field(default="", repr=False)  # GitLab 19 (python-gitlab: signing_token)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"hook url must be http(s): {self.url!r}")
        if self.branch_filter_strategy not in BRANCH_FILTER_STRATEGIES:
            raise ValueError(f"unknown branch_filter_strategy {self.branch_filter_strategy!r}")

    def readable(self) -> dict[str, Any]:
        """Every field GitLab returns (all but the tokens), as GitLab names them."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in _WRITE_ONLY and getattr(self, f.name) is not None
        }

    def payload(self) -> dict[str, Any]:
        """The body for create/update: all readable fields plus the token(s)."""
        body = {**self.readable(), "token": self.token}
        if self.signing_token:
            body["signing_token"] = self.signing_token
        return body


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field}: {self.old!r} -> {self.new!r}"


@dataclass(frozen=True)
class CreateHook:
    url: str
    kind: Literal["create"] = "create"

    def describe(self) -> str:
        return f"create webhook {self.url}"


@dataclass(frozen=True)
class UpdateHook:
    """Rewrite hook ``hook_id``. ``changes`` is empty when only the token is rewritten."""

    hook_id: int
    url: str
    changes: tuple[FieldChange, ...]
    kind: Literal["update"] = "update"

    def describe(self) -> str:
        what = ", ".join(str(c) for c in self.changes) if self.changes else "rewrite secret token"
        return f"update webhook {self.hook_id} ({self.url}): {what}"


@dataclass(frozen=True)
class DeleteHook:
    hook_id: int
    url: str
    reason: str
    kind: Literal["delete"] = "delete"

    def describe(self) -> str:
        return f"delete webhook {self.hook_id} ({self.url}): {self.reason}"


@dataclass(frozen=True)
class UnchangedHook:
    hook_id: int
    url: str
    kind: Literal["unchanged"] = "unchanged"

    def describe(self) -> str:
        return f"webhook {self.hook_id} ({self.url}) is up to date"


@dataclass(frozen=True)
class EnableHook:
    """Bring a hook GitLab disabled back: one test delivery of ``trigger`` (after any update)."""

    hook_id: int
    url: str
    health: HookHealth
    disabled_until: str | None
    trigger: str
    kind: Literal["enable"] = "enable"

    def describe(self) -> str:
        return f"re-enable webhook {self.hook_id} ({self.url}): {describe_health(self)}"


HookAction = CreateHook | UpdateHook | DeleteHook | UnchangedHook | EnableHook


def describe_health(hook: EnableHook | HookStatus) -> str:
    if hook.health == "temporarily_disabled":
        return f"temporarily disabled by GitLab until {hook.disabled_until or '?'}"
    if hook.health == "disabled":
        return "disabled by GitLab after failed deliveries"
    return "executable"


@dataclass(frozen=True)
class HookStatus:
    """The health GitLab reports for the kept hook."""

    hook_id: int
    health: HookHealth
    disabled_until: str | None = None


def health_of(hook: Mapping[str, Any]) -> HookStatus:
    """``alert_status`` / ``disabled_until`` as GitLab returns them (absent on old GitLab)."""
    raw = hook.get("alert_status")
    health: HookHealth = raw if raw in ("temporarily_disabled", "disabled") else "executable"
    until = hook.get("disabled_until")
    return HookStatus(int(hook["id"]), health, str(until) if until else None)


@dataclass(frozen=True)
class HookPlan:
    """What to do to one project's hooks. ``unmanaged`` lists the ids left alone."""

    actions: tuple[HookAction, ...]
    unmanaged: tuple[int, ...] = ()
    desired: DesiredHook | None = field(default=None, repr=False, compare=False)
    status: HookStatus | None = None  # health of the kept hook (before any re-enable)

    @property
    def writes(self) -> int:
        return sum(1 for a in self.actions if not isinstance(a, UnchangedHook))

    @property
    def is_noop(self) -> bool:
        return self.writes == 0

    def describe(self) -> list[str]:
        return [a.describe() for a in self.actions]


@dataclass(frozen=True)
class HookApplyResult:
    created: tuple[int, ...]
    updated: tuple[int, ...]
    deleted: tuple[int, ...]
    already_gone: tuple[int, ...]
    unchanged: tuple[int, ...]
    enabled: tuple[int, ...] = ()

    @property
    def writes(self) -> int:
        return (
            len(self.created)
            + len(self.updated)
            + len(self.deleted)
            + len(self.already_gone)
            + len(self.enabled)
        )


def is_managed(hook_url: str, desired_url: str | None, managed_url_prefix: str | None) -> bool:
    """Whether a hook with ``hook_url`` belongs to conveyor."""
    if desired_url is not None and hook_url == desired_url:
        return True
    return bool(managed_url_prefix) and hook_url.startswith(managed_url_prefix or "")


def _normalise(name: str, value: Any) -> Any:
    if name == "push_events_branch_filter" and value is None:
        return ""
    return value


def hook_changes(existing: Mapping[str, Any], desired: DesiredHook) -> tuple[FieldChange, ...]:
    """Readable fields that differ. Fields the server does not return (older GitLab) are skipped."""
    changes: list[FieldChange] = []
    for name, want in desired.readable().items():
        if name not in existing:
            continue
        have = _normalise(name, existing[name])
        if have != want:
            changes.append(FieldChange(name, have, want))
    return tuple(changes)


def plan_hooks(
    existing: Sequence[Mapping[str, Any]],
    desired: DesiredHook | None,
    token_rotated: bool,
    *,
    managed_url_prefix: str | None = None,
) -> HookPlan:
    """Decide how to turn ``existing`` (ALL of the project's hooks) into ``desired``.

    ``desired=None`` removes conveyor's hooks. ``token_rotated=True`` forces the kept hook to be
    rewritten even when every readable field matches (the secret cannot be compared).
    """
    desired_url = desired.url if desired is not None else None
    managed = sorted(
        (h for h in existing if is_managed(str(h.get("url", "")), desired_url, managed_url_prefix)),
        key=lambda h: int(h["id"]),
    )
    unmanaged = tuple(sorted(int(h["id"]) for h in existing if not any(h is m for m in managed)))
    if desired is None:
        deletes = tuple(
            DeleteHook(int(h["id"]), str(h["url"]), "no longer wanted") for h in managed
        )
        return HookPlan(deletes, unmanaged, None)
    if not managed:
        return HookPlan((CreateHook(desired.url),), unmanaged, desired)

    def rank(hook: Mapping[str, Any]) -> tuple[int, int, int]:
        exact = 0 if hook.get("url") == desired.url else 1
        return (exact, len(hook_changes(hook, desired)), int(hook["id"]))

    keeper = min(managed, key=rank)
    actions: list[HookAction] = [
        DeleteHook(int(h["id"]), str(h["url"]), f"duplicate of webhook {keeper['id']}")
        for h in managed
        if h is not keeper
    ]
    changes = hook_changes(keeper, desired)
    if keeper.get("url") != desired.url and not any(c.field == "url" for c in changes):
        changes = (FieldChange("url", keeper.get("url"), desired.url), *changes)
    if keeper.get("token_present") is False:  # GitLab 19 tells: the secret token is missing
        changes = (*changes, FieldChange("token_present", False, True))
    if changes or token_rotated:
        actions.append(UpdateHook(int(keeper["id"]), desired.url, changes))
    else:
        actions.append(UnchangedHook(int(keeper["id"]), desired.url))
    status = health_of(keeper)
    if status.health != "executable":
        actions.append(
            EnableHook(
                status.hook_id,
                desired.url,
                status.health,
                status.disabled_until,
                test_trigger(desired),
            )
        )
    return HookPlan(tuple(actions), unmanaged, desired, status)


def test_trigger(desired: DesiredHook) -> str:
    """The event a re-enabling test delivery sends: one the hook is subscribed to (a push when it
    has pushes: the receiver answers 2xx to any verified delivery, building or ignoring it)."""
    for name in ("push_events", "tag_push_events", "merge_requests_events"):
        if getattr(desired, name):
            return name
    return "push_events"


def read_hooks(client: GitLabClient, project: int | str) -> list[dict[str, Any]]:
    """All of the project's hooks, every page."""
    return client.list_hooks(project)


def apply_hook_plan(client: GitLabClient, project: int | str, plan: HookPlan) -> HookApplyResult:
    """Perform ``plan`` on ``project``: deletes first (freeing slots), then create or update."""
    created: list[int] = []
    updated: list[int] = []
    deleted: list[int] = []
    gone: list[int] = []
    unchanged: list[int] = []
    ordered = [a for a in plan.actions if isinstance(a, DeleteHook)] + [
        a for a in plan.actions if not isinstance(a, DeleteHook)
    ]
    enabled: list[int] = []
    ordered = [a for a in ordered if not isinstance(a, EnableHook)] + [
        a for a in ordered if isinstance(a, EnableHook)
    ]
    for action in ordered:
        if isinstance(action, DeleteHook):
            (deleted if client.delete_hook(project, action.hook_id) else gone).append(
                action.hook_id
            )
        elif isinstance(action, UnchangedHook):
            unchanged.append(action.hook_id)
        elif isinstance(action, EnableHook):
            client.test_hook(project, action.hook_id, action.trigger)
            enabled.append(action.hook_id)
        else:
            if plan.desired is None:
                raise ValueError("a plan that creates or updates must carry its desired hook")
            if isinstance(action, CreateHook):
                created.append(create_once(client, project, plan.desired))
            else:
                client.update_hook(project, action.hook_id, plan.desired.payload())
                updated.append(action.hook_id)
    return HookApplyResult(
        tuple(created),
        tuple(updated),
        tuple(deleted),
        tuple(gone),
        tuple(unchanged),
        tuple(enabled),
    )


def create_once(client: GitLabClient, project: int | str, desired: DesiredHook) -> int:
    """Create the hook, never twice: when the answer is lost (no answer, or a 5xx, after which
    GitLab may well have created it) look for it first and update the one found; only when none
    is there is the create tried again (at most ``client.max_retries`` times, with backoff)."""
    attempt = 0
    while True:
        try:
            return int(client.create_hook(project, desired.payload())["id"])
        except GitLabError as exc:
            if (exc.status is not None and exc.status < 500) or attempt >= client.max_retries:
                raise  # GitLab answered (nothing was created), or out of retries
        attempt += 1
        time.sleep(min(0.1 * 2**attempt, 5.0))
        found = sorted(
            (h for h in client.list_hooks(project) if h.get("url") == desired.url),
            key=lambda h: int(h["id"]),
        )
        if found:
            hook_id = int(found[-1]["id"])
            client.update_hook(project, hook_id, desired.payload())
            return hook_id


def reconcile_hook(
    client: GitLabClient,
    project: int | str,
    desired: DesiredHook | None,
    *,
    token_rotated: bool = False,
    managed_url_prefix: str | None = None,
) -> tuple[HookPlan, HookApplyResult]:
    """Read all hooks, plan, apply. Returns both so callers can report what happened."""
    plan = plan_hooks(
        read_hooks(client, project), desired, token_rotated, managed_url_prefix=managed_url_prefix
    )
    return plan, apply_hook_plan(client, project, plan)
