"""One spec, two paths, one decision (issue 11 item 8).

For each spec trigger, the GitLabPushTrigger conveyor renders (``webhook.target: jenkins``), stored in
the Jenkins emulator and interpreted there by the model of gitlab-plugin's handlers
(tests/emulators/gitlab_plugin.py, from the plugin's source), decides every payload the same way as
conveyor's receiver (``Router.decide``). Triggers gitlab-plugin cannot express are refused at render
time, and the one divergence gitlab-plugin has by design is pinned as such.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jenkins
import pytest
from pydantic import ValidationError

from conveyor.gitlab.events import parse_event
from conveyor.jenkins.render import render
from conveyor.receiver.routing import Route, Router
from conveyor.spec.model import Spec
from tests.emulators.gitlab_plugin import post_hook
from tests.emulators.jenkins import JenkinsEmulator
from tests.jenkins.specs import spec_of

PROJECT = "demo/app"
TOKEN = "parity-token"
ZERO = "0" * 40
_shas = (f"{i:040x}" for i in itertools.count(1))

Payload = tuple[str, dict[str, Any]]


def push(branch: str, message: str = "change", *, deleted: bool = False) -> Payload:
    sha = next(_shas)
    return "Push Hook", {
        "object_kind": "push",
        "ref": f"refs/heads/{branch}",
        "before": next(_shas),
        "after": ZERO if deleted else sha,
        "checkout_sha": None if deleted else sha,
        "commits": [] if deleted else [{"id": sha, "message": message}],
        "project": {"path_with_namespace": PROJECT, "git_http_url": "http://gitlab/demo/app.git"},
        "repository": {"url": "git@gitlab:demo/app.git"},
    }


def tag(name: str, *, deleted: bool = False) -> Payload:
    sha = next(_shas)
    return "Tag Push Hook", {
        "object_kind": "tag_push",
        "ref": f"refs/tags/{name}",
        "before": sha if deleted else ZERO,
        "after": ZERO if deleted else sha,
        "checkout_sha": None if deleted else sha,
        "commits": [{"id": sha, "message": "release"}],
        "project": {"path_with_namespace": PROJECT},
        "repository": {"url": "git@gitlab:demo/app.git"},
    }


def mr(
    action: str,
    target: str = "main",
    *,
    state: str = "opened",
    oldrev: bool = False,
    message: str = "work",
    title: str = "Add things",
    changes: dict[str, Any] | None = None,
) -> Payload:
    attrs: dict[str, Any] = {
        "iid": 3,
        "action": action,
        "state": state,
        "title": title,
        "source_branch": "feature/x",
        "target_branch": target,
        "last_commit": {"id": next(_shas), "message": message, "author": {"name": "Dev"}},
        "source": {"path_with_namespace": PROJECT, "http_url": "http://gitlab/demo/app.git"},
        "target": {"path_with_namespace": PROJECT},
    }
    if oldrev:
        attrs["oldrev"] = next(_shas)
    payload: dict[str, Any] = {
        "object_kind": "merge_request",
        "project": {"path_with_namespace": PROJECT},
        "object_attributes": attrs,
        "user": {"username": "dev", "name": "Dev"},
        "repository": {"url": "git@gitlab:demo/app.git"},
    }
    if changes is not None:
        payload["changes"] = changes
    return "Merge Request Hook", payload


PAYLOADS: dict[str, Callable[[], Payload]] = {
    "push main": lambda: push("main"),
    "push release/1": lambda: push("release/1"),
    "push release/a/b": lambda: push("release/a/b"),
    "push release/old-1": lambda: push("release/old-1"),
    "push feature/x": lambda: push("feature/x"),
    "push deletes main": lambda: push("main", deleted=True),
    "push [skip ci]": lambda: push("main", "fix [skip ci]"),
    "push [ci-skip]": lambda: push("main", "fix [ci-skip]"),
    "tag v1.2": lambda: tag("v1.2"),
    "tag x1": lambda: tag("x1"),
    "tag v1.3 deleted": lambda: tag("v1.3", deleted=True),
    "mr open": lambda: mr("open"),
    "mr open to dev": lambda: mr("open", "dev"),
    "mr reopen": lambda: mr("reopen"),
    "mr update with commits": lambda: mr("update", oldrev=True),
    "mr update without commits": lambda: mr("update"),
    "mr approved": lambda: mr("approved"),
    "mr merge": lambda: mr("merge", state="merged"),
    "mr close": lambda: mr("close", state="closed"),
    "mr draft": lambda: mr("open", title="Draft: wip"),
    "mr [ci-skip]": lambda: mr("open", message="x [ci-skip]"),
}

TRIGGERS: dict[str, dict[str, Any]] = {
    "push branches+exclude": {
        "push": {"branches": ["main", "release/*"], "exclude": ["release/old-*"]}
    },
    "push everything": {"push": {}},
    "push deep wildcard": {"push": {"branches": ["release/**"]}},
    "tags only": {"tag_push": {"tags": ["v*"]}},
    "push and tags": {"push": {"branches": ["main"]}, "tag_push": {"tags": ["v*"]}},
    "mr with update, push": {
        "push": {"branches": ["main"]},
        "merge_request": {"actions": ["open", "reopen", "update"], "target_branches": ["main"]},
    },
    "mr open/reopen only": {"merge_request": {"actions": ["open", "reopen"]}},
    "mr update only": {"merge_request": {"actions": ["update"], "target_branches": ["main"]}},
    "mr merge/close": {"merge_request": {"actions": ["merge", "close"]}},
    "mr everything": {"merge_request": {"actions": ["open", "reopen", "update", "merge", "close"]}},
}


def _spec(triggers: dict[str, Any]) -> Spec:
    return spec_of(
        {
            "apiVersion": "conveyor/v1",
            "project": PROJECT,
            "triggers": {**triggers, "skip_ci": False},
            "webhook": {"target": "jenkins"},
            "jenkins": {"job": "parity"},
            "stages": [{"name": "t", "run": ["true"]}],
        }
    )


def _plugin_decides(
    emulator: JenkinsEmulator, job: str, event: str, payload: dict[str, Any]
) -> bool:
    before = len(emulator.triggered_builds(job))
    assert post_hook(emulator.url, job, event, payload, TOKEN) == 200
    return len(emulator.triggered_builds(job)) > before


@pytest.mark.parametrize("trigger_name", list(TRIGGERS))
def test_gitlab_plugin_and_the_receiver_decide_alike(
    trigger_name: str, jenkins_emulator: JenkinsEmulator, jenkins_api: jenkins.Jenkins
) -> None:
    spec = _spec(TRIGGERS[trigger_name])
    job = "parity"
    jenkins_api.create_job(job, render(spec, trigger_token=TOKEN).config_xml)
    router = Router([spec])
    table: list[tuple[str, bool, bool]] = []
    for name, make in PAYLOADS.items():
        event, payload = make()
        receiver = isinstance(router.decide(parse_event(event, payload)), Route)
        plugin = _plugin_decides(jenkins_emulator, job, event, payload)
        table.append((name, receiver, plugin))
    differ = [(name, r, p) for name, r, p in table if r != p]
    assert differ == [], f"{trigger_name}: (payload, receiver, gitlab-plugin) {differ}"
    assert any(r for _, r, _ in table), "the table must contain payloads that build"
    assert not all(r for _, r, _ in table), "...and payloads that do not"


def test_known_divergence_draft_marked_ready_without_commits(
    jenkins_emulator: JenkinsEmulator, jenkins_api: jenkins.Jenkins
) -> None:
    """gitlab-plugin builds an MR update that only removes the Draft marker
    (MergeRequestHookTriggerHandlerImpl.java:183, 373-388); the spec's ``update`` means new commits,
    as conveyor's receiver applies it. Pinned here so that a change on either side is noticed."""
    spec = _spec(TRIGGERS["mr with update, push"])
    jenkins_api.create_job("parity", render(spec, trigger_token=TOKEN).config_xml)
    event, payload = mr(
        "update",
        title="Add things",
        changes={"title": {"previous": "Draft: Add things", "current": "Add things"}},
    )
    assert not isinstance(Router([spec]).decide(parse_event(event, payload)), Route)
    assert _plugin_decides(jenkins_emulator, "parity", event, payload)


