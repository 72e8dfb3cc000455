"""Where each spec's GitLab hook points, with which token, events and branch filter (pure).

Two targets (``webhook.target`` in the spec):

* ``receiver`` (default): ``CONVEYOR_WEBHOOK_URL + /hooks/gitlab``, token
  ``project_id_token(CONVEYOR_SECRET, <GitLab project id>)`` (the id survives renames), checked by
  conveyor's receiver.
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

import ipaddress
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from conveyor.config import Settings
from conveyor.gitlab.hooks import DesiredHook
from conveyor.pipeline.match import patterns_to_regex
from conveyor.spec.model import Spec
from conveyor.tokens import job_trigger_token, project_id_token, token_fingerprint

HOOK_NAME = "conveyor"

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


def signing_token(settings: Settings) -> str:
    """The GitLab 19 signing token ``apply`` registers: the first of
    ``CONVEYOR_WEBHOOK_SIGNING_TOKEN`` (the others are older ones the receiver still accepts)."""
    return next(
        (t.strip() for t in (settings.webhook_signing_token or "").split(",") if t.strip()), ""
    )


def hook_description(token: str, signing: str) -> str:
    """The hook's description: says who manages it and fingerprints its write-only tokens, so a
    token written by anything else (older conveyor, another secret, a hand edit) shows as drift."""
    text = f"Managed by conveyor apply; token {token_fingerprint(token)}"
    return text + (f"; signing {token_fingerprint(signing)}" if signing else "")


def desired_hook(spec: Spec, settings: Settings, project_id: int) -> DesiredHook:
    """The hook ``spec`` wants on GitLab project ``project_id`` (needs ``secret``, and
    ``webhook_url`` or ``jenkins_url``)."""
    secret = settings.secret or ""
    if spec.webhook.target == "jenkins":
        url = jenkins_project_url(settings, spec.jenkins.job)
        token = job_trigger_token(secret, spec.jenkins.job)
    else:
        url = receiver_url(settings)
        token = project_id_token(secret, project_id)
    signing = signing_token(settings) if spec.webhook.target == "receiver" else ""
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
        name=HOOK_NAME,
        description=hook_description(token, signing),
        signing_token=signing,
    )


def webhook_url_warning(settings: Settings) -> str | None:
    """Why GitLab would refuse ``CONVEYOR_WEBHOOK_URL`` (422), if it names loopback or a private
    network: GitLab blocks hook URLs there unless the instance allows local requests from web hooks
    (never on gitlab.com). Judged from the URL alone (``localhost``, IP literals, one-label names)."""
    if not settings.webhook_url:
        return None
    host = (urlsplit(settings.webhook_url).hostname or "").lower()
    where: str | None = None
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        where = "loopback"
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host and "." not in host:
                where = "a name only a local network resolves"
        else:
            if address.is_loopback or address.is_unspecified:
                where = "loopback"
            elif address.is_private or address.is_link_local:
                where = "a private network"
    if where is None:
        return None
    return (
        f"CONVEYOR_WEBHOOK_URL {redact_url(settings.webhook_url)} is on {where}: GitLab refuses "
        "hook URLs there (422) unless the instance allows local requests from web hooks "
        "(Admin area > Settings > Network > Outbound requests; never on gitlab.com)"
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
