"""A strict GitLab API v4 emulator (projects, groups, project hooks, commit statuses).

Behaviour follows /work/shared/reference/gitlab.md: PRIVATE-TOKEN / Bearer auth with 401
``{"message":"401 Unauthorized"}``, per-project roles (403 for non-maintainers on hooks, 404 for
hidden projects), offset pagination with GitLab's headers and ``Link``, write-only hook tokens,
``url`` changes resetting the token, 201/204 codes, and the validation errors GitLab gives.

Test-side inspection (plain Python, no HTTP): :meth:`GitLabEmulator.hooks`,
:meth:`GitLabEmulator.hook_token`, :meth:`GitLabEmulator.insert_hook`,
:meth:`GitLabEmulator.statuses`, plus the shared ``log`` and ``faults`` (see ``server.py``).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

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
STATUS_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")


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

    @property
    def path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StatusRecord:
    """One commit status as GitLab stored it (in arrival order)."""

    id: int
    project_id: int
    sha: str
    state: str
    name: str
    ref: str
    target_url: str | None
    description: str | None
    user: str


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

    def __init__(self, *, max_hooks_per_project: int = 100) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self._hook_ids = itertools.count(1)
        self._status_ids = itertools.count(1)
        self.users: dict[int, User] = {}
        self.tokens: dict[str, str] = {}  # username -> token (for tests)
        self.groups: dict[int, Group] = {}
        self.projects: dict[int, Project] = {}
        self._hooks: dict[int, dict[int, dict[str, Any]]] = {}  # project id -> hook id -> stored
        self._statuses: list[StatusRecord] = []
        self.max_hooks_per_project = max_hooks_per_project
        # Hook creation rate limit (newer GitLab): off unless a test turns it on.
        self.hook_rate_limit: int | None = None  # creations per window per user per project
        self.hook_rate_window = 60.0
        self._hook_creations: dict[tuple[int, int], deque[float]] = {}

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

    def insert_hook(
        self, project: str | int, url: str, *, token: str | None = None, **fields: Any
    ) -> int:
        """Store a hook directly (no validation, no log entry): duplicates, someone else's hooks."""
        with self.lock:
            proj = self._project_ref(project)
            hook = self._new_hook(proj.id, {"url": url, "token": token or "", **fields})
            return int(hook["id"])

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
        for group in self.groups.values():
            if group.full_path == full_path:
                return group
        return None

    def _project_ref(self, ref: str | int) -> Project:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            project = self.projects.get(int(ref))
            if project is None:
                raise KeyError(ref)
            return project
        for project in self.projects.values():
            if project.path_with_namespace == ref:
                return project
        raise KeyError(ref)

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
            with self.lock:
                return self._dispatch(request, user, segments)
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
                items = [
                    self._status_json(s, project)
                    for s in self._statuses
                    if s.project_id == project.id and s.sha == rest[2]
                ]
                items.reverse()  # newest first, as GitLab lists them
                return self._paginate(request, items)
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
        projects = [
            p
            for _, p in sorted(self.projects.items())
            if p.namespace_id in namespaces
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
            "alert_status": "executable",
            "disabled_until": None,
            "url_variables": [],
            "custom_headers": [],
            "token": "",
            **HOOK_BOOL_DEFAULTS,
        }
        hook.update({k: v for k, v in values.items() if v is not None})
        self._hooks[project_id][hook["id"]] = hook
        return hook

    @staticmethod
    def _hook_json(hook: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in hook.items() if k != "token"}
        public["url_variables"] = [{"key": v["key"]} for v in hook.get("url_variables", [])]
        public["custom_headers"] = [{"key": v["key"]} for v in hook.get("custom_headers", [])]
        return public

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
        for name in (*HOOK_STRING_FIELDS, "token", "url"):
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

    def _check_hook_rate(self, user: User, project: Project) -> None:
        if self.hook_rate_limit is None:
            return
        key = (user.id, project.id)
        now = time.monotonic()
        window = self._hook_creations.setdefault(key, deque())
        while window and now - window[0] >= self.hook_rate_window:
            window.popleft()
        if len(window) >= self.hook_rate_limit:
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
                self._check_hook_rate(user, project)
                created = self._new_hook(project.id, params)
                return Response.json(201, self._hook_json(created))
            raise ApiError(405, {"error": "405 Method Not Allowed"})
        if len(rest) != 1 or not rest[0].isdigit():
            raise ApiError(404, {"error": "404 Not Found"})
        hook_id = int(rest[0])
        hook = hooks.get(hook_id)
        if hook is None:
            raise _not_found()
        if method == "GET":
            return Response.json(200, self._hook_json(hook))
        if method == "PUT":
            params = self._hook_params(request.json())
            candidate = {**hook, **params}
            self._validate_hook(candidate)
            if params["url"] != hook["url"] and "token" not in params:
                candidate["token"] = ""  # a new URL invalidates the old secret
            hooks[hook_id] = candidate
            return Response.json(200, self._hook_json(candidate))
        if method == "DELETE":
            del hooks[hook_id]
            return Response(204)
        raise ApiError(405, {"error": "405 Method Not Allowed"})

    @staticmethod
    def _defaults_for_validation() -> dict[str, Any]:
        return {"push_events_branch_filter": "", "branch_filter_strategy": "wildcard"}

    # ------------------------------------------------------------------ statuses
    def _check_sha(self, project: Project, sha: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{7,40}", sha) or (
            project.commits is not None and sha not in project.commits
        ):
            raise ApiError(404, {"message": "404 Commit Not Found"})

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
        self._check_sha(project, sha)
        name = data.get("name") or data.get("context") or "default"
        record = StatusRecord(
            id=next(self._status_ids),
            project_id=project.id,
            sha=sha,
            state=state,
            name=name,
            ref=data.get("ref") or project.default_branch,
            target_url=data.get("target_url"),
            description=data.get("description"),
            user=user.username,
        )
        self._statuses.append(record)
        return Response.json(201, self._status_json(record, project))

    def _status_json(self, record: StatusRecord, project: Project) -> dict[str, Any]:
        del project
        return {
            "id": record.id,
            "sha": record.sha,
            "ref": record.ref,
            "status": record.state,
            "name": record.name,
            "target_url": record.target_url,
            "description": record.description,
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "allow_failure": False,
            "coverage": None,
            "author": {"username": record.user},
        }
