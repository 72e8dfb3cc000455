"""Dispatch end to end: receiver -> Jenkins emulator build -> GitLab emulator commit statuses."""

from __future__ import annotations

from typing import Any

import jenkins
import pytest

from conveyor.config import Settings
from conveyor.errors import ConfigError
from conveyor.jenkins.dispatcher import JenkinsDispatcher
from conveyor.jenkins.render import render
from conveyor.pipeline.context import TRIGGER_PARAMETERS
from conveyor.receiver.dispatch import make_dispatcher
from conveyor.receiver.queue import Status
from conveyor.receiver.worker import WorkerOptions
from conveyor.runner.dispatcher import LocalDispatcher
from conveyor.spec.load import load_spec
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.receiver import payloads as p
from tests.receiver.conftest import Running
from tests.receiver.test_app import rows, send

SPEC = """\
apiVersion: conveyor/v1
project: demo/app
jenkins: {job: demo/app}
triggers: {push: {}, merge_request: {}}
stages: [{name: t, run: ["true"]}]
"""


# Present when the payload carries them (user, title, clone URL, before).
OPTIONAL = {
    "gitlabBefore",
    "gitlabMergeRequestTitle",
    "gitlabSourceRepoHttpUrl",
    "gitlabUserName",
    "gitlabUserEmail",
}


def job_xml(tmp_path: Any) -> str:
    """The config.xml conveyor generates for demo/app: it declares the trigger parameters, which
    the emulator (like Jenkins) needs before it passes them to a build."""
    spec_file = tmp_path / "app.yml"
    spec_file.write_text(SPEC)
    return render(load_spec(spec_file).spec).config_xml


@pytest.fixture
def world(
    gitlab_emulator: Any, jenkins_emulator: Any, jenkins_api: jenkins.Jenkins, tmp_path: Any
) -> tuple[Any, Any, Settings]:
    jenkins_api.create_folder("demo")
    jenkins_api.create_job("demo/app", job_xml(tmp_path))
    settings = Settings(
        secret=p.SECRET,
        state_dir=tmp_path / "state",
        gitlab_url=gitlab_emulator.url,
        gitlab_token=gitlab_emulator.tokens["maintainer"],
        jenkins_url=jenkins_emulator.url,
        jenkins_user=JENKINS_USER,
        jenkins_token=JENKINS_API_TOKEN,
    )
    return gitlab_emulator, jenkins_emulator, settings


def start(start_receiver: Any, settings: Settings, **worker: Any) -> Running:
    dispatcher = JenkinsDispatcher(settings, queue_poll_s=0.05, build_poll_s=0.05)
    options = WorkerOptions(**{"workers": 2, "poll_s": 0.05, "backoff_s": 0.05, **worker})
    running: Running = start_receiver(
        settings=settings, dispatcher=dispatcher, worker_options=options
    )
    return running


