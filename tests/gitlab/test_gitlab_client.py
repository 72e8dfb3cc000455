"""conveyor.gitlab client, hooks, statuses and groups against the GitLab emulator."""

from __future__ import annotations

import pytest

from conveyor.errors import GitLabAuthError, GitLabError, GitLabForbiddenError, GitLabNotFoundError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.groups import list_group_projects
from conveyor.gitlab.hooks import (
    DesiredHook,
    apply_hook_plan,
    plan_hooks,
    read_hooks,
    reconcile_hook,
)
from conveyor.gitlab.status import CommitStatusClient
from tests.emulators.gitlab import GitLabEmulator

PROJECT = "demo/hello-web"
URL = "https://ci.example/conveyor/hook"
PREFIX = "https://ci.example/conveyor/"
SECRET = "receiver-shared-secret-9f8e7d"
SHA = "89abcdef0123456789abcdef0123456789abcdef"
DESIRED = DesiredHook(url=URL, token=SECRET, tag_push_events=True, merge_requests_events=True)


def client_for(
    emulator: GitLabEmulator, user: str = "maintainer", **kwargs: object
) -> GitLabClient:
    return GitLabClient(emulator.url, emulator.tokens[user], timeout=5, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def client(gitlab_emulator: GitLabEmulator) -> GitLabClient:
    return client_for(gitlab_emulator)


def managed_hooks(emulator: GitLabEmulator) -> list[dict[str, object]]:
    return [h for h in emulator.hooks(PROJECT) if str(h["url"]).startswith(PREFIX)]


# ---------------------------------------------------------------------------- hooks
def test_duplicates_past_page_one_collapse_and_unmanaged_survive(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    mine = gitlab_emulator.insert_hook(PROJECT, "https://other.example/hook", token="theirs")
    for _ in range(35):
        gitlab_emulator.insert_hook(PROJECT, URL, token="stale", tag_push_events=False)
    theirs = gitlab_emulator.insert_hook(PROJECT, "https://jenkins.example/project/x", token="j")
    for _ in range(110):  # enough to need two pages even at per_page=100
        gitlab_emulator.insert_hook(PROJECT, URL, token="stale", tag_push_events=False)
    gitlab_emulator.log.clear()

    plan, result = reconcile_hook(client, PROJECT, DESIRED)

    pages = gitlab_emulator.log.records("GET", r"/hooks$")
    assert len(pages) == 2  # every page was read
    assert len(result.deleted) == 144 and len(result.updated) == 1
    survivors = managed_hooks(gitlab_emulator)
    assert len(survivors) == 1
    kept = survivors[0]
    assert kept["id"] == result.updated[0]
    assert kept["tag_push_events"] is True and kept["merge_requests_events"] is True
    assert kept["token"] == SECRET
    others = {h["id"]: h["token"] for h in gitlab_emulator.hooks(PROJECT) if h not in survivors}
    assert others == {mine: "theirs", theirs: "j"}
    assert set(plan.unmanaged) == {mine, theirs}

    gitlab_emulator.log.clear()
    again, second = reconcile_hook(client, PROJECT, DESIRED)
    assert again.is_noop and second.writes == 0
    assert gitlab_emulator.log.count_writes() == 0


def test_create_then_noop_then_rotate_token(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    _, first = reconcile_hook(client, PROJECT, DESIRED)
    assert len(first.created) == 1
    assert gitlab_emulator.log.records("POST")[-1].status == 201
    hook_id = first.created[0]
    assert gitlab_emulator.hook_token(PROJECT, hook_id) == SECRET

    gitlab_emulator.log.clear()
    reconcile_hook(client, PROJECT, DESIRED)
    assert gitlab_emulator.log.count_writes() == 0

    rotated = DesiredHook(
        url=URL, token="new-secret", tag_push_events=True, merge_requests_events=True
    )
    plan, result = reconcile_hook(client, PROJECT, rotated, token_rotated=True)
    assert result.updated == (hook_id,)
    assert gitlab_emulator.hook_token(PROJECT, hook_id) == "new-secret"
    put = gitlab_emulator.log.writes()[-1]
    assert put.method == "PUT" and put.json()["url"] == URL and put.json()["token"] == "new-secret"
    assert "new-secret" not in repr(plan) and "new-secret" not in str(plan.describe())


def test_moved_receiver_url_is_updated_with_its_token(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    old = gitlab_emulator.insert_hook(
        PROJECT, PREFIX + "v1/hook", token="old", tag_push_events=True, merge_requests_events=True
    )
    _, result = reconcile_hook(client, PROJECT, DESIRED, managed_url_prefix=PREFIX)
    assert result.updated == (old,)
    [hook] = gitlab_emulator.hooks(PROJECT)
    assert hook["url"] == URL
    assert hook["token"] == SECRET  # the URL change would have reset it: it was sent again


def test_removing_the_hook_leaves_others(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    keep = gitlab_emulator.insert_hook(PROJECT, "https://other.example/hook")
    gitlab_emulator.insert_hook(PROJECT, URL)
    gitlab_emulator.insert_hook(PROJECT, PREFIX + "old")
    _, result = reconcile_hook(client, PROJECT, None, managed_url_prefix=PREFIX)
    assert len(result.deleted) == 2
    assert [h["id"] for h in gitlab_emulator.hooks(PROJECT)] == [keep]


def test_hook_deleted_meanwhile_is_already_gone(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    first = gitlab_emulator.insert_hook(PROJECT, URL)
    second = gitlab_emulator.insert_hook(PROJECT, URL)
    plan = plan_hooks(read_hooks(client, PROJECT), DESIRED, False)
    with gitlab_emulator.lock:  # someone else removes the duplicate between plan and apply
        gitlab_emulator._hooks[gitlab_emulator.project(PROJECT).id].pop(second)
    result = apply_hook_plan(client, PROJECT, plan)
    assert result.already_gone == (second,)
    assert result.updated == (first,)


def test_rate_limits_and_transient_errors_are_retried_and_converge(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    for _ in range(3):
        gitlab_emulator.insert_hook(PROJECT, URL)
    gitlab_emulator.faults.rate_limit("GET", r"/hooks$", times=2, retry_after=0)
    gitlab_emulator.faults.error("DELETE", r"/hooks/\d+$", status=502)
    gitlab_emulator.faults.drop("DELETE", r"/hooks/\d+$")
    gitlab_emulator.faults.error("PUT", r"/hooks/\d+$", status=503)
    gitlab_emulator.faults.rate_limit("PUT", r"/hooks/\d+$", retry_after=0)
    _, result = reconcile_hook(client, PROJECT, DESIRED)
    assert gitlab_emulator.faults.pending() == 0
    assert len(result.deleted) == 2 and len(result.updated) == 1
    assert len(managed_hooks(gitlab_emulator)) == 1
    statuses = [r.status for r in gitlab_emulator.log.records()]
    assert statuses.count(429) == 3 and 502 in statuses and 503 in statuses and 0 in statuses
    gitlab_emulator.log.clear()
    reconcile_hook(client, PROJECT, DESIRED)
    assert gitlab_emulator.log.count_writes() == 0


def test_persistent_failure_is_a_gitlab_error_naming_the_project(
    gitlab_emulator: GitLabEmulator,
) -> None:
    client = client_for(gitlab_emulator, max_retries=2)
    gitlab_emulator.faults.error("GET", r"/hooks$", status=503, times=3)
    with pytest.raises(GitLabError) as info:
        read_hooks(client, PROJECT)
    assert info.value.status == 503
    assert str(info.value).startswith(f"{PROJECT}: could not list webhooks: HTTP 503")
    assert len(gitlab_emulator.log.records("GET")) == 3
    gitlab_emulator.faults.rate_limit("GET", r"/hooks$", times=3, retry_after=0)
    with pytest.raises(GitLabError, match="429 Too Many Requests"):
        read_hooks(client, PROJECT)


def test_unreachable_gitlab_is_a_gitlab_error() -> None:
    client = GitLabClient("http://127.0.0.1:9", "glpat-secret-token", timeout=1, max_retries=0)
    with pytest.raises(GitLabError, match="cannot reach GitLab") as info:
        read_hooks(client, PROJECT)
    assert "glpat-secret-token" not in str(info.value)


# ---------------------------------------------------------------------------- error mapping
def test_forbidden_names_project_and_role(gitlab_emulator: GitLabEmulator) -> None:
    developer = client_for(gitlab_emulator, "developer")
    with pytest.raises(GitLabForbiddenError) as info:
        reconcile_hook(developer, PROJECT, DESIRED)
    message = str(info.value)
    assert message.startswith(
        f"{PROJECT}: 403 Forbidden — the token's user needs the Maintainer role"
    )
    assert info.value.status == 403 and info.value.subject == PROJECT
    assert gitlab_emulator.tokens["developer"] not in message
    assert SECRET not in message
    assert gitlab_emulator.log.count_writes() == 0


def test_hidden_or_unknown_project_is_not_found(gitlab_emulator: GitLabEmulator) -> None:
    outsider = client_for(gitlab_emulator, "outsider")
    for client, project in ((outsider, PROJECT), (client_for(gitlab_emulator), "demo/nope")):
        with pytest.raises(GitLabNotFoundError) as info:
            reconcile_hook(client, project, DESIRED)
        assert str(info.value).startswith(f"{project}: 404 Not Found")
        assert info.value.subject == project and info.value.status == 404
        assert gitlab_emulator.tokens["outsider"] not in str(info.value)


def test_bad_token_is_auth_error_without_the_token(gitlab_emulator: GitLabEmulator) -> None:
    token = "glpat-this-one-is-wrong-42"
    client = GitLabClient(gitlab_emulator.url, token, timeout=5)
    with pytest.raises(GitLabAuthError) as info:
        client.get_project(PROJECT)
    assert str(info.value).startswith(f"{PROJECT}: 401 Unauthorized")
    assert token not in str(info.value) and token not in repr(client)


def test_validation_error_is_reported(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    bad = DesiredHook(url=URL, token="t", push_events_branch_filter="bad branch~name")
    with pytest.raises(GitLabError) as info:
        reconcile_hook(client, PROJECT, bad)
    assert info.value.status == 422
    assert "push_events_branch_filter is not a valid branch name" in str(info.value)


def test_get_project(gitlab_emulator: GitLabEmulator, client: GitLabClient) -> None:
    info = client.get_project(PROJECT)
    assert info.path_with_namespace == PROJECT
    assert info.default_branch == "main"
    assert info.http_url_to_repo == f"{gitlab_emulator.url}/{PROJECT}.git"
    assert client.current_username() == "maintainer"


# ---------------------------------------------------------------------------- statuses
def test_statuses_posted_in_order(gitlab_emulator: GitLabEmulator) -> None:
    statuses = CommitStatusClient(client_for(gitlab_emulator, "developer"))
    long_text = "x" * 400
    url = "https://jenkins.example/job/app/1/" + "p" * 300
    first = statuses.post_status(PROJECT, SHA, "pending", "conveyor", ref="main")
    statuses.post_status(PROJECT, SHA, "running", "conveyor", ref="main", target_url=url)
    last = statuses.post_status(
        PROJECT, SHA, "success", "conveyor", ref="main", description=long_text
    )
    assert first.state == "pending" and last.state == "success"
    recorded = gitlab_emulator.statuses(PROJECT, SHA)
    assert [s.state for s in recorded] == ["pending", "running", "success"]
    assert all(s.name == "conveyor" and s.ref == "main" for s in recorded)
    assert recorded[1].target_url == url[:255]
    assert recorded[2].description is not None and len(recorded[2].description) == 255


def test_invalid_status_is_refused_before_sending(gitlab_emulator: GitLabEmulator) -> None:
    statuses = CommitStatusClient(client_for(gitlab_emulator))
    with pytest.raises(ValueError, match="state"):
        statuses.post_status(PROJECT, SHA, "exploded", "conveyor")
    with pytest.raises(ValueError, match="sha"):
        statuses.post_status(PROJECT, "main", "success", "conveyor")
    with pytest.raises(ValueError, match="ref"):
        statuses.post_status(PROJECT, SHA, "success", "conveyor", ref="r" * 256)
    assert len(gitlab_emulator.log) == 0


def test_status_without_developer_role_is_forbidden(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.set_role(PROJECT, "developer", "reporter")
    statuses = CommitStatusClient(client_for(gitlab_emulator, "developer"))
    with pytest.raises(GitLabForbiddenError, match="needs the Developer role"):
        statuses.post_status(PROJECT, SHA, "success", "conveyor")


# ---------------------------------------------------------------------------- groups
def test_group_projects_all_pages_with_subgroups_without_archived(
    gitlab_emulator: GitLabEmulator, client: GitLabClient
) -> None:
    for i in range(120):
        gitlab_emulator.add_project(f"demo/many/p{i:03d}", members={"maintainer": "maintainer"})
    gitlab_emulator.add_project(
        "demo/many/old", members={"maintainer": "maintainer"}, archived=True
    )
    projects = list_group_projects(client, "demo")
    paths = [p.path_with_namespace for p in projects]
    assert len(paths) == 124
    assert "demo/backend/deep/worker" in paths and "demo/hello-web" in paths
    assert "demo/legacy" not in paths and "demo/many/old" not in paths
    assert len(gitlab_emulator.log.records("GET", r"/groups/demo/projects$")) == 2
    top_only = [
        p.path_with_namespace for p in list_group_projects(client, "demo", include_subgroups=False)
    ]
    assert top_only == ["demo/app", "demo/hello-web"]
    with pytest.raises(GitLabNotFoundError, match="group nope: 404") as info:
        list_group_projects(client, "nope")
    assert info.value.subject == "group nope"


def test_every_operation_names_its_subject_and_action(gitlab_emulator: GitLabEmulator) -> None:
    """The declared subject and action of each operation reach its errors: a commit's subject is
    project@sha (12 hex), a hook operation names its hook; the method keeps its name and doc."""
    outsider = client_for(gitlab_emulator, "outsider")
    sha = "a" * 40
    with pytest.raises(GitLabNotFoundError) as info:
        outsider.latest_commit_status(PROJECT, sha, ref="main", name="conveyor")
    assert info.value.subject == f"{PROJECT}@{'a' * 12}"
    assert "while trying to read commit statuses" in info.value.message
    with pytest.raises(GitLabNotFoundError) as info:
        outsider.update_hook(PROJECT, 77, {"url": URL})
    assert "while trying to update webhook 77" in info.value.message
    assert GitLabClient.update_hook.__name__ == "update_hook"
    assert GitLabClient.list_hooks.__doc__ == "Every hook of the project, all pages."
