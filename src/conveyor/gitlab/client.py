"""conveyor's one door to the GitLab API: python-gitlab, configured and with errors mapped.

:func:`make_gitlab` builds a ``gitlab.Gitlab`` that retries 429 (sleeping ``Retry-After``) and
transient 5xx / connection failures. :class:`GitLabClient` wraps the handful of calls conveyor
makes, each declared once with :func:`_operation` (what it is about, what it does, the role it
needs); every python-gitlab or requests failure is mapped in one place, :meth:`GitLabClient._errors`,
to a :class:`conveyor.errors.GitLabError` subclass whose ``subject`` is the project (or group), whose
message names it and the reason, and never the token.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import gitlab
import gitlab.exceptions
import requests

from conveyor.errors import (
    GitLabAuthError,
    GitLabError,
    GitLabForbiddenError,
    GitLabNotFoundError,
)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 6
PER_PAGE = 100  # GitLab's maximum: fewest round trips when reading all pages

T = TypeVar("T")
P = ParamSpec("P")


def make_gitlab(
    url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT, ssl_verify: bool = True
) -> gitlab.Gitlab:
    """A python-gitlab client that retries 429 and transient errors (5xx, dropped connections)."""
    return gitlab.Gitlab(
        url,
        private_token=token,
        timeout=timeout,
        ssl_verify=ssl_verify,
        retry_transient_errors=True,
        per_page=PER_PAGE,
    )


@dataclass(frozen=True)
class ProjectInfo:
    """The fields conveyor reads from a GitLab project."""

    id: int
    path_with_namespace: str
    default_branch: str | None
    archived: bool
    http_url_to_repo: str
    web_url: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ProjectInfo:
        return cls(
            id=int(data["id"]),
            path_with_namespace=str(data["path_with_namespace"]),
            default_branch=data.get("default_branch"),
            archived=bool(data.get("archived", False)),
            http_url_to_repo=str(data.get("http_url_to_repo", "")),
            web_url=str(data.get("web_url", "")),
        )


def _reason(exc: gitlab.exceptions.GitlabError) -> str:
    message = exc.error_message
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if isinstance(message, dict):
        parts = []
        for key, value in message.items():
            text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(f"{key} {text}")
        return "; ".join(parts)
    return str(message)


def _operation(
    subject: str, action: str, role: str
) -> Callable[
    [Callable[Concatenate[GitLabClient, P], T]], Callable[Concatenate[GitLabClient, P], T]
]:
    """Declare one GitLab call: ``subject`` and ``action`` are templates over the method's
    arguments (``"{project}"``, ``"update webhook {hook_id}"``, ``"{project}@{sha:.12}"``), ``role``
    the GitLab role it needs (for the message of a 403). The call runs inside
    :meth:`GitLabClient._errors`."""

    def wrap(
        fn: Callable[Concatenate[GitLabClient, P], T],
    ) -> Callable[Concatenate[GitLabClient, P], T]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(self: GitLabClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
            named = signature.bind(self, *args, **kwargs).arguments
            with self._errors(subject.format(**named), action.format(**named), role):
                return fn(self, *args, **kwargs)

        return call

    return wrap


class GitLabClient:
    """The GitLab calls conveyor makes, each mapped to conveyor errors.

    ``project`` arguments are a numeric id or a ``group/project`` path.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        ssl_verify: bool = True,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0 (python-gitlab's -1 means forever)")
        self.url = url.rstrip("/")
        self.max_retries = max_retries
        self._token = token
        self.gl = make_gitlab(url, token, timeout=timeout, ssl_verify=ssl_verify)

    def __repr__(self) -> str:
        return f"GitLabClient(url={self.url!r})"

    # ------------------------------------------------------------------ error mapping
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    @contextmanager
    def _errors(self, subject: str, action: str, role: str) -> Iterator[None]:
        """Map python-gitlab / requests exceptions raised inside to conveyor errors about
        ``subject``; conveyor errors raised inside pass through."""
        try:
            yield
        except gitlab.exceptions.GitlabAuthenticationError:
            raise GitLabAuthError(
                f"{subject}: 401 Unauthorized — GitLab refused the token while trying to {action}",
                status=401,
                subject=subject,
                hint="check the GitLab token: it may be wrong, expired or revoked",
            ) from None
        except gitlab.exceptions.GitlabError as exc:
            code = exc.response_code
            reason = self._scrub(_reason(exc))
            if code == 403:
                raise GitLabForbiddenError(
                    f"{subject}: 403 Forbidden — the token's user needs the {role} role "
                    f"to {action}",
                    status=403,
                    subject=subject,
                    hint=f"give the token's user the {role} role on {subject}",
                ) from None
            if code == 404:
                raise GitLabNotFoundError(
                    f"{subject}: 404 Not Found — it does not exist or the token's user "
                    f"cannot see it (while trying to {action})",
                    status=404,
                    subject=subject,
                ) from None
            if code == 429:
                raise GitLabError(
                    f"{subject}: 429 Too Many Requests — still rate limited after "
                    f"{self.max_retries} retries while trying to {action}",
                    status=429,
                    subject=subject,
                    hint="wait a minute and run again",
                ) from None
            shown = f"HTTP {code}" if code else "error"
            raise GitLabError(
                f"{subject}: could not {action}: {shown}: {reason}", status=code, subject=subject
            ) from None
        except requests.RequestException as exc:
            raise GitLabError(
                f"{subject}: could not {action}: cannot reach GitLab at {self.url} "
                f"({type(exc).__name__}, after {self.max_retries} retries)",
                subject=subject,
            ) from None

    def _opts(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "obey_rate_limit": True}

    def _project(self, project: int | str) -> Any:
        return self.gl.projects.get(project, lazy=True)

    # ------------------------------------------------------------------ reads
    @_operation("{self.url}", "read the current user", "any")
    def current_username(self) -> str:
        data = self.gl.http_get("/user", **self._opts())
        assert isinstance(data, dict)
        return str(data["username"])

    @_operation("{project}", "read the project", "Reporter")
    def get_project(self, project: int | str) -> ProjectInfo:
        return ProjectInfo.from_api(self.gl.projects.get(project, **self._opts()).attributes)

    @_operation("{project}", "list webhooks", "Maintainer")
    def list_hooks(self, project: int | str) -> list[dict[str, Any]]:
        """Every hook of the project, all pages."""
        hooks = self._project(project).hooks.list(get_all=True, **self._opts())
        return [dict(h.attributes) for h in hooks]

    @_operation("group {group}", "list projects", "Reporter")
    def list_group_projects(
        self, group: int | str, *, include_subgroups: bool = True, archived: bool | None = False
    ) -> list[dict[str, Any]]:
        """The group's own projects (and its subgroups'), all pages: not the projects other
        groups share with it (GitLab lists those unless ``with_shared=false``, lib/api/groups.rb).
        ``archived=None``: both kinds."""
        query: dict[str, Any] = {"include_subgroups": include_subgroups, "with_shared": False}
        if archived is not None:
            query["archived"] = archived
        group_api = self.gl.groups.get(group, lazy=True)
        projects = group_api.projects.list(get_all=True, **query, **self._opts())
        return [dict(p.attributes) for p in projects]

    @_operation("{project}@{sha:.12}", "read commit statuses", "Reporter")
    def latest_commit_status(
        self, project: int | str, sha: str, *, ref: str | None, name: str
    ) -> dict[str, Any] | None:
        """The newest status named ``name`` on ``ref`` of a commit, or ``None`` (one request)."""
        commit = self._project(project).commits.get(sha, lazy=True)
        params: dict[str, Any] = {"name": name, "sort": "desc", "per_page": 1}
        if ref is not None:
            params["ref"] = ref
        found = commit.statuses.list(get_all=False, **params, **self._opts())
        return dict(found[0].attributes) if found else None

    # ------------------------------------------------------------------ writes
    @_operation("{project}", "create a webhook", "Maintainer")
    def create_hook(self, project: int | str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Create a hook, with no transient retry: a lost answer may hide a created hook, so the
        caller looks before creating again (:func:`conveyor.gitlab.hooks.create_once`). 429 is
        still retried: GitLab answered it without creating anything."""
        hook = self._project(project).hooks.create(
            dict(data), retry_transient_errors=False, **self._opts()
        )
        return dict(hook.attributes)

    @_operation("{project}", "test webhook {hook_id}", "Maintainer")
    def test_hook(self, project: int | str, hook_id: int, trigger: str) -> None:
        """One test delivery (``POST .../hooks/:id/test/:trigger``): the only API call that
        re-enables a hook GitLab disabled. GitLab allows 5 a minute: a 429 is reported at once,
        not slept on."""
        hook = self._project(project).hooks.get(hook_id, lazy=True)
        try:
            hook.manager.gitlab.http_post(
                f"{hook.manager.path}/{hook_id}/test/{trigger}",
                obey_rate_limit=False,
                max_retries=0,
                retry_transient_errors=False,
            )
        except gitlab.exceptions.GitlabHttpError as exc:  # what these two answers mean here
            if exc.response_code == 429:
                raise GitLabError(
                    f"{project}: webhook {hook_id} is still disabled: GitLab rate-limits hook "
                    "tests (5 a minute per project and user) and refused the test delivery "
                    "that re-enables it",
                    status=429,
                    subject=str(project),
                    hint="run `conveyor apply` again in a minute",
                ) from None
            if exc.response_code == 422:
                raise GitLabError(
                    f"{project}: webhook {hook_id} is still disabled: its test delivery failed "
                    f"({self._scrub(_reason(exc))})",
                    status=422,
                    subject=str(project),
                    hint="check that the receiver answers at the hook's URL, then run "
                    "`conveyor apply` again",
                ) from None
            raise

    @_operation("{project}", "update webhook {hook_id}", "Maintainer")
    def update_hook(
        self, project: int | str, hook_id: int, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        if "url" not in data:
            raise ValueError("GitLab requires url on every hook update")
        return dict(self._project(project).hooks.update(hook_id, dict(data), **self._opts()))

    @_operation("{project}", "delete webhook {hook_id}", "Maintainer")
    def delete_hook(self, project: int | str, hook_id: int) -> bool:
        """Delete a hook. Returns False when it was already gone (404)."""
        try:
            self._project(project).hooks.delete(hook_id, **self._opts())
        except gitlab.exceptions.GitlabDeleteError as exc:
            if exc.response_code == 404:
                return False
            raise
        return True

    @_operation("{project}@{sha:.12}", "post a commit status", "Developer")
    def create_commit_status(
        self, project: int | str, sha: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        commit = self._project(project).commits.get(sha, lazy=True)
        status = commit.statuses.create(dict(data), **self._opts())
        return dict(status.attributes)