def app_payload(gitlab: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with demo/app's real id in the emulator (statuses are posted by id)."""
    return p.for_project(payload, gitlab.project("demo/app").id)


def settled(running: Running, event_id: int) -> bool:
    record = next(r for r in rows(running) if r.id == event_id)
    return record.status in (Status.DONE, Status.FAILED, Status.DEAD)


def states(gitlab: Any, sha: str, count: int, running: Running) -> list[Any]:
    running.wait_for(lambda: len(gitlab.statuses("demo/app", sha)) >= count)
    return list(gitlab.statuses("demo/app", sha))


def test_merge_request_builds_with_gitlab_variables_and_statuses_in_order(
    world: Any, start_receiver: Any
) -> None:
    gitlab, jenkins_emu, settings = world
    jenkins_emu.build_duration = 0.3
    running = start(start_receiver, settings)
    event_id = send(running, app_payload(gitlab, p.merge_request(action="open", iid=42))).json()[
        "id"
    ]
    running.wait_for(lambda: settled(running, event_id))
    [build] = jenkins_emu.triggered_builds("demo/app")
    assert build.parameters == {
        "gitlabBranch": "feature/login",
        "gitlabSourceBranch": "feature/login",
        "gitlabTargetBranch": "main",
        "gitlabActionType": "MERGE",
        "gitlabMergeRequestIid": "42",
        "gitlabMergeRequestAction": "open",
        "gitlabAfter": p.SHA_C,
        "CONVEYOR_EVENT_ID": str(event_id),
    } | {k: v for k, v in build.parameters.items() if k in OPTIONAL}
    assert set(build.parameters) <= set(TRIGGER_PARAMETERS)
    record = next(r for r in rows(running) if r.id == event_id)
    assert record.status is Status.DONE and record.attempts == 1
    assert record.result_url and record.result_url.endswith("/job/demo/job/app/1/")
    posted = states(gitlab, p.SHA_C, 3, running)
    assert [s.state for s in posted] == ["pending", "running", "success"]
    assert all(s.name == "conveyor/merge_request" and s.ref == "feature/login" for s in posted)
    assert posted[0].target_url == f"{settings.jenkins_url}/job/demo/job/app/"
    assert posted[1].target_url == posted[2].target_url == record.result_url


def test_push_parameters_and_failed_build_is_final(world: Any, start_receiver: Any) -> None:
    gitlab, jenkins_emu, settings = world
    jenkins_emu.next_result("demo/app", "FAILURE")
    running = start(start_receiver, settings)
    event_id = send(running, app_payload(gitlab, p.push(branch="release/1.2"))).json()["id"]
    running.wait_for(lambda: settled(running, event_id))
    [build] = jenkins_emu.triggered_builds("demo/app")
    assert build.parameters["gitlabActionType"] == "PUSH"
    assert build.parameters["gitlabBranch"] == "release/1.2"
    assert build.parameters["gitlabTargetBranch"] == "release/1.2"
    assert build.parameters["gitlabAfter"] == p.SHA_B
    record = next(r for r in rows(running) if r.id == event_id)
    assert record.status is Status.FAILED and record.attempts == 1
    assert record.reason == "demo/app #1: FAILURE"
    assert [s.state for s in states(gitlab, p.SHA_B, 3, running)] == [
        "pending",
        "running",
        "failed",
    ]


def test_unreachable_job_is_retried_then_dead_lettered(world: Any, start_receiver: Any) -> None:
    gitlab, jenkins_emu, settings = world
    jenkins.Jenkins(settings.jenkins_url, JENKINS_USER, JENKINS_API_TOKEN).delete_job("demo/app")
    running = start(start_receiver, settings, max_attempts=3)
    event_id = send(running, app_payload(gitlab, p.push())).json()["id"]
    running.wait_for(lambda: settled(running, event_id))
    record = next(r for r in rows(running) if r.id == event_id)
    assert record.status is Status.DEAD and record.attempts == 3
    assert record.last_error and "demo/app" in record.last_error
    assert [s.state for s in states(gitlab, p.SHA_B, 2, running)] == ["pending", "failed"]
    assert jenkins_emu.triggered_builds() == []
    assert (
        'conveyor_dispatch_total{dispatcher="jenkins",outcome="retry"} 2'
        in running.client.get("/metrics").text
    )


def test_dispatch_modes_fail_clearly_when_unusable(tmp_path: Any) -> None:
    bare = Settings(secret="x", state_dir=tmp_path)
    with pytest.raises(ConfigError, match="CONVEYOR_JENKINS_URL"):
        make_dispatcher("jenkins", bare)
    try:
        from conveyor.runner import execute

        ready = callable(getattr(execute, "run_pipeline", None))
    except ImportError:
        ready = False
    if ready:
        assert isinstance(make_dispatcher("auto", bare), LocalDispatcher)
    else:
        with pytest.raises(ConfigError, match="local runner"):
            make_dispatcher("local", bare)
        with pytest.raises(ConfigError, match="local runner"):
            make_dispatcher("auto", bare)
    assert make_dispatcher("none", bare).name == "none"


def test_superseded_push_gets_a_canceled_status(world: Any, start_receiver: Any) -> None:
    gitlab, jenkins_emu, settings = world
    running = start(start_receiver, settings, workers=0)
    older = send(running, app_payload(gitlab, p.push(after=p.SHA_A))).json()["id"]
    newer = send(running, app_payload(gitlab, p.push(after=p.SHA_B))).json()["id"]
    assert [s.state for s in states(gitlab, p.SHA_A, 2, running)] == ["pending", "canceled"]
    assert [s.state for s in states(gitlab, p.SHA_B, 1, running)] == ["pending"]
    by_id = {r.id: r for r in rows(running)}
    assert by_id[older].status is Status.SUPERSEDED and by_id[newer].status is Status.QUEUED
    assert jenkins_emu.triggered_builds() == []
