"""The variables a build sees, derived once from what triggered it.

Jenkins' gitlab-plugin gives a webhook-triggered build ``gitlabBranch``, ``gitlabSourceBranch``,
``gitlabTargetBranch``, ``gitlabActionType`` and friends; conveyor's receiver passes the same names as
build parameters, and the local runner puts the same names in every stage's environment. This module is
the one place that decides their values, so Jenkins builds and local runs see the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["push", "tag_push", "merge_request", "manual"]

ACTION_TYPES: dict[str, str] = {"push": "PUSH", "tag_push": "TAG_PUSH", "merge_request": "MERGE"}

#: The build variables conveyor's receiver passes to a Jenkins build (``buildWithParameters``), under
#: gitlab-plugin's names. Jenkins drops parameters a job does not declare, so every generated job
#: declares each of these as a string parameter (gitlab-plugin fills the same names when GitLab calls
#: Jenkins directly). Spec parameters may not reuse them.
TRIGGER_PARAMETERS: tuple[str, ...] = (
    "gitlabActionType",
    "gitlabBranch",
    "gitlabSourceBranch",
    "gitlabTargetBranch",
    "gitlabBefore",
    "gitlabAfter",
    "gitlabMergeRequestIid",
    "gitlabMergeRequestAction",
    "gitlabMergeRequestTitle",
    "gitlabSourceRepoHttpUrl",
    "gitlabUserName",
    "gitlabUserEmail",
    "CONVEYOR_EVENT_ID",
)
ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class Trigger:
    """What started a build: a GitLab event, or a manual/local run described by flags."""

    kind: EventKind
    project: str
    sha: str
    branch: str | None = None  # push: the branch; merge_request: the source branch
    tag: str | None = None  # tag_push only
    target_branch: str | None = None  # merge_request only
    before: str | None = None
    mr_iid: int | None = None
    mr_action: str | None = None
    mr_title: str | None = None
    repo_url: str | None = None
    user_name: str | None = None
    user_email: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())


def build_variables(trigger: Trigger, build_number: int | None = None) -> dict[str, str]:
    """The environment a build gets for ``trigger``: gitlab-plugin names plus Jenkins' own."""
    env: dict[str, str] = {"GIT_COMMIT": trigger.sha, "CONVEYOR_PROJECT": trigger.project}
    if trigger.kind in ACTION_TYPES:
        env["gitlabActionType"] = ACTION_TYPES[trigger.kind]
    if trigger.kind == "tag_push" and trigger.tag is not None:
        env["gitlabBranch"] = trigger.tag
        env["gitlabSourceBranch"] = trigger.tag
        env["gitlabTargetBranch"] = trigger.tag
        env["TAG_NAME"] = trigger.tag
    elif trigger.branch is not None:
        target = trigger.target_branch or trigger.branch
        env["gitlabBranch"] = trigger.branch
        env["gitlabSourceBranch"] = trigger.branch
        env["gitlabTargetBranch"] = target
        env["BRANCH_NAME"] = trigger.branch
        env["GIT_BRANCH"] = trigger.branch
    if trigger.before:
        env["gitlabBefore"] = trigger.before
    env["gitlabAfter"] = trigger.sha
    if trigger.mr_iid is not None:
        env["gitlabMergeRequestIid"] = str(trigger.mr_iid)
    if trigger.mr_action:
        env["gitlabMergeRequestAction"] = trigger.mr_action
    if trigger.mr_title:
        env["gitlabMergeRequestTitle"] = trigger.mr_title
    if trigger.repo_url:
        env["gitlabSourceRepoHttpUrl"] = trigger.repo_url
    if trigger.user_name:
        env["gitlabUserName"] = trigger.user_name
    if trigger.user_email:
        env["gitlabUserEmail"] = trigger.user_email
    if build_number is not None:
        env["BUILD_NUMBER"] = str(build_number)
    env.update(dict(trigger.extra))
    return env


def trigger_parameters(variables: dict[str, str], event_id: int | None = None) -> dict[str, str]:
    """The subset of ``variables`` sent to Jenkins as build parameters (see TRIGGER_PARAMETERS)."""
    params = {k: variables[k] for k in TRIGGER_PARAMETERS if k in variables}
    if event_id is not None:
        params["CONVEYOR_EVENT_ID"] = str(event_id)
    return params


def placeholders(env: dict[str, str], project: str, registry: str | None) -> dict[str, str]:
    """Values for ``{registry} {project} {sha} {short_sha} {branch} {tag} {build_number}``."""
    sha = env.get("GIT_COMMIT", "")
    return {
        "registry": registry or "",
        "project": project.lower(),
        "sha": sha,
        "short_sha": sha[:8],
        "branch": env.get("BRANCH_NAME", ""),
        "tag": env.get("TAG_NAME", ""),
        "build_number": env.get("BUILD_NUMBER", ""),
    }
