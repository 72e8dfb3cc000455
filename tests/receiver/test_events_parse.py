"""Payload parsing (conveyor.gitlab.events) on GitLab's documented shapes and old ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import UsageError
from conveyor.gitlab.events import EventKind, PayloadError, parse_event, skip_reason
from conveyor.gitlab.refs import refname_problem, sha_problem
from conveyor.gitlab.status import status_target
from conveyor.runner.trigger import read_event
from tests.receiver import payloads as p


def test_push_fields() -> None:
    event = parse_event("Push Hook", p.push(branch="main"))
    assert event.kind is EventKind.PUSH
    assert event.project_path == "demo/app"
    assert event.branch == "main" and event.tag is None
    assert event.sha == p.SHA_B and event.before == p.SHA_A
    assert event.head_message == "Update Catalan translation to e38cb41."
    assert event.user_username == "jsmith"
    assert not event.new_ref and not event.deleted
    assert skip_reason(event) is None


def test_new_branch_and_deletion() -> None:
    created = parse_event("Push Hook", p.push(before=p.ZERO))
    assert created.new_ref and skip_reason(created) is None
    deleted = parse_event("Push Hook", p.push(after=p.ZERO))
    assert deleted.deleted
    assert skip_reason(deleted) == "branch deleted"


def test_tag_push_and_tag_deletion() -> None:
    event = parse_event("Tag Push Hook", p.tag_push(tag="v2.1"))
    assert event.kind is EventKind.TAG_PUSH and event.tag == "v2.1" and event.branch is None
    assert event.sha == p.SHA_C
    gone = parse_event("Tag Push Hook", p.tag_push(after=p.ZERO))
    assert skip_reason(gone) == "tag deleted"


def test_merge_request_actions() -> None:
    opened = parse_event("Merge Request Hook", p.merge_request(action="open"))
    assert opened.kind is EventKind.MERGE_REQUEST
    assert (opened.source_branch, opened.target_branch, opened.mr_iid) == (
        "feature/login",
        "main",
        7,
    )
    assert opened.sha == p.SHA_C and opened.action == "open"
    assert skip_reason(opened) is None
    edit = parse_event("Merge Request Hook", p.merge_request(action="update"))
    assert skip_reason(edit) == "merge request updated without new commits (no oldrev)"
    pushed = parse_event("Merge Request Hook", p.merge_request(action="update", oldrev=p.SHA_A))
    assert pushed.oldrev == p.SHA_A and skip_reason(pushed) is None


# GitLab's rule (lib/gitlab/ci/pipeline/chain/skip.rb): /\[(ci[ _-]skip|skip[ _-]ci)\]/i
SKIP_CI_TABLE = [
    ("fix [skip ci]", "[skip ci]"),
    ("[ci skip] docs", "[ci skip]"),
    ("[CI SKIP] docs", "[CI SKIP]"),
    ("Docs [Skip CI]\n\nbody", "[Skip CI]"),
    ("[ci-skip] x", "[ci-skip]"),
    ("[skip-ci] x", "[skip-ci]"),
    ("[ci_skip] x", "[ci_skip]"),
    ("[skip_ci] x", "[skip_ci]"),
    ("[SKIP_CI]", "[SKIP_CI]"),
    ("body first\n\n[ci-SKIP] at the end", "[ci-SKIP]"),
    ("skip ci", None),
    ("[skip  ci]", None),
    ("[skipci]", None),
    ("[ci.skip]", None),
    ("(skip ci)", None),
    ("[skip ci", None),
    ("[ skip ci ]", None),
    ("[skip ci tests]", None),
]


@pytest.mark.parametrize(("message", "marker"), SKIP_CI_TABLE)
def test_skip_ci_is_gitlabs_rule_on_the_head_commit(message: str, marker: str | None) -> None:
    event = parse_event("Push Hook", p.push(message=message))
    expected = None if marker is None else f"{marker} in the head commit message"
    assert skip_reason(event) == expected
    assert skip_reason(event, honour_skip_ci=False) is None
    tag = parse_event("Tag Push Hook", p.tag_push(message=message))  # the tag's commit
    assert skip_reason(tag) == expected
    mr = p.merge_request(action="open")
    mr["object_attributes"]["last_commit"]["message"] = message
    assert skip_reason(parse_event("Merge Request Hook", mr)) == expected


def test_skip_ci_needs_the_head_commit_not_any_listed_one() -> None:
    data = p.push(message="real change")
    data["commits"][0]["message"] = "old [skip ci]"
    data["commits"].reverse()  # the head is matched by id, not by position
    assert skip_reason(parse_event("Push Hook", data)) is None
    data["commits"][0]["id"] = p.SHA_C  # the head is not among the commits: nothing to read
    data["commits"][1]["message"] = "[skip ci]"
    assert skip_reason(parse_event("Push Hook", data)) is None


@pytest.mark.parametrize(
    ("options", "skips"),
    [
        ({"ci": {"skip": True}}, True),  # `git push -o ci.skip`, push.rb SAMPLE_DATA
        ({"ci": {"skip": "1"}}, True),  # any present? value
        ({"ci": {"skip": {"x": True}}}, True),
        ({"ci": {"skip": False}}, False),
        ({"ci": {"skip": None}}, False),
        ({"ci": {"skip": ""}}, False),
        ({"ci": {"variable": {"SKIP=1": 1}}}, False),
        ({"merge_request": {"create": True}}, False),
        ({"ci_skip": True}, False),
        (["ci.skip"], True),  # old GitLab: a list of option strings
        ([], False),
    ],
)
def test_push_option_ci_skip(options: object, skips: bool) -> None:
    data = p.push()
    data["push_options"] = options
    event = parse_event("Push Hook", data)
    assert (skip_reason(event) == "push option ci.skip") is skips


def test_push_options_keep_their_order() -> None:
    options = {"merge_request": {"create": True, "target": "main"}, "ci": {"skip": True}}
    event = parse_event("Push Hook", p.push(push_options=options))
    assert event.push_options == ("merge_request.create", "merge_request.target=main", "ci.skip")


def nested(depth: int) -> object:
    value: object = True
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [17, 960, 100_000])
def test_absurdly_nested_push_options_are_refused_not_a_recursion_error(depth: int) -> None:
    """Regression: ~960 levels hit the recursion limit in the old recursive walk (a 500)."""
    data = p.push()
    data["push_options"] = nested(depth)
    with pytest.raises(PayloadError, match="push_options nest deeper than 16") as info:
        parse_event("Push Hook", data)
    assert info.value.field == "push_options"


def test_push_options_as_deep_as_gitlab_nests_them_are_fine() -> None:
    data = p.push()
    data["push_options"] = {"ci": {"variable": {"A=1": 1}}, "x": nested(15)}
    assert parse_event("Push Hook", data).push_options == ("ci.variable.A=1=1", "x.a.a.a.a.a.a.a")


def test_old_payload_without_newer_fields() -> None:
    data = p.push()
    for key in (
        "project",
        "project_id",
        "ref_protected",
        "push_options",
        "event_name",
        "checkout_sha",
    ):
        data.pop(key)
    event = parse_event("Push Hook", data)
    assert event.project_path == "demo/app"  # from repository.homepage
    assert event.project_id is None and event.sha == p.SHA_B


def test_payload_errors() -> None:
    with pytest.raises(PayloadError):
        parse_event("Push Hook", {"project": {"path_with_namespace": "a/b"}})
    with pytest.raises(PayloadError):
        parse_event("Merge Request Hook", {"project": {"path_with_namespace": "a/b"}})
    with pytest.raises(PayloadError):
        parse_event("Note Hook", p.push())
    with pytest.raises(PayloadError):
        parse_event("Push Hook", {"ref": "refs/heads/main"})


# --- refs, shas and paths are checked before an event exists (issue 10 item 2) ---------------

HOSTILE_REFS = [
    "--upload-pack=touch /tmp/PWNED",  # no refs/: once taken as a branch name
    "main",
    "heads/main",
    "refs/heads/--upload-pack=touch /tmp/PWNED",  # a space: not a git ref
    "refs/heads/a..b",
    "refs/heads/a:b",
    "refs/heads/x.lock",
    "refs/heads/.hidden",
    "refs/heads/a//b",
    "refs/heads/",
    "refs/heads/a\nb",
    "refs/heads/\ud800",
    "refs/heads/a@{1}",
    "refs/heads/*",
    "refs/tags/v1",  # a tag under the Push Hook header
]


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_push_refs_must_be_full_valid_git_branch_refs(ref: str) -> None:
    data = p.push()
    data["ref"] = ref
    with pytest.raises(PayloadError, match="ref") as info:
        parse_event("Push Hook", data)
    assert info.value.field == "ref"


@pytest.mark.parametrize("ref", ["v1.0", "refs/heads/v1.0", "refs/tags/v1 0", "refs/tags/v1~1"])
def test_tag_refs_must_be_full_valid_tag_refs(ref: str) -> None:
    data = p.tag_push()
    data["ref"] = ref
    with pytest.raises(PayloadError) as info:
        parse_event("Tag Push Hook", data)
    assert info.value.field == "ref"


def test_valid_unusual_branch_names_are_kept_verbatim() -> None:
    for branch in ("feature/ü-ñ", "-leading-dash", "a@b", "release/1.x"):
        event = parse_event("Push Hook", p.push(branch=branch))
        assert event.branch == branch and event.ref == f"refs/heads/{branch}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("after", "HEAD"),
        ("after", "--upload-pack=x"),
        ("after", "da15608"),
        ("after", 42),
        ("before", "main~1"),
        ("checkout_sha", "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327 --"),
        ("checkout_sha", ["x"]),
    ],
)
def test_push_shas_must_be_full_object_ids(field: str, value: object) -> None:
    data = p.push()
    data[field] = value
    with pytest.raises(PayloadError, match=field) as info:
        parse_event("Push Hook", data)
    assert info.value.field == field


def test_push_without_after_is_refused() -> None:
    data = p.push()
    del data["after"]
    with pytest.raises(PayloadError, match="'after'"):
        parse_event("Push Hook", data)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("source_branch", "--upload-pack=touch /tmp/PWNED", "object_attributes.source_branch"),
        ("source_branch", "a..b", "object_attributes.source_branch"),
        ("target_branch", "main\x00", "object_attributes.target_branch"),
        ("target_branch", "", "object_attributes.target_branch"),
        ("merge_commit_sha", "abc", "object_attributes.merge_commit_sha"),
        ("oldrev", "HEAD@{1}", "object_attributes.oldrev"),
    ],
)
def test_merge_request_branches_and_shas_are_checked(key: str, value: str, field: str) -> None:
    data = p.merge_request()
    data["object_attributes"][key] = value
    with pytest.raises(PayloadError) as info:
        parse_event("Merge Request Hook", data)
    assert info.value.field == field


def test_merge_request_last_commit_id_is_checked() -> None:
    data = p.merge_request()
    data["object_attributes"]["last_commit"]["id"] = "-x"
    with pytest.raises(PayloadError, match=r"last_commit\.id"):
        parse_event("Merge Request Hook", data)


@pytest.mark.parametrize("path", ["demo/../../etc", "demo/app.git", "app", "demo/app?x", "/a/b"])
def test_project_paths_are_gitlab_paths(path: str) -> None:
    data = p.push(path=path)
    with pytest.raises(PayloadError) as info:
        parse_event("Push Hook", data)
    assert info.value.field == "project.path_with_namespace"


# A ref or branch from the wire: anything JSON can carry (lone surrogates included).
WIRE_TEXT = st.lists(
    st.characters(max_codepoint=0x10FFFF)
    | st.sampled_from([*list("-/.@{ :~^"), "refs/heads/", "refs/tags/", ".lock", "--"]),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(ref=WIRE_TEXT, kind=st.sampled_from(["Push Hook", "Tag Push Hook"]))
def test_any_ref_parses_only_as_a_valid_full_ref(ref: str, kind: str) -> None:
    data = p.tag_push() if kind == "Tag Push Hook" else p.push()
    data["ref"] = ref
    try:
        event = parse_event(kind, data)
    except PayloadError as exc:
        assert exc.field == "ref"
        return
    assert refname_problem(event.ref) is None and event.ref.startswith(
        ("refs/heads/", "refs/tags/")
    )
    assert event.ref.encode("utf-8")  # storable text


@settings(max_examples=200, deadline=None)
@given(branch=WIRE_TEXT, key=st.sampled_from(["source_branch", "target_branch"]))
def test_any_merge_request_branch_parses_only_as_a_valid_branch(branch: str, key: str) -> None:
    data = p.merge_request()
    data["object_attributes"][key] = branch
    try:
        event = parse_event("Merge Request Hook", data)
    except PayloadError as exc:
        assert exc.field == f"object_attributes.{key}"
        return
    assert refname_problem(f"refs/heads/{branch}") is None
    assert refname_problem(event.ref) is None


@settings(max_examples=200, deadline=None)
@given(sha=st.text(max_size=70) | st.sampled_from(["a" * 40, "b" * 64, "0" * 64]))
def test_any_after_parses_only_as_a_full_sha(sha: str) -> None:
    data = p.push()
    data["after"] = sha
    data["checkout_sha"] = None
    try:
        event = parse_event("Push Hook", data)
    except PayloadError as exc:
        assert exc.field == "after"
        return
    assert sha_problem(event.sha) is None


# --- what GitLab really sends (issue 12 items 5, 7, 8) ------------------------------------------


def test_annotated_tags_build_the_commit_not_the_tag_object() -> None:
    """push.rb: ``after`` is the tag object, ``checkout_sha`` the commit it dereferences to."""
    data = p.tag_push(tag="v2.0", after=p.SHA_C, tag_object=p.TAG_OBJECT, message="ship [ci skip]")
    assert data["after"] == p.TAG_OBJECT and data["checkout_sha"] == p.SHA_C
    event = parse_event("Tag Push Hook", data)
    assert event.sha == p.SHA_C
    assert event.head_message == "ship [ci skip]"  # the tag's commit, matched by checkout_sha
    assert skip_reason(event) == "[ci skip] in the head commit message"


def test_a_tag_pointing_at_no_commit_is_ignored_not_built() -> None:
    data = p.tag_push(tag_object=p.TAG_OBJECT)
    data["checkout_sha"] = None  # a tag of a tree or blob: push.rb finds no commit
    data["commits"] = []
    event = parse_event("Tag Push Hook", data)
    assert not event.deleted
    assert skip_reason(event) == "tag points to no commit (checkout_sha is null)"


def test_a_merge_builds_the_merge_commit_on_the_target_branch() -> None:
    data = p.merge_request(action="merge", source="feature/login", target="main")
    data["object_attributes"]["merge_commit_sha"] = p.MERGE_SHA
    event = parse_event("Merge Request Hook", data)
    assert event.sha == p.MERGE_SHA
    assert event.ref == "refs/heads/main" and event.build_branch == "main"
    assert event.status_ref == "main" and event.source_branch == "feature/login"
    assert event.head_message is None  # last_commit is the pre-merge head, not this commit
    assert skip_reason(event) is None


def test_a_fast_forward_merge_builds_the_source_head_on_the_target_branch() -> None:
    data = p.merge_request(action="merge", sha=p.SHA_B)  # merge_commit_sha null
    event = parse_event("Merge Request Hook", data)
    assert (event.sha, event.ref, event.status_ref) == (p.SHA_B, "refs/heads/main", "main")


def test_a_merge_with_no_commit_at_all_is_ignored() -> None:
    data = p.merge_request(action="merge", last_commit=False)
    assert skip_reason(parse_event("Merge Request Hook", data)) == (
        "merge request merged without merge_commit_sha or last_commit"
    )


@pytest.mark.parametrize("action", ["open", "reopen", "update", "close", "approved"])
def test_last_commit_null_is_tolerated(action: str) -> None:
    """merge_request_builder.rb: ``last_commit: diff_head_commit&.hook_attrs`` may be null."""
    data = p.merge_request(action=action, last_commit=False, oldrev=p.SHA_A)
    assert data["object_attributes"]["last_commit"] is None
    event = parse_event("Merge Request Hook", data)
    assert skip_reason(event) == "merge request has no head commit (last_commit is null)"


def test_a_merge_with_last_commit_null_builds_the_merge_commit() -> None:
    data = p.merge_request(action="merge", last_commit=False, merge_commit_sha=p.MERGE_SHA)
    event = parse_event("Merge Request Hook", data)
    assert event.sha == p.MERGE_SHA and skip_reason(event) is None


def test_sha256_repositories() -> None:
    pushed = parse_event("Push Hook", p.push(before=p.SHA256_A, after=p.SHA256_B))
    assert pushed.sha == p.SHA256_B and not pushed.deleted and skip_reason(pushed) is None
    created = parse_event("Push Hook", p.push(before=p.ZERO256, after=p.SHA256_B))
    assert created.new_ref and skip_reason(created) is None
    gone = parse_event("Push Hook", p.push(before=p.SHA256_A, after=p.ZERO256))
    assert gone.deleted and skip_reason(gone) == "branch deleted"
    tag_gone = parse_event("Tag Push Hook", p.tag_push(after=p.ZERO256))
    assert tag_gone.deleted and skip_reason(tag_gone) == "tag deleted"
    mr = parse_event("Merge Request Hook", p.merge_request(sha=p.SHA256_A))
    assert mr.sha == p.SHA256_A


def test_gitlabs_own_sample_push_parses() -> None:
    """push.rb SAMPLE_DATA (a hook test from an empty project): understood, and ci.skip holds."""
    event = parse_event("Push Hook", p.GITLAB_SAMPLE_PUSH)
    assert (event.project_path, event.branch, event.sha) == (
        "gitlab/gitlab",
        "master",
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    )
    assert event.head_message is None  # the listed commit is not the head
    assert skip_reason(event) == "push option ci.skip"


def test_a_recorded_event_file_too_deep_to_read_is_a_clear_error(tmp_path: Path) -> None:
    """`conveyor run --event`: json.loads' RecursionError (not a ValueError) was a traceback."""
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(UsageError, match="is not JSON"):
        read_event(path)


def test_a_merged_fork_mr_reports_to_the_target_project_and_branch() -> None:
    """The merge commit lives on the target branch of the target project, not in the fork."""
    merged = p.merge_request(action="merge", source="main", target="main")
    merged["object_attributes"]["merge_commit_sha"] = p.MERGE_SHA
    fork = p.for_project(merged, 15, source_project_id=99)
    target = status_target(parse_event("Merge Request Hook", fork))
    assert (target.project, target.ref) == ("15", "main")
    opened = p.for_project(p.merge_request(action="open", source="main"), 15, source_project_id=99)
    assert status_target(parse_event("Merge Request Hook", opened)).project == "99"
