"""Where each spec's GitLab hook points, with which token, events and branch filter (pure).

Two targets (``webhook.target`` in the spec):

* ``receiver`` (default): ``CONVEYOR_WEBHOOK_URL + /hooks/gitlab``, token
  ``project_token(CONVEYOR_SECRET, project)``, checked by conveyor's receiver.
* ``jenkins``: the gitlab-plugin endpoint ``CONVEYOR_JENKINS_URL/project/<job path>``, token = the
  job's trigger secret (``secretToken`` in its config.xml), ``project_token(CONVEYOR_SECRET, job path)``.

Branch filter. GitLab filters push events only (``push_events_branch_filter``), with one of three
strategies, and its semantics differ from conveyor's wildcards:

* ``wildcard`` (GitLab ``RefMatcher``): ``*`` becomes ``.*?`` and matches across ``/``; ``?`` is literal.
  Conveyor's ``*`` stays inside one path segment and ``?`` is one character, so ``wildcard`` is used only
  when it means exactly the same thing: one pattern with no ``*`` and no ``?`` except ``**`` (conveyor's
  ``**`` crosses ``/`` like GitLab's ``*``), e.g. ``main`` or ``release/**``.
* ``regex`` (RE2, *unanchored* search): every other case, with the regex from
  :mod:`conveyor.pipeline.match` anchored as ``^(?:...)$``.
* ``all_branches``: when ``**`` is among the branches.

Exclusions (``triggers.push.exclude``) cannot be expressed (RE2 has no lookahead), so GitLab sends a
superset and the receiver / the Jenkins trigger drop the excluded branches. Tag pushes and merge
requests have no GitLab-side filter at all.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from conveyor.config import Settings
from conveyor.gitlab.hooks import DesiredHook
from conveyor.pipeline.match import patterns_to_regex
from conveyor.spec.model import Spec
from conveyor.tokens import project_token

RECEIVER_PATH = "/hooks/gitlab"
Strategy = Literal["wildcard", "regex", "all_branches"]


def receiver_url(settings: Settings) -> str:
    """Conveyor's receiver endpoint for GitLab hooks."""
    return (settings.webhook_url or "").rstrip("/") + RECEIVER_PATH


def previous_receiver_urls(settings: Settings) -> frozenset[str]:
    """The receiver endpoint at ``CONVEYOR_WEBHOOK_URL_PREVIOUS``: hooks there are conveyor's and
    move to the current URL (GitLab resets a hook's token when its URL changes)."""
    if not settings.webhook_url_previous:
        return frozenset()
    return frozenset({settings.webhook_url_previous.rstrip("/") + RECEIVER_PATH})


def jenkins_project_url(settings: Settings, job: str) -> str:
    """The gitlab-plugin endpoint of ``job``: ``JENKINS/project/<folder>/<job>``."""
    path = "/".join(quote(part, safe="") for part in job.split("/"))
    return (settings.jenkins_url or "").rstrip("/") + "/project/" + path


def job_trigger_token(secret: str, job: str) -> str:
    """The secret the gitlab-plugin trigger of ``job`` checks (never printed)."""
    return project_token(secret, job)


def branch_filter(spec: Spec) -> tuple[Strategy, str]:
    """``(branch_filter_strategy, push_events_branch_filter)`` for ``spec``'s push trigger."""
    push = spec.triggers.push
    if push is None:
        return "all_branches", ""
    branches = list(dict.fromkeys(push.branches))
    if "**" in branches:
        return "all_branches", ""
    if len(branches) == 1 and _wildcard_equivalent(branches[0]):
        return "wildcard", branches[0].replace("**", "*")
    return "regex", "^" + patterns_to_regex(branches) + "$"


def _wildcard_equivalent(pattern: str) -> bool:
    """True when GitLab's wildcard strategy matches exactly what conveyor's wildcard matches."""
    if "?" in pattern:
        return False
    return "*" not in pattern.replace("**", "")


def desired_hook(spec: Spec, settings: Settings) -> DesiredHook:
    """The hook ``spec`` wants (needs ``secret``, and ``webhook_url`` or ``jenkins_url``)."""
    secret = settings.secret or ""
    if spec.webhook.target == "jenkins":
        url = jenkins_project_url(settings, spec.jenkins.job)
        token = job_trigger_token(secret, spec.jenkins.job)
    else:
        url = receiver_url(settings)
        token = project_token(secret, spec.project)
    strategy, branches = branch_filter(spec)
    return DesiredHook(
        url=url,
        token=token,
        push_events=spec.triggers.push is not None,
        tag_push_events=spec.triggers.tag_push is not None,
        merge_requests_events=spec.triggers.merge_request is not None,
        push_events_branch_filter=branches,
        branch_filter_strategy=strategy,
        enable_ssl_verification=spec.webhook.enable_ssl_verification,
    )


def managed_urls(settings: Settings, job: str) -> frozenset[str]:
    """Every URL a conveyor hook of a project with this job can have (either target)."""
    urls: set[str] = set()
    if settings.webhook_url:
        urls.add(receiver_url(settings))
    urls.update(previous_receiver_urls(settings))
    if settings.jenkins_url:
        urls.add(jenkins_project_url(settings, job))
    return frozenset(urls)


def redact_url(url: str) -> str:
    """``https://user:pass@host/x?token=...`` -> ``https://***@host/x?***``: safe to print."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
