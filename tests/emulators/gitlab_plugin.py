"""gitlab-plugin's webhook handling, modelled from its source, for the Jenkins emulator.

GitLab posts to ``JENKINS/project/<job full name>``; gitlab-plugin reads the job's stored
``GitLabPushTrigger`` and decides whether to schedule a build, with which variables. Every rule here
names the file and line of jenkinsci/gitlab-plugin (commit 563da54b) it follows; paths are under
``src/main/java/com/dabsquared/gitlabjenkins/``.

What is *not* modelled: ``isLastCommitNotYetBuild`` (MergeRequestHookTriggerHandlerImpl.java:315-352,
which skips an MR event whose last commit an earlier build with the same MR state and target branch
already built; callers pass ``built`` to model it), labels, notes, pipeline events.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

NO_COMMIT = "0" * 40
_DRAFT = re.compile(r"\s*(Draft:|\[Draft\]|\(Draft\)).*", re.DOTALL)


@dataclass(frozen=True)
class TriggerConfig:
    """The stored GitLabPushTrigger's fields (Java defaults when absent: XStream runs no initialisers)."""

    trigger_on_push: bool = False
    trigger_to_branch_delete: bool = False
    trigger_on_merge_request: bool = False
    only_if_new_commits: bool = False
    on_accepted: bool = False
    on_closed: bool = False
    on_approved: bool = False
    open_mr_on_push: str | None = None  # never | source | both | None
    ci_skip: bool = False
    skip_wip: bool = False
    labels_forcing: str | None = None
    filter_type: str | None = None  # All | NameBasedFilter | RegexBasedFilter
    include: str | None = None
    exclude: str | None = None
    source_regex: str | None = None
    target_regex: str | None = None
    secret_token: str | None = None  # as stored (ciphertext)

    @classmethod
    def from_element(cls, e: ET.Element) -> TriggerConfig:
        def flag(tag: str) -> bool:
            return (e.findtext(tag) or "").strip() == "true"

        def text(tag: str) -> str | None:
            found = e.find(tag)
            return None if found is None else (found.text or "")

        filter_type = text("branchFilterType")
        # GitLabPushTrigger.readResolve (GitLabPushTrigger.java:609-614): null -> All
        return cls(
            trigger_on_push=flag("triggerOnPush"),
            trigger_to_branch_delete=flag("triggerToBranchDeleteRequest"),
            trigger_on_merge_request=flag("triggerOnMergeRequest"),
            only_if_new_commits=flag("triggerOnlyIfNewCommitsPushed"),
            on_accepted=flag("triggerOnAcceptedMergeRequest"),
            on_closed=flag("triggerOnClosedMergeRequest"),
            on_approved=flag("triggerOnApprovedMergeRequest"),
            open_mr_on_push=text("triggerOpenMergeRequestOnPush"),
            ci_skip=flag("ciSkip"),
            skip_wip=flag("skipWorkInProgressMergeRequest"),
            labels_forcing=text("labelsThatForcesBuildIfAdded"),
            filter_type=filter_type if filter_type else "All",
            include=text("includeBranchesSpec"),
            exclude=text("excludeBranchesSpec"),
            source_regex=text("sourceBranchRegex"),
            target_regex=text("targetBranchRegex"),
            secret_token=text("secretToken"),
        )


@dataclass(frozen=True)
class Outcome:
    build: bool
    reason: str
    variables: Mapping[str, str]


def _java_matches(value: str, regex: str) -> bool:
    # String.matches: the whole string. conveyor writes a dialect both engines read alike.
    return re.fullmatch(regex, value) is not None


def _ant_match(pattern: str, value: str) -> bool:
    # AntPathMatcher with "/" separators: ** spans segments, * and ? stay within one.
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.fullmatch(out, value) is not None


