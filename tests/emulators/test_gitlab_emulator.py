"""The GitLab emulator, driven through python-gitlab only."""

from __future__ import annotations

import threading
from typing import Any

import gitlab
import pytest
import requests
from gitlab.v4.objects import Project

from tests.emulators.gitlab import GitLabEmulator

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def project(gitlab_api: gitlab.Gitlab) -> Project:
    return gitlab_api.projects.get("demo/hello-web")


def _api(emulator: GitLabEmulator, user: str = "maintainer", **kwargs: Any) -> gitlab.Gitlab:
    return gitlab.Gitlab(emulator.url, private_token=emulator.tokens[user], timeout=10, **kwargs)


# ---------------------------------------------------------------------------- projects, auth
def test_project_by_path_and_by_id(
    gitlab_api: gitlab.Gitlab, gitlab_emulator: GitLabEmulator
) -> None:
    by_path = gitlab_api.projects.get("demo/hello-web")
    by_id = gitlab_api.projects.get(by_path.id)
    assert by_id.path_with_namespace == "demo/hello-web"
    assert by_path.default_branch == "main"
    assert by_path.archived is False
    assert by_path.http_url_to_repo == f"{gitlab_emulator.url}/demo/hello-web.git"
    assert gitlab_emulator.log.records("GET")[0].path == "/api/v4/projects/demo/hello-web"


def test_current_user_and_bearer_auth(gitlab_emulator: GitLabEmulator) -> None:
    gl = gitlab.Gitlab(gitlab_emulator.url, oauth_token=gitlab_emulator.tokens["developer"])
    gl.auth()
    assert gl.user is not None
    assert gl.user.username == "developer"


def test_bad_token_is_401_with_gitlab_message(gitlab_emulator: GitLabEmulator) -> None:
    gl = gitlab.Gitlab(gitlab_emulator.url, private_token="glpat-wrong")
    with pytest.raises(gitlab.GitlabAuthenticationError) as info:
        gl.projects.get("demo/hello-web")
    assert info.value.response_code == 401
    assert info.value.error_message == "401 Unauthorized"


def test_hidden_project_is_404_and_hooks_need_maintainer(gitlab_emulator: GitLabEmulator) -> None:
    outsider = _api(gitlab_emulator, "outsider")
    with pytest.raises(gitlab.GitlabGetError) as hidden:
        outsider.projects.get("demo/hello-web")
    assert hidden.value.response_code == 404
    assert hidden.value.error_message == "404 Project Not Found"
    developer = _api(gitlab_emulator, "developer")
    with pytest.raises(gitlab.GitlabListError) as forbidden:
        developer.projects.get("demo/hello-web", lazy=True).hooks.list(get_all=True)
    assert forbidden.value.response_code == 403
    with pytest.raises(gitlab.GitlabCreateError) as forbidden_create:
        developer.projects.get("demo/hello-web", lazy=True).hooks.create({"url": "http://r/h"})
    assert forbidden_create.value.response_code == 403
    assert gitlab_emulator.hooks("demo/hello-web") == []


def test_group_projects_include_subgroups_archived_filter_and_pages(
    gitlab_api: gitlab.Gitlab, gitlab_emulator: GitLabEmulator
) -> None:
    for i in range(25):
        gitlab_emulator.add_project(
            f"demo/backend/svc-{i:02d}", members={"maintainer": "maintainer"}
        )
    group = gitlab_api.groups.get("demo")
    assert group.full_path == "demo"
    direct = [p.path_with_namespace for p in group.projects.list(get_all=True)]
    assert direct == ["demo/hello-web", "demo/app", "demo/legacy"]
    every = group.projects.list(get_all=True, include_subgroups=True, archived=False)
    paths = [p.path_with_namespace for p in every]
    assert len(paths) == 29
    assert "demo/backend/deep/worker" in paths and "demo/legacy" not in paths
    archived = group.projects.list(get_all=True, include_subgroups=True, archived=True)
    assert [p.path_with_namespace for p in archived] == ["demo/legacy"]
    first_page = group.projects.list(include_subgroups=True, per_page=10, get_all=False)
    assert len(first_page) == 10
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gitlab_api.groups.get("nope")
    assert missing.value.response_code == 404


