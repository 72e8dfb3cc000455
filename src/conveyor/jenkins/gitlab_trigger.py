"""The spec's ``triggers`` as gitlab-plugin's ``GitLabPushTrigger`` settings, and what they cannot say.

Pure. gitlab-plugin (jenkinsci/gitlab-plugin, paths under ``src/main/java/com/dabsquared/gitlabjenkins/``)
decides builds with these rules, which the settings below are chosen against:

* **One branch filter for everything.** ``RegexBasedFilter`` (trigger/filter/RegexBasedFilter.java:19-26)
  full-matches ``targetBranchRegex`` against the target branch: the pushed branch for a push, the tag
  push's ref for a tag push (only ``refs/heads/`` is stripped, so a tag is ``refs/tags/v1``:
  PushHookTriggerHandlerImpl.java:102-110), the target branch for a merge request. ``triggerOnPush``
  runs tag pushes through the same push handler.
* **Merge requests** (trigger/handler/merge/MergeRequestHookTriggerHandlerFactory.java:34-49):
  ``triggerOnMergeRequest`` accepts MRs in state ``opened``/``reopened`` (so ``open`` and ``reopen``
  together); ``triggerOpenMergeRequestOnPush=never`` rejects ``update``, ``source`` accepts it;
  ``triggerOnlyIfNewCommitsPushed`` then requires ``oldrev`` (MergeRequestHookTriggerHandlerImpl.java:159-166);
  ``merge`` and ``close`` have their own flags.
* **Skip CI.** ``ciSkip`` knows only ``[ci-skip]`` in the last commit's message (and an MR's
  description), PushHookTriggerHandlerImpl.java:48-54 and MergeRequestHookTriggerHandlerImpl.java:191-202;
  it never sees ``[skip ci]`` or the ``ci.skip`` push option. conveyor writes ``ciSkip=false``.

What one trigger cannot express is returned by :func:`inexpressible`; for ``webhook.target: jenkins``
the renderer refuses such a spec with those reasons (conveyor's receiver, ``webhook.target:
receiver``, applies the spec's rules exactly). One divergence remains by design of gitlab-plugin and
is documented rather than refused: an MR ``update`` without new commits that removes the ``Draft:``
marker from the title still builds there (MergeRequestHookTriggerHandlerImpl.java:183, 373-388).
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.pipeline.match import glob_to_regex, patterns_to_regex
from conveyor.spec.model import Triggers

TAG_PREFIX = "refs/tags/"


@dataclass(frozen=True)
class TriggerSettings:
    """The GitLabPushTrigger fields conveyor sets from a spec (all others are written as defaults)."""

    on_push: bool
    on_merge_request: bool
    open_merge_request_on_push: str  # never | source
    only_if_new_commits: bool
    on_accepted: bool
    on_closed: bool
    filter_type: str  # All | RegexBasedFilter
    target_regex: str


def _branch_part(branches: list[str], exclude: list[str], *, tags_reach: bool) -> str:
    regex = "(?s:.*)" if "**" in branches else patterns_to_regex(list(dict.fromkeys(branches)))
    # when tag pushes reach the filter, a branch wildcard that could match "refs/tags/..." must not
    # let them through
    could_be_tag = tags_reach and any(
        p.split("/", 1)[0] == "refs" or any(c in p.split("/", 1)[0] for c in "*?") for p in branches
    )
    guards = f"(?!{TAG_PREFIX})" if could_be_tag else ""
    if exclude:
        excluded = "|".join(glob_to_regex(p) for p in dict.fromkeys(exclude))
        guards += f"(?!(?:{excluded})$)"
    return f"{guards}(?:{regex})" if guards else regex


def branch_filter(triggers: Triggers) -> tuple[str, str]:
    """``(branchFilterType, targetBranchRegex)``: the push branches (else the merge request targets),
    and ``refs/tags/<tag wildcard>``; ``All`` when everything that reaches the filter may build.

    Tag pushes reach the filter whenever ``triggerOnPush`` is on (a push or tag_push trigger)."""
    tags_reach = triggers.push is not None or triggers.tag_push is not None
    parts: list[str] = []
    branches: list[str] | None = None
    exclude: list[str] = []
    if triggers.push is not None:
        branches, exclude = list(triggers.push.branches), list(triggers.push.exclude)
    elif triggers.merge_request is not None:
        branches = list(triggers.merge_request.target_branches)
    if branches is not None:
        parts.append(_branch_part(branches, exclude, tags_reach=tags_reach))
    tag_all = False
    if triggers.tag_push is not None:
        tags = list(dict.fromkeys(triggers.tag_push.tags))
        tag_all = "**" in tags
        tag_regex = "(?s:.*)" if tag_all else patterns_to_regex(tags)
        parts.append(f"{TAG_PREFIX}(?:{tag_regex})")
    branch_all = branches is not None and "**" in branches and not exclude
    if not parts or (branch_all and (tag_all or not tags_reach)):
        return "All", ""
    return "RegexBasedFilter", parts[0] if len(parts) == 1 else "|".join(parts)


def settings(triggers: Triggers) -> TriggerSettings:
    """The closest GitLabPushTrigger to ``triggers`` (exact when :func:`inexpressible` is empty)."""
    actions = set(triggers.merge_request.actions) if triggers.merge_request is not None else set()
    filter_type, regex = branch_filter(triggers)
    return TriggerSettings(
        on_push=triggers.push is not None or triggers.tag_push is not None,
        on_merge_request=bool(actions & {"open", "reopen"}),
        open_merge_request_on_push="source" if "update" in actions else "never",
        only_if_new_commits=triggers.merge_request is not None,
        on_accepted="merge" in actions,
        on_closed="close" in actions,
        filter_type=filter_type,
        target_regex=regex,
    )


def _same_branches(a: list[str], b: list[str]) -> bool:
    if "**" in a and "**" in b:
        return True
    return set(a) == set(b)


def inexpressible(triggers: Triggers) -> list[str]:
    """What gitlab-plugin would decide differently from the spec, each with its reason."""
    problems: list[str] = []
    if triggers.skip_ci:
        problems.append(
            "triggers.skip_ci: gitlab-plugin honours only '[ci-skip]' and never sees '[skip ci]', "
            "'[ci skip]' or the ci.skip push option; set triggers.skip_ci: false"
        )
    mr = triggers.merge_request
    if mr is None:
        return problems
    actions = set(mr.actions)
    if len(actions & {"open", "reopen"}) == 1:
        problems.append(
            "triggers.merge_request.actions: gitlab-plugin builds 'open' and 'reopen' together "
            "(triggerOnMergeRequest); list both or neither"
        )
    push = triggers.push
    if push is not None and (
        push.exclude or not _same_branches(list(push.branches), list(mr.target_branches))
    ):
        problems.append(
            "triggers.merge_request.target_branches must equal triggers.push.branches (and "
            "push.exclude be empty): gitlab-plugin applies one branch filter to pushes and merge "
            "request targets"
        )
    if push is None and triggers.tag_push is not None:
        problems.append(
            "triggers.tag_push with merge_request but no push: gitlab-plugin's branch filter would "
            "also let branch pushes to the merge request targets build; add a push trigger with "
            "the same branches"
        )
    return problems