def branch_allowed(config: TriggerConfig, source: str, target: str) -> bool:
    """BranchFilterFactory.java:10-22 and the three filters in trigger/filter/."""
    if config.filter_type == "RegexBasedFilter":
        # RegexBasedFilter.java:19-26
        source_ok = not config.source_regex or _java_matches(source, config.source_regex)
        if not target:
            return source_ok
        return source_ok and (not config.target_regex or _java_matches(target, config.target_regex))
    if config.filter_type == "NameBasedFilter":
        # NameBasedFilter.java:23-58 (matches the *target* branch; comma-separated ant patterns)
        def split(spec: str | None) -> list[str]:
            return [s.strip() for s in (spec or "").split(",") if s]

        included, excluded = split(config.include), split(config.exclude)
        if not included and not excluded:
            return True
        if any(_ant_match(p, target) for p in excluded):
            return False
        return any(_ant_match(p, target) for p in included) or not included
    return True  # AllBranchesFilter


def _push(config: TriggerConfig, payload: Mapping[str, Any]) -> Outcome:
    # PushHookTriggerHandlerFactory.java:14-43: a push handler only when triggerOnPush (the
    # open-MR-on-push handler for `both` is not modelled: conveyor never writes `both`).
    if not config.trigger_on_push:
        return Outcome(False, "triggerOnPush is off", {})
    after = payload.get("after")
    # PushHookTriggerHandlerImpl.java:42-44, 168-170: branch deletions only with the delete option
    if (after is None or after == NO_COMMIT) and not config.trigger_to_branch_delete:
        return Outcome(False, "branch deletion", {})
    commits = payload.get("commits") or []
    # PushHookTriggerHandlerImpl.java:48-54: the *last listed* commit's message, "[ci-skip]" only
    if config.ci_skip and commits and "[ci-skip]" in (commits[-1].get("message") or ""):
        return Outcome(False, "[ci-skip]", {})
    ref = payload.get("ref") or ""
    # PushHookTriggerHandlerImpl.java:102-110: only refs/heads/ is stripped (tags stay refs/tags/x)
    branch = re.sub(r"^refs/heads/", "", ref)
    if not branch_allowed(config, branch, branch):
        return Outcome(False, f"branch {branch!r} not allowed", {})
    project = payload.get("project") or {}
    repository = payload.get("repository") or {}
    kind = "TAG_PUSH" if payload.get("object_kind") == "tag_push" else "PUSH"
    # PushHookTriggerHandlerImpl.java:57-95 -> CauseData.getBuildVariables (CauseData.java:161-206)
    variables = {
        "gitlabActionType": kind,
        "gitlabBranch": branch,
        "gitlabSourceBranch": branch,
        "gitlabTargetBranch": branch,
        "gitlabBefore": payload.get("before") or "",
        "gitlabAfter": after or "",
        "gitlabMergeRequestLastCommit": after or "",
        "gitlabUserName": payload.get("user_name") or "",
        "gitlabUserEmail": payload.get("user_email") or "",
        "gitlabSourceRepoHttpUrl": repository.get("git_http_url")
        or project.get("git_http_url")
        or "",
        "gitlabMergeRequestTitle": "",
        "gitlabMergeRequestIid": "",
    }
    return Outcome(True, f"push to {branch!r}", variables)