# ---------------------------------------------------------------------------- hook pagination
def test_hook_list_pages_like_gitlab(project: Project, gitlab_emulator: GitLabEmulator) -> None:
    ids = [gitlab_emulator.insert_hook("demo/hello-web", "http://dup/hook") for _ in range(45)]
    assert len(project.hooks.list(get_all=False)) == 20  # python-gitlab: page 1 only
    listing = project.hooks.list(iterator=True)
    assert (listing.total, listing.total_pages, listing.per_page) == (45, 3, 20)
    assert [h.id for h in listing] == ids
    assert [h.id for h in project.hooks.list(get_all=True)] == ids
    # per_page is capped at 100
    for _ in range(80):
        gitlab_emulator.insert_hook("demo/hello-web", "http://dup/hook")
    assert len(project.hooks.list(per_page=500, get_all=False)) == 100


def test_hook_list_headers_and_links(
    gitlab_api: gitlab.Gitlab, gitlab_emulator: GitLabEmulator
) -> None:
    for _ in range(5):
        gitlab_emulator.insert_hook("demo/app", "http://x/h")
    path = "/projects/demo%2Fapp/hooks"
    middle = gitlab_api.http_request("get", path, query_data={"per_page": 2, "page": 2})
    assert middle.headers["X-Page"] == "2"
    assert middle.headers["X-Per-Page"] == "2"
    assert middle.headers["X-Next-Page"] == "3"
    assert middle.headers["X-Prev-Page"] == "1"
    assert middle.headers["X-Total"] == "5"
    assert middle.headers["X-Total-Pages"] == "3"
    assert set(middle.links) == {"next", "prev", "first", "last"}
    assert "page=3" in middle.links["next"]["url"]
    last = gitlab_api.http_request("get", path, query_data={"per_page": 2, "page": 3})
    assert last.headers["X-Next-Page"] == ""
    assert "next" not in last.links
    assert len(last.json()) == 1
    beyond = gitlab_api.http_request("get", path, query_data={"per_page": 2, "page": 9})
    assert beyond.json() == []


# ---------------------------------------------------------------------------- hook CRUD
def test_create_hook_defaults_201_and_token_is_write_only(
    project: Project, gitlab_emulator: GitLabEmulator
) -> None:
    hook = project.hooks.create({"url": "https://ci.example/hook", "token": "s3cr3t"})
    assert gitlab_emulator.log.records("POST")[-1].status == 201
    attrs = hook.attributes
    assert "token" not in attrs
    assert attrs["push_events"] is True
    assert attrs["tag_push_events"] is False
    assert attrs["merge_requests_events"] is False
    assert attrs["enable_ssl_verification"] is True
    assert attrs["branch_filter_strategy"] == "wildcard"
    assert attrs["project_id"] == project.id
    assert attrs["alert_status"] == "executable"
    assert attrs["disabled_until"] is None
    assert "created_at" in attrs
    assert gitlab_emulator.hook_token("demo/hello-web", hook.id) == "s3cr3t"
    fetched = project.hooks.get(hook.id)
    assert "token" not in fetched.attributes
    assert all("token" not in h.attributes for h in project.hooks.list(get_all=True))


def test_update_requires_url_and_url_change_resets_token(
    gitlab_api: gitlab.Gitlab, project: Project, gitlab_emulator: GitLabEmulator
) -> None:
    hook = project.hooks.create({"url": "https://ci.example/hook", "token": "one"})
    project.hooks.update(hook.id, {"url": "https://ci.example/hook", "tag_push_events": True})
    assert gitlab_emulator.hook_token("demo/hello-web", hook.id) == "one"
    project.hooks.update(hook.id, {"url": "https://ci.example/other"})
    assert gitlab_emulator.hook_token("demo/hello-web", hook.id) == ""
    project.hooks.update(hook.id, {"url": "https://ci.example/other", "token": "two"})
    assert gitlab_emulator.hook_token("demo/hello-web", hook.id) == "two"
    assert project.hooks.get(hook.id).tag_push_events is True
    with pytest.raises(gitlab.GitlabHttpError) as no_url:
        gitlab_api.http_put(
            f"/projects/{project.id}/hooks/{hook.id}", post_data={"push_events": False}
        )
    assert no_url.value.response_code == 400


