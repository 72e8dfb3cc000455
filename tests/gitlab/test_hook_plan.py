"""plan_hooks is pure: existing hook dicts + desired hook -> frozen actions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.gitlab.hooks import (
    CreateHook,
    DeleteHook,
    DesiredHook,
    EnableHook,
    FieldChange,
    UnchangedHook,
    UpdateHook,
    plan_hooks,
)

URL = "https://ci.example/conveyor/hook"
SECRET = "hook-secret-value-123"
DESIRED = DesiredHook(url=URL, token=SECRET, tag_push_events=True, merge_requests_events=True)


def gitlab_hook(hook_id: int, url: str = URL, **overrides: Any) -> dict[str, Any]:
    """A hook as GitLab returns it for DESIRED (no token)."""
    data: dict[str, Any] = {
        "id": hook_id,
        "url": url,
        "project_id": 1,
        "created_at": "2026-01-01T00:00:00.000Z",
        "push_events": True,
        "tag_push_events": True,
        "merge_requests_events": True,
        "note_events": False,
        "pipeline_events": False,
        "job_events": False,
        "releases_events": False,
        "deployment_events": False,
        "issues_events": False,
        "push_events_branch_filter": "",
        "branch_filter_strategy": "wildcard",
        "enable_ssl_verification": True,
        "alert_status": "executable",
        "disabled_until": None,
    }
    data.update(overrides)
    return data


def test_no_hook_plans_a_create() -> None:
    plan = plan_hooks([gitlab_hook(1, "https://someone.else/hook")], DESIRED, False)
    assert plan.actions == (CreateHook(URL),)
    assert plan.unmanaged == (1,)
    assert plan.writes == 1


def test_matching_hook_is_unchanged_unless_token_rotated() -> None:
    plan = plan_hooks([gitlab_hook(7)], DESIRED, False)
    assert plan.actions == (UnchangedHook(7, URL),)
    assert plan.is_noop
    rotated = plan_hooks([gitlab_hook(7)], DESIRED, True)
    assert rotated.actions == (UpdateHook(7, URL, ()),)
    assert rotated.describe() == [f"update webhook 7 ({URL}): rewrite secret token"]


def test_changed_fields_are_listed() -> None:
    existing = gitlab_hook(3, tag_push_events=False, push_events_branch_filter=None)
    plan = plan_hooks(
        [existing], dataclasses.replace(DESIRED, push_events_branch_filter="main"), False
    )
    assert plan.actions == (
        UpdateHook(
            3,
            URL,
            (
                FieldChange("tag_push_events", False, True),
                FieldChange("push_events_branch_filter", "", "main"),
            ),
        ),
    )


def test_fields_an_older_gitlab_omits_are_not_drift() -> None:
    old = gitlab_hook(3)
    del old["branch_filter_strategy"], old["releases_events"]
    assert plan_hooks([old], DESIRED, False).is_noop


def test_duplicates_collapse_to_the_best_match() -> None:
    hooks = [gitlab_hook(i, tag_push_events=False) for i in range(1, 31)]
    hooks.insert(17, gitlab_hook(99))  # the only one already right
    hooks.append(gitlab_hook(200, "https://other.example/hook"))
    plan = plan_hooks(hooks, DESIRED, False)
    deletes = [a for a in plan.actions if isinstance(a, DeleteHook)]
    assert sorted(a.hook_id for a in deletes) == list(range(1, 31))
    assert all(a.reason == "duplicate of webhook 99" for a in deletes)
    assert plan.actions[-1] == UnchangedHook(99, URL)
    assert plan.unmanaged == (200,)


def test_moved_receiver_is_recognised_by_prefix() -> None:
    old_url = "https://ci.example/conveyor/old-hook"
    plan = plan_hooks(
        [gitlab_hook(5, old_url), gitlab_hook(6, "https://ci.example/jenkins/project/x")],
        DESIRED,
        False,
        managed_url_prefix="https://ci.example/conveyor/",
    )
    assert plan.actions == (UpdateHook(5, URL, (FieldChange("url", old_url, URL),)),)
    assert plan.unmanaged == (6,)
    without_prefix = plan_hooks([gitlab_hook(5, old_url)], DESIRED, False)
    assert without_prefix.actions == (CreateHook(URL),)


def test_exact_url_is_kept_over_prefix_match() -> None:
    plan = plan_hooks(
        [gitlab_hook(1, "https://ci.example/conveyor/old"), gitlab_hook(2)],
        DESIRED,
        False,
        managed_url_prefix="https://ci.example/conveyor/",
    )
    assert plan.actions == (
        DeleteHook(1, "https://ci.example/conveyor/old", "duplicate of webhook 2"),
        UnchangedHook(2, URL),
    )


def test_no_desired_hook_deletes_only_managed_ones() -> None:
    plan = plan_hooks(
        [
            gitlab_hook(1),
            gitlab_hook(2, "https://ci.example/conveyor/x"),
            gitlab_hook(3, "https://x/y"),
        ],
        None,
        False,
        managed_url_prefix="https://ci.example/conveyor/",
    )
    assert [a.hook_id for a in plan.actions if isinstance(a, DeleteHook)] == [1, 2]
    assert plan.unmanaged == (3,)


def test_token_never_shows() -> None:
    plan = plan_hooks([gitlab_hook(1, tag_push_events=False)], DESIRED, True)
    assert SECRET not in repr(DESIRED)
    assert SECRET not in repr(plan)
    assert SECRET not in str(plan.describe())
    assert DESIRED.payload()["token"] == SECRET
    assert "token" not in DESIRED.readable()


def test_desired_hook_is_validated() -> None:
    with pytest.raises(ValueError, match="http"):
        DesiredHook(url="ftp://x/y", token="t")
    with pytest.raises(ValueError, match="branch_filter_strategy"):
        DesiredHook(url=URL, token="t", branch_filter_strategy="glob")  # type: ignore[arg-type]


OTHER_URLS = st.sampled_from(["https://a.example/h", "https://b.example/h", "https://ci.example/x"])


@given(
    urls=st.lists(st.one_of(st.just(URL), OTHER_URLS), max_size=40),
    flips=st.lists(st.booleans(), min_size=40, max_size=40),
    rotated=st.booleans(),
)
def test_plan_keeps_exactly_one_and_never_touches_others(
    urls: list[str], flips: list[bool], rotated: bool
) -> None:
    existing = [gitlab_hook(i + 1, url, tag_push_events=flips[i]) for i, url in enumerate(urls)]
    plan = plan_hooks(existing, DESIRED, rotated)
    touched = {a.hook_id for a in plan.actions if not isinstance(a, CreateHook)}
    ours = {h["id"] for h in existing if h["url"] == URL}
    assert touched == ours
    assert set(plan.unmanaged) == {h["id"] for h in existing if h["url"] != URL}
    survivors = [a for a in plan.actions if not isinstance(a, DeleteHook)]
    assert len(survivors) == 1
    if rotated and ours:
        assert isinstance(survivors[0], UpdateHook)


def test_disabled_hook_gets_one_test_delivery_after_its_update() -> None:
    gone = plan_hooks([gitlab_hook(4, alert_status="disabled")], DESIRED, False)
    assert gone.actions == (
        UnchangedHook(4, URL),
        EnableHook(4, URL, "disabled", None, "push_events"),
    )
    assert gone.writes == 1
    until = "2026-12-01T10:00:00.000Z"
    paused = plan_hooks(
        [
            gitlab_hook(
                4, alert_status="temporarily_disabled", disabled_until=until, tag_push_events=False
            )
        ],
        dataclasses.replace(DESIRED, push_events=False),
        False,
    )
    kinds = [a.kind for a in paused.actions]
    assert kinds == ["update", "enable"]
    enable = paused.actions[-1]
    assert isinstance(enable, EnableHook) and enable.trigger == "tag_push_events"
    assert "temporarily disabled by GitLab until " + until in enable.describe()
    assert paused.status is not None and paused.status.health == "temporarily_disabled"
    healthy = plan_hooks([gitlab_hook(4)], DESIRED, False)
    assert healthy.status is not None and healthy.status.health == "executable"


def test_missing_token_reported_by_gitlab_19_is_drift() -> None:
    plan = plan_hooks([gitlab_hook(5, token_present=False)], DESIRED, False)
    assert plan.actions == (UpdateHook(5, URL, (FieldChange("token_present", False, True),)),)
    assert plan_hooks([gitlab_hook(5, token_present=True)], DESIRED, False).is_noop


def test_description_fingerprint_and_signing_token() -> None:
    desired = dataclasses.replace(
        DESIRED,
        name="conveyor",
        description="Managed by conveyor apply; token abc",
        signing_token="whsec_x",
    )
    assert "signing_token" not in desired.readable() and "whsec_x" not in repr(desired)
    assert desired.payload()["signing_token"] == "whsec_x"
    assert "signing_token" not in DESIRED.payload()
    old = gitlab_hook(6, name="", description="")
    (update,) = plan_hooks([old], desired, False).actions
    assert isinstance(update, UpdateHook)
    assert [c.field for c in update.changes] == ["name", "description"]
    # older GitLab without name/description: not compared
    assert plan_hooks([gitlab_hook(6)], desired, False).is_noop
