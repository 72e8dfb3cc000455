"""Payload parsing (conveyor.gitlab.events) on GitLab's documented shapes and old ones."""

from __future__ import annotations

import pytest

from conveyor.gitlab.events import EventKind, PayloadError, parse_event, skip_reason
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


@pytest.mark.parametrize("message", ["fix [skip ci]", "[CI SKIP] docs", "Docs [Skip CI]\n\nbody"])
def test_skip_ci_messages(message: str) -> None:
    event = parse_event("Push Hook", p.push(message=message))
    assert skip_reason(event) == "[skip ci] in the head commit message"
    assert skip_reason(event, honour_skip_ci=False) is None


def test_skip_ci_only_in_head_commit() -> None:
    data = p.push(message="real change")
    data["commits"][0]["message"] = "old [skip ci]"
    assert skip_reason(parse_event("Push Hook", data)) is None


def test_push_option_ci_skip() -> None:
    event = parse_event("Push Hook", p.push(push_options={"ci": {"skip": True}}))
    assert event.push_options == ("ci.skip",)
    assert skip_reason(event) == "push option ci.skip"


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