def test_delete_is_204_and_unknown_is_404(
    project: Project, gitlab_emulator: GitLabEmulator
) -> None:
    hook = project.hooks.create({"url": "https://ci.example/hook"})
    project.hooks.delete(hook.id)
    deleted = gitlab_emulator.log.records("DELETE")[-1]
    assert deleted.status == 204
    assert gitlab_emulator.hooks("demo/hello-web") == []
    with pytest.raises(gitlab.GitlabDeleteError) as info:
        project.hooks.delete(hook.id)
    assert info.value.response_code == 404


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"push_events": True}, 400),  # url missing
        ({"url": "not a url"}, 422),
        ({"url": "ftp://ci.example/hook"}, 422),
        ({"url": "https://ci.example/h", "push_events_branch_filter": "bad branch~name"}, 422),
        (
            {
                "url": "https://ci.example/h",
                "push_events_branch_filter": "(unclosed",
                "branch_filter_strategy": "regex",
            },
            422,
        ),
        ({"url": "https://ci.example/h", "branch_filter_strategy": "glob"}, 400),
        ({"url": "https://ci.example/h", "push_events": "maybe"}, 400),
    ],
)
def test_hook_validation(
    gitlab_api: gitlab.Gitlab, gitlab_emulator: GitLabEmulator, data: dict[str, Any], code: int
) -> None:
    with pytest.raises(gitlab.GitlabHttpError) as info:
        gitlab_api.http_post("/projects/demo%2Fhello-web/hooks", post_data=data)
    assert info.value.response_code == code
    assert gitlab_emulator.hooks("demo/hello-web") == []


def test_valid_branch_filters_are_accepted(project: Project) -> None:
    wildcard = project.hooks.create(
        {"url": "https://ci.example/h", "push_events_branch_filter": "release/*"}
    )
    regex = project.hooks.create(
        {
            "url": "https://ci.example/h",
            "push_events_branch_filter": "^(main|release/.*)$",
            "branch_filter_strategy": "regex",
        }
    )
    assert wildcard.push_events_branch_filter == "release/*"
    assert regex.branch_filter_strategy == "regex"


