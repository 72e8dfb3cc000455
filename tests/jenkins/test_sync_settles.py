"""Drift settles (issue 11 item 10): ``apply``, one build, ``plan`` shows zero changes, for every
shipped spec, against the Jenkins emulator's saves (object model on POST, the Declarative first run);
a hand edit of a field conveyor manages still shows as drift. And the trigger conveyor writes
survives Jenkins loading it (item 1)."""

from __future__ import annotations

from pathlib import Path

import jenkins
import pytest

from conveyor.config import Settings
from conveyor.jenkins.client import JenkinsClient
from conveyor.jenkins.jobs import DesiredJob, apply_job, desired_job, plan_job
from conveyor.jenkins.render import render
from conveyor.pipeline.context import Trigger, build_variables, trigger_parameters
from conveyor.spec.load import load_spec
from conveyor.spec.model import Spec
from conveyor.tokens import job_trigger_token
from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_USER
from tests.emulators.gitlab_plugin import post_hook
from tests.emulators.jenkins import JenkinsEmulator

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "pipelines").glob("*.yml"))
GITLAB = "https://gitlab.example.com"
SHA = "a" * 40
SECRET = "conveyor-test-secret-0123456789"


def _settings(emulator: JenkinsEmulator) -> Settings:
    return Settings(
        gitlab_url=GITLAB,
        jenkins_url=emulator.url,
        jenkins_user=JENKINS_USER,
        jenkins_token=JENKINS_API_TOKEN,
        secret=SECRET,
    )


def _apply(client: JenkinsClient, desired: DesiredJob) -> str:
    current = client.get_config(desired.job)
    change = plan_job(desired, current)
    if change.action in ("create", "update"):
        apply_job(client, change)
    return change.action


def _build(emulator: JenkinsEmulator, api: jenkins.Jenkins, spec: Spec, job: str) -> None:
    if spec.webhook.target == "jenkins":  # GitLab calls gitlab-plugin directly
        payload = {
            "object_kind": "push",
            "ref": "refs/heads/main",
            "before": "b" * 40,
            "after": SHA,
            "commits": [{"id": SHA, "message": "change"}],
            "project": {"path_with_namespace": spec.project},
            "repository": {"url": f"git@gitlab:{spec.project}.git"},
        }
        token = job_trigger_token(SECRET, job)
        assert post_hook(emulator.url, job, "Push Hook", payload, token) == 200
    else:  # conveyor's receiver: buildWithParameters with the trigger parameters
        trigger = Trigger(kind="push", project=spec.project, sha=SHA, branch="main")
        api.build_job(job, trigger_parameters(build_variables(trigger), event_id=7))
    assert emulator.item(job).builds, "the build was not scheduled"


def _create_folders(api: jenkins.Jenkins, job: str) -> None:
    parts = job.split("/")[:-1]
    for i in range(len(parts)):
        folder = "/".join(parts[: i + 1])
        if not api.job_exists(folder):
            api.create_folder(folder)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_apply_build_plan_is_zero_and_hand_edits_are_drift(
    path: Path, jenkins_emulator: JenkinsEmulator, jenkins_api: jenkins.Jenkins
) -> None:
    spec = load_spec(path).spec
    settings = _settings(jenkins_emulator)
    client = JenkinsClient(jenkins_emulator.url, JENKINS_USER, JENKINS_API_TOKEN)
    desired = desired_job(spec, settings)
    job = desired.job
    if spec.jenkins.definition == "scm":  # the repository holds the rendered Jenkinsfile
        rendered = render(spec, gitlab_url=GITLAB)
        url = spec.jenkins.scm.url or f"{GITLAB}/{spec.project}.git"
        jenkins_emulator.add_scm_file(url, spec.jenkins.scm.script_path, rendered.jenkinsfile)
    _create_folders(jenkins_api, job)

    assert _apply(client, desired) == "create"
    assert jenkins_emulator.item(job).old_data == []  # Jenkins loaded every element we sent
    assert "GitLabPushTrigger" in jenkins_emulator.stored_config(job)  # item 1: not dropped
    assert _apply(client, desired) == "unchanged"  # the POST-time re-save is not drift

    before_build = jenkins_emulator.stored_config(job)
    _build(jenkins_emulator, jenkins_api, spec, job)
    after_build = jenkins_emulator.stored_config(job)
    assert after_build != before_build  # the first Declarative run saved the job again
    assert "DeclarativeJobPropertyTrackerAction" in after_build
    change = plan_job(desired, client.get_config(job))
    assert change.action == "unchanged", change.diff
    _build(jenkins_emulator, jenkins_api, spec, job)
    assert plan_job(desired, client.get_config(job)).action == "unchanged"

    # a hand edit in the UI of a field conveyor manages is drift, and apply puts it back
    keep = spec.jenkins.options.keep_builds
    edited = after_build.replace(f"<numToKeep>{keep}</numToKeep>", "<numToKeep>3</numToKeep>")
    assert edited != after_build
    jenkins_emulator.hand_edit(job, edited)
    change = plan_job(desired, client.get_config(job))
    assert change.action == "update"
    assert f"-        <numToKeep>3</numToKeep>\n+        <numToKeep>{keep}</numToKeep>" in (
        change.diff
    )
    apply_job(client, change)
    assert plan_job(desired, client.get_config(job)).action == "unchanged"
    # ...and Declarative's saved actions survive conveyor's own update
    assert "DeclarativeJobPropertyTrackerAction" in jenkins_emulator.stored_config(job)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<triggerOnPush>true</triggerOnPush>", "<triggerOnPush>false</triggerOnPush>"),
        (
            "<useAlternativeCredential>false</useAlternativeCredential>",
            "<useAlternativeCredential>true</useAlternativeCredential>",
        ),
        ("<removeLastBuild>false</removeLastBuild>", "<removeLastBuild>true</removeLastBuild>"),
        ("<spec/>", "<spec>H * * * *</spec>"),  # the emulator writes "" as <x/>
    ],
)
def test_a_default_jenkins_adds_is_not_drift_but_changing_it_is(
    old: str, new: str, jenkins_emulator: JenkinsEmulator, jenkins_api: jenkins.Jenkins
) -> None:
    spec = load_spec(ROOT / "pipelines" / "hello-web.yml").spec
    client = JenkinsClient(jenkins_emulator.url, JENKINS_USER, JENKINS_API_TOKEN)
    desired = desired_job(spec, _settings(jenkins_emulator))
    _create_folders(jenkins_api, desired.job)
    _apply(client, desired)
    stored = jenkins_emulator.stored_config(desired.job)
    assert old in stored
    jenkins_emulator.hand_edit(desired.job, stored.replace(old, new))
    assert plan_job(desired, client.get_config(desired.job)).action == "update"
