"""Trigger a Jenkins build and follow it to its result, through python-jenkins.

``build_job(name, parameters)`` POSTs ``buildWithParameters`` (params in the query) and
returns the queue item id from ``Location``. An *empty* parameters dict is falsy and goes to
``/build``, which a parameterized job refuses (400 "Nothing is submitted"), so
:func:`trigger` refuses to send an empty one. The queue item shows ``executable{number,url}``
once the build starts (or ``cancelled``); the build then reports ``building`` and finally
``result`` (SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_BUILT).

Every python-jenkins / requests exception is mapped to :mod:`conveyor.errors` here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import jenkins
import requests

from conveyor.errors import JenkinsAuthError, JenkinsError, JenkinsNotFoundError

T = TypeVar("T")

SUCCESS_RESULTS = frozenset({"SUCCESS"})


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


def queue_item(server: jenkins.Jenkins, queue_id: int) -> Mapping[str, Any]:
    info: Mapping[str, Any] = _call(
        f"read queue item {queue_id}", lambda: server.get_queue_item(queue_id)
    )
    return info


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