def test_request_log_counts_writes(project: Project, gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.log.clear()
    hook = project.hooks.create({"url": "https://ci.example/hook"})
    project.hooks.list(get_all=True)
    project.hooks.update(hook.id, {"url": "https://ci.example/hook"})
    project.hooks.delete(hook.id)
    assert gitlab_emulator.log.count_writes() == 3
    assert gitlab_emulator.log.count_writes(r"/statuses/") == 0
    post = gitlab_emulator.log.writes()[0]
    assert (post.method, post.path, post.status) == (
        "POST",
        f"/api/v4/projects/{project.id}/hooks",
        201,
    )
    assert post.json() == {"url": "https://ci.example/hook"}


# ---------------------------------------------------------------------------- statuses
def test_commit_statuses_recorded_in_order(gitlab_emulator: GitLabEmulator) -> None:
    dev = _api(gitlab_emulator, "developer")
    commit = dev.projects.get("demo/hello-web", lazy=True).commits.get(SHA, lazy=True)
    commit.statuses.create({"state": "pending"})
    commit.statuses.create({"state": "running", "name": "build", "ref": "feature/x"})
    # No ref: GitLab takes the newest pipeline of the sha (feature/x's) and its ref, so this
    # moves the running "build" status there (create_commit_status_service.rb, `ref`).
    commit.statuses.create({"state": "success", "context": "build", "target_url": "http://ci/1"})
    assert gitlab_emulator.log.records("POST")[-1].status == 201
    recorded = gitlab_emulator.statuses("demo/hello-web", SHA)
    assert [(s.state, s.name, s.ref) for s in recorded] == [
        ("pending", "default", "main"),
        ("running", "build", "feature/x"),
        ("success", "build", "feature/x"),
    ]
    assert recorded[1].status_id == recorded[2].status_id
    listed = commit.statuses.list(get_all=True)
    assert [(s.status, s.name) for s in listed] == [("pending", "default"), ("success", "build")]
    newest = commit.statuses.list(get_all=True, sort="desc")
    assert [s.name for s in newest] == ["build", "default"]
    with pytest.raises(gitlab.GitlabListError):
        commit.statuses.list(order_by="name")


def _statuses(emulator: GitLabEmulator, user: str = "developer", project: str = "demo/app") -> Any:
    api = _api(emulator, user)
    return api.projects.get(project, lazy=True).commits.get(SHA, lazy=True).statuses


def _transition_error(statuses: Any, data: dict[str, Any]) -> str:
    with pytest.raises(gitlab.GitlabCreateError) as info:
        statuses.create(data)
    assert info.value.response_code == 400
    return str(info.value.error_message)


def test_status_is_reused_while_pending_or_running(gitlab_emulator: GitLabEmulator) -> None:
    statuses = _statuses(gitlab_emulator)
    base = {"name": "ci", "ref": "main"}
    first = statuses.create({**base, "state": "pending"})
    statuses.create({**base, "state": "running", "target_url": "http://ci/1"})
    last = statuses.create({**base, "state": "success", "description": "done"})
    assert first.id == last.id and last.status == "success"
    (record,) = gitlab_emulator.commit_statuses("demo/app", SHA)
    assert (record.state, record.target_url, record.description) == (
        "success",
        "http://ci/1",
        "done",
    )
    assert record.started_at is not None and record.finished_at is not None


def test_running_twice_is_refused_and_changes_nothing(gitlab_emulator: GitLabEmulator) -> None:
    statuses = _statuses(gitlab_emulator)
    statuses.create({"state": "running", "name": "ci", "ref": "main", "description": "first"})
    message = _transition_error(
        statuses, {"state": "running", "name": "ci", "ref": "main", "description": "second"}
    )
    assert message == (
        'Cannot transition status via :run from :running (Reason(s): Status cannot transition via "run")'
    )
    (record,) = gitlab_emulator.commit_statuses("demo/app", SHA)
    assert (record.state, record.description) == ("running", "first")


@pytest.mark.parametrize(
    ("before", "state", "event", "source"),
    [
        ("pending", "pending", "enqueue", "pending"),
        ("running", "pending", "enqueue", "running"),
        ("running", "skipped", "skip", "running"),
    ],
)
def test_forbidden_moves_answer_400(
    gitlab_emulator: GitLabEmulator, before: str, state: str, event: str, source: str
) -> None:
    statuses = _statuses(gitlab_emulator)
    statuses.create({"state": before, "name": "ci", "ref": "main"})
    message = _transition_error(statuses, {"state": state, "name": "ci", "ref": "main"})
    assert message.startswith(f"Cannot transition status via :{event} from :{source} ")


@pytest.mark.parametrize("final", ["success", "failed", "canceled"])
@pytest.mark.parametrize("after", ["pending", "running", "success", "failed"])
def test_a_finished_status_is_not_reused(
    gitlab_emulator: GitLabEmulator, final: str, after: str
) -> None:
    statuses = _statuses(gitlab_emulator)
    first = statuses.create({"state": final, "name": "ci", "ref": "main"})
    second = statuses.create({"state": after, "name": "ci", "ref": "main"})
    assert second.id != first.id
    states = [r.state for r in gitlab_emulator.commit_statuses("demo/app", SHA)]
    assert states == [final, after]
    latest = _statuses(gitlab_emulator).list(ref="main", name="ci")
    assert [s.id for s in latest] == [second.id]


def test_name_ref_and_user_each_get_their_own_status(gitlab_emulator: GitLabEmulator) -> None:
    dev = _statuses(gitlab_emulator)
    maint = _statuses(gitlab_emulator, "maintainer")
    dev.create({"state": "running", "name": "conveyor/push", "ref": "main"})
    dev.create({"state": "running", "name": "conveyor/merge_request", "ref": "main"})
    dev.create({"state": "running", "name": "conveyor/push", "ref": "feature"})
    maint.create({"state": "running", "name": "conveyor/push", "ref": "main"})  # for_user
    assert len(gitlab_emulator.commit_statuses("demo/app", SHA)) == 4


def test_unknown_pipeline_id_is_404(gitlab_emulator: GitLabEmulator) -> None:
    with pytest.raises(gitlab.GitlabCreateError) as info:
        _statuses(gitlab_emulator).create({"state": "pending", "pipeline_id": 999})
    assert info.value.response_code == 404
    assert "Pipeline for pipeline_id, sha and ref" in str(info.value.error_message)


def test_protected_branch_needs_push_or_merge_rights_there(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.protect_branch("demo/app", "main", push="maintainer", merge="maintainer")
    gitlab_emulator.protect_branch("demo/app", "release/*", push="no one", merge="developer")
    dev = _statuses(gitlab_emulator)
    with pytest.raises(gitlab.GitlabCreateError) as info:
        dev.create({"state": "pending", "name": "ci", "ref": "main"})
    assert (info.value.response_code, info.value.error_message) == (403, "403 Forbidden")
    dev.create({"state": "pending", "name": "ci", "ref": "release/1.0"})  # merge rights suffice
    dev.create({"state": "pending", "name": "ci", "ref": "feature"})  # not protected
    _statuses(gitlab_emulator, "maintainer").create({"state": "pending", "ref": "main"})
    assert [r.ref for r in gitlab_emulator.commit_statuses("demo/app", SHA)] == [
        "release/1.0",
        "feature",
        "main",
    ]


def test_protected_tag_guards_tag_pipelines_only(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.protect_tag("demo/app", "v*", create="maintainer")
    dev = _statuses(gitlab_emulator)
    # A pipeline the status API creates is never a tag pipeline: the branch rules apply.
    dev.create({"state": "pending", "name": "ci", "ref": "v1.0"})
    gitlab_emulator.add_pipeline("demo/app", SHA, "v2.0", tag=True)  # GitLab CI's tag pipeline
    with pytest.raises(gitlab.GitlabCreateError) as info:
        dev.create({"state": "pending", "name": "ci", "ref": "v2.0"})
    assert info.value.response_code == 403
    _statuses(gitlab_emulator, "maintainer").create({"state": "pending", "ref": "v2.0"})


def test_fork_statuses_show_on_the_mr_only_from_the_source_project(
    gitlab_emulator: GitLabEmulator,
) -> None:
    gitlab_emulator.fork_project("demo/app", "contrib/app", members={"developer": "developer"})
    iid = gitlab_emulator.add_merge_request(
        "demo/app",
        source_project="contrib/app",
        source_branch="fix",
        target_branch="main",
        sha=SHA,
    )
    _statuses(gitlab_emulator).create({"state": "running", "name": "ci", "ref": "fix"})
    assert gitlab_emulator.merge_request_pipeline("demo/app", iid) is None
    _statuses(gitlab_emulator, project="contrib/app").create(
        {"state": "running", "name": "ci", "ref": "fix"}
    )
    mr = _api(gitlab_emulator).projects.get("demo/app", lazy=True).mergerequests.get(iid)
    assert mr.head_pipeline["status"] == "running"
    assert mr.head_pipeline["project_id"] == gitlab_emulator.project("contrib/app").id


@pytest.mark.parametrize(
    "data",
    [
        {"name": "x"},
        {"state": "exploded"},
        {"state": "success", "description": "d" * 256},
        {"state": "success", "target_url": "http://x/" + "u" * 250},
        {"state": "success", "ref": "r" * 256},
    ],
)
def test_commit_status_validation(gitlab_api: gitlab.Gitlab, data: dict[str, Any]) -> None:
    with pytest.raises(gitlab.GitlabHttpError) as info:
        gitlab_api.http_post(f"/projects/demo%2Fhello-web/statuses/{SHA}", post_data=data)
    assert info.value.response_code == 400


def test_commit_status_needs_developer_and_known_commit(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.set_role("demo/app", "developer", "reporter")
    reporter = _api(gitlab_emulator, "developer")
    statuses = reporter.projects.get("demo/app", lazy=True).commits.get(SHA, lazy=True).statuses
    with pytest.raises(gitlab.GitlabCreateError) as forbidden:
        statuses.create({"state": "success"})
    assert forbidden.value.response_code == 403
    gitlab_emulator.project("demo/hello-web").commits = {SHA}
    other = "f" * 40
    maint = _api(gitlab_emulator).projects.get("demo/hello-web", lazy=True)
    with pytest.raises(gitlab.GitlabCreateError) as missing:
        maint.commits.get(other, lazy=True).statuses.create({"state": "success"})
    assert missing.value.response_code == 404


# ---------------------------------------------------------------------------- faults
def test_429_with_retry_after_is_retried_by_python_gitlab(
    project: Project, gitlab_emulator: GitLabEmulator
) -> None:
    gitlab_emulator.faults.rate_limit("POST", r"/hooks$", times=2, retry_after=0)
    hook = project.hooks.create({"url": "https://ci.example/hook"})
    statuses = [r.status for r in gitlab_emulator.log.records("POST")]
    assert statuses == [429, 429, 201]
    assert gitlab_emulator.log.records("POST")[0].headers["private-token"]
    assert [h["id"] for h in gitlab_emulator.hooks("demo/hello-web")] == [hook.id]


@pytest.mark.parametrize("code", [500, 502, 503])
def test_5xx_retried_only_with_retry_transient_errors(
    gitlab_emulator: GitLabEmulator, code: int
) -> None:
    gitlab_emulator.faults.error("GET", r"/projects/", status=code)
    plain = _api(gitlab_emulator)
    with pytest.raises(gitlab.GitlabGetError) as info:
        plain.projects.get("demo/app")
    assert info.value.response_code == code
    gitlab_emulator.faults.error("GET", r"/projects/", status=code, times=2)
    retrying = _api(gitlab_emulator, retry_transient_errors=True)
    assert retrying.projects.get("demo/app").path == "app"
    assert gitlab_emulator.faults.pending() == 0


def test_dropped_connection_and_slow_response(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.faults.drop("GET", r"/projects/demo/app$")
    with pytest.raises(requests.ConnectionError):
        _api(gitlab_emulator).projects.get("demo/app")
    gitlab_emulator.faults.drop("GET", r"/projects/demo/app$")
    gitlab_emulator.faults.slow("GET", r"/projects/demo/app$", delay=1.0)
    retrying = gitlab.Gitlab(
        gitlab_emulator.url,
        private_token=gitlab_emulator.tokens["maintainer"],
        retry_transient_errors=True,
        timeout=0.3,
    )
    assert retrying.projects.get("demo/app").path == "app"
    assert gitlab_emulator.faults.pending() == 0
    # the slow answer may be logged after the retry's, so count rather than order
    assert [r.status for r in gitlab_emulator.log.records("GET")].count(0) == 2


def test_concurrent_clients(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.latency = 0.005
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            gl = _api(gitlab_emulator)
            hooks = gl.projects.get("demo/hello-web", lazy=True).hooks
            for i in range(5):
                hooks.create({"url": f"https://ci.example/{n}/{i}"})
            hooks.list(get_all=True)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [h["id"] for h in gitlab_emulator.hooks("demo/hello-web")]
    assert len(ids) == 80 == len(set(ids))
