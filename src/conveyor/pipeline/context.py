"""The variables a build sees, derived once from what triggered it.

Jenkins' gitlab-plugin gives a webhook-triggered build ``gitlabBranch``, ``gitlabSourceBranch``,
``gitlabTargetBranch``, ``gitlabActionType`` and friends; conveyor's receiver passes the same names as
build parameters, and the local runner puts the same names in every stage's environment. This module is
the one place that decides their values and how a build reads them back (:data:`GROOVY_COMMIT`,
:data:`GROOVY_BRANCH`, :data:`GROOVY_TAG` and their Python twins), so Jenkins builds, whoever started
them, and local runs see the same data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

TriggerKind = Literal["push", "tag_push", "merge_request", "manual"]  # what started a build

ACTION_TYPES: dict[str, str] = {"push": "PUSH", "tag_push": "TAG_PUSH", "merge_request": "MERGE"}

#: The build variables conveyor's receiver passes to a Jenkins build (``buildWithParameters``), under
#: gitlab-plugin's names, plus conveyor's own. Jenkins drops parameters a job does not declare, so a
#: job the receiver triggers declares them (:func:`declared_trigger_parameters`). Spec parameters may
#: not reuse any of them.
#: The variable (a Jenkins build parameter, a local run's trigger extra) naming the receiver's event
#: a build was started for: how a retried dispatch finds the build an earlier attempt started.
EVENT_PARAMETER = "CONVEYOR_EVENT_ID"
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
    EVENT_PARAMETER,
    "CONVEYOR_REVISION",
)
#: The commit a receiver-triggered ``definition: scm`` job checks out: its GitSCM ``BranchSpec`` is
#: ``${CONVEYOR_REVISION}`` (git plugin expands build parameters in it, BranchSpec.java:144; a SHA-1 is
#: built detached, DefaultBuildChooser.java:60-63), defaulting to the configured branch.
REVISION_PARAMETER = "CONVEYOR_REVISION"
REVISION_BRANCH_SPEC = "${" + REVISION_PARAMETER + "}"


def declared_trigger_parameters(target: str, definition: str, scm_branch: str) -> dict[str, str]:
    """Name -> default of the trigger parameters a job declares, in order (config.xml and the
    Jenkinsfile's ``parameters {}`` both use this).

    ``webhook.target: jenkins``: none. gitlab-plugin sets ``gitlabBranch`` and friends as the build's
    environment, and a declared parameter would override them with its default ``''`` (parameters
    are applied after the cause's variables, Run.java:2412-2416, and a webhook build gets the defaults,
    ParameterizedJobMixIn.java:165-168). ``receiver``: all of TRIGGER_PARAMETERS except
    ``CONVEYOR_REVISION``, which only ``definition: scm`` jobs declare (default: the configured branch).
    """
    if target == "jenkins":
        return {}
    declared = {name: "" for name in TRIGGER_PARAMETERS if name != REVISION_PARAMETER}
    if definition == "scm":
        declared[REVISION_PARAMETER] = scm_branch
    return declared


# The facts a Jenkins build is about, read the same way whoever started it: conveyor's receiver
# (build parameters, the names above) or gitlab-plugin (its cause's variables, CauseData.java:161-206).
# gitlab-plugin leaves a tag push's ref as ``refs/tags/<tag>`` in gitlabBranch (only refs/heads/ is
# stripped, PushHookTriggerHandlerImpl.java:102-110) and gives a merge request's commit only as
# gitlabMergeRequestLastCommit (set to the pushed commit for pushes too, :93). Each Groovy expression
# has its Python twin below.
GROOVY_COMMIT = "(env.gitlabAfter ?: env.gitlabMergeRequestLastCommit ?: '')"
GROOVY_BRANCH = (
    "(env.gitlabActionType == 'TAG_PUSH' ? '' : (env.gitlabSourceBranch ?: env.gitlabBranch ?: "
    "(env.GIT_BRANCH ?: '').replaceFirst('^origin/', '')))"
)
GROOVY_TAG = (
    "(env.gitlabActionType == 'TAG_PUSH' ? (env.gitlabBranch ?: '').replaceFirst('^refs/tags/', '') "
    ": (env.TAG_NAME ?: ''))"
)


def commit_of(env: Mapping[str, str]) -> str:
    """Python twin of GROOVY_COMMIT."""
    return env.get("gitlabAfter") or env.get("gitlabMergeRequestLastCommit") or ""


def branch_of(env: Mapping[str, str]) -> str:
    """Python twin of GROOVY_BRANCH."""
    if env.get("gitlabActionType") == "TAG_PUSH":
        return ""
    git_branch = env.get("GIT_BRANCH") or ""
    if git_branch.startswith("origin/"):
        git_branch = git_branch[len("origin/") :]
    return env.get("gitlabSourceBranch") or env.get("gitlabBranch") or git_branch


def tag_of(env: Mapping[str, str]) -> str:
    """Python twin of GROOVY_TAG."""
    if env.get("gitlabActionType") == "TAG_PUSH":
        tag = env.get("gitlabBranch") or ""
        return tag[len("refs/tags/") :] if tag.startswith("refs/tags/") else tag
    return env.get("TAG_NAME") or ""


@dataclass(frozen=True)
class Trigger:
    """What started a build: a GitLab event, or a manual/local run described by flags."""

    kind: TriggerKind
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
    """The subset of ``variables`` sent to Jenkins as build parameters (see TRIGGER_PARAMETERS), with
    ``CONVEYOR_REVISION`` the build's commit (a job that does not declare it ignores it)."""
    params = {k: variables[k] for k in TRIGGER_PARAMETERS if k in variables}
    if variables.get("GIT_COMMIT"):
        params[REVISION_PARAMETER] = variables["GIT_COMMIT"]
    if event_id is not None:
        params[EVENT_PARAMETER] = str(event_id)
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
