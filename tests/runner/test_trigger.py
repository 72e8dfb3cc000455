"""Recorded events and flags -> the trigger a run sees (the receiver's own mapping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.errors import UsageError
from conveyor.pipeline.context import build_variables
from conveyor.runner.trigger import (
    COMMIT_MESSAGE_VARIABLE,
    read_event,
    trigger_from_event,
    trigger_from_flags,
)

SHA = "a" * 40

MR = {
    "object_kind": "merge_request",
    "user": {"name": "Dev", "username": "dev"},
    "project": {
        "path_with_namespace": "demo/app",
        "git_http_url": "https://g.example/demo/app.git",
    },
    "object_attributes": {
        "iid": 12,
        "action": "update",
        "oldrev": "b" * 40,
        "source_branch": "feature/x",
        "target_branch": "main",
        "title": "Add x",
        "state": "opened",
        "last_commit": {"id": SHA, "message": "feat: x\n\nbody"},
    },
}


def test_merge_request_event_gives_the_gitlab_plugin_variables(tmp_path: Path) -> None:
    path = tmp_path / "mr.json"
    path.write_text(json.dumps(MR))
    env = build_variables(trigger_from_event(read_event(path)), 3)
    assert env["gitlabActionType"] == "MERGE"
    assert env["gitlabSourceBranch"] == "feature/x" and env["gitlabTargetBranch"] == "main"
    assert env["gitlabMergeRequestIid"] == "12" and env["GIT_COMMIT"] == SHA
    assert env["BUILD_NUMBER"] == "3"
    assert env[COMMIT_MESSAGE_VARIABLE] == "feat: x\n\nbody"


def test_recorded_delivery_with_headers_and_tag_push(tmp_path: Path) -> None:
    path = tmp_path / "tag.json"
    body = {
        "ref": "refs/tags/v1.2",
        "before": "0" * 40,
        "after": SHA,
        "checkout_sha": SHA,
        "project": {"path_with_namespace": "demo/app"},
        "commits": [],
    }
    path.write_text(json.dumps({"headers": {"X-Gitlab-Event": "Tag Push Hook"}, "body": body}))
    trigger = trigger_from_event(read_event(path))
    assert trigger.kind == "tag_push" and trigger.tag == "v1.2"
    env = build_variables(trigger)
    assert env["TAG_NAME"] == "v1.2" and env["gitlabActionType"] == "TAG_PUSH"
    assert "BRANCH_NAME" not in env


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ("[1]", "not a JSON object"),
        ('{"object_kind": "note"}', "is not push, tag_push or merge_request"),
        ('{"object_kind": "push", "ref": "refs/heads/x"}', "payload names no project"),
    ],
)
def test_bad_event_files_are_config_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "e.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        read_event(path)
    with pytest.raises(UsageError, match="does not exist"):
        read_event(tmp_path / "missing.json")


def test_flags() -> None:
    assert trigger_from_flags(project="d/a", sha=SHA, branch="dev").kind == "push"
    tagged = trigger_from_flags(project="d/a", sha=SHA, branch="dev", tag="v1")
    assert (tagged.kind, tagged.tag, tagged.branch) == ("tag_push", "v1", None)
    manual = build_variables(trigger_from_flags(project="d/a", sha=SHA))
    assert "gitlabActionType" not in manual and manual["GIT_COMMIT"] == SHA