@pytest.mark.parametrize(
    ("triggers", "message"),
    [
        ({"push": {}}, "triggers.skip_ci"),
        (
            {"push": {"branches": ["main"]}, "merge_request": {}, "skip_ci": False},
            "target_branches",
        ),
        ({"push": {"exclude": ["x"]}, "merge_request": {}, "skip_ci": False}, "target_branches"),
        ({"merge_request": {"actions": ["open"]}, "skip_ci": False}, "'open' and 'reopen'"),
        ({"tag_push": {}, "merge_request": {}, "skip_ci": False}, "tag_push"),
    ],
)
def test_triggers_gitlab_plugin_cannot_express_are_refused(
    triggers: dict[str, Any], message: str
) -> None:
    data = {
        "apiVersion": "conveyor/v1",
        "project": PROJECT,
        "triggers": triggers,
        "webhook": {"target": "jenkins"},
        "jenkins": {"job": "parity"},
        "stages": [{"name": "t", "run": ["true"]}],
    }
    # the model refuses it (so render never sees it), at webhook.target
    with pytest.raises(ValidationError, match="gitlab-plugin cannot express") as info:
        spec_of(data)
    assert message in str(info.value)
    assert info.value.errors()[0]["loc"] == ("webhook", "target")
    # the receiver applies the same spec exactly: nothing to refuse there
    data["webhook"] = {"target": "receiver"}
    render(spec_of(data))


def test_validate_reports_what_gitlab_plugin_cannot_express(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from conveyor.cli.validate import command

    spec = tmp_path / "app.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: demo/app\nwebhook: {target: jenkins}\n"
        "triggers: {push: {branches: [main]}}\njenkins: {job: app}\n"
        "stages: [{name: t, run: ['true']}]\n"
    )
    result = CliRunner().invoke(command, [str(spec)])
    assert result.exit_code == 1
    assert "triggers.skip_ci" in result.output and "[ci-skip]" in result.output
    spec.write_text(
        spec.read_text().replace("branches: [main]}", "branches: [main]}, skip_ci: false")
    )
    assert CliRunner().invoke(command, [str(spec)]).exit_code == 0
