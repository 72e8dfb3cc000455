"""A strict GitLab API v4 emulator (projects, groups, project hooks, commit statuses).

Behaviour follows /work/shared/reference/gitlab.md: PRIVATE-TOKEN / Bearer auth with 401
``{"message":"401 Unauthorized"}``, per-project roles (403 for non-maintainers on hooks, 404 for
hidden projects), offset pagination with GitLab's headers and ``Link``, write-only hook tokens,
``url`` changes resetting the token, custom headers and URL variables, 201/204 codes, and the
validation errors GitLab gives (422 for hook URLs on loopback or private networks unless
``allow_local_requests``, as the instance setting).

Hooks are *executed* too (:meth:`GitLabEmulator.deliver`, and the API's test endpoint): each delivery
is a real HTTP POST to the hook URL with GitLab's headers, and its outcome moves the hook's failure
state exactly as ``WebHooks::AutoDisabling`` does (``alert_status``, ``disabled_until``; a disabled
hook is skipped; only a successful delivery or test re-enables it). Projects can be renamed
(:meth:`GitLabEmulator.rename_project`: the old path keeps resolving, as GitLab's redirect routes do)
and are found case-insensitively.

Test-side inspection (plain Python, no HTTP): :meth:`GitLabEmulator.hooks`,
:meth:`GitLabEmulator.hook_token`, :meth:`GitLabEmulator.insert_hook`,
:meth:`GitLabEmulator.deliveries`, :meth:`GitLabEmulator.statuses`, plus the shared ``log`` and
``faults`` (see ``server.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import itertools
import json
import math
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlencode, urlsplit

import requests

from tests.emulators.server import EmulatorServer, Request, Response

API = "/api/v4"
GITLAB_VERSION = "17.11.1"

ROLE_LEVELS = {"guest": 10, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}

HOOK_EVENT_FIELDS = (
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "confidential_note_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
    "feature_flag_events",
    "emoji_events",
    "resource_access_token_events",
)
HOOK_BOOL_DEFAULTS: dict[str, bool] = {
    **{name: False for name in HOOK_EVENT_FIELDS},
    "push_events": True,
    "enable_ssl_verification": True,
}
HOOK_STRING_FIELDS = ("name", "description", "push_events_branch_filter", "custom_webhook_template")
BRANCH_FILTER_STRATEGIES = ("wildcard", "regex", "all_branches")
# The hook's secrets and failure bookkeeping: stored, never part of the API's hook JSON.
HOOK_PRIVATE_FIELDS = (
    "token",
    "signing_token",
    "recent_failures",
    "backoff_count",
    "disabled_until",
)
# app/models/concerns/web_hooks/auto_disabling.rb
FAILURE_THRESHOLD = 3
MAX_FAILURES = 100
INITIAL_BACKOFF = 60.0
MAX_BACKOFF = 86400.0
MAX_BACKOFF_COUNT = 11
# lib/gitlab/application_rate_limiter.rb: web_hook_test: { threshold: 5, interval: 1.minute }
HOOK_TEST_LIMIT = 5
HOOK_TEST_WINDOW = 60.0
HOOK_EVENT_HEADERS = {
    "push_events": "Push Hook",
    "tag_push_events": "Tag Push Hook",
    "merge_requests_events": "Merge Request Hook",
    "note_events": "Note Hook",
    "pipeline_events": "Pipeline Hook",
    "job_events": "Job Hook",
    "releases_events": "Release Hook",
    "deployment_events": "Deployment Hook",
}
ZERO_SHA = "0" * 40
STATUS_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
# Access levels of protected refs (Gitlab::Access): 0 is "No one".
ACCESS_LEVELS = {"no one": 0, "developer": 30, "maintainer": 40}
# app/models/commit_status.rb, `state_machine :status`: the states each event moves *from*
# (GenericCommitStatus never waits for resources, so those states are left out).
STATUS_EVENTS: dict[str, tuple[str, frozenset[str]]] = {
    "enqueue": ("pending", frozenset({"created", "skipped", "manual", "scheduled"})),
    "run": ("running", frozenset({"pending"})),
    "success": ("success", frozenset({"created", "pending", "running"})),
    "drop": ("failed", frozenset({"created", "pending", "running", "scheduled"})),
    "cancel": ("canceled", frozenset({"created", "pending", "running", "manual", "scheduled"})),
    "skip": ("skipped", frozenset({"created", "pending"})),
}
ACTIVE_STATES = frozenset({"pending", "running"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class User:
    id: int
    username: str
    token: str
    name: str


@dataclass
class Group:
    id: int
    full_path: str
    parent_id: int | None

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]


@dataclass
class Project:
    id: int
    path_with_namespace: str
    namespace_id: int
    default_branch: str = "main"
    archived: bool = False
    visibility: str = "private"
    members: dict[int, str] = field(default_factory=dict)  # user id -> role
    commits: set[str] | None = None  # None: any well-formed sha is accepted
    protected_branches: list[ProtectedRef] = field(default_factory=list)
    protected_tags: list[ProtectedRef] = field(default_factory=list)
    forked_from_id: int | None = None
    shared_with_groups: set[int] = field(default_factory=set)  # group ids (project_group_links)

    @property
    def path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StatusRecord:
    """One commit-status post GitLab accepted (in arrival order): the state it moved to.

    ``status_id`` is the GitLab status record the post created or moved (see
    :meth:`GitLabEmulator.commit_statuses`); posts that reused a record share its id.
    """

    id: int
    project_id: int
    sha: str
    state: str
    name: str
    ref: str
    target_url: str | None
    description: str | None
    user: str
    status_id: int = 0
    pipeline_id: int = 0


@dataclass
class CommitStatus:
    """A GitLab commit status record (``GenericCommitStatus``): transitions move it in place."""

    id: int
    project_id: int
    pipeline_id: int
    sha: str
    ref: str
    name: str
    user_id: int
    state: str = "created"
    target_url: str | None = None
    description: str | None = None
    coverage: float | None = None
    created_at: str = field(default_factory=lambda: _now())
    started_at: str | None = None
    finished_at: str | None = None


@dataclass
class Pipeline:
    """A CI pipeline: ``external`` when a status post created it (never ``tag``), else seeded."""

    id: int
    project_id: int
    sha: str
    ref: str
    tag: bool = False
    source: str = "external"


@dataclass
class ProtectedRef:
    """A protected branch (push/merge levels) or tag (create level); ``name`` may hold ``*``."""

    name: str
    push: int = 40
    merge: int = 40
    create: int = 40


@dataclass
class MergeRequest:
    iid: int
    project_id: int  # the target project
    source_project_id: int
    source_branch: str
    target_branch: str
    sha: str


@dataclass(frozen=True)
class Delivery:
    """One execution of a hook: what was sent and how the receiver answered (status 0: no answer)."""

    hook_id: int
    project_id: int
    url: str
    event: str  # X-Gitlab-Event
    headers: dict[str, str]
    body: bytes
    status: int
    category: Literal["ok", "error", "failed"]
    test: bool = False

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class _OutsideLock(Exception):
    """Raised by a handler whose remaining work must run without the emulator's lock held (a hook
    test POSTs to the receiver, which may call back into this emulator)."""

    def __init__(self, run: Any) -> None:
        super().__init__("outside lock")
        self.run = run


class ApiError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


def _not_found(what: str = "") -> ApiError:
    return ApiError(404, {"message": f"404 {what + ' ' if what else ''}Not Found"})


def _bad(message: str) -> ApiError:
    return ApiError(400, {"error": message})


_GIT_REF_BAD = re.compile(r"(\.\.|@\{|[\x00-\x20\x7f~^:?\[\\])")


def _valid_ref_pattern(value: str) -> bool:
    """git check-ref-format rules (as GitLab's BranchFilterValidator applies them, ``*`` allowed)."""
    candidate = value.replace("*", "x")
    if not candidate or _GIT_REF_BAD.search(candidate):
        return False
    if candidate.startswith(("-", "/")) or candidate.endswith(("/", ".", ".lock")):
        return False
    if "//" in candidate:
        return False
    return all(part and not part.startswith(".") for part in candidate.split("/"))


def _valid_hook_url(value: Any) -> bool:
    if not isinstance(value, str) or not value or len(value) > 2048 or " " in value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url_block_reason(value: str) -> str | None:
    """Why GitLab's UrlBlocker (lib/gitlab/url_blocker.rb, used by the hook's public_url
    validation) refuses ``value`` when the instance does not allow local requests from web hooks
    (``allow_local_requests_from_web_hooks_and_services``, off by default; never on gitlab.com).
    Only names that need no DNS are judged: ``localhost`` and IP literals."""
    host = (urlsplit(value).hostname or "").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return "is blocked: Requests to localhost are not allowed"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return "is blocked: Requests to localhost are not allowed"
    if address.is_link_local:
        return "is blocked: Requests to the link local network are not allowed"
    if address.is_private:
        return "is blocked: Requests to the local network are not allowed"
    return None


def _version_at_least(version: str, major: int) -> bool:
    return int(version.split(".", 1)[0]) >= major


_TRUE = frozenset({"true", "t", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "f", "0", "no", "n", "off"})


def _query_bool(request: Request, name: str) -> bool | None:
    """Grape's Boolean coercion of a query parameter (absent -> None, junk -> 400)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _bad(f"{name} is invalid")


class GitLabEmulator(EmulatorServer):
    """GitLab API v4 over real HTTP. State lives in memory; guard it with ``self.lock``."""

    def __init__(
        self,
        *,
        max_hooks_per_project: int = 100,
        version: str = GITLAB_VERSION,
        allow_local_requests: bool = False,
        failure_categories: Literal["ok_error_failed", "ok_error"] = "ok_error_failed",
    ) -> None:
        """``version``: 19.x adds ``token_present`` and ``signing_token`` to hooks.
        ``allow_local_requests``: the instance setting that lets hooks point at loopback and
        private networks. ``failure_categories``: how a failed delivery counts
        (app/services/web_hook_service.rb): ``ok_error_failed`` (500 and no answer back off,
        other non-2xx/3xx answers disable the hook after the grace period for good, as
        ``failed!`` does) or ``ok_error`` (newer GitLab: every failure backs off)."""
        super().__init__()
        self.version = version
        self.allow_local_requests = allow_local_requests
        self.failure_categories = failure_categories
        self.time_offset = 0.0  # seconds added to the emulator's clock (advance())
        self._deliveries: list[Delivery] = []
        self._redirects: dict[str, int] = {}  # old path (lower-case) -> project id
        self._hook_tests: dict[tuple[int, int], deque[float]] = {}
        self._ids = itertools.count(1)
        self._hook_ids = itertools.count(1)
        self._status_ids = itertools.count(1)
        self.users: dict[int, User] = {}
        self.tokens: dict[str, str] = {}  # username -> token (for tests)
        self.groups: dict[int, Group] = {}
        self.projects: dict[int, Project] = {}
        self._hooks: dict[int, dict[int, dict[str, Any]]] = {}  # project id -> hook id -> stored
        self._statuses: list[StatusRecord] = []  # accepted posts, in arrival order
        self._status_records: list[CommitStatus] = []
        self._pipelines: list[Pipeline] = []
        self._merge_requests: list[MergeRequest] = []
        self._pipeline_ids = itertools.count(1)
        self.max_hooks_per_project = max_hooks_per_project
        # GitLab rate-limits hook *tests* (and resends), not hook creation: no 429 on POST /hooks.
        # Fault: the next N hook creations succeed but their answer is lost (502 from the proxy
        # in front of GitLab, after Rails created the hook): a blind retry makes a duplicate.
        self.lose_create_answers = 0

    # ------------------------------------------------------------------ seeding (test side)
    def add_user(self, username: str, token: str, *, name: str | None = None) -> User:
        with self.lock:
            user = User(next(self._ids), username, token, name or username.title())
            self.users[user.id] = user
            self.tokens[username] = token
            return user

    def add_group(self, full_path: str) -> Group:
        with self.lock:
            existing = self._group_by_path(full_path)
            if existing is not None:
                return existing
            parent_id = None
            if "/" in full_path:
                parent_id = self.add_group(full_path.rsplit("/", 1)[0]).id
            group = Group(next(self._ids), full_path, parent_id)
            self.groups[group.id] = group
            return group

    def add_project(
        self,
        path_with_namespace: str,
        *,
        default_branch: str = "main",
        archived: bool = False,
        visibility: str = "private",
        members: dict[str, str] | None = None,
    ) -> Project:
        with self.lock:
            namespace = self.add_group(path_with_namespace.rsplit("/", 1)[0])
            project = Project(
                next(self._ids),
                path_with_namespace,
                namespace.id,
                default_branch=default_branch,
                archived=archived,
                visibility=visibility,
            )
            for username, role in (members or {}).items():
                project.members[self._user_by_name(username).id] = role
            self.projects[project.id] = project
            self._hooks[project.id] = {}
            return project

    def set_role(self, project: str | int, username: str, role: str | None) -> None:
        with self.lock:
            proj = self._project_ref(project)
            user = self._user_by_name(username)
            if role is None:
                proj.members.pop(user.id, None)
            else:
                if role not in ROLE_LEVELS:
                    raise ValueError(f"unknown role {role!r}")
                proj.members[user.id] = role

    def rename_project(self, project: str | int, new_path_with_namespace: str) -> Project:
        """Rename or transfer a project. The old path keeps resolving in the API (GitLab keeps a
        ``RedirectRoute``; ``find_project`` in lib/api/helpers.rb calls ``find_by_full_path(id,
        follow_redirects: true)``), while every answer and payload names the new canonical path."""
        with self.lock:
            proj = self._project_ref(project)
            self._redirects[proj.path_with_namespace.lower()] = proj.id
            self._redirects.pop(new_path_with_namespace.lower(), None)
            namespace = self.add_group(new_path_with_namespace.rsplit("/", 1)[0])
            proj.path_with_namespace = new_path_with_namespace
            proj.namespace_id = namespace.id
            return proj

    def share_project(self, project: str | int, group: str) -> None:
        """Share a project with a group (a project_group_link): it is listed among the group's
        projects unless ``with_shared=false``."""
        with self.lock:
            self._project_ref(project).shared_with_groups.add(self.add_group(group).id)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (``disabled_until`` expiry)."""
        with self.lock:
            self.time_offset += seconds

    def insert_hook(
        self, project: str | int, url: str, *, token: str | None = None, **fields: Any
    ) -> int:
        """Store a hook directly (no validation, no log entry): duplicates, someone else's hooks."""
        with self.lock:
            proj = self._project_ref(project)
            hook = self._new_hook(proj.id, {"url": url, "token": token or "", **fields})
            return int(hook["id"])

    def protect_branch(
        self, project: str | int, name: str, *, push: str = "maintainer", merge: str = "maintainer"
    ) -> None:
        """Protect branches matching ``name`` (``*`` wildcards); levels: no one|developer|maintainer."""
        with self.lock:
            self._project_ref(project).protected_branches.append(
                ProtectedRef(name, push=ACCESS_LEVELS[push], merge=ACCESS_LEVELS[merge])
            )

    def protect_tag(self, project: str | int, name: str, *, create: str = "maintainer") -> None:
        with self.lock:
            self._project_ref(project).protected_tags.append(
                ProtectedRef(name, create=ACCESS_LEVELS[create])
            )

    def add_pipeline(self, project: str | int, sha: str, ref: str, *, tag: bool = False) -> int:
        """A pipeline GitLab CI created (e.g. a tag pipeline, ``tag=True``); statuses join it."""
        with self.lock:
            pipeline = Pipeline(
                next(self._pipeline_ids), self._project_ref(project).id, sha, ref, tag, "push"
            )
            self._pipelines.append(pipeline)
            return pipeline.id

    def fork_project(
        self, source: str | int, path_with_namespace: str, *, members: dict[str, str] | None = None
    ) -> Project:
        forked = self.add_project(path_with_namespace, members=members)
        with self.lock:
            forked.forked_from_id = self._project_ref(source).id
        return forked

    def add_merge_request(
        self,
        project: str | int,
        *,
        source_branch: str,
        target_branch: str,
        sha: str,
        source_project: str | int | None = None,
    ) -> int:
        """An open MR in ``project`` (the target); ``source_project`` is the fork it comes from."""
        with self.lock:
            target = self._project_ref(project)
            source = self._project_ref(source_project) if source_project is not None else target
            iid = 1 + sum(1 for m in self._merge_requests if m.project_id == target.id)
            self._merge_requests.append(
                MergeRequest(iid, target.id, source.id, source_branch, target_branch, sha)
            )
            return iid

    # ------------------------------------------------------------------ inspection (test side)
    def hooks(self, project: str | int) -> list[dict[str, Any]]:
        """All hooks of a project in id order, *including* the stored ``token``."""
        with self.lock:
            proj = self._project_ref(project)
            return [dict(h) for _, h in sorted(self._hooks[proj.id].items())]

    def hook_token(self, project: str | int, hook_id: int) -> str:
        with self.lock:
            proj = self._project_ref(project)
            return str(self._hooks[proj.id][hook_id]["token"])

    def statuses(
        self, project: str | int | None = None, sha: str | None = None
    ) -> list[StatusRecord]:
        with self.lock:
            items = list(self._statuses)
        if project is not None:
            pid = self._project_ref(project).id
            items = [s for s in items if s.project_id == pid]
        if sha is not None:
            items = [s for s in items if s.sha == sha]
        return items

    def commit_statuses(
        self, project: str | int | None = None, sha: str | None = None
    ) -> list[CommitStatus]:
        """GitLab's status records (copies), oldest first: one per status, moved by transitions."""
        with self.lock:
            items = [replace(s) for s in self._status_records]
        if project is not None:
            pid = self._project_ref(project).id
            items = [s for s in items if s.project_id == pid]
        if sha is not None:
            items = [s for s in items if s.sha == sha]
        return items

    def merge_request_pipeline(self, project: str | int, iid: int) -> dict[str, Any] | None:
        """The MR's head pipeline as GitLab shows it on the MR page (``None``: nothing shown)."""
        with self.lock:
            target = self._project_ref(project)
            mr = next(m for m in self._merge_requests if m.project_id == target.id and m.iid == iid)
            return self._head_pipeline(mr)

    def deliveries(self, project: str | int | None = None) -> list[Delivery]:
        """Every hook execution so far (deliveries and tests), in order."""
        with self.lock:
            items = list(self._deliveries)
            pid = self._project_ref(project).id if project is not None else None
        return [d for d in items if pid is None or d.project_id == pid]

    def hook_state(self, project: str | int, hook_id: int) -> dict[str, Any]:
        """The hook's failure bookkeeping: recent_failures, backoff_count, disabled_until,
        alert_status."""
        with self.lock:
            hook = self._hooks[self._project_ref(project).id][hook_id]
            return {
                "recent_failures": hook["recent_failures"],
                "backoff_count": hook["backoff_count"],
                "disabled_until": hook["disabled_until"],
                "alert_status": self._alert_status(hook),
            }

    def project(self, ref: str | int) -> Project:
        with self.lock:
            return self._project_ref(ref)

    # ------------------------------------------------------------------ lookups
    def _user_by_name(self, username: str) -> User:
        for user in self.users.values():
            if user.username == username:
                return user
        raise KeyError(username)

    def _group_by_path(self, full_path: str) -> Group | None:
        # Routable.find_by_full_path matches routes case-insensitively
        # (app/models/concerns/routable.rb)
        for group in self.groups.values():
            if group.full_path.lower() == full_path.lower():
                return group
        return None

    def _project_ref(self, ref: str | int) -> Project:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            project = self.projects.get(int(ref))
            if project is None:
                raise KeyError(ref)
            return project
        # case-insensitive, then the redirect routes a rename left (lib/api/helpers.rb
        # find_project -> find_by_full_path(id, follow_redirects: true))
        for project in self.projects.values():
            if project.path_with_namespace.lower() == ref.lower():
                return project
        moved = self._redirects.get(ref.lower())
        if moved is not None and moved in self.projects:
            return self.projects[moved]
        raise KeyError(ref)

    def _utcnow(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.time_offset)

    # ------------------------------------------------------------------ HTTP
    def fault_response(self, status: int, headers: list[tuple[str, str]]) -> Response:
        messages = {
            429: "Retry later",
            500: "500 Internal Server Error",
            502: "502 Bad Gateway",
            503: "503 Service Unavailable",
        }
        return Response.json(status, {"message": messages.get(status, f"{status}")}, headers)

    def route(self, request: Request) -> Response:
        if not request.path.startswith(API + "/"):
            return Response.json(404, {"error": "404 Not Found"})
        segments = request.path[len(API) + 1 :].split("/")
        segments = [unquote(s) for s in segments]
        try:
            user = self._authenticate(request)
            try:
                with self.lock:
                    return self._dispatch(request, user, segments)
            except _OutsideLock as deferred:
                response: Response = deferred.run()
                return response
        except ApiError as exc:
            return Response.json(exc.status, exc.payload)
        except ValueError:  # malformed JSON body
            return Response.json(400, {"error": "400 Bad request - malformed JSON body"})

    def _authenticate(self, request: Request) -> User:
        token = request.header("PRIVATE-TOKEN")
        if token is None:
            auth = request.header("Authorization") or ""
            if auth.startswith("Bearer "):
                token = auth[len("Bearer ") :]
        if token:
            with self.lock:
                for user in self.users.values():
                    if user.token == token:
                        return user
        raise ApiError(401, {"message": "401 Unauthorized"})

    def _dispatch(self, request: Request, user: User, seg: list[str]) -> Response:
        method = request.method
        if seg == ["user"] and method == "GET":
            return Response.json(200, self._user_json(user, request))
        if seg == ["version"] and method == "GET":
            return Response.json(200, {"version": GITLAB_VERSION, "revision": "emulator"})
        if seg[0] == "groups" and len(seg) >= 2:
            group = self._visible_group(seg[1])
            if len(seg) == 2 and method == "GET":
                return Response.json(200, self._group_json(group, request))
            if seg[2:] == ["projects"] and method == "GET":
                return self._group_projects(request, user, group)
        if seg[0] == "projects" and len(seg) >= 2:
            project = self._visible_project(seg[1], user)
            rest = seg[2:]
            if not rest and method == "GET":
                return Response.json(200, self._project_json(project, request))
            if rest and rest[0] == "hooks":
                self._require(project, user, "maintainer")
                return self._hooks_endpoint(request, user, project, rest[1:])
            if len(rest) == 2 and rest[0] == "statuses" and method == "POST":
                # lib/api/commit_statuses.rb: `authorize! :create_commit_status` (Developer).
                self._require(project, user, "developer")
                return self._post_status(request, user, project, rest[1])
            if (
                len(rest) == 4
                and rest[:2] == ["repository", "commits"]
                and rest[3] == "statuses"
                and method == "GET"
            ):
                self._require(project, user, "reporter")
                self._check_sha(project, rest[2])
                return self._paginate(request, self._list_statuses(request, project, rest[2]))
            if len(rest) == 2 and rest[0] == "merge_requests" and method == "GET":
                self._require(project, user, "reporter")
                return Response.json(200, self._merge_request_json(project, rest[1]))
        raise ApiError(404, {"error": "404 Not Found"})

    # ------------------------------------------------------------------ access
    def _role(self, project: Project, user: User) -> str | None:
        # Roles are per project only (the emulator has no group memberships).
        return project.members.get(user.id)

    def _visible_project(self, ref: str, user: User) -> Project:
        try:
            project = self._project_ref(ref)
        except KeyError:
            raise ApiError(404, {"message": "404 Project Not Found"}) from None
        if self._role(project, user) is None and project.visibility == "private":
            raise ApiError(404, {"message": "404 Project Not Found"})
        return project

    def _require(self, project: Project, user: User, role: str) -> None:
        have = self._role(project, user)
        if have is None or ROLE_LEVELS[have] < ROLE_LEVELS[role]:
            raise ApiError(403, {"message": "403 Forbidden"})

    def _visible_group(self, ref: str) -> Group:
        group = self.groups.get(int(ref)) if ref.isdigit() else self._group_by_path(ref)
        if group is None:
            raise ApiError(404, {"message": "404 Group Not Found"})
        return group

    # ------------------------------------------------------------------ JSON shapes
    def _user_json(self, user: User, request: Request) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "web_url": f"{request.base_url}/{user.username}",
        }

    def _group_json(self, group: Group, request: Request) -> dict[str, Any]:
        return {
            "id": group.id,
            "name": group.path,
            "path": group.path,
            "full_name": group.full_path.replace("/", " / "),
            "full_path": group.full_path,
            "parent_id": group.parent_id,
            "visibility": "private",
            "web_url": f"{request.base_url}/groups/{group.full_path}",
        }

    def _project_json(self, project: Project, request: Request) -> dict[str, Any]:
        namespace = self.groups[project.namespace_id]
        return {
            "id": project.id,
            "name": project.path,
            "path": project.path,
            "name_with_namespace": project.path_with_namespace.replace("/", " / "),
            "path_with_namespace": project.path_with_namespace,
            "namespace": {
                "id": namespace.id,
                "name": namespace.path,
                "path": namespace.path,
                "kind": "group",
                "full_path": namespace.full_path,
                "parent_id": namespace.parent_id,
            },
            "default_branch": project.default_branch,
            "archived": project.archived,
            "visibility": project.visibility,
            "http_url_to_repo": f"{request.base_url}/{project.path_with_namespace}.git",
            "ssh_url_to_repo": f"git@{urlsplit(request.base_url).hostname}:{project.path_with_namespace}.git",
            "web_url": f"{request.base_url}/{project.path_with_namespace}",
        }

    # ------------------------------------------------------------------ pagination
    def _paginate(self, request: Request, items: list[Any]) -> Response:
        def as_int(name: str, default: int) -> int:
            raw = request.query.get(name, "")
            try:
                value = int(raw)
            except ValueError:
                return default
            return value if value > 0 else default

        per_page = min(as_int("per_page", 20), 100)
        page = as_int("page", 1)
        total = len(items)
        total_pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        next_page = page + 1 if page < total_pages else None
        prev_page = page - 1 if page > 1 else None

        def link(p: int) -> str:
            params = [(k, v) for k, v in request.query_items if k not in ("page", "per_page")]
            params += [("page", str(p)), ("per_page", str(per_page))]
            return f"<{request.base_url}{request.path}?{urlencode(params)}>"

        links = []
        if prev_page:
            links.append(f'{link(prev_page)}; rel="prev"')
        if next_page:
            links.append(f'{link(next_page)}; rel="next"')
        links.append(f'{link(1)}; rel="first"')
        links.append(f'{link(total_pages)}; rel="last"')
        headers = [
            ("X-Page", str(page)),
            ("X-Per-Page", str(per_page)),
            ("X-Next-Page", str(next_page or "")),
            ("X-Prev-Page", str(prev_page or "")),
            ("X-Total", str(total)),
            ("X-Total-Pages", str(total_pages)),
            ("Link", ", ".join(links)),
        ]
        return Response.json(200, chunk, headers)

    # ------------------------------------------------------------------ groups
    def _descendants(self, group: Group) -> set[int]:
        ids = {group.id}
        changed = True
        while changed:
            changed = False
            for g in self.groups.values():
                if g.parent_id in ids and g.id not in ids:
                    ids.add(g.id)
                    changed = True
        return ids

    def _group_projects(self, request: Request, user: User, group: Group) -> Response:
        include_sub = _query_bool(request, "include_subgroups")
        namespaces = self._descendants(group) if include_sub else {group.id}
        archived = _query_bool(request, "archived")
        # lib/api/groups.rb: optional :with_shared, type: Boolean, default: true -- projects
        # shared with the group are listed unless with_shared=false
        with_shared = _query_bool(request, "with_shared")
        shared = with_shared is None or with_shared
        projects = [
            p
            for _, p in sorted(self.projects.items())
            if (p.namespace_id in namespaces or (shared and group.id in p.shared_with_groups))
            and (self._role(p, user) is not None or p.visibility != "private")
            and (archived is None or p.archived == archived)
        ]
        return self._paginate(request, [self._project_json(p, request) for p in projects])

    # ------------------------------------------------------------------ hooks
    def _new_hook(self, project_id: int, values: dict[str, Any]) -> dict[str, Any]:
        hook: dict[str, Any] = {
            "id": next(self._hook_ids),
            "url": values["url"],
            "name": "",
            "description": "",
            "project_id": project_id,
            "created_at": _now(),
            "push_events_branch_filter": "",
            "branch_filter_strategy": "wildcard",
            "custom_webhook_template": "",
            "url_variables": [],
            "custom_headers": [],
            "token": "",
            "signing_token": "",
            "recent_failures": 0,
            "backoff_count": 0,
            "disabled_until": None,  # datetime | None
            **HOOK_BOOL_DEFAULTS,
        }
        hook.update({k: v for k, v in values.items() if v is not None})
        self._hooks[project_id][hook["id"]] = hook
        return hook

    def _hook_json(self, hook: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in hook.items() if k not in HOOK_PRIVATE_FIELDS}
        public["url_variables"] = [{"key": v["key"]} for v in hook.get("url_variables", [])]
        public["custom_headers"] = [{"key": v["key"]} for v in hook.get("custom_headers", [])]
        # lib/api/entities/hook.rb exposes alert_status and disabled_until
        public["alert_status"] = self._alert_status(hook)
        until = hook["disabled_until"]
        public["disabled_until"] = (
            until.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if until is not None else None
        )
        if _version_at_least(self.version, 19):  # GitLab 19: token_present (MR !231325)
            public["token_present"] = bool(hook.get("token"))
        return public

    # ------------------------------------------------------------------ hook failure state
    # app/models/concerns/web_hooks/auto_disabling.rb, one method each
    def _temporarily_disabled(self, hook: dict[str, Any]) -> bool:
        until = hook["disabled_until"]
        return (
            until is not None
            and until >= self._utcnow()
            and hook["recent_failures"] > FAILURE_THRESHOLD
        )

    @staticmethod
    def _permanently_disabled(hook: dict[str, Any]) -> bool:
        return hook["recent_failures"] > FAILURE_THRESHOLD and hook["disabled_until"] is None

    def _alert_status(self, hook: dict[str, Any]) -> str:
        if self._temporarily_disabled(hook):
            return "temporarily_disabled"
        if self._permanently_disabled(hook):
            return "disabled"
        return "executable"

    def _executable(self, hook: dict[str, Any]) -> bool:
        return not self._temporarily_disabled(hook) and not self._permanently_disabled(hook)

    @staticmethod
    def _enable(hook: dict[str, Any]) -> None:
        hook.update(recent_failures=0, disabled_until=None, backoff_count=0)

    def _backoff(self, hook: dict[str, Any]) -> None:
        if self._permanently_disabled(hook) or self._temporarily_disabled(hook):
            return
        failures = hook["recent_failures"]
        hook["recent_failures"] = min(max(failures + 1, 1), MAX_FAILURES)
        if failures >= FAILURE_THRESHOLD:
            count = hook["backoff_count"]
            delay = (
                MAX_BACKOFF
                if count >= MAX_BACKOFF_COUNT
                else min(max(INITIAL_BACKOFF * 2.0**count, INITIAL_BACKOFF), MAX_BACKOFF)
            )
            hook["backoff_count"] = min(max(count + 1, 1), MAX_FAILURES)
            hook["disabled_until"] = self._utcnow() + timedelta(seconds=delay)

    @staticmethod
    def _failed(hook: dict[str, Any]) -> None:
        if hook["recent_failures"] >= MAX_FAILURES:
            return
        hook.update(
            disabled_until=None,
            backoff_count=0,
            recent_failures=min(max(hook["recent_failures"] + 1, 1), MAX_FAILURES),
        )

    def _hook_params(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _bad("body must be a JSON object")
        if "url" not in data or data["url"] in (None, ""):
            raise _bad("url is missing")
        params: dict[str, Any] = {}
        for name in HOOK_BOOL_DEFAULTS:
            if name in data and data[name] is not None:
                value = data[name]
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    value = value.lower() == "true"
                if not isinstance(value, bool):
                    raise _bad(f"{name} is invalid")
                params[name] = value
        strings = (*HOOK_STRING_FIELDS, "token", "url")
        if _version_at_least(self.version, 19):  # older GitLab ignores it, like any unknown param
            strings = (*strings, "signing_token")
        for name in strings:
            if name in data and data[name] is not None:
                if not isinstance(data[name], str):
                    raise _bad(f"{name} is invalid")
                params[name] = data[name]
        if "branch_filter_strategy" in data:
            if data["branch_filter_strategy"] not in BRANCH_FILTER_STRATEGIES:
                raise _bad("branch_filter_strategy does not have a valid value")
            params["branch_filter_strategy"] = data["branch_filter_strategy"]
        for name in ("url_variables", "custom_headers"):
            if name in data:
                value = data[name]
                if not isinstance(value, list) or not all(
                    isinstance(v, dict) and isinstance(v.get("key"), str) for v in value
                ):
                    raise _bad(f"{name} is invalid")
                params[name] = [{"key": v["key"], "value": v.get("value", "")} for v in value]
        # Like Grape, undeclared parameters are ignored.
        return params

    def _validate_hook(self, hook: dict[str, Any]) -> None:
        errors: dict[str, list[str]] = {}
        if not _valid_hook_url(hook["url"]):
            errors["url"] = ["is blocked: Only allowed schemes are http, https"]
        elif not self.allow_local_requests:
            # WebHook validates url with public_url: true (app/models/hooks/web_hook.rb), i.e.
            # UrlBlocker unless the instance allows local requests from web hooks
            blocked = _url_block_reason(hook["url"])
            if blocked is not None:
                errors["url"] = [blocked]
        strategy = hook["branch_filter_strategy"]
        branch_filter = hook.get("push_events_branch_filter") or ""
        if (
            strategy == "wildcard"
            and branch_filter.strip()
            and not _valid_ref_pattern(branch_filter.strip())
        ):
            errors["push_events_branch_filter"] = ["is not a valid branch name"]
        if strategy == "regex":
            try:
                re.compile(branch_filter)
            except re.error:
                errors["push_events_branch_filter"] = ["not valid RE2 syntax"]
        if len(branch_filter) > 4000:
            errors["push_events_branch_filter"] = [
                "is longer than the allowed length of 4000 characters."
            ]
        if errors:
            raise ApiError(422, {"message": errors})

    def _check_hook_test_rate(self, user: User, project: Project) -> None:
        """``check_rate_limit!(:web_hook_test, scope: [hook.parent, current_user])``
        (lib/api/hooks/trigger_test.rb): 5 tests a minute per project and user."""
        now = time.monotonic() + self.time_offset
        window = self._hook_tests.setdefault((user.id, project.id), deque())
        while window and now - window[0] >= HOOK_TEST_WINDOW:
            window.popleft()
        if len(window) >= HOOK_TEST_LIMIT:
            raise ApiError(
                429,
                {
                    "message": {
                        "error": "This endpoint has been requested too many times. Try again later."
                    }
                },
            )
        window.append(now)

    def _hooks_endpoint(
        self, request: Request, user: User, project: Project, rest: list[str]
    ) -> Response:
        hooks = self._hooks[project.id]
        method = request.method
        if not rest:
            if method == "GET":
                return self._paginate(
                    request, [self._hook_json(h) for _, h in sorted(hooks.items())]
                )
            if method == "POST":
                params = self._hook_params(request.json())
                candidate = {**self._defaults_for_validation(), **params}
                self._validate_hook(candidate)
                if len(hooks) >= self.max_hooks_per_project:
                    raise ApiError(
                        422,
                        {
                            "message": {
                                "base": [
                                    f"Maximum number of project hooks ({self.max_hooks_per_project}) exceeded"
                                ]
                            }
                        },
                    )
                created = self._new_hook(project.id, params)
                if self.lose_create_answers > 0:
                    self.lose_create_answers -= 1
                    return Response.json(502, {"message": "502 Bad Gateway"})
                return Response.json(201, self._hook_json(created))
            raise ApiError(405, {"error": "405 Method Not Allowed"})
        if not rest[0].isdigit() or not (
            len(rest) == 1 or (len(rest) == 3 and rest[1] == "test" and method == "POST")
        ):
            raise ApiError(404, {"error": "404 Not Found"})
        hook_id = int(rest[0])
        hook = hooks.get(hook_id)
        if hook is None:
            raise _not_found()
        if len(rest) == 3:
            return self._test_hook(user, project, hook, rest[2])
        if method == "GET":
            return Response.json(200, self._hook_json(hook))
        if method == "PUT":
            params = self._hook_params(request.json())
            candidate = {**hook, **params}
            self._validate_hook(candidate)
            if params["url"] != hook["url"]:
                # app/models/concerns/web_hooks/hook.rb, before_validation on a URL change:
                # reset_token (unless a token is sent with it), reset_url_variables (unless new
                # ones are sent), reset_custom_headers (always: they were meant for the old URL)
                if "token" not in params:
                    candidate["token"] = ""
                if "url_variables" not in params:
                    candidate["url_variables"] = []
                candidate["custom_headers"] = []
            hooks[hook_id] = candidate
            return Response.json(200, self._hook_json(candidate))
        if method == "DELETE":
            del hooks[hook_id]
            return Response(204)
        raise ApiError(405, {"error": "405 Method Not Allowed"})

    @staticmethod
    def _defaults_for_validation() -> dict[str, Any]:
        return {"push_events_branch_filter": "", "branch_filter_strategy": "wildcard"}

    # ------------------------------------------------------------------ hook execution
    def deliver(
        self,
        project: str | int,
        event: str = "push_events",
        payload: dict[str, Any] | None = None,
        *,
        ref: str = "refs/heads/main",
        timeout: float = 10.0,
    ) -> list[Delivery]:
        """Fire ``event`` (a hook event field, e.g. ``push_events``) on the project as GitLab's
        ``WebHookService`` does: every hook with that event on whose branch filter matches, and
        that is executable (a disabled hook is skipped: events are dropped), gets a POST; the
        answer moves its failure state. Returns the deliveries made."""
        with self.lock:
            proj = self._project_ref(project)
            body = payload if payload is not None else self._sample_payload(proj, event, ref)
            targets = [
                dict(h)
                for _, h in sorted(self._hooks[proj.id].items())
                if h.get(event)
                and self._executable(h)
                and (event != "push_events" or self._branch_allowed(h, ref))
            ]
        return [self._execute(proj.id, hook, event, body, timeout=timeout) for hook in targets]

    def _test_hook(self, user: User, project: Project, hook: dict[str, Any], trigger: str) -> Any:
        """``POST /projects/:id/hooks/:hook_id/test/:trigger`` (lib/api/hooks/trigger_test.rb):
        rate limited, then TestHooks::ProjectService executes the hook even when it is disabled
        (the outcome updates its failure state like any delivery, so a success re-enables it);
        201 on a 2xx answer, else 422."""
        if trigger not in HOOK_EVENT_FIELDS:
            raise _bad("trigger does not have a valid value")
        self._check_hook_test_rate(user, project)
        body = self._sample_payload(project, trigger, f"refs/heads/{project.default_branch}")
        snapshot = dict(hook)

        def run() -> Response:
            done = self._execute(project.id, snapshot, trigger, body, timeout=10.0, test=True)
            if 200 <= done.status < 300:
                return Response.json(201, {"message": "201 Created"})
            reason = f"Hook execution failed: {done.status or 'no response'}"
            return Response.json(422, {"message": reason})

        raise _OutsideLock(run)

    def _execute(
        self,
        project_id: int,
        hook: dict[str, Any],
        event: str,
        payload: dict[str, Any],
        *,
        timeout: float,
        test: bool = False,
    ) -> Delivery:
        """One POST (app/services/web_hook_service.rb: headers, response_category), then the
        failure-state update of web_hooks/log_execution_service.rb (:ok -> enable!, :error ->
        backoff!, :failed -> failed!). The lock is not held while the receiver answers."""
        body = json.dumps(payload).encode("utf-8")
        idempotency_key = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"GitLab/{self.version}",
            "Idempotency-Key": idempotency_key,
            "X-Gitlab-Event": HOOK_EVENT_HEADERS.get(event, "Push Hook"),
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "X-Gitlab-Instance": f"http://127.0.0.1:{self.port}",
        }
        if hook.get("token"):
            headers["X-Gitlab-Token"] = str(hook["token"])
        if _version_at_least(self.version, 19):
            # Standard Webhooks headers (reference: gitlab.md, "GitLab 19.0+ optional signing
            # token"): id and timestamp on every delivery, the signature only with a signing token
            stamp = str(int(self._utcnow().timestamp()))
            headers["webhook-id"] = idempotency_key
            headers["webhook-timestamp"] = stamp
            secret = str(hook.get("signing_token") or "")
            if secret.startswith("whsec_"):
                key = base64.b64decode(secret[len("whsec_") :])
                mac = hmac.new(key, f"{idempotency_key}.{stamp}.".encode() + body, hashlib.sha256)
                headers["webhook-signature"] = "v1," + base64.b64encode(mac.digest()).decode()
        for header in hook.get("custom_headers", []):
            headers[header["key"]] = header["value"]
        try:
            answer = requests.post(
                hook["url"],
                data=body,
                headers=headers,
                timeout=timeout,
                verify=bool(hook.get("enable_ssl_verification", True)),
                allow_redirects=False,
            )
            status = answer.status_code
        except requests.RequestException:
            status = 0
        if 200 <= status < 400:
            category: Literal["ok", "error", "failed"] = "ok"
        elif status in (0, 500) or self.failure_categories == "ok_error":
            category = "error"  # InternalErrorResponse (no answer) or 500
        else:
            category = "failed"
        with self.lock:
            stored = self._hooks.get(project_id, {}).get(int(hook["id"]))
            if stored is not None:
                if category == "ok":
                    self._enable(stored)
                elif category == "error":
                    self._backoff(stored)
                else:
                    self._failed(stored)
            delivery = Delivery(
                int(hook["id"]),
                project_id,
                str(hook["url"]),
                headers["X-Gitlab-Event"],
                headers,
                body,
                status,
                category,
                test,
            )
            self._deliveries.append(delivery)
        return delivery

    @staticmethod
    def _branch_allowed(hook: dict[str, Any], ref: str) -> bool:
        """``push_events_branch_filter`` (app/models/hooks/active_hook_filter.rb)."""
        branch = ref.removeprefix("refs/heads/")
        strategy = hook.get("branch_filter_strategy", "wildcard")
        pattern = str(hook.get("push_events_branch_filter") or "")
        if strategy == "all_branches" or not pattern.strip():
            return True
        if strategy == "regex":
            return re.search(pattern, branch) is not None
        # RefMatcher: '*' matches anything (also '/'), the rest literally, whole name
        regex = ".*?".join(re.escape(part) for part in pattern.strip().split("*"))
        return re.fullmatch(regex, branch) is not None

    def _sample_payload(self, project: Project, event: str, ref: str) -> dict[str, Any]:
        """A payload shaped like lib/gitlab/data_builder/push.rb and merge_request.rb build."""
        sha = hashlib.sha1(f"{project.id}:{ref}:{time.time_ns()}".encode()).hexdigest()
        web_url = f"http://127.0.0.1:{self.port}/{project.path_with_namespace}"
        project_json = {
            "id": project.id,
            "name": project.path,
            "path_with_namespace": project.path_with_namespace,
            "default_branch": project.default_branch,
            "web_url": web_url,
            "git_http_url": web_url + ".git",
            "git_ssh_url": f"git@127.0.0.1:{project.path_with_namespace}.git",
        }
        commit = {
            "id": sha,
            "message": "Update README\n",
            "title": "Update README",
            "timestamp": self._utcnow().isoformat(),
            "author": {"name": "Maintainer", "email": "maintainer@example.com"},
        }
        if event == "merge_requests_events":
            return {
                "object_kind": "merge_request",
                "event_type": "merge_request",
                "user": {"id": 1, "name": "Maintainer", "username": "maintainer"},
                "project": project_json,
                "object_attributes": {
                    "id": 1,
                    "iid": 1,
                    "action": "open",
                    "state": "opened",
                    "source_branch": "feature",
                    "target_branch": project.default_branch,
                    "source_project_id": project.id,
                    "target_project_id": project.id,
                    "last_commit": commit,
                    "url": web_url + "/-/merge_requests/1",
                },
            }
        kind = "tag_push" if event == "tag_push_events" else "push"
        if kind == "tag_push" and not ref.startswith("refs/tags/"):
            ref = "refs/tags/v1.0.0"
        return {
            "object_kind": kind,
            "event_name": kind,
            "before": ZERO_SHA if kind == "tag_push" else "1" * 40,
            "after": sha,
            "ref": ref,
            "ref_protected": False,
            "checkout_sha": sha,
            "user_id": 1,
            "user_name": "Maintainer",
            "user_username": "maintainer",
            "project_id": project.id,
            "project": project_json,
            "commits": [commit],
            "total_commits_count": 1,
            "push_options": {},
            "repository": {"name": project.path, "homepage": web_url},
        }

    # ------------------------------------------------------------------ statuses
    # Sources (gitlab-org/gitlab): app/services/ci/create_commit_status_service.rb (reuse, pipeline,
    # policy check, `apply_job_state!`), app/models/commit_status.rb (`state_machine :status`),
    # lib/api/commit_statuses.rb (400 on StateMachines::InvalidTransition, MR head pipelines),
    # app/policies/ci/pipeline_policy.rb (`protected_ref` prevents :update_pipeline),
    # lib/gitlab/user_access.rb (`can_update_branch?` = push or merge; tags: `can_create_tag?`),
    # lib/gitlab/ref_matcher.rb (protected-ref wildcards). Expected answers are the ones in
    # spec/requests/api/commit_statuses_spec.rb.
    def _check_sha(self, project: Project, sha: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{7,40}", sha) or (
            project.commits is not None and sha not in project.commits
        ):
            raise ApiError(404, {"message": "404 Commit Not Found"})

    @staticmethod
    def _ref_matches(pattern: str, ref: str) -> bool:
        # RefMatcher: exact name, or `*` as `.*?` between quoted segments, anchored.
        if pattern == ref:
            return True
        if "*" not in pattern:
            return False
        regex = ".*?".join(re.escape(part) for part in pattern.split("*"))
        return re.fullmatch(regex, ref, re.DOTALL) is not None

    def _can_update_pipeline(self, project: Project, user: User, pipeline: Pipeline) -> bool:
        """Ci::PipelinePolicy: on a protected ref, :update_pipeline needs rights *there*."""
        role = self._role(project, user)
        level = ROLE_LEVELS[role] if role is not None else 0
        if pipeline.tag:
            rules = [r for r in project.protected_tags if self._ref_matches(r.name, pipeline.ref)]
            # can_create_tag?: any matching rule's create level (no rule: Developer may).
            return any(0 < r.create <= level for r in rules) if rules else level >= 30
        rules = [r for r in project.protected_branches if self._ref_matches(r.name, pipeline.ref)]
        if not rules:
            return level >= 30  # can_push_to_branch? on an unprotected branch: push_code
        return any(0 < r.push <= level or 0 < r.merge <= level for r in rules)

    def _first_matching_pipeline(
        self, project: Project, sha: str, ref: str | None, pipeline_id: int | None
    ) -> Pipeline | None:
        for pipeline in reversed(self._pipelines):  # newest_first(sha:)
            if pipeline.project_id != project.id or pipeline.sha != sha:
                continue
            if ref is not None and pipeline.ref != ref:
                continue
            if pipeline_id is not None and pipeline.id != pipeline_id:
                continue
            return pipeline
        return None

    def _post_status(self, request: Request, user: User, project: Project, sha: str) -> Response:
        data = request.json()
        if not isinstance(data, dict):
            raise _bad("body must be a JSON object")
        state = data.get("state")
        if state is None:
            raise _bad("state is missing")
        if state not in STATUS_STATES:
            raise _bad("state does not have a valid value")
        for name in ("ref", "target_url", "description", "name", "context"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise _bad(f"{name} is invalid")
        for name in ("ref", "target_url", "description"):
            value = data.get(name)
            if value is not None and len(value) > 255:
                raise _bad(f"{name} is too long (maximum is 255 characters)")
        pipeline_id = data.get("pipeline_id")
        if pipeline_id is not None:
            try:
                pipeline_id = int(pipeline_id)
            except (TypeError, ValueError):
                raise _bad("pipeline_id is invalid") from None
        self._check_sha(project, sha)
        given_ref: str | None = data.get("ref") or None
        matching = self._first_matching_pipeline(project, sha, given_ref, pipeline_id)
        if pipeline_id is not None and matching is None:
            raise ApiError(404, {"message": "404 Pipeline for pipeline_id, sha and ref Not Found"})
        # `ref`: params[:ref] || first_matching_pipeline&.ref || a branch containing the commit
        # (the emulator's repository has only the default branch).
        ref = given_ref or (matching.ref if matching else project.default_branch)
        pipeline = matching
        if pipeline is None:  # create_pipeline: source external, and never `tag`
            pipeline = Pipeline(next(self._pipeline_ids), project.id, sha, ref)
            self._pipelines.append(pipeline)
        if not self._can_update_pipeline(project, user, pipeline):
            # The service answers `forbidden` before touching the status.
            raise ApiError(403, {"message": "403 Forbidden"})
        name = data.get("name") or data.get("context") or "default"
        # external_commit_status_scope: running_or_pending, same project, pipeline, ref, name, user.
        status = next(
            (
                s
                for s in reversed(self._status_records)
                if s.state in ACTIVE_STATES
                and s.project_id == project.id
                and s.pipeline_id == pipeline.id
                and s.ref == ref
                and s.name == name
                and s.user_id == user.id
            ),
            None,
        )
        if status is None:  # a finished status is never reused: the next post starts another
            status = CommitStatus(
                id=next(self._status_ids),
                project_id=project.id,
                pipeline_id=pipeline.id,
                sha=sha,
                ref=ref,
                name=name,
                user_id=user.id,
            )
            is_new = True
        else:
            is_new = False
        new_state = self._apply_job_state(status.state, state)
        # Only a successful transition saves the optional attributes (the spec's "does not
        # update the commit status" case keeps the old description).
        status.state = new_state
        for key in ("target_url", "description"):
            if data.get(key) is not None:
                setattr(status, key, data[key])
        if data.get("coverage") is not None:
            status.coverage = float(data["coverage"])
        now = _now()
        if new_state == "running" and status.started_at is None:
            status.started_at = now
        if new_state not in ACTIVE_STATES:
            status.finished_at = now
        if is_new:
            self._status_records.append(status)
        self._statuses.append(
            StatusRecord(
                id=len(self._statuses) + 1,
                project_id=project.id,
                sha=sha,
                state=new_state,
                name=name,
                ref=ref,
                target_url=status.target_url,
                description=status.description,
                user=user.username,
                status_id=status.id,
                pipeline_id=pipeline.id,
            )
        )
        return Response.json(201, self._status_json(status, project))

    @staticmethod
    def _apply_job_state(current: str, wanted: str) -> str:
        """`apply_job_state!`: the state after the events the service fires, or a 400."""

        def fire(event: str, state: str, *, bang: bool = True) -> str:
            target, sources = STATUS_EVENTS[event]
            if state in sources:
                return target
            if not bang:
                return state  # `job.enqueue` without a bang just returns false
            raise ApiError(
                400,
                {
                    "message": f"Cannot transition status via :{event} from :{state} "
                    f'(Reason(s): Status cannot transition via "{event}")'
                },
            )

        if wanted == "pending":
            return fire("enqueue", current)
        if wanted == "running":
            return fire("run", fire("enqueue", current, bang=False))
        event = {"success": "success", "failed": "drop", "canceled": "cancel", "skipped": "skip"}
        return fire(event[wanted], current)

    def _list_statuses(self, request: Request, project: Project, sha: str) -> list[dict[str, Any]]:
        """GET .../statuses: the latest per name and ref unless ``all``; ``ref``/``name`` filter."""
        records = [s for s in self._status_records if s.project_id == project.id and s.sha == sha]
        if not _query_bool(request, "all"):
            latest: dict[tuple[str, str], CommitStatus] = {}
            for record in records:
                latest[(record.name, record.ref)] = record
            records = [r for r in records if latest[(r.name, r.ref)] is r]
        for key in ("ref", "name"):
            wanted = request.query.get(key)
            if wanted:
                records = [r for r in records if getattr(r, key) == wanted]
        # Ordered by `order_by` (id | pipeline_id, default id) and `sort` (asc default | desc);
        # commit_statuses_spec.rb: "Get all commit statuses" lists ascending ids.
        order_by = request.query.get("order_by", "id")
        sort = request.query.get("sort", "asc")
        if order_by not in ("id", "pipeline_id") or sort not in ("asc", "desc"):
            raise _bad("order_by does not have a valid value")
        records.sort(key=lambda r: (r.pipeline_id, r.id) if order_by == "pipeline_id" else r.id)
        if sort == "desc":
            records.reverse()
        return [self._status_json(r, project) for r in records]

    def _status_json(self, record: CommitStatus, project: Project) -> dict[str, Any]:
        del project
        user = self.users.get(record.user_id)
        return {
            "id": record.id,
            "sha": record.sha,
            "ref": record.ref,
            "status": record.state,
            "name": record.name,
            "target_url": record.target_url,
            "description": record.description,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "allow_failure": False,
            "coverage": record.coverage,
            "pipeline_id": record.pipeline_id,
            "author": {"username": user.username if user else None},
        }

    # ------------------------------------------------------------------ merge requests
    @staticmethod
    def _composite(states: list[str]) -> str:
        """Gitlab::Ci::Status::Composite, reduced to the states external statuses take."""
        if not states:
            return "created"
        for state in ("running", "pending", "failed", "canceled", "success"):
            if state in states:
                return state
        return "skipped"

    def _head_pipeline(self, mr: MergeRequest) -> dict[str, Any] | None:
        # The MR shows pipelines of its *source* project on the source branch for its head sha
        # (lib/api/commit_statuses.rb: MergeRequest.where(source_project:, source_branch: ref)).
        for pipeline in reversed(self._pipelines):
            if (
                pipeline.project_id == mr.source_project_id
                and pipeline.ref == mr.source_branch
                and pipeline.sha == mr.sha
                and not pipeline.tag
            ):
                states = [s.state for s in self._status_records if s.pipeline_id == pipeline.id]
                return {
                    "id": pipeline.id,
                    "project_id": pipeline.project_id,
                    "sha": pipeline.sha,
                    "ref": pipeline.ref,
                    "status": self._composite(states),
                    "source": pipeline.source,
                }
        return None

    def _merge_request_json(self, project: Project, iid: str) -> dict[str, Any]:
        mr = next(
            (m for m in self._merge_requests if m.project_id == project.id and str(m.iid) == iid),
            None,
        )
        if mr is None:
            raise _not_found()
        return {
            "iid": mr.iid,
            "project_id": mr.project_id,
            "source_project_id": mr.source_project_id,
            "target_project_id": mr.project_id,
            "source_branch": mr.source_branch,
            "target_branch": mr.target_branch,
            "sha": mr.sha,
            "state": "opened",
            "head_pipeline": self._head_pipeline(mr),
        }
