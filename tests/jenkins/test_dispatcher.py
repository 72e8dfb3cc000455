"""The Jenkins dispatcher against the Jenkins emulator: effectively-once (an attempt that may have
started a build finds it and follows it instead of starting another), and the one Jenkins boundary
it shares with the job sync (errors, crumbs, retries). Through the receiver end to end:
tests/receiver/test_dispatch_e2e.py, test_effectively_once.py, test_kill_loop.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jenkins
import pytest

from conveyor.errors import JenkinsAuthError, JenkinsError, JenkinsNotFoundError
from conveyor.jenkins.client import JenkinsClient
from conveyor.jenkins.dispatcher import JenkinsDispatcher, jenkins_parameters
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.receiver import payloads as p
from tests.receiver import test_dispatch_e2e as e2e
from tests.receiver.progress import Recorder, job_for

world = e2e.world  # the demo/app job in the Jenkins emulator, GitLab, settings


@pytest.fixture
def dispatcher(world: Any) -> JenkinsDispatcher:
    return JenkinsDispatcher(world[2], queue_poll_s=0.02, build_poll_s=0.02)


def test_intent_without_queue_item_follows_the_queued_item(
    world: Any, dispatcher: JenkinsDispatcher, jenkins_api: jenkins.Jenkins, tmp_path: Path
) -> None:
    _, jenkins_emu, _ = world
    jenkins_emu.queue_delay = 0.3
    job = job_for(tmp_path, 7, {"job": "demo/app", "next_build": 1})
    queue_id = jenkins_api.build_job("demo/app", jenkins_parameters(job))  # the earlier attempt
    progress = Recorder()
    outcome = dispatcher.dispatch(job, progress)
    assert outcome.succeeded and outcome.detail == "demo/app #1: SUCCESS"
    assert len(jenkins_emu.triggered_builds()) == 1
    assert progress.notes == [f"found queue item {queue_id} of an earlier attempt"]
    assert progress.durable == []  # nothing new was sent


def test_intent_for_another_event_or_an_older_build_is_not_taken(
    world: Any, dispatcher: JenkinsDispatcher, jenkins_api: jenkins.Jenkins, tmp_path: Path
) -> None:
    """A build of another event, and a build of the same event id numbered before the intent
    (an older database's event 7), are not ours: trigger, once."""
    _, jenkins_emu, _ = world
    old = job_for(tmp_path, 7, None)
    jenkins_api.build_job("demo/app", jenkins_parameters(old))  # #1: event 7 of long ago
    jenkins_api.build_job("demo/app", jenkins_parameters(job_for(tmp_path, 8, None)))  # #2
    job = job_for(tmp_path, 7, {"job": "demo/app", "next_build": 3})
    progress = Recorder()
    outcome = dispatcher.dispatch(job, progress)
    assert outcome.detail == "demo/app #3: SUCCESS"
    assert len(jenkins_emu.triggered_builds()) == 3
    assert progress.notes == ["the earlier attempt's request never reached Jenkins"]
    assert progress.durable == [{"job": "demo/app", "next_build": 3}]


def test_forgotten_queue_item_is_found_through_the_build_queue_id(
    world: Any, dispatcher: JenkinsDispatcher, jenkins_api: jenkins.Jenkins, tmp_path: Path
) -> None:
    """Resumed more than 5 minutes after its build started, the queue item is gone
    (Queue.leftItems): the build that carries its queueId is followed."""
    _, jenkins_emu, _ = world
    jenkins_emu.left_item_ttl = 0.0
    job = job_for(tmp_path, 9, None)
    queue_id = jenkins_api.build_job("demo/app", jenkins_parameters(job))
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        jenkins_api.get_queue_item(queue_id)
    resumed = job_for(tmp_path, 9, {"job": "demo/app", "queue_id": queue_id, "next_build": 1})
    outcome = dispatcher.dispatch(resumed, Recorder())
    assert outcome.succeeded and outcome.detail == "demo/app #1: SUCCESS"
    assert len(jenkins_emu.triggered_builds()) == 1


# ------------------------------------------------------------------------ the one Jenkins boundary


def test_build_errors_are_mapped_at_the_boundary(world: Any) -> None:
    _, jenkins_emu, settings = world
    client = JenkinsClient(settings.jenkins_url or "", JENKINS_USER, JENKINS_API_TOKEN)
    with pytest.raises(JenkinsError, match="without parameters"):
        client.trigger("demo/app", {})
    with pytest.raises(JenkinsNotFoundError) as missing:
        client.trigger("demo/missing", {"GIT_COMMIT": p.SHA_B})
    assert missing.value.subject == "demo/missing" and missing.value.status == 404
    client.api.disable_job("demo/app")
    with pytest.raises(JenkinsError) as disabled:
        client.trigger("demo/app", {"GIT_COMMIT": p.SHA_B})
    assert disabled.value.status == 409 and disabled.value.hint == "enable the job"
    intruder = JenkinsClient(settings.jenkins_url or "", JENKINS_USER, "wrong-token")
    with pytest.raises(JenkinsAuthError) as refused:
        intruder.trigger("demo/app", {"GIT_COMMIT": p.SHA_B})
    assert refused.value.status == 401 and "credentials refused" in refused.value.message
    assert "wrong-token" not in str(refused.value)
    assert client.queue_item(10_000) is None  # forgotten (or never was): 404
    assert client.build_info("demo/app", 99) is None
    assert jenkins_emu.triggered_builds() == []


def test_forbidden_trigger_names_the_permission_not_the_credentials(world: Any) -> None:
    """A 403 that is not about the crumb is a missing permission (Job/Build), told apart from a
    401 (refused credentials), and not retried: the sync client's mapping, now the dispatcher's."""
    _, jenkins_emu, settings = world
    jenkins_emu.faults.error("POST", r"/buildWithParameters$", status=403, times=5)
    client = JenkinsClient(settings.jenkins_url or "", JENKINS_USER, JENKINS_API_TOKEN)
    with pytest.raises(JenkinsAuthError) as forbidden:
        client.trigger("demo/app", {"GIT_COMMIT": p.SHA_B})
    assert forbidden.value.status == 403 and "permission denied" in forbidden.value.message
    assert forbidden.value.hint == "the CONVEYOR_JENKINS_USER needs Job/Build on demo/app"
    # sent once: not retried, and no crumb refresh (the answer is not about the crumb)
    assert len(jenkins_emu.log.records("POST", r"/buildWithParameters$")) == 1
    assert jenkins_emu.triggered_builds() == []


def test_stale_crumb_on_a_trigger_is_refreshed_once_and_builds_once(
    world: Any, dispatcher: JenkinsDispatcher, tmp_path: Path
) -> None:
    """One client (one session and crumb per worker thread) serves every attempt, so a crumb can go
    stale between two events (Jenkins restarted): the trigger's 403 "No valid crumb" asks for a
    new crumb and sends the trigger again, once. Safe: CrumbFilter refuses before the build is
    queued (the emulator's test_crumb_refused_post_does_nothing)."""
    _, jenkins_emu, _ = world
    crumbs = len(jenkins_emu.log.records("GET", r"crumbIssuer"))  # the fixture's own client's
    first = dispatcher.dispatch(job_for(tmp_path, 1, None), Recorder())
    assert first.succeeded
    with jenkins_emu.lock:
        jenkins_emu._sessions.clear()  # Jenkins restarted: every crumb it issued is void
    second = dispatcher.dispatch(job_for(tmp_path, 2, None), Recorder())
    assert second.succeeded and second.detail == "demo/app #2: SUCCESS"
    assert [b.parameters["CONVEYOR_EVENT_ID"] for b in jenkins_emu.triggered_builds()] == ["1", "2"]
    assert [r.status for r in jenkins_emu.log.records("POST", r"/buildWithParameters$")] == [
        201,
        403,
        201,
    ]
    assert len(jenkins_emu.log.records("GET", r"crumbIssuer")) == crumbs + 2


def test_a_transient_read_error_while_following_is_retried_in_place(
    world: Any, dispatcher: JenkinsDispatcher, tmp_path: Path
) -> None:
    """A 503 while polling the build is retried by the client (as the sync's reads are) instead of
    failing the attempt; the trigger itself is never retried (test_effectively_once)."""
    _, jenkins_emu, _ = world
    jenkins_emu.build_duration = 0.2
    jenkins_emu.faults.error("GET", r"/job/demo/job/app/1/api/json$", status=503, times=2)
    outcome = dispatcher.dispatch(job_for(tmp_path, 3, None), Recorder())
    assert outcome.succeeded and len(jenkins_emu.triggered_builds()) == 1
    assert jenkins_emu.faults.pending() == 0
