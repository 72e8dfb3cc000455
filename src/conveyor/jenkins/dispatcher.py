"""The ``jenkins`` dispatch target: trigger the spec's job and follow the build to its result.

``buildWithParameters`` carries the gitlab-plugin variables from
:func:`conveyor.pipeline.context.build_variables` (``gitlabBranch``, ``gitlabSourceBranch``,
``gitlabTargetBranch``, ``gitlabActionType`` PUSH|TAG_PUSH|MERGE, ``gitlabMergeRequestIid``,
``GIT_COMMIT``...) plus ``CONVEYOR_EVENT_ID``; then queue item -> build number -> result. The queue
item shows ``executable{number,url}`` once the build starts (or ``cancelled``); the build then
reports ``building`` and finally ``result`` (SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_BUILT).

Effectively once: before the trigger the intent (the job's ``nextBuildNumber``) is committed with an
fsync; an attempt that finds an intent but no queue item id (the earlier one died, or lost the
answer, between sending the request and saving its queue item) looks for the queue item or build
carrying this event's ``CONVEYOR_EVENT_ID`` (and ``gitlabAfter``) numbered from that
``nextBuildNumber`` on, and follows it; only when there is none does it trigger. Without an intent
nothing was sent, so it triggers.

:func:`find_build` looks in the queue first (every waiting item with its ``ParametersAction``), then
in the job's recent builds: an item that starts between the two reads is then seen as a build, never
missed. Jenkins forgets a queue item 5 minutes after it left the queue (``Queue.leftItems``), so
:func:`wait_started` falls back to the build whose ``queueId`` it was.

Every request goes through :class:`~conveyor.jenkins.client.JenkinsClient`, the one Jenkins
boundary (the job sync's too): its errors, retries of reads, crumb refresh and job URLs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from conveyor.config import Settings
from conveyor.errors import JenkinsError
from conveyor.gitlab.checkout import gitlab_repo_url
from conveyor.gitlab.events import trigger_of
from conveyor.jenkins.client import JenkinsClient, job_url
from conveyor.pipeline.context import EVENT_PARAMETER, build_variables, trigger_parameters
from conveyor.receiver.dispatch import DispatchJob, Outcome, Progress
from conveyor.spec.model import Spec

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


@dataclass(frozen=True)
class FoundBuild:
    """Work an earlier request started: still queued (``number`` None) or a build."""

    queue_id: int | None
    number: int | None
    url: str

    @property
    def what(self) -> str:
        return f"build #{self.number}" if self.number is not None else f"queue item {self.queue_id}"


def jenkins_parameters(job: DispatchJob, *, repo_url: str | None = None) -> dict[str, str]:
    """The parameters sent with ``buildWithParameters`` (never empty)."""
    trigger = trigger_of(job.event, repo_url=repo_url)
    return trigger_parameters(build_variables(trigger), job.event_id)


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
    if not isinstance(task_url, str):
        return False
    path = unquote(urlparse(task_url).path).rstrip("/")
    return path.endswith("/job/" + "/job/".join(job.split("/")))


def _found(build: Mapping[str, Any]) -> FoundBuild:
    queue_id = build.get("queueId")
    return FoundBuild(
        queue_id=queue_id if isinstance(queue_id, int) else None,
        number=int(build["number"]),
        url=str(build.get("url") or ""),
    )


def find_build(
    client: JenkinsClient,
    job: str,
    marks: Mapping[str, str],
    *,
    since_number: int,
    queue_id: int | None = None,
) -> FoundBuild | None:
    """A queue item or build of ``job`` from this request: its ``queueId`` is ``queue_id``, or
    it carries every parameter in ``marks`` (which holds ``CONVEYOR_EVENT_ID``) and its number
    is at least ``since_number`` (read before the request was sent)."""
    for item in client.queued():
        if not _same_job((item.get("task") or {}).get("url"), job):
            continue
        item_id = item.get("id")
        if isinstance(item_id, int) and (
            item_id == queue_id or _carries(item.get("actions"), marks)
        ):
            return FoundBuild(queue_id=item_id, number=None, url="")
    recent = client.recent_builds(job)
    numbers = [int(b["number"]) for b in recent]
    for build in recent:
        if (queue_id is not None and build.get("queueId") == queue_id) or (
            int(build["number"]) >= since_number and _carries(build.get("actions"), marks)
        ):
            return _found(build)
    # older than the most recent 100 builds Jenkins lists: read the gap one by one
    oldest = min(numbers) if numbers else since_number
    for number in range(since_number, oldest):
        info = client.build_info(job, number)
        if info is None:
            continue  # deleted (log rotation) or never existed
        if (queue_id is not None and info.get("queueId") == queue_id) or _carries(
            info.get("actions"), marks
        ):
            return _found({"number": number, **info})
    return None


def wait_started(
    client: JenkinsClient,
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
        info = client.queue_item(queue_id)
        if info is None:
            # Jenkins forgot the item (it left the queue more than 5 minutes ago): the build
            # that came of it, if any, carries its queueId.
            build = next(
                (b for b in client.recent_builds(job) if b.get("queueId") == queue_id), None
            )
            if build is None:
                raise JenkinsError(
                    f"Jenkins: queue item {queue_id} of {job} is gone and no recent build of"
                    " the job came from it (cancelled long ago, or the build was deleted)",
                    subject=job,
                    hint="see the job's build history; `conveyor events replay` starts it again",
                )
            found = _found(build)
            assert found.number is not None
            return BuildStarted(job=job, number=found.number, url=found.url)
        if info.get("cancelled"):
            raise JenkinsError(
                f"Jenkins: queue item {queue_id} of {job} was cancelled", subject=job
            )
        executable = info.get("executable")
        if isinstance(executable, Mapping) and isinstance(executable.get("number"), int):
            return BuildStarted(
                job=job, number=int(executable["number"]), url=str(executable.get("url") or "")
            )
        if time.monotonic() > deadline:
            why = info.get("why") or "still queued"
            raise JenkinsError(
                f"Jenkins: {job} did not start within {timeout_s:.0f}s ({why})", subject=job
            )
        tick()
        time.sleep(poll_s)


def wait_finished(
    client: JenkinsClient,
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
        info = client.build_info(job, number)
        if info is None:
            raise JenkinsError(f"Jenkins: build {job} #{number} is gone (deleted?)", subject=job)
        result = info.get("result")
        if not info.get("building") and isinstance(result, str) and result:
            return BuildResult(
                job=job, number=number, url=str(info.get("url") or ""), result=result
            )
        if time.monotonic() > deadline:
            raise JenkinsError(
                f"Jenkins: {job} #{number} did not finish within {timeout_s:.0f}s", subject=job
            )
        tick()
        time.sleep(poll_s)


class JenkinsDispatcher:
    """Trigger the spec's Jenkins job and follow the build to its result."""

    name = "jenkins"

    def __init__(
        self,
        settings: Settings,
        *,
        queue_poll_s: float = 1.0,
        build_poll_s: float = 2.0,
        start_timeout_s: float = 3600.0,
    ) -> None:
        self._settings = settings
        self._queue_poll_s = queue_poll_s
        self._build_poll_s = build_poll_s
        self._start_timeout_s = start_timeout_s
        self._client: JenkinsClient | None = None

    def check(self) -> None:
        self._settings.require("jenkins_url", "jenkins_user", "jenkins_token")

    def job_url(self, spec: Spec) -> str | None:
        base = self._settings.jenkins_url
        return job_url(base, spec.jenkins.job) if base else None

    @property
    def client(self) -> JenkinsClient:
        """One client for every attempt (each worker thread gets its own session and crumb)."""
        if self._client is None:
            settings = self._settings
            assert settings.jenkins_url and settings.jenkins_user and settings.jenkins_token
            self._client = JenkinsClient(
                settings.jenkins_url, settings.jenkins_user, settings.jenkins_token
            )
        return self._client

    def dispatch(self, job: DispatchJob, progress: Progress) -> Outcome:
        client = self.client  # check() ran at startup
        name = job.spec.jenkins.job
        state: dict[str, Any] = {"job": name, **dict(job.resume or {})}
        number, queue_id = state.get("build_number"), state.get("queue_id")
        url: str | None = None
        if not isinstance(number, int) and not isinstance(queue_id, int):
            since = state.get("next_build")
            found = None
            if isinstance(since, int):  # an earlier attempt may have sent the request
                found = find_build(client, name, self._marks(job), since_number=since)
                progress.note(
                    "the earlier attempt's request never reached Jenkins"
                    if found is None
                    else f"found {found.what} of an earlier attempt"
                )
            if found is not None:
                number, queue_id, url = found.number, found.queue_id, found.url or None
                state.update(queue_id=queue_id, build_number=number)
                progress.remember(state, url=url)
            else:
                state = {"job": name, "next_build": client.next_build_number(name)}
                progress.remember(state, durable=True)  # the intent, before the point of no return
                queue_id = client.trigger(name, self._parameters(job))
                state["queue_id"] = queue_id
                progress.remember(state)
        elif not isinstance(number, int):
            progress.note(f"following queue item {queue_id} of an earlier attempt")
        else:
            progress.note(f"following build #{number} of an earlier attempt")
        if isinstance(number, int):
            progress.started(url)
        else:
            assert isinstance(queue_id, int)
            started = wait_started(
                client,
                name,
                queue_id,
                poll_s=self._queue_poll_s,
                timeout_s=self._start_timeout_s,
                tick=progress.tick,
            )
            number = started.number
            state["build_number"] = number
            progress.remember(state, url=started.url or None)
            progress.started(started.url or None)
        result = wait_finished(client, name, number, poll_s=self._build_poll_s, tick=progress.tick)
        return Outcome(
            succeeded=result.succeeded,
            detail=f"{name} #{number}: {result.result}",
            url=result.url or None,
        )

    def _parameters(self, job: DispatchJob) -> dict[str, str]:
        repo_url = gitlab_repo_url(self._settings.gitlab_url, job.event.project_path)
        return jenkins_parameters(job, repo_url=repo_url)

    def _marks(self, job: DispatchJob) -> dict[str, str]:
        """The parameters that tell this event's requests from any other's."""
        params = self._parameters(job)
        return {k: params[k] for k in (EVENT_PARAMETER, "gitlabAfter") if k in params}
