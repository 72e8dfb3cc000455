"""conveyor's one door to Jenkins: python-jenkins, with bounded retries and conveyor errors.

Both users go through :class:`JenkinsClient`: the job sync (folders, jobs, config.xml) and the
receiver's Jenkins dispatcher (:mod:`conveyor.jenkins.dispatcher`: trigger a build, read the queue,
follow the build). :func:`job_url` is the one way a job path becomes a URL.

One python-jenkins ``Jenkins`` object per thread (each has its own ``requests`` session, so its own
CSRF crumb and the ``JSESSIONID`` cookie the crumb is bound to): the sync runs many threads at once,
the receiver one per worker. python-jenkins asks ``crumbIssuer/api/json`` once per object and sends
the crumb on every later request; if Jenkins later refuses it (403 "No valid crumb", e.g. after a
restart) the crumb is dropped and asked for again, once. That retry is safe even for a request that
must not be sent twice (``buildWithParameters``): Jenkins' ``CrumbFilter.doFilter`` answers an
invalid crumb with ``sendError(403, "No valid crumb was included in the request")`` instead of
passing the request on (``core/src/main/java/hudson/security/csrf/CrumbFilter.java``), so nothing
was done.

Retries: 5xx, 429 (``Retry-After`` honoured), timeouts and dropped connections are retried with
exponential backoff, a bounded number of times, on reads and on writes that are idempotent or made
so here: creating a folder or a job that already exists is not an error when what exists is what we
wanted (``create_job`` re-reads the job and rewrites it only if it differs); deleting a job that is
already gone is not an error. Triggering a build is never retried (a lost answer may hide a queued
build: the dispatcher looks for it instead). Every library exception is mapped in one place,
:meth:`JenkinsClient._errors`, to a :class:`conveyor.errors.JenkinsError` whose ``subject`` is the
job (or Jenkins); 401 is refused credentials, 403 a missing permission, named per operation.
Messages never contain config.xml bodies (they hold the trigger secret) nor the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import jenkins
import requests

from conveyor.errors import JenkinsAuthError, JenkinsError, JenkinsNotFoundError

T = TypeVar("T")

FOLDER_MODE = "com.cloudbees.hudson.plugins.folder.Folder"
_XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
_TREE = "jobs"
for _ in range(10):
    _TREE = f"jobs[name,{_TREE}]"
_BUILDS_TREE = "builds[number,url,queueId,actions[parameters[name,value]]]"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A 500 that retrying cannot fix: Jenkins could not read the XML we sent.
_PERMANENT_500 = ("Unable to read", "CannotResolveClassException", "Expecting class", "XmlPull")
# The permissions an operation needs, for the hint of a 403 (hudson.model.Item's permissions).
READ = "Overall/Read and Job/Read"
BUILD = "Job/Build"
CREATE = "Job/Create"
CONFIGURE = "Job/Configure"
DELETE = "Job/Delete"


def job_url(base_url: str, job: str) -> str:
    """The URL of a (possibly foldered) job: ``a/b`` -> ``BASE/job/a/job/b/``, each part quoted."""
    return base_url.rstrip("/") + "/" + "".join(f"job/{quote(p, safe='')}/" for p in job.split("/"))


@dataclass(frozen=True)
class JenkinsItem:
    """One item found by :meth:`JenkinsClient.list_items`."""

    full_name: str
    is_folder: bool


class _Retry(Exception):
    """Internal: a failure worth another attempt (never leaves :meth:`JenkinsClient._call`)."""

    def __init__(self, error: JenkinsError, wait: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


class JenkinsClient:
    """Folders, jobs and builds on one Jenkins, safe to share between threads."""

    def __init__(
        self,
        url: str,
        user: str,
        token: str,
        *,
        timeout: float = 30.0,
        attempts: int = 5,
        backoff: float = 0.2,
        max_wait: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._user = user
        self._token = token
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self._local = threading.local()

    def __repr__(self) -> str:  # never show the token
        return f"JenkinsClient({self.url!r}, user={self._user!r})"

    # ------------------------------------------------------------------ plumbing
    @property
    def api(self) -> jenkins.Jenkins:
        """This thread's python-jenkins object."""
        server: jenkins.Jenkins | None = getattr(self._local, "server", None)
        if server is None:
            server = jenkins.Jenkins(
                self.url, username=self._user, password=self._token, timeout=self.timeout
            )
            self._local.server = server
        return server

    def _url(self, path: str) -> str:
        return job_url(self.url, path)

    def _parent_url(self, path: str) -> tuple[str, str]:
        parent, _, short = path.rpartition("/")
        return (self._url(parent) if parent else self.url + "/"), short

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        # Reads need no crumb: only the first write of each thread asks for one.
        response: requests.Response = self.api.jenkins_request(
            requests.Request(method, url, **kwargs), add_crumb=method != "GET"
        )
        return response

    def _get_json(self, url: str) -> Any:
        return self._request("GET", url).json()

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        subject: str | None = None,
        need: str = READ,
        retry: bool = True,
    ) -> T:
        """Run ``fn`` inside :meth:`_errors` and, if ``retry``, with bounded retries and backoff.
        A refused crumb is asked for again once, even without ``retry`` (nothing was done)."""
        attempts = self.attempts if retry else 1
        crumb_refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._errors(what, subject=subject, need=need):
                    return fn()
            except _Retry as exc:
                if exc.error.status == 403 and not crumb_refreshed:
                    crumb_refreshed = True
                    self.api.crumb = None  # ask for a fresh crumb, once
                    attempt -= 1
                    continue
                if attempt >= attempts or exc.error.status == 403:
                    raise exc.error from None
                wait = exc.wait if exc.wait is not None else self.backoff * 2 ** (attempt - 1)
                time.sleep(min(wait, self.max_wait))

    @contextmanager
    def _errors(self, what: str, *, subject: str | None, need: str) -> Iterator[None]:
        """Map python-jenkins / requests exceptions raised inside to conveyor errors about
        ``subject`` ("Jenkins: <what>: <reason>"); failures worth another attempt leave as
        :class:`_Retry`. conveyor errors raised inside pass through."""
        subject = subject or self.url
        try:
            yield
        except jenkins.NotFoundException:
            raise JenkinsNotFoundError(
                f"Jenkins: {what}: not found (404)", status=404, subject=subject
            ) from None
        except jenkins.TimeoutException:
            raise _Retry(
                JenkinsError(
                    f"Jenkins: {what}: timed out after {self.timeout:g}s",
                    subject=subject,
                    hint="is Jenkins up and reachable?",
                )
            ) from None
        except jenkins.JenkinsException as exc:
            text = str(exc)
            for code in (401, 403, 500):
                if f"[{code}]" in text:
                    break
            else:
                code = 0
            if code == 401:
                raise JenkinsAuthError(
                    f"Jenkins: {what}: credentials refused (401)",
                    status=401,
                    subject=subject,
                    hint="check CONVEYOR_JENKINS_USER and CONVEYOR_JENKINS_TOKEN",
                ) from None
            if code == 403:
                if "crumb" in text.lower():
                    raise _Retry(
                        JenkinsAuthError(
                            f"Jenkins: {what}: CSRF crumb refused (403)",
                            status=403,
                            subject=subject,
                        )
                    ) from None
                raise JenkinsAuthError(
                    f"Jenkins: {what}: permission denied (403)",
                    status=403,
                    subject=subject,
                    hint=f"the CONVEYOR_JENKINS_USER needs {need} on {subject}",
                ) from None
            if code == 500:
                detail = _first_line(text.split("\n", 1)[1] if "\n" in text else "")
                error = JenkinsError(
                    f"Jenkins: {what}: server error (500) {detail}".rstrip(),
                    status=500,
                    subject=subject,
                )
                if any(marker in text for marker in _PERMANENT_500):
                    raise error from None
                raise _Retry(error) from None
            raise JenkinsError(f"Jenkins: {what}: {_first_line(text)}", subject=subject) from None
        except requests.HTTPError as exc:
            response = exc.response
            status = response.status_code if response is not None else None
            detail = _error_detail(response)
            error = JenkinsError(
                f"Jenkins: {what}: HTTP {status}{detail}", status=status, subject=subject
            )
            if status in _RETRY_STATUSES:
                raise _Retry(error, _retry_after(response)) from None
            raise error from None
        except requests.ConnectionError:
            raise _Retry(
                JenkinsError(
                    f"Jenkins: {what}: cannot reach Jenkins at {self.url}",
                    subject=subject,
                    hint="is CONVEYOR_JENKINS_URL right and Jenkins up?",
                )
            ) from None
        except requests.JSONDecodeError:
            raise JenkinsError(
                f"Jenkins: {what}: the answer is not JSON", subject=subject
            ) from None
        except requests.RequestException as exc:
            raise JenkinsError(f"Jenkins: {what}: {type(exc).__name__}", subject=subject) from None

    # ------------------------------------------------------------------ reads
    def whoami(self) -> str:
        """The authenticated user's id (checks URL and credentials)."""
        info = self._call("who am I", partial(self._get_json, self.url + "/me/api/json"))
        return str(info.get("id", ""))

    def list_items(self) -> list[JenkinsItem]:
        """Every folder and job, recursively (one request per 10 levels of folders)."""
        items: list[JenkinsItem] = []
        pending: list[str] = [""]
        while pending:
            folder = pending.pop(0)
            url = (self._url(folder) if folder else self.url + "/") + "api/json?tree=" + _TREE
            data: dict[str, Any] = self._call(
                f"list jobs in {folder or 'Jenkins'}",
                partial(self._get_json, url),
                subject=folder or None,
            )
            stack: list[tuple[str, list[dict[str, Any]]]] = [(folder, data.get("jobs") or [])]
            while stack:
                parent, jobs = stack.pop()
                for job in jobs:
                    if "name" not in job:  # deeper than the tree query reached
                        pending.append(parent)
                        break
                    name = f"{parent}/{job['name']}" if parent else str(job["name"])
                    is_folder = "jobs" in job or "Folder" in str(job.get("_class", ""))
                    items.append(JenkinsItem(name, is_folder))
                    if isinstance(job.get("jobs"), list):
                        stack.append((name, job["jobs"]))
        return items

    def get_config(self, job: str) -> str | None:
        """The job's config.xml as Jenkins stores it now, or None when the job does not exist."""
        try:
            return self._call(
                f"read job {job!r}",
                lambda: self._request("GET", self._url(job) + "config.xml").text,
                subject=job,
                need=f"{READ} and {CONFIGURE}",
            )
        except JenkinsNotFoundError:
            return None

    def item_kind(self, path: str) -> str | None:
        """``"folder"``, ``"job"`` or None when nothing is at ``path``."""
        try:
            info = self._call(
                f"read item {path!r}",
                partial(self._get_json, self._url(path) + "api/json?tree=_class"),
                subject=path,
            )
        except JenkinsNotFoundError:
            return None
        return "folder" if "Folder" in str(info.get("_class", "")) else "job"

    # ------------------------------------------------------------------ writes
    def create_folder(self, path: str) -> None:
        """Create the folder ``path`` (its parent must exist); a folder already there is fine."""
        base, short = self._parent_url(path)

        def post() -> None:
            try:
                self._request(
                    "POST",
                    base + "createItem?name=" + quote(short, safe=""),
                    data={"name": short, "mode": FOLDER_MODE},
                )
            except requests.HTTPError as exc:
                if (
                    exc.response is not None
                    and exc.response.status_code == 400
                    and self.item_kind(path) == "folder"
                ):
                    return  # created by an earlier attempt, or by someone else: what we want
                raise

        self._call(f"create folder {path!r}", post, subject=path, need=CREATE)
        if self.item_kind(path) != "folder":
            raise JenkinsError(
                f"Jenkins: create folder {path!r}: an item that is not a folder "
                "already has that name",
                subject=path,
                hint="rename or delete that item, or change jenkins.job in the spec",
            )

    def create_job(
        self, job: str, config_xml: str, *, on_exists: Callable[[str], bool] | None = None
    ) -> bool:
        """Create ``job``. If it already exists (an earlier attempt got through, or a race), re-read
        it and pass its config.xml to ``on_exists``, which says whether to rewrite it (and may raise
        to refuse); without ``on_exists`` an existing job is an error. Returns True if it rewrote."""
        base, short = self._parent_url(job)
        body = config_xml.encode("utf-8")
        rewrote = False

        def post() -> None:
            nonlocal rewrote
            try:
                self._request(
                    "POST",
                    base + "createItem?name=" + quote(short, safe=""),
                    data=body,
                    headers=_XML_HEADERS,
                )
            except requests.HTTPError as exc:
                response = exc.response
                if (
                    on_exists is None
                    or response is None
                    or response.status_code != 400
                    or "already exists" not in (response.text + response.headers.get("X-Error", ""))
                ):
                    raise
                current = self.get_config(job)
                if current is None:
                    raise
                if on_exists(current):
                    self.reconfig_job(job, config_xml)
                    rewrote = True

        self._call(f"create job {job!r}", post, subject=job, need=CREATE)
        return rewrote

    def reconfig_job(self, job: str, config_xml: str) -> None:
        """Replace ``job``'s config.xml (idempotent, so retried)."""
        body = config_xml.encode("utf-8")
        self._call(
            f"update job {job!r}",
            lambda: self._request(
                "POST", self._url(job) + "config.xml", data=body, headers=_XML_HEADERS
            ),
            subject=job,
            need=CONFIGURE,
        )

    def delete_job(self, job: str) -> bool:
        """Delete ``job``; False when it was already gone."""
        try:
            self._call(
                f"delete job {job!r}",
                lambda: self._request("POST", self._url(job) + "doDelete"),
                subject=job,
                need=DELETE,
            )
        except JenkinsNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ builds
    def trigger(self, job: str, parameters: Mapping[str, str]) -> int:
        """Queue a build of ``job`` with ``parameters`` (``buildWithParameters``, never retried:
        a lost answer may hide a queued build); returns the queue item id.

        python-jenkins sends an *empty* parameters dict (falsy) to ``/build``, which a
        parameterized job refuses (400 "Nothing is submitted"), so an empty one is refused here.
        A disabled job answers 409."""
        if not parameters:
            raise JenkinsError(
                f"Jenkins: refusing to trigger {job!r} without parameters",
                subject=job,
                hint="python-jenkins sends an empty parameter set to /build, which a "
                "parameterized job refuses",
            )
        params = dict(parameters)

        def post() -> int:
            try:
                queue_id: int = self.api.build_job(job, params)
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 409:
                    raise JenkinsError(
                        f"Jenkins: trigger {job}: the job is disabled (409)",
                        status=409,
                        subject=job,
                        hint="enable the job",
                    ) from None
                raise
            return queue_id

        queue_id = self._call(f"trigger {job}", post, subject=job, need=BUILD, retry=False)
        if not isinstance(queue_id, int):
            raise JenkinsError(
                f"Jenkins: trigger {job}: no queue item in the answer (no Location header)",
                subject=job,
            )
        return queue_id

    def next_build_number(self, job: str) -> int:
        """The number the job's next build will get (read before triggering: no build of that
        request can have a smaller one)."""
        info: Mapping[str, Any] = self._call(
            f"read job {job}",
            partial(self._get_json, self._url(job) + "api/json?depth=0"),
            subject=job,
        )
        number = info.get("nextBuildNumber")
        if not isinstance(number, int):
            raise JenkinsError(
                f"Jenkins: job {job} has no nextBuildNumber (is it a folder?)", subject=job
            )
        return number

    def queue_item(self, queue_id: int) -> Mapping[str, Any] | None:
        """The queue item (``why``, ``cancelled``, ``executable{number,url}`` once it started),
        or ``None`` once Jenkins has forgotten it (404, 5 minutes after it left the queue)."""
        try:
            item: Mapping[str, Any] = self._call(
                f"read queue item {queue_id}",
                partial(self._get_json, f"{self.url}/queue/item/{queue_id}/api/json?depth=0"),
            )
        except JenkinsNotFoundError:
            return None
        return item

    def queued(self) -> list[Mapping[str, Any]]:
        """Every item waiting in the queue, with its ``task.url`` and ``actions`` (parameters)."""
        data: Mapping[str, Any] = self._call(
            "read the queue", partial(self._get_json, f"{self.url}/queue/api/json?depth=0")
        )
        return [i for i in data.get("items") or [] if isinstance(i, Mapping)]

    def recent_builds(self, job: str) -> list[Mapping[str, Any]]:
        """The job's most recent builds (Jenkins lists 100) with ``number``, ``url``, ``queueId``
        and their parameters: ``Run.getQueueId`` and ``ParametersAction.getParameters`` are
        exported, one ``?tree=`` read."""
        data: Mapping[str, Any] = self._call(
            f"read builds of {job}",
            partial(self._get_json, self._url(job) + f"api/json?tree={_BUILDS_TREE}"),
            subject=job,
        )
        builds = data.get("builds") if isinstance(data, Mapping) else None
        return [
            b for b in builds or [] if isinstance(b, Mapping) and isinstance(b.get("number"), int)
        ]

    def build_info(self, job: str, number: int) -> Mapping[str, Any] | None:
        """Build ``number`` of ``job`` (``building``, ``result``, ``url``, ``queueId``,
        ``actions``), or ``None`` when there is none (deleted by log rotation, or never was)."""
        try:
            info: Mapping[str, Any] = self._call(
                f"read build {job} #{number}",
                partial(self._get_json, self._url(job) + f"{number}/api/json?depth=0"),
                subject=job,
            )
        except JenkinsNotFoundError:
            return None
        return info


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0] if text.strip() else ""
    return line[:200]


def _error_detail(response: requests.Response | None) -> str:
    if response is None:
        return ""
    detail = response.headers.get("X-Error") or ""
    if not detail and "html" not in response.headers.get("Content-Type", ""):
        detail = _first_line(response.text)
    return f": {detail[:200]}" if detail else ""


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