def _merge_request(config: TriggerConfig, payload: Mapping[str, Any], built: bool) -> Outcome:
    attrs = payload.get("object_attributes") or {}
    state = attrs.get("state")
    action = attrs.get("action")
    open_mr = config.open_mr_on_push
    # MergeRequestHookTriggerHandlerFactory.java:34-49 (TriggerConfigChain: reject rules first)
    reject = []
    accept = []

    def rule(states: set[str] | None, actions: set[str] | None) -> bool:
        # StateAndActionConfig.java:24-31: null set = any; a null value passes nullOrContains
        return (states is None or state is None or state in states) and (
            actions is None or action is None or action in actions
        )

    if open_mr == "never":
        reject.append(rule({"opened", "updated"}, {"update"}))
    if open_mr != "never":
        accept.append(rule({"updated"}, {"update"}))
    if open_mr not in ("never", None):
        accept.append(rule({"opened"}, {"update"}))
    if not config.on_approved:
        reject.append(rule(None, {"approved"}))
    else:
        accept.append(rule(None, {"approved"}))
    if config.trigger_on_merge_request:
        accept.append(rule({"opened", "reopened"}, None))
    if config.on_accepted:
        accept.append(rule(None, {"merge"}))
    if config.on_closed:
        accept.append(rule(None, {"close"}))
        accept.append(rule({"closed"}, None))
    if any(reject) or not any(accept):
        return Outcome(False, f"state {state!r} action {action!r} not configured", {})
    # MergeRequestHookTriggerHandlerImpl.java:425-435: skip WIP when configured
    if config.skip_wip and attrs.get("work_in_progress"):
        return Outcome(False, "work in progress", {})
    # :322-326 actions open/approved/merge skip the already-built check; :333-349 otherwise
    if built and action not in ("open", "approved", "merge"):
        return Outcome(False, "last commit already built", {})
    # :159-166 + :183: update needs oldrev when triggerOnlyIfNewCommitsPushed, unless the title lost
    # its Draft marker (:373-388)
    if config.only_if_new_commits and action == "update" and attrs.get("oldrev") is None:
        title = (payload.get("changes") or {}).get("title") or {}
        previous, current = title.get("previous") or "", title.get("current") or ""
        was_draft = bool(_DRAFT.fullmatch(previous)) and not _DRAFT.fullmatch(current)
        was_wip = "WIP" in previous and "WIP" not in current
        if not (was_draft or was_wip):
            return Outcome(False, "update without new commits", {})
    last_commit = attrs.get("last_commit") or {}
    # :191-202: "[ci-skip]" in the description or the last commit's message
    if config.ci_skip and (
        "[ci-skip]" in (attrs.get("description") or "")
        or "[ci-skip]" in (last_commit.get("message") or "")
    ):
        return Outcome(False, "[ci-skip]", {})
    source = attrs.get("source_branch") or ""
    target = attrs.get("target_branch") or ""
    # AbstractWebHookTriggerHandler.java:53-55
    if not branch_allowed(config, source, target):
        return Outcome(False, f"source {source!r} / target {target!r} not allowed", {})
    source_project = attrs.get("source") or {}
    # MergeRequestHookTriggerHandlerImpl.java:242-284
    variables = {
        "gitlabActionType": "MERGE",
        "gitlabBranch": source,
        "gitlabSourceBranch": source,
        "gitlabTargetBranch": target,
        "gitlabMergeRequestLastCommit": last_commit.get("id") or "",
        "gitlabMergeRequestIid": str(attrs.get("iid") or ""),
        "gitlabMergeRequestTitle": attrs.get("title") or "",
        "gitlabMergeRequestState": str(state or ""),
        "gitlabSourceRepoHttpUrl": source_project.get("http_url") or "",
        "gitlabUserName": ((last_commit.get("author") or {}).get("name")) or "",
    }
    return Outcome(True, f"merge request {action!r}", variables)


def handle(
    trigger: ET.Element | None, event: str, payload: Mapping[str, Any], *, built: bool = False
) -> Outcome:
    """What gitlab-plugin does with one hook for a job whose stored trigger is ``trigger``."""
    if trigger is None:
        # BuildWebHookAction.java:80-88: no trigger on the job -> nothing happens (HTTP 200)
        return Outcome(False, "the job has no GitLabPushTrigger", {})
    config = TriggerConfig.from_element(trigger)
    # ActionResolver.java:114-125
    if event in ("Push Hook", "Tag Push Hook"):
        return _push(config, payload)
    if event == "Merge Request Hook":
        return _merge_request(config, payload, built)
    return Outcome(False, f"{event} not modelled", {})


def post_hook(
    url: str, job: str, event: str, payload: Mapping[str, Any], token: str | None = None
) -> int:
    """POST a hook the way GitLab does to ``<jenkins>/project/<job>``; the HTTP status."""
    headers = {"X-Gitlab-Event": event}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    response = requests.post(f"{url}/project/{job}", json=payload, headers=headers, timeout=10)
    return response.status_code
