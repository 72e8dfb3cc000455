"""Trigger a Jenkins build and follow it to its result, through python-jenkins.

``build_job(name, parameters)`` POSTs ``buildWithParameters`` (params in the query) and
returns the queue item id from ``Location``. An *empty* parameters dict is falsy and goes to
``/build``, which a parameterized job refuses (400 "Nothing is submitted"), so
:func:`trigger` refuses to send an empty one. The queue item shows ``executable{number,url}``
once the build starts (or ``cancelled``); the build then reports ``building`` and finally
``result`` (SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_BUILT).

Finding what an earlier attempt started (effectively-once dispatch): :func:`find_build`
looks in the queue (``get_queue_info``: every waiting item with its ``ParametersAction``) and
then in the job's recent builds (one ``?tree=builds[number,url,queueId,actions[parameters[name,
value]]]`` read: ``Run.getQueueId`` and ``ParametersAction.getParameters`` are exported) for a
request carrying the event's ``CONVEYOR_EVENT_ID``. The queue is read first: an item that
starts between the two reads is then seen as a build, never missed. Jenkins forgets a queue
item 5 minutes after it left the queue (``Queue.leftItems``), so :func:`wait_started` falls
back to the build whose ``queueId`` it was.

Every python-jenkins / requests exception is mapped to :mod:`conveyor.errors` here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import jenkins
import requests

from conveyor.errors import JenkinsAuthError, JenkinsError, JenkinsNotFoundError

T = TypeVar("T")

SUCCESS_RESULTS = frozenset({"SUCCESS"})
EVENT_PARAMETER = "CONVEYOR_EVENT_ID"
_BUILDS_TREE = "builds[number,url,queueId,actions[parameters[name,value]]]"


@dataclass(frozen=True)
class BuildStarted:
    """A queue item turned into a build."""

    job: str
    number: int
    url: str


@dataclass(frozen=True)
class BuildResult:
    """A finished build."""

    job: str
    number: int
    url: str
    result: str

    @property
    def succeeded(self) -> bool:
        return self.result in SUCCESS_RESULTS


def connect(
    url: str, user: str | None, token: str | None, *, timeout: float = 30.0
) -> jenkins.Jenkins:
    """A python-jenkins client (no request is sent until the first call)."""
    return jenkins.Jenkins(url, username=user, password=token, timeout=timeout)


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except jenkins.NotFoundException as exc:
        raise JenkinsNotFoundError(f"Jenkins: {what}: not found ({exc})", status=404) from None
    except jenkins.TimeoutException:
        raise JenkinsError(f"Jenkins: {what}: timed out", hint="is Jenkins up?") from None
    except jenkins.JenkinsException as exc:
        text = str(exc)
        if "[401]" in text or "[403]" in text or "Unauthorized" in text or "Forbidden" in text:
            raise JenkinsAuthError(
                f"Jenkins: {what}: credentials refused",
                hint="check CONVEYOR_JENKINS_USER and CONVEYOR_JENKINS_TOKEN",
            ) from None
        raise JenkinsError(f"Jenkins: {what}: {text}") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        body = exc.response.text[:200] if exc.response is not None else ""
        if status == 409:
            raise JenkinsError(
                f"Jenkins: {what}: the job is disabled (409)", status=409, hint="enable the job"
            ) from None
        raise JenkinsError(f"Jenkins: {what}: HTTP {status}: {body}", status=status) from None
    except requests.RequestException as exc:
        raise JenkinsError(
            f"Jenkins: {what}: cannot reach Jenkins ({type(exc).__name__})",
            hint="check CONVEYOR_JENKINS_URL",
        ) from None


def trigger(server: jenkins.Jenkins, job: str, parameters: Mapping[str, str]) -> int:
    """Queue a build of ``job`` with ``parameters``; returns the queue item id."""
    if not parameters:
        raise JenkinsError(
            f"Jenkins: refusing to trigger {job!r} without parameters",
            hint="python-jenkins sends an empty parameter set to /build, which a parameterized job refuses",
        )
    params = dict(parameters)
    queue_id = _call(f"trigger {job}", lambda: server.build_job(job, params))
    if not isinstance(queue_id, int):
        raise JenkinsError(
            f"Jenkins: trigger {job}: no queue item in the answer (no Location header)"
        )
    return queue_id


def queue_item(server: jenkins.Jenkins, queue_id: int) -> Mapping[str, Any] | None:
    """The queue item, or ``None`` once Jenkins has forgotten it (5 minutes after it left)."""

    def read() -> Mapping[str, Any] | None:
        try:
            info: Mapping[str, Any] = server.get_queue_item(queue_id)
        except jenkins.JenkinsException as exc:
            if "does not exist" in str(exc):  # python-jenkins' words for the 404
                return None
            raise
        return info

    return _call(f"read queue item {queue_id}", read)


def next_build_number(server: jenkins.Jenkins, job: str) -> int:
    """The number the job's next build will get (read before triggering: no build of this
    request can have a smaller one)."""
    info: Mapping[str, Any] = _call(f"read job {job}", lambda: server.get_job_info(job))
    number = info.get("nextBuildNumber")
    if not isinstance(number, int):
        raise JenkinsError(f"Jenkins: job {job} has no nextBuildNumber (is it a folder?)")
    return number


@dataclass(frozen=True)
class FoundBuild:
    """Work an earlier request started: still queued (``number`` None) or a build."""

    queue_id: int | None
    number: int | None
    url: str

    @property
    def what(self) -> str:
        return f"build #{self.number}" if self.number is not None else f"queue item {self.queue_id}"


def _parameters(actions: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, Mapping):
            continue
        for param in action.get("parameters") or []:
            if isinstance(param, Mapping) and isinstance(param.get("name"), str):
                out[param["name"]] = str(param.get("value"))
    return out


def _carries(actions: Any, marks: Mapping[str, str]) -> bool:
    """Every mark is among the parameters (``CONVEYOR_EVENT_ID`` must be; a parameter the job
    does not declare is dropped by Jenkins, so an absent other mark does not disqualify)."""
    params = _parameters(actions)
    if params.get(EVENT_PARAMETER) != marks.get(EVENT_PARAMETER):
        return False
    return all(params.get(k, v) == v for k, v in marks.items())


def _same_job(task_url: Any, job: str) -> bool:
    from urllib.parse import unquote, urlparse

    if not isinstance(task_url, str):
        return False
    path = unquote(urlparse(task_url).path).rstrip("/")
    return path.endswith("/job/" + "/job/".join(job.split("/")))


def _recent_builds(server: jenkins.Jenkins, job: str) -> list[Mapping[str, Any]]:
    url = job_url(server.server, job) + f"api/json?tree={_BUILDS_TREE}"
    text = _call(f"read builds of {job}", lambda: server.jenkins_open(requests.Request("GET", url)))
    try:
        builds = json.loads(text).get("builds") or []
    except (ValueError, AttributeError):
        raise JenkinsError(f"Jenkins: builds of {job}: the answer is not JSON") from None
    return [b for b in builds if isinstance(b, Mapping) and isinstance(b.get("number"), int)]


def find_build(
    server: jenkins.Jenkins,
    job: str,
    marks: Mapping[str, str],
    *,
    since_number: int,
    queue_id: int | None = None,
) -> FoundBuild | None:
    """A queue item or build of ``job`` from this request: its ``queueId`` is ``queue_id``, or
    it carries every parameter in ``marks`` (which holds ``CONVEYOR_EVENT_ID``) and its number
    is at least ``since_number`` (read before the request was sent)."""
    queued: list[Mapping[str, Any]] = _call("read the queue", server.get_queue_info)
    for item in queued:
        if not _same_job((item.get("task") or {}).get("url"), job):
            continue
        item_id = item.get("id")
        if isinstance(item_id, int) and (
            item_id == queue_id or _carries(item.get("actions"), marks)
        ):
            return FoundBuild(queue_id=item_id, number=None, url="")
    recent = _recent_builds(server, job)
    numbers = [int(b["number"]) for b in recent]
    for build in recent:
        if (queue_id is not None and build.get("queueId") == queue_id) or (
            int(build["number"]) >= since_number and _carries(build.get("actions"), marks)
        ):
            return _found(build)
    # older than the most recent 100 builds Jenkins lists: read the gap one by one
    oldest = min(numbers) if numbers else since_number
    for number in range(since_number, oldest):
        try:
            info: Mapping[str, Any] = server.get_build_info(job, number)
        except jenkins.JenkinsException:
            continue  # deleted (log rotation) or never existed
        if (queue_id is not None and info.get("queueId") == queue_id) or _carries(
            info.get("actions"), marks
        ):
            return _found(info)
    return None


def _found(build: Mapping[str, Any]) -> FoundBuild:
    queue_id = build.get("queueId")
    return FoundBuild(
        queue_id=queue_id if isinstance(queue_id, int) else None,
        number=int(build["number"]),
        url=str(build.get("url") or ""),
    )


def wait_started(
    server: jenkins.Jenkins,
    job: str,
    queue_id: int,
    *,
    poll_s: float = 1.0,
    timeout_s: float = 3600.0,
    tick: Callable[[], None] = lambda: None,
) -> BuildStarted:
    """Poll the queue item until it becomes a build. ``tick`` runs every poll (may raise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = queue_item(server, queue_id)
        if info is None:
            # Jenkins forgot the item (it left the queue more than 5 minutes ago): the build
            # that came of it, if any, carries its queueId.
            build = next(
                (b for b in _recent_builds(server, job) if b.get("queueId") == queue_id), None
            )
            if build is None:
                raise JenkinsError(
                    f"Jenkins: queue item {queue_id} of {job} is gone and no recent build of"
                    " the job came from it (cancelled long ago, or the build was deleted)",
                    hint="see the job's build history; `conveyor events replay` starts it again",
                )
            found = _found(build)
            assert found.number is not None
            return BuildStarted(job=job, number=found.number, url=found.url)
        if info.get("cancelled"):
            raise JenkinsError(f"Jenkins: queue item {queue_id} of {job} was cancelled")
        executable = info.get("executable")
        if isinstance(executable, Mapping) and isinstance(executable.get("number"), int):
            return BuildStarted(
                job=job, number=int(executable["number"]), url=str(executable.get("url") or "")
            )
        if time.monotonic() > deadline:
            why = info.get("why") or "still queued"
            raise JenkinsError(f"Jenkins: {job} did not start within {timeout_s:.0f}s ({why})")
        tick()
        time.sleep(poll_s)


def wait_finished(
    server: jenkins.Jenkins,
    job: str,
    number: int,
    *,
    poll_s: float = 2.0,
    timeout_s: float = 24 * 3600.0,
    tick: Callable[[], None] = lambda: None,
) -> BuildResult:
    """Poll the build until it has a result. ``tick`` runs every poll (may raise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info: Mapping[str, Any] = _call(
            f"read build {job} #{number}", lambda: server.get_build_info(job, number)
        )
        result = info.get("result")
        if not info.get("building") and isinstance(result, str) and result:
            return BuildResult(
                job=job, number=number, url=str(info.get("url") or ""), result=result
            )
        if time.monotonic() > deadline:
            raise JenkinsError(f"Jenkins: {job} #{number} did not finish within {timeout_s:.0f}s")
        tick()
        time.sleep(poll_s)


def job_url(base_url: str, job: str) -> str:
    """The browser URL of a (possibly foldered) job: ``a/b`` -> ``BASE/job/a/job/b/``."""
    from urllib.parse import quote

    return base_url.rstrip("/") + "/" + "".join(f"job/{quote(p, safe='')}/" for p in job.split("/"))
